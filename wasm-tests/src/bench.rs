//! Filter slots of `envoy-config/envoy.bench.yaml.tmpl`, shared by the Envoy benchmark and
//! the test that validates every Envoy config in the repository.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The command line both benchmarks take: `[--seconds N] [--rounds N] [--quick]`.
#[derive(Clone, Copy, Debug)]
pub struct BenchArgs {
    /// `--quick`: every variant for one second, one round (what the test run does).
    pub quick: bool,
    /// Seconds per round and variant (default 5).
    pub secs: u64,
    /// Rounds (default 3).
    pub rounds: usize,
}

impl BenchArgs {
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
        BenchArgs {
            quick,
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
