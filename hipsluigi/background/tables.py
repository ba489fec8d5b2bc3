"""Montage-compatible IPAC tables: ``images.tbl``, ``fitcombo.tbl``, ``corrections.tbl``.

Column names are Montage's, so that Montage's own mBgModel reads ``images.tbl`` and
``fitcombo.tbl`` (it needs ``cntr fname naxis1 naxis2 crpix1 crpix2``, and ``plus minus a b c
crpix1 crpix2 xmin xmax ymin ymax xcenter ycenter npixel rms boxx boxy boxwidth boxheight
boxang``) and mBackground applies ``corrections.tbl`` (``id a b c``: the plane subtracted).
``cntr`` is the row number, as mBgModel indexes images by it; ``fname`` is the bare plate file
name, which mBgModel parses. hipsluigi's extra columns (plate names and indices and paths in
``images.tbl``; moments and the plus-to-minus map in ``fitcombo.tbl``) follow Montage's and are
ignored by it. The tables are built here; reading and writing them is the pipeline's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from astropy.table import Table

from hipsluigi.background.overlap import DifferenceFit

MONTAGE_FIT_COLUMNS = ("plus", "minus", "a", "b", "c", "crpix1", "crpix2", "xmin", "xmax",
                       "ymin", "ymax", "xcenter", "ycenter", "npixel", "rms", "boxx", "boxy",
                       "boxwidth", "boxheight", "boxang")


def images_table(plates: Sequence[tuple[int, int]], headers: Sequence, paths: Sequence[str]
                 ) -> Table:
    """``images.tbl``: one row per padded plate mosaic.

    Parameters
    ----------
    plates : sequence of (int, int)
        The plates ``(i, j)``.
    headers : sequence of astropy.io.fits.Header
        Their FITS headers (WCS keywords).
    paths : sequence of str
        Their files.

    Returns
    -------
    astropy.table.Table
        Columns ``cntr`` (row number), ``ctype1 ctype2 naxis1 naxis2 crval1 crval2 crpix1
        crpix2`` (from the headers), ``plate i j`` and ``fname`` (``plate_II_JJ.fits``),
        ``path``.
    """
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


def fitcombo_table(diffs: Sequence[DifferenceFit]) -> Table:
    """``fitcombo.tbl``: one row per fitted plate difference.

    Parameters
    ----------
    diffs : sequence of DifferenceFit
        The fitted plate differences (their edge profiles are left out).

    Returns
    -------
    astropy.table.Table
        Montage's columns (:data:`MONTAGE_FIT_COLUMNS`) first, then hipsluigi's.
    """
    rows = [diff.montage_row() for diff in diffs]
    names = list(MONTAGE_FIT_COLUMNS) + [k for k in (rows[0] if rows else {})
                                         if k not in MONTAGE_FIT_COLUMNS]
    if not rows:
        return Table(names=names)
    return Table(rows=[[r[k] for k in names] for r in rows], names=names)


def corrections_table(planes: dict[int, tuple[float, float, float]],
                      names: dict[int, str]) -> Table:
    """``corrections.tbl``: the plane subtracted from each plate.

    Parameters
    ----------
    planes : dict of int to (float, float, float)
        Plate id -> ``(a, b, c)``: the plane ``a x + b y + c`` in global plane pixels about the
        all-sky CRPIX (Montage's convention, see :mod:`hipsluigi.background.model`).
    names : dict of int to str
        Plate id -> plate name.

    Returns
    -------
    astropy.table.Table
        Columns ``id a b c plate``, sorted by id.
    """
    ids = sorted(planes)
    return Table({"id": ids, "a": [planes[k][0] for k in ids], "b": [planes[k][1] for k in ids],
                  "c": [planes[k][2] for k in ids], "plate": [names[k] for k in ids]})
