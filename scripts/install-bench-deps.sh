#!/usr/bin/env bash
# What `make bench` needs beyond `make test`: wrk (Debian package) for the gateway comparison.
# The peers (aiogram) go into bench/.venv-peers, which `python -m bench` creates from bench/requirements-peers.txt.
set -euo pipefail
command -v wrk >/dev/null 2>&1 && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "wrk is missing — install it with: sudo apt-get install -y wrk" >&2
  exit 1
fi
echo "installing wrk"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends wrk >/dev/null
