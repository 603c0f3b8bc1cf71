# Shared helpers for tools/setup/*.sh. Source it; it defines functions only.
set -euo pipefail

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

repo_root() { cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd; }

# Where built tool binaries are kept, outside the clone, so every clone on this machine reuses them.
tools_cache() { printf '%s\n' "${MLPLATFORM_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mlplatform/tools}"; }

load_versions() {
  # shellcheck disable=SC1091
  . "$(repo_root)/tools/versions.env"
}
