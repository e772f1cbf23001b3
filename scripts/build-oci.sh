#!/usr/bin/env bash
# Packs the optimized filter (.wasm) as an OCI artifact in the Wasm OCI image format that Istio's
# WasmPlugin and Envoy Gateway's EnvoyExtensionPolicy pull (the "spec" variant of
# github.com/solo-io/wasm/spec: config media type application/vnd.module.wasm.config.v1+json,
# one layer application/vnd.module.wasm.content.layer.v1+wasm holding the module byte for byte),
# into an OCI image layout directory. Push it with any OCI tool, e.g.:
#   skopeo copy oci:target/oci/l402-filter:0.1.0 docker://registry.example.com/l402-filter:0.1.0
#
#   ./scripts/build-oci.sh [out dir, default $L402_CACHE/oci/l402-filter] [tag, default the crate version]
# Prints the layout directory. Reproducible: no timestamps, the same .wasm gives the same digest.
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
read -r layer_sum layer_size < <(blob "$wasm")
printf '{"type":"envoy_proxy","abiVersions":["v0-097b7f2e4cc1fb490cc1943d0d633655ac3c522f","proxy_abi_version_0_2_1"]}' >"$tmp/config.json"
read -r config_sum config_size < <(blob "$tmp/config.json")
cat >"$tmp/manifest.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.module.wasm.config.v1+json","digest":"sha256:$config_sum","size":$config_size},"layers":[{"mediaType":"application/vnd.module.wasm.content.layer.v1+wasm","digest":"sha256:$layer_sum","size":$layer_size,"annotations":{"org.opencontainers.image.title":"plugin.wasm"}}],"annotations":{"org.opencontainers.image.title":"l402-filter","org.opencontainers.image.description":"l402-edge: stateless L402 verification as an Envoy proxy-wasm filter","org.opencontainers.image.version":"$tag"}}
JSON
read -r manifest_sum manifest_size < <(blob "$tmp/manifest.json")
printf '{"imageLayoutVersion":"1.0.0"}' >"$out/oci-layout"
cat >"$out/index.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$manifest_sum","size":$manifest_size,"annotations":{"org.opencontainers.image.ref.name":"$tag"}}]}
JSON
echo "$out"
