# Shared by the project's scripts: cache locations and small helpers. Source, do not run.
export L402_CACHE="${L402_CACHE:-$HOME/.cache/l402-edge}"
# Builds outside the clone, so that CI's fresh clones reuse them (and tests that build Wasm
# into their own target dirs do not wait on cargo's lock).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$L402_CACHE/target}"
mkdir -p "$L402_CACHE"

step() { printf '\n==> %s\n' "$*"; }

ensure_rust_targets() {
  local have
  have=$(rustup target list --installed)
  for t in wasm32-wasip1 wasm32-unknown-unknown; do
    grep -qx "$t" <<<"$have" || rustup target add "$t"
  done
}
