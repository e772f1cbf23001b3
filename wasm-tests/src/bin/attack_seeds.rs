//! Writes the end-to-end attack matrix ([`wasm_tests::attacks::matrix`]) as seeds for core's
//! fuzz targets (`fuzz/`): one file per attack, a selector byte for the header kind, then the
//! credential header values separated by `0xff` (the targets' input format).
//!
//! `attack_seeds <corpus dir>` — writes `<dir>/credentials/matrix-NN` and `<dir>/verify/matrix-NN`.

use std::path::Path;

use anyhow::{Context, Result};

fn main() -> Result<()> {
    let out = std::env::args()
        .nth(1)
        .context("usage: attack_seeds <corpus dir>")?;
    let matrix = wasm_tests::attacks::matrix(wasm_tests::now())?;
    let mut written = 0;
    for (i, attack) in matrix.iter().enumerate() {
        let creds: Vec<(&str, &[u8])> = attack
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .filter(|(k, _)| {
                ["authorization", "macaroon", "grpc-metadata-macaroon"]
                    .contains(&k.to_ascii_lowercase().as_str())
            })
            .collect();
        let Some((first, _)) = creds.first() else {
            continue;
        };
        let selector: u8 = match first.to_ascii_lowercase().as_str() {
            "authorization" => 0x80,
            "macaroon" => 0x81,
            _ => 0x82,
        };
        let mut seed = vec![selector];
        for (j, (_, v)) in creds.iter().enumerate() {
            if j > 0 {
                seed.push(0xff);
            }
            seed.extend_from_slice(v);
        }
        for target in ["credentials", "verify"] {
            let dir = Path::new(&out).join(target);
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join(format!("matrix-{i:02}")), &seed)?;
        }
        written += 1;
    }
    println!("wrote {written} attack-matrix seeds per target under {out}");
    Ok(())
}
