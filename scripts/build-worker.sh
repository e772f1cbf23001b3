#!/usr/bin/env bash
# Builds the Worker with no download beyond the package registries: cargo
# (wasm32-unknown-unknown, `wasm-worker` profile: speed first), wasm-bindgen (the CLI pinned to Cargo.lock's
# version, cached), wasm-opt (npm binaryen), and the JavaScript entry module (worker/js/index.mjs). Output: worker/build/.
# Prints the path of the entry module. wrangler.toml's [build] command runs this.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh
ensure_rust_targets
wbg_version=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
wbg_root="$L402_CACHE/wasm-bindgen-$wbg_version"
if [ ! -x "$wbg_root/bin/wasm-bindgen" ]; then
  cargo install --quiet wasm-bindgen-cli --version "=$wbg_version" --root "$wbg_root" >&2
fi
wasm_opt=$(ensure_binaryen)
cargo build -p l402-worker --locked --profile wasm-worker --target wasm32-unknown-unknown >&2
out=worker/build
rm -rf "$out" && mkdir -p "$out"
"$wbg_root/bin/wasm-bindgen" --target web --no-typescript --out-dir "$out" --out-name l402_worker \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-worker/l402_worker.wasm" >&2
"$wasm_opt" -O3 --strip-debug --strip-producers \
  --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
  --enable-mutable-globals --enable-multivalue --enable-reference-types \
  "$out/l402_worker_bg.wasm" -o "$out/l402_worker_bg.wasm"
cp worker/js/index.mjs "$out/index.mjs"
echo "$PWD/$out/index.mjs"
