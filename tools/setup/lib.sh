# Shared helpers for tools/setup/*.sh. Source it; it defines functions only.
set -euo pipefail

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Resolved once, when this file is sourced: a script that later changes
# directory must still find the clone (BASH_SOURCE may be relative).
_MLPLATFORM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
repo_root() { printf '%s\n' "$_MLPLATFORM_ROOT"; }

# Where built tool binaries are kept, outside the clone, so every clone on this machine reuses them.
tools_cache() { printf '%s\n' "${MLPLATFORM_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mlplatform/tools}"; }

load_versions() {
  # shellcheck disable=SC1091
  . "$(repo_root)/tools/versions.env"
}

# output_has PATTERN CMD [ARG...]: CMD's output (stdout) has a line matching the extended regex PATTERN whole.
# The output is captured before it is matched: `CMD | grep -q` under pipefail fails at random when grep exits at
# the first match and CMD's next write gets SIGPIPE (a slow first run of a freshly linked binary loses that race).
output_has() {
  local pattern=$1 out; shift
  out=$("$@" 2>/dev/null) || return 1
  grep -qxE -- "$pattern" <<<"$out"
}

# cached_tool NAME DIR CHECK BUILD
#   Makes sure DIR/NAME (DIR inside the tools cache) is a binary for which `CHECK BINARY` succeeds, building it
#   with `BUILD OUT` when it is missing or reports another version, then links .tools/bin/NAME to it.
# Safe for several clones setting up at once on one machine: one build per tool at a time (flock on
# DIR/.NAME.lock; a waiting setup says so), each build writes a temporary file of its own in DIR and renames it
# into place (atomic), and a setup that got the lock after another one built the tool takes that binary when it
# reports the pinned version.
# built_from MODULE VERSION BINARY: the Go binary was built with MODULE at VERSION (its build info).
built_from() {
  local out; out=$(go version -m "$3" 2>/dev/null) || return 1
  grep -qE "^[[:space:]]+(dep|mod)[[:space:]]+$1[[:space:]]+$2([[:space:]]|$)" <<<"$out"
}

cached_tool() {
  local name=$1 dir=$2 check=$3 build=$4
  local final="$dir/$name" lock tmp start
  mkdir -p "$dir" "$(repo_root)/.tools/bin"
  exec {lock}>"$dir/.$name.lock"
  if ! flock -n "$lock"; then
    say "Waiting for another setup on this machine that is building $name (lock: $dir/.$name.lock)."
    flock "$lock"
  fi
  if [ -x "$final" ] && "$check" "$final"; then
    say "Using cached $name at $final."
  else
    tmp=$(mktemp "$dir/.$name.build.XXXXXX")
    # BUILD runs under errexit (not in a condition, where bash would ignore its failures): a failing step ends
    # the script, and the trap removes the partial file.
    trap "rm -f '$tmp'" EXIT
    start=$(date +%s)
    "$build" "$tmp"
    chmod 0755 "$tmp"
    "$check" "$tmp" || die "the freshly built $name does not report the pinned version (checked with $check)"
    mv -f "$tmp" "$final"
    trap - EXIT
    say "Built $name in $(( $(date +%s) - start )) s; cached at $final."
  fi
  exec {lock}>&-
  ln -sfn "$final" "$(repo_root)/.tools/bin/$name"
}

# apt_install WHAT-IF-NO-APT PACKAGE...: installs Debian packages (with sudo unless root), or dies with
# WHAT-IF-NO-APT (how to get them otherwise) where apt-get is not available.
apt_install() {
  local otherwise=$1 sudo=""; shift
  [ "$(id -u)" = 0 ] || sudo="sudo"
  command -v apt-get >/dev/null 2>&1 || die "$otherwise"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
