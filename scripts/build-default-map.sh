#!/usr/bin/env bash
# Command 1: build the default map (luigi.cfg: order 3, 512-pixel tiles, synthetic survey)
# on this machine, from scratch or resuming where a previous run stopped.
# Extra arguments go to luigi, e.g. --hips-order 2 or --workers 4.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup-venv.sh"
cd "$root"
workers=$(nproc 2>/dev/null || echo 2)
.venv/bin/luigi --module hipsluigi AllSkyPNGs --local-scheduler --workers "$workers" "$@"
hips=$(.venv/bin/python -m hipsluigi.where "$@")
cat <<MSG

The HiPS is in: $hips
Look at it:
  - in a browser: .venv/bin/hipsluigi serve${*:+ $*} (serves it on 127.0.0.1 and prints the
    address to open: Aladin Lite, copied next to the map, works offline)
  - its QA report: $hips/qa/report.html (plots of the stretch, the background, the coverage,
    the rejected inputs and the time per stage)
  - in Aladin Desktop: File > Open > the HiPS folder (or drag properties onto it)
  - tile by tile: Norder*/Dir*/Npix*.fits (DS9, astropy) and Npix*.png
MSG
