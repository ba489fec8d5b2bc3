"""Montage-compatible IPAC tables: ``images.tbl``, ``fitcombo.tbl``, ``corrections.tbl``.

Column names are Montage's, so that Montage's own mBgModel reads ``images.tbl`` and
``fitcombo.tbl`` (it needs ``cntr fname naxis1 naxis2 crpix1 crpix2``, and ``plus minus a b c
crpix1 crpix2 xmin xmax ymin ymax xcenter ycenter npixel rms boxx boxy boxwidth boxheight
boxang``) and mBackground applies ``corrections.tbl`` (``id a b c``: the plane subtracted).
``cntr`` is the row number, as mBgModel indexes images by it; ``fname`` is the bare plate file
name, which mBgModel parses. hipsluigi's extra columns (moments, the plus-to-minus map, the
storage bin) follow Montage's and are ignored by it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from astropy.table import Table

from hipsluigi.background.overlap import OverlapFit

MONTAGE_FIT_COLUMNS = ("plus", "minus", "a", "b", "c", "crpix1", "crpix2", "xmin", "xmax",
                       "ymin", "ymax", "xcenter", "ycenter", "npixel", "rms", "boxx", "boxy",
                       "boxwidth", "boxheight", "boxang")


def images_table(plates: Sequence[tuple[int, int]], headers: Sequence, paths: Sequence[str]
                 ) -> Table:
    """``images.tbl`` rows for padded plate mosaics (``headers``: their FITS headers)."""
    from hipsluigi.geometry.platelist import plate_name

    return Table({
        "cntr": np.arange(len(plates)),
        "ctype1": [h["CTYPE1"] for h in headers],
        "ctype2": [h["CTYPE2"] for h in headers],
        "naxis1": [int(h["NAXIS1"]) for h in headers],
        "naxis2": [int(h["NAXIS2"]) for h in headers],
        "crval1": [float(h["CRVAL1"]) for h in headers],
        "crval2": [float(h["CRVAL2"]) for h in headers],
        "crpix1": [float(h["CRPIX1"]) for h in headers],
        "crpix2": [float(h["CRPIX2"]) for h in headers],
        "plate": [plate_name(i, j) for i, j in plates],
        "i": [i for i, _ in plates],
        "j": [j for _, j in plates],
        "fname": [f"{plate_name(i, j)}.fits" for i, j in plates],
        "path": list(paths),
    })


def fits_table(fits: Sequence[OverlapFit]) -> Table:
    """``fitcombo.tbl``: one row per overlap fit, Montage's columns first."""
    rows = [f.montage_row() for f in fits]
    names = list(MONTAGE_FIT_COLUMNS) + [k for k in (rows[0] if rows else {})
                                         if k not in MONTAGE_FIT_COLUMNS]
    if not rows:
        return Table(names=names)
    return Table(rows=[[r[k] for k in names] for r in rows], names=names)


def read_fits_table(path: str | Path) -> list:
    """Rows of ``fitcombo.tbl`` as attribute records (what the solver takes)."""
    table = Table.read(str(path), format="ascii.ipac")
    return [SimpleNamespace(**{k: row[k].item() for k in table.colnames}) for row in table]


def corrections_table(planes: dict[int, tuple[float, float, float]],
                      names: dict[int, str]) -> Table:
    """``corrections.tbl``: ``id a b c`` (and the plate name), sorted by id."""
    ids = sorted(planes)
    return Table({"id": ids, "a": [planes[k][0] for k in ids], "b": [planes[k][1] for k in ids],
                  "c": [planes[k][2] for k in ids], "plate": [names[k] for k in ids]})


def read_corrections(path: str | Path) -> dict[int, tuple[float, float, float]]:
    table = Table.read(str(path), format="ascii.ipac")
    return {int(r["id"]): (float(r["a"]), float(r["b"]), float(r["c"])) for r in table}


def write_table(table: Table, path: str | Path) -> None:
    """Write an IPAC table atomically (double precision kept)."""
    from hipsluigi.storage import write_atomic

    for name in table.colnames:
        if table[name].dtype.kind == "f":
            table[name].info.format = ".10g"
    write_atomic(Path(path), lambda tmp: table.write(str(tmp), format="ascii.ipac"))
