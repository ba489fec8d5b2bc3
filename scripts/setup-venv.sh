#!/usr/bin/env bash
# Create .venv (Python >= 3.11) at the repository root and install hipsluigi into it.
# Usage: scripts/setup-venv.sh [--test]   (--test adds the test-only dependencies)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-}
if [ -z "$py" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then py=$candidate; break; fi
  done
fi
[ -n "$py" ] || { echo "error: no python3 found; install Python 3.11" >&2; exit 1; }
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "error: $py is $("$py" --version 2>&1); hipsluigi needs Python >= 3.11" >&2; exit 1; }
if [ ! -x "$root/.venv/bin/python" ]; then
  "$py" -m venv "$root/.venv"
fi
"$root/.venv/bin/python" -m pip install --quiet --upgrade pip
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"
"$root/.venv/bin/python" -m pip install --quiet -e "$root$extras"
