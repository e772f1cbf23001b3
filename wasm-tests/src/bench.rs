//! Filter slots of `envoy-config/envoy.bench.yaml.tmpl`, shared by the Envoy benchmark and
//! the test that validates every Envoy config in the repository.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The command line both benchmarks take: `[--seconds N] [--rounds N] [--quick]`, and
/// `[--only a,b]` (bench-worker's variants by short name).
#[derive(Clone, Debug)]
pub struct BenchArgs {
    /// `--quick`: every variant for one second, one round (what the test run does).
    pub quick: bool,
    /// Seconds per round and variant (default 5).
    pub secs: u64,
    /// Rounds (default 3).
    pub rounds: usize,
    /// `--only a,b`: just these variants, for probing one cost (bench-worker; the summary is left
    /// out, it needs every variant).
    pub only: Option<Vec<String>>,
}

impl BenchArgs {
    /// Whether the variant named `name` runs.
    pub fn runs(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|n| n == name))
    }

    /// From `std::env::args()`.
    pub fn from_env() -> BenchArgs {
        let args: Vec<String> = std::env::args().collect();
        let arg = |name: &str, default: u64| {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let quick = args.iter().any(|a| a == "--quick");
        let only = args
            .iter()
            .position(|a| a == "--only")
            .and_then(|i| args.get(i + 1))
            .map(|v| v.split(',').map(str::to_owned).collect());
        BenchArgs {
            quick,
            only,
            secs: if quick { 1 } else { arg("--seconds", 5) },
            rounds: if quick {
                1
            } else {
                arg("--rounds", 3) as usize
            },
        }
    }
}

/// The HS256 secret of the `jwt_authn` peer (bench-only).
pub const JWT_SECRET: &[u8] = b"bench-jwt-secret-0123456789abcdef";

/// A Wasm filter running `wasm` with `config` (JSON without single quotes).
pub fn wasm_filter(wasm: &Path, config: &str) -> String {
    format!(
        r#"          - name: wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: bench
                root_id: bench
                vm_config:
                  runtime: envoy.wasm.runtime.v8
                  code: {{ local: {{ filename: "{}" }} }}
                  environment_variables:
                    host_env_keys: ["L402_KEYS", "L402_EDGE_TOKEN", "L402_CONTEXT_KEY"]
                fail_open: false
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: '{config}'"#,
        wasm.display()
    )
}

/// Envoy's `jwt_authn` verifying HS256 tokens against a local JWKS of [`JWT_SECRET`].
pub fn jwt_filter() -> String {
    let jwks = serde_json::json!({"keys": [{
        "kty": "oct", "alg": "HS256", "kid": "bench", "k": URL_SAFE_NO_PAD.encode(JWT_SECRET)
    }]});
    format!(
        r#"          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                bench:
                  issuer: l402-bench
                  local_jwks: {{ inline_string: '{jwks}' }}
              rules:
              - match: {{ prefix: "/weather" }}
                requires: {{ provider_name: bench }}"#
    )
}

/// Writes `n` Payment credentials for `weather` (capability `read`) to `path`, one per line,
/// each a distinct charge issued under [`crate::KEYS`] (`salt` keeps runs apart): every request
/// of a benchmark spends a fresh one, as paying clients do.
pub fn payment_credentials(path: &Path, n: usize, salt: u32) -> anyhow::Result<()> {
    use std::io::Write as _;
    let ring: l402_core::Keyring = crate::KEYS.parse()?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 0..n {
        let mut bytes = [0x77u8; 32];
        bytes[..4].copy_from_slice(&salt.to_be_bytes());
        bytes[4..12].copy_from_slice(&(i as u64).to_be_bytes());
        let p = l402_core::Preimage::from_bytes(bytes);
        let c = l402_core::issue_charge(
            &ring,
            &l402_core::ChargeTerms {
                realm: "l402-edge",
                service: "weather",
                capabilities: "read",
                amount_sat: 10,
                invoice: "lnbcrt100n1pbenchmarkinvoice",
                payment_hash: &p.payment_hash(),
                expires_at: crate::now() + 3600,
                description: None,
            },
        )?;
        writeln!(out, "{}", crate::payment_credential(&c, &p.expose_hex()))?;
    }
    out.flush()?;
    Ok(())
}

/// `wrk` Lua: each request sends the next line of `path` as its `Authorization` (the last one
/// again once they run out, which the run then answers 402 and the benchmark refuses).
pub fn rotating_credentials_script(path: &Path) -> String {
    format!(
        r#"
local creds = {{}}
for line in io.lines("{}") do creds[#creds + 1] = line end
local next_cred = 0
request = function()
  next_cred = next_cred + 1
  if next_cred > #creds then next_cred = #creds end
  return wrk.format(nil, nil, {{["Authorization"] = creds[next_cred]}})
end
"#,
        path.display()
    )
}
