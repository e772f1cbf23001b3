#!/usr/bin/env bash
# The browser of the paywall tests: Debian's chromium and chromium-driver (chromedriver), driven
# headless over WebDriver on loopback by wasm-tests/tests/paywall.rs. Prints the chromium
# binary (chromedriver beside it in /usr/bin). Idempotent; installs only what is missing.
set -euo pipefail
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [ "${#missing[@]}" -gt 0 ]; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" fonts-dejavu-core; } >&2
fi
command -v chromium
