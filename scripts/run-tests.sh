#!/usr/bin/env bash
# Command 2: run the whole test suite, doing all of its own set-up:
#   .venv with hipsluigi and the test tools; as root, Debian's SLURM (slurm-wlm, munge),
#   Chromium and aladin (CDS Hipsgen, the HiPS validator), installed if missing; a
#   single-node SLURM started for the tests and stopped after (the tests start their own
#   luigid on 127.0.0.1); ruff; lint-imports; pytest.
# Extra arguments go to pytest (e.g. -k mosaic).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/setup-venv.sh" --test

if [ "$(id -u)" -eq 0 ]; then
  missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  # CDS Hipsgen, the reference HiPS validator (java -jar /usr/share/java/aladin.jar -hipsgen)
  [ -f /usr/share/java/aladin.jar ] || missing+=(aladin)
  if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
  if ! sinfo -h -o %T 2>/dev/null | grep -qxE 'idle|mixed|allocated'; then
    "$root/scripts/slurm-up.sh"
    trap '"$root/scripts/slurm-down.sh"' EXIT
  fi
else
  echo "note: not root; the SLURM, browser and validator tests need scripts/slurm-up.sh," \
       "chromium and aladin" >&2
fi

.venv/bin/ruff check .
.venv/bin/lint-imports   # the layer contracts in pyproject.toml

set +e
.venv/bin/pytest -p no:cacheprovider "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no test" >&2
  exit 1
fi
exit "$status"
