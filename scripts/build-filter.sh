#!/usr/bin/env bash
# Builds a proxy-wasm filter: cargo (wasm32-wasip1, the size-optimized `wasm` profile) then
# wasm-opt -Oz (npm binaryen, cached). Prints the path of the optimized .wasm.
# Usage: scripts/build-filter.sh [package [features]]   (default l402-filter; noop-filter for
# benchmarks; `noop-filter verify-size` weighs verification alone, docs/BENCHMARKS.md)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh
ensure_rust_targets
wasm_opt=$(ensure_binaryen)
pkg="${1:-l402-filter}"
features="${2:-}"
lib="${pkg//-/_}"
cargo build -p "$pkg" --locked --profile wasm --target wasm32-wasip1 ${features:+--features "$features"} >&2
raw="$CARGO_TARGET_DIR/wasm32-wasip1/wasm/$lib.wasm"
out="$CARGO_TARGET_DIR/$lib${features:+-$features}.opt.wasm"
# Written aside and renamed, so that an Envoy loading the previous build never reads half a file.
"$wasm_opt" -Oz --strip-debug --strip-producers \
  --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
  --enable-mutable-globals --enable-multivalue --enable-reference-types \
  "$raw" -o "$out.tmp.$$"
if cmp -s "$out.tmp.$$" "$out"; then rm -f "$out.tmp.$$"; else mv -f "$out.tmp.$$" "$out"; fi
echo "$out"
