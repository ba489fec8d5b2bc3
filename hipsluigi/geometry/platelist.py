"""``platelist.tbl``: the on-sky plates, their storage units and their submission order.

As mHPXPlateList (2020, ``-s nstorage``): ``id`` numbers the on-sky plates from 0 in i-major
order; each storage unit gets a contiguous run of plates, with as many tile-bearing plates
as the others within one (mHPXPlateList's ``id * nstorage // count`` counts the plates of cell
(4, 4) too, face 6's copy, which make no task: here they go with the unit before them); rows
are listed round-robin across units (first plate of unit 0, first of unit 1, ..., second of
unit 0, ...), so that jobs started in table order spread their I/O over all units. Columns
``id plate i j unit`` (Montage's ``bin`` is named ``unit`` here).
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from hipsluigi.geometry.plates import PlateGrid
from hipsluigi.geometry.region import Region


def plate_name(i: int, j: int) -> str:
    """Montage's plate file stem, ``plate_II_JJ``."""
    return f"plate_{i:02d}_{j:02d}"


def plate_list(grid: PlateGrid, nstorage: int, region: Region | None = None) -> Table:
    """The plate list as a Table in submission (round-robin) order.

    Columns ``id, plate, i, j, unit``; meta keywords ``order``, ``nplate``, ``naxis`` (plate
    side in pixels) and ``total`` (side of the all-sky plane). ``i, j`` are 0-based plate
    indices, ``i`` along the plane's x axis.
    """
    if nstorage < 1:
        raise ValueError(f"need at least one storage unit, got {nstorage}")
    region = region or Region("sky")
    plates = [(i, j) for i, j in grid.sky_plates if region.contains_plate(grid, i, j)]
    count = len(plates)
    if count == 0:
        raise ValueError("the region holds no on-sky plate")
    ids = np.arange(count)
    # Units share out the plates that bear tiles: those of cell (4, 4), face 6's copy, make
    # no task, and counted as work they left the last unit a quarter idle at order 9. A copy
    # goes with the unit of the bearing plate before it, so each unit keeps one run of ids.
    bearing = np.array([not grid.is_duplicate(i, j) for i, j in plates])
    nbearing = int(bearing.sum())
    if nbearing:
        rank = np.maximum(np.cumsum(bearing) - 1, 0)
        units = rank * nstorage // nbearing
    else:
        units = ids * nstorage // count
    rows = []
    blocks = [ids[units == u] for u in range(nstorage)]
    for k in range(max(len(b) for b in blocks)):
        rows.extend(int(block[k]) for block in blocks if k < len(block))
    order = np.array(rows, dtype=np.int64)
    table = Table(
        {
            "id": order,
            "plate": [plate_name(*plates[k]) for k in order],
            "i": np.array([plates[k][0] for k in order], dtype=np.int64),
            "j": np.array([plates[k][1] for k in order], dtype=np.int64),
            "unit": units[order],
        }
    )
    table.meta["keywords"] = {
        "order": {"value": grid.order},
        "nplate": {"value": grid.nplate},
        "naxis": {"value": grid.plate_side},
        "total": {"value": 5 * grid.face_side},
    }
    return table
