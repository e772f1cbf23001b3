#!/usr/bin/env bash
# Installs Debian's redis-server (7.0) if it is not on PATH, for the spent-set tests. The tests
# start their own instances on free loopback ports and stop them by PID; the package's system
# service is never used. Prints the path of redis-server. Idempotent.
set -euo pipefail
if ! command -v redis-server >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  # policy-rc.d 101: the package must not start (or enable) its system service.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >&2 \
    || { $sudo apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >&2; }
fi
command -v redis-server
