#!/usr/bin/env bash
# Command 2: run the whole test suite, doing all of its own set-up:
#   .venv with hipsluigi and the test tools; ruff; pytest over hipsluigi/ and tests/.
# Extra arguments go to pytest (e.g. -k mosaic).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/setup-venv.sh" --test

.venv/bin/ruff check .

set +e
.venv/bin/pytest -p no:cacheprovider "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no test" >&2
  exit 1
fi
exit "$status"
