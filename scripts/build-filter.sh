#!/usr/bin/env bash
# Builds the Envoy filter: cargo (wasm32-wasip1, release) then wasm-opt -Oz (npm binaryen,
# cached). Prints the path of the optimized .wasm.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh
ensure_rust_targets
BINARYEN_VERSION=132.0.0
bdir="$L402_CACHE/binaryen-$BINARYEN_VERSION"
if [ ! -x "$bdir/node_modules/.bin/wasm-opt" ]; then
  mkdir -p "$bdir"
  npm install --silent --no-audit --no-fund --prefix "$bdir" "binaryen@$BINARYEN_VERSION" >&2
fi
cargo build -p l402-filter --locked --profile wasm --target wasm32-wasip1 >&2
raw="$CARGO_TARGET_DIR/wasm32-wasip1/wasm/l402_filter.wasm"
out="$CARGO_TARGET_DIR/l402_filter.opt.wasm"
"$bdir/node_modules/.bin/wasm-opt" -Oz --strip-debug --strip-producers \
  --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
  --enable-mutable-globals --enable-multivalue --enable-reference-types \
  "$raw" -o "$out"
echo "$out"
