#!/usr/bin/env bash
# Builds the Worker with no download beyond the package registries: cargo
# (wasm32-unknown-unknown, `wasm` profile), wasm-bindgen (the CLI pinned to Cargo.lock's
# version, cached), wasm-opt (npm binaryen), and a small ES-module shim. Output: worker/build/.
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
cargo build -p l402-worker --locked --profile wasm --target wasm32-unknown-unknown >&2
out=worker/build
rm -rf "$out" && mkdir -p "$out"
"$wbg_root/bin/wasm-bindgen" --target web --no-typescript --out-dir "$out" --out-name l402_worker \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm/l402_worker.wasm" >&2
"$wasm_opt" -Oz --strip-debug --strip-producers \
  --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
  --enable-mutable-globals --enable-multivalue --enable-reference-types \
  "$out/l402_worker_bg.wasm" -o "$out/l402_worker_bg.wasm"
cat > "$out/index.mjs" <<'JS'
// Entry module: instantiate the Rust Worker once per isolate, then hand it every request.
import { initSync, fetch as handle, SpentSet, Allowance } from "./l402_worker.js";
import wasmModule from "./l402_worker_bg.wasm";
initSync({ module: wasmModule });
// The Durable Object classes: the spent-set (L402_SPENT_SET) and metered tokens' counts
// (L402_ALLOWANCE), bound in wrangler.toml.
export { SpentSet, Allowance };
export default {
  async fetch(request, env, ctx) {
    return handle(request, env, ctx);
  },
};
JS
echo "$PWD/$out/index.mjs"
