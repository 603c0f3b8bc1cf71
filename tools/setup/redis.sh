#!/usr/bin/env bash
# Makes sure redis-server (used by the inference service's tests and `make serve`) is installed.
. "$(dirname "$0")/lib.sh"
command -v redis-server >/dev/null 2>&1 && exit 0
[ -x /usr/sbin/redis-server ] && exit 0
say "Installing redis-server from Debian packages."
apt_install "redis-server is missing and apt-get is not available; install Redis 7 or newer so that redis-server is on PATH." \
  redis-server
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
# The package starts a system-wide server; the project runs its own on free loopback ports instead.
$sudo service redis-server stop >/dev/null 2>&1 || true
command -v redis-server >/dev/null 2>&1 || [ -x /usr/sbin/redis-server ] || die "redis-server install failed"
