#!/usr/bin/env bash
# Installs the third-party L402 clients of the interop tests (wasm-tests/interop/: npm lsat-js
# and macaroon from package-lock.json, PyPI l402-requests and pymacaroons from
# requirements.txt) into the cache, keyed by those files. Prints the folder. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh
src=wasm-tests/interop
key=$(cat "$src/package.json" "$src/package-lock.json" "$src/requirements.txt" | sha256sum | cut -c1-12)
dir="$L402_CACHE/interop-$key"
if [ ! -f "$dir/.complete" ]; then
  rm -rf "$dir" && mkdir -p "$dir"
  cp "$src/package.json" "$src/package-lock.json" "$dir/"
  (cd "$dir" && npm ci --silent --no-audit --no-fund --ignore-scripts >&2)
  python3 -m venv "$dir/venv"
  "$dir/venv/bin/pip" install --quiet --disable-pip-version-check -r "$src/requirements.txt" >&2
  touch "$dir/.complete"
fi
echo "$dir"
