#!/usr/bin/env bash
# Packs the optimized filter (.wasm) as an OCI image that Istio's WasmPlugin and Envoy Gateway's
# EnvoyExtensionPolicy pull: the "compat" variant of the Wasm image spec
# (github.com/solo-io/wasm spec-compat.md), the one both fetchers read first
# (istio/istio pkg/wasm/imagefetcher.go, extractOCIStandardImage; Envoy Gateway's copy):
# a standard OCI image manifest whose last (here: only) layer is
# application/vnd.oci.image.layer.v1.tar+gzip, a tar.gz holding plugin.wasm.
# (The "oci" variant needs exactly two layers; a single wasm-typed layer, which this script
# once wrote, matches neither rule, and with failStrategy FAIL_CLOSE Istio then denies every
# request on the gateway.) Into an OCI image layout directory; push it with any OCI tool:
#   skopeo copy oci:<layout>:0.1.0 docker://registry.example.com/l402-filter:0.1.0
#
#   ./scripts/build-oci.sh [out dir, default $L402_CACHE/oci/l402-filter] [tag, default the crate version]
# Prints the layout directory. Reproducible: no timestamps or owners in the tar, gzip -n, so the
# same .wasm gives the same digests.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh
wasm=${L402_FILTER_WASM:-$(./scripts/build-filter.sh)}
out=${1:-$L402_CACHE/oci/l402-filter}
tag=${2:-$(sed -n 's/^version = "\(.*\)"/\1/p' filter/Cargo.toml | head -1)}
rm -rf "$out" && mkdir -p "$out/blobs/sha256"

blob() { # file -> prints "<sha256> <size>" and stores the blob
  local sum size
  sum=$(sha256sum "$1" | cut -d' ' -f1)
  size=$(stat -c %s "$1")
  cp "$1" "$out/blobs/sha256/$sum"
  echo "$sum $size"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$wasm" "$tmp/plugin.wasm"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --mode=0644 \
  -C "$tmp" -cf "$tmp/layer.tar" plugin.wasm
diff_id=$(sha256sum "$tmp/layer.tar" | cut -d' ' -f1)
gzip -n -9 <"$tmp/layer.tar" >"$tmp/layer.tar.gz"
read -r layer_sum layer_size < <(blob "$tmp/layer.tar.gz")
# A standard image config: Go's names for the platform (GOOS wasip1, GOARCH wasm).
printf '{"architecture":"wasm","os":"wasip1","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$diff_id" >"$tmp/config.json"
read -r config_sum config_size < <(blob "$tmp/config.json")
cat >"$tmp/manifest.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$config_sum","size":$config_size},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:$layer_sum","size":$layer_size}],"annotations":{"org.opencontainers.image.title":"l402-filter","org.opencontainers.image.description":"l402-edge: stateless L402 verification as an Envoy proxy-wasm filter","org.opencontainers.image.version":"$tag"}}
JSON
read -r manifest_sum manifest_size < <(blob "$tmp/manifest.json")
printf '{"imageLayoutVersion":"1.0.0"}' >"$out/oci-layout"
cat >"$out/index.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$manifest_sum","size":$manifest_size,"annotations":{"org.opencontainers.image.ref.name":"$tag"}}]}
JSON
echo "$out"
