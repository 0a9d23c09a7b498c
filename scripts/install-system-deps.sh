#!/usr/bin/env bash
# Installs from Debian packages, when missing, the servers the tests start (PostgreSQL 15, Redis 7) and the tools
# they run. The servers are only installed here, never started: the tests start throwaway instances on free
# loopback ports.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
python3 -m venv --help >/dev/null 2>&1 || need+=(python3-venv)
# The chat page's browser test (tests/browser) drives headless Chromium through chromedriver.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
# promtool checks deploy/prometheus (rules, config, the alerts' unit tests); Debian ships it in `prometheus`.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# tests/deploy validates docker-compose.yml with the real tool (`docker-compose config`; no Docker engine needed)
# and runs deploy/postgres's role script through psql.
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
# ... and has Caddy read deploy/caddy/Caddyfile (`caddy adapt --validate`; the package's web server is not wanted).
command -v caddy >/dev/null 2>&1 || need+=(caddy)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${need[*]} — install them with: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
# Installed, never started: on a machine with an init system, redis-server, postgresql and prometheus would start
# their daemons (and prometheus listen on :9090). A policy-rc.d answering 101 ("forbidden"), which invoke-rc.d and
# deb-systemd-invoke both ask, prevents that for this install only; a machine's own policy-rc.d is left as it is.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# ... nor at the next boot: the tests start their own instances and only run `caddy adapt` and `promtool`.
if [ -d /run/systemd/system ]; then
  for package in "${need[@]}"; do
    case "$package" in
      redis-server | postgresql | prometheus | caddy)
        systemctl disable --now "$package" >/dev/null 2>&1 || true ;;
    esac
  done
fi
