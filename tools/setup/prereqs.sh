#!/usr/bin/env bash
# Stops with a clear message when a prerequisite the setup cannot install itself is missing.
. "$(dirname "$0")/lib.sh"

missing=0
need() { # need CMD HOW-TO-GET-IT
  if ! command -v "$1" >/dev/null 2>&1; then
    printf 'error: %s is required but not on PATH. %s\n' "$1" "$2" >&2
    missing=1
  fi
}
need python3 "Install Python 3.11 or newer (Debian: apt-get install python3 python3-venv)."
need go "Install Go 1.26 or newer (https://go.dev/doc/install)."
need node "Install Node.js 20 or newer (Debian: apt-get install nodejs)."
need npm "Install npm (Debian: apt-get install npm)."
need patch "Install patch (Debian: apt-get install patch); it applies tools/kyverno/patches/ to the Kyverno CLI build."
[ "$missing" = 0 ] || exit 1

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "python3 is $(python3 -V 2>&1); 3.11 or newer is required."
python3 -c 'import venv, ensurepip' 2>/dev/null \
  || die "python3 cannot create virtual environments; install the venv module (Debian: apt-get install python3-venv)."
