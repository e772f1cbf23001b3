//! Test-only helper for the interop tests, knowing only the test keyring
//! ([`wasm_tests::KEYS`]); nothing ships with it.
//!
//! - `interop_helper root-key <macaroon>`: the root key (hex) the keyring derives for a
//!   macaroon, so that third-party macaroon libraries can verify our signatures;
//! - `interop_helper mint-expired <preimage hex>`: a `weather` token minted an hour ago with a
//!   one-minute lifetime, for the payment hash of that preimage (an expired token a client holds).

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["root-key", b64] => {
            let token_id = l402_core::inspect(b64)?.identifier.token_id;
            let ring: l402_core::Keyring = wasm_tests::KEYS.parse()?;
            let root = ring
                .root_key(&token_id)
                .context("key not in the test keyring")?;
            println!("{}", hex::encode(root.expose_bytes()));
        }
        ["mint-expired", preimage] => {
            let bytes: [u8; 32] = hex::decode(preimage)?
                .try_into()
                .map_err(|_| anyhow::anyhow!("the preimage is 32 bytes"))?;
            let p = l402_core::Preimage::from_bytes(bytes);
            let then = wasm_tests::now() - 3_600;
            println!(
                "{}",
                wasm_tests::token("weather", &["read"], Some(60), then, &p, 0x5a)?
            );
        }
        _ => bail!("usage: interop_helper root-key <macaroon> | mint-expired <preimage hex>"),
    }
    Ok(())
}
