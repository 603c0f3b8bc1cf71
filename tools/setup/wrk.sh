#!/usr/bin/env bash
# Makes sure wrk (the HTTP load generator bench/inference_bench.py drives, out of process) is installed.
. "$(dirname "$0")/lib.sh"
command -v wrk >/dev/null 2>&1 && exit 0
say "Installing wrk from Debian packages."
apt_install "wrk is missing and apt-get is not available; install wrk 4 (with LuaJIT) so that wrk is on PATH." wrk
command -v wrk >/dev/null 2>&1 || die "wrk install failed"
