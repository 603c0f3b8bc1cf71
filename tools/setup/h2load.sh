#!/usr/bin/env bash
# Makes sure h2load (nghttp2's HTTP/1.1 and HTTP/2 load generator, which bench/transport_bench.py drives out of
# process) is installed.
. "$(dirname "$0")/lib.sh"
command -v h2load >/dev/null 2>&1 && exit 0
say "Installing h2load from Debian packages."
apt_install "h2load is missing and apt-get is not available; install nghttp2's h2load so that it is on PATH." nghttp2-client
command -v h2load >/dev/null 2>&1 || die "h2load install failed"
