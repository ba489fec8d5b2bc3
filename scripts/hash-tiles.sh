#!/usr/bin/env bash
# Print one SHA-256 over every FITS tile and one over every PNG tile of a HiPS folder:
# sha256 of the sorted "sha256  relative/path" lines (Allsky, properties, MOC not included).
# Links are followed: tiles of other storage units are linked from the base unit.
# Usage: scripts/hash-tiles.sh <HiPS folder>
set -euo pipefail
hips=${1:?usage: scripts/hash-tiles.sh <HiPS folder>}
cd "$hips"
for ext in fits png; do
  n=$(find -L . -path './Norder*/Dir*/Npix*.'"$ext" | wc -l)
  sum=$(find -L . -path './Norder*/Dir*/Npix*.'"$ext" -print0 | LC_ALL=C sort -z \
        | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
  echo "$ext $n tiles $sum"
done
