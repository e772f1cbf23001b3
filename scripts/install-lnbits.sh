#!/usr/bin/env bash
# Installs LNbits (the real Lightning server every test run starts) into a cached venv.
# Prints the venv path. Idempotent: a complete venv is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh
LNBITS_VERSION=1.6.2
venv="${L402_LNBITS_VENV:-$L402_CACHE/lnbits-$LNBITS_VERSION}"
if [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "lnbits==$LNBITS_VERSION" "bitstring<5" >&2
  touch "$venv/.complete"
fi
echo "$venv"
