#!/usr/bin/env bash
# Install the load generator the benchmarks use (Debian's wrk) if it is absent; pgbench comes with PostgreSQL.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi; }

if ! command -v wrk >/dev/null; then
  echo "installing wrk from Debian's packages"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
if ! command -v pgbench >/dev/null; then
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-contrib >/dev/null || true
fi
{ wrk -v 2>&1 || true; } | head -n 1  # wrk -v exits 1
command -v pgbench
