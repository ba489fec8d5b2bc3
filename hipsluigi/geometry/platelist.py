"""``platelist.tbl``: the on-sky plates, their storage bins and their submission order.

As mHPXPlateList (2020, ``-s nstorage``): ``id`` numbers the on-sky plates from 0 in i-major
order; ``bin = id * nstorage // count`` gives each storage unit a contiguous run of plates
(balanced within one plate); rows are written round-robin across bins (first plate of bin 0,
first of bin 1, ..., second of bin 0, ...), so that jobs started in table order spread their I/O
over all units. IPAC ASCII, Montage's column names: ``id plate i j bin``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.table import Table

from hipsluigi.geometry.plates import PlateGrid
from hipsluigi.geometry.region import Region


def plate_name(i: int, j: int) -> str:
    """Montage's plate file stem, ``plate_II_JJ``."""
    return f"plate_{i:02d}_{j:02d}"


def plate_list(grid: PlateGrid, nstorage: int, region: Region | None = None) -> Table:
    """The plate list as a Table in submission (round-robin) order.

    Columns ``id, plate, i, j, bin``; meta keywords ``order`` and ``nplate``.
    """
    if nstorage < 1:
        raise ValueError(f"need at least one storage unit, got {nstorage}")
    region = region or Region("sky")
    plates = [(i, j) for i, j in grid.sky_plates if region.contains_plate(grid, i, j)]
    count = len(plates)
    if count == 0:
        raise ValueError("the region holds no on-sky plate")
    ids = np.arange(count)
    bins = ids * nstorage // count
    rows = []
    blocks = [ids[bins == b] for b in range(nstorage)]
    for k in range(max(len(b) for b in blocks)):
        rows.extend(int(block[k]) for block in blocks if k < len(block))
    order = np.array(rows, dtype=np.int64)
    table = Table(
        {
            "id": order,
            "plate": [plate_name(*plates[k]) for k in order],
            "i": np.array([plates[k][0] for k in order], dtype=np.int64),
            "j": np.array([plates[k][1] for k in order], dtype=np.int64),
            "bin": bins[order],
        }
    )
    table.meta["keywords"] = {
        "order": {"value": grid.order},
        "nplate": {"value": grid.nplate},
        "naxis": {"value": grid.plate_side},
        "total": {"value": 5 * grid.face_side},
    }
    return table


def write_plate_list(table: Table, path: str | Path) -> None:
    """Write ``platelist.tbl`` (IPAC ASCII)."""
    table.write(str(path), format="ascii.ipac", overwrite=True)


def read_plate_list(path: str | Path) -> Table:
    """Read ``platelist.tbl``; raises ``ValueError`` naming the file if a column is missing."""
    table = Table.read(str(path), format="ascii.ipac")
    missing = {"id", "plate", "i", "j", "bin"} - set(table.colnames)
    if missing:
        raise ValueError(f"{path}: not a plate list, missing columns {sorted(missing)}")
    return table
