"""The HiPS ``Moc.fits`` coverage file.

HiPS 2.0 draft ("The Moc.fits file"): the MOC "must necessarily be in the same reference frame
as the HiPS", so a galactic HiPS gets a galactic MOC. The frame goes in the FITS keyword
``COORDSYS`` ('G' galactic, 'C' equatorial), as Hipsgen and astropy/reproject
(``reproject/hips/_moc.py``) write it. Note that mocpy (the Rust ``moc`` library) only reads
back ``COORDSYS = 'C'``: read a galactic Moc.fits with astropy, or with mocpy after patching
the keyword.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from mocpy import MOC

from hipsluigi.geometry.frames import check_frame
from hipsluigi.storage.atomic import write_atomic

#: HiPS frame -> MOC FITS ``COORDSYS``
COORDSYS = {"galactic": "G", "equatorial": "C"}

#: Deepest HEALPix order of a MOC (MOC 2.0).
MOC_MAX_ORDER = 29


def tiles_moc(order: int, npix: Iterable[int]) -> MOC:
    """The MOC of a set of tiles.

    Parameters
    ----------
    order : int
        HiPS order of the tiles, 0 to :data:`MOC_MAX_ORDER`.
    npix : iterable of int
        NESTED tile indices (duplicates allowed; may be empty).

    Returns
    -------
    mocpy.MOC
        Of depth ``order``.

    Raises
    ------
    ValueError
        For an order or a tile index out of range.
    """
    if not 0 <= order <= MOC_MAX_ORDER:
        raise ValueError(f"order must be in 0..{MOC_MAX_ORDER}, got {order}")
    ipix = np.unique(np.fromiter((int(n) for n in npix), dtype=np.int64))
    if ipix.size and (ipix[0] < 0 or ipix[-1] >= 12 * 4**order):
        raise ValueError(f"tile indices must be in 0..{12 * 4**order - 1} at order {order}")
    depth = np.full(ipix.size, order, dtype=np.uint8)
    return MOC.from_healpix_cells(ipix, depth, max_depth=order)


def moc_sky_fraction(moc: MOC) -> float:
    """Fraction of the sphere covered by ``moc``, 0 to 1 (the ``moc_sky_fraction`` property)."""
    return float(moc.sky_fraction)


def write_moc(path: str | Path, moc: MOC, frame: str) -> None:
    """Write ``moc`` as a FITS MOC, atomically.

    Parameters
    ----------
    path : str or pathlib.Path
        The file (``Moc.fits``).
    moc : mocpy.MOC
        The coverage.
    frame : str
        The HiPS frame; sets ``COORDSYS`` (:data:`COORDSYS`).

    Raises
    ------
    ValueError
        For a frame other than ``galactic`` or ``equatorial``.
    """
    from astropy.io import fits

    coordsys = COORDSYS[check_frame(frame)]

    def write(tmp: Path) -> None:
        moc.save(str(tmp), format="fits", overwrite=True, fits_keywords={"COORDSYS": coordsys})
        # should a mocpy release ignore fits_keywords, fix the keyword ourselves
        if fits.getval(tmp, "COORDSYS", ext=1).strip() != coordsys:
            fits.setval(tmp, "COORDSYS", value=coordsys, ext=1)

    write_atomic(Path(path), write)
