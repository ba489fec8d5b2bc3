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
from hipsluigi.storage import write_atomic

#: HiPS frame -> MOC FITS ``COORDSYS``
COORDSYS = {"galactic": "G", "equatorial": "C"}

#: Deepest HEALPix order of a MOC (MOC 2.0).
MOC_MAX_ORDER = 29


def tiles_moc(order: int, npix: Iterable[int]) -> MOC:
    """The MOC of the NESTED tiles ``npix`` at ``order`` (duplicates allowed; may be empty)."""
    if not 0 <= order <= MOC_MAX_ORDER:
        raise ValueError(f"order must be in 0..{MOC_MAX_ORDER}, got {order}")
    ipix = np.unique(np.fromiter((int(n) for n in npix), dtype=np.int64))
    if ipix.size and (ipix[0] < 0 or ipix[-1] >= 12 * 4**order):
        raise ValueError(f"tile indices must be in 0..{12 * 4**order - 1} at order {order}")
    depth = np.full(ipix.size, order, dtype=np.uint8)
    return MOC.from_healpix_cells(ipix, depth, max_depth=order)


def moc_sky_fraction(moc: MOC) -> float:
    """Fraction of the sphere covered by ``moc`` (0..1), as for ``moc_sky_fraction``."""
    return float(moc.sky_fraction)


def write_moc(path: str | Path, moc: MOC, frame: str) -> None:
    """Write ``moc`` as a FITS MOC with ``COORDSYS`` set for the HiPS ``frame`` (atomically)."""
    from astropy.io import fits

    coordsys = COORDSYS[check_frame(frame)]

    def write(tmp: Path) -> None:
        moc.save(str(tmp), format="fits", overwrite=True, fits_keywords={"COORDSYS": coordsys})
        # should a mocpy release ignore fits_keywords, fix the keyword ourselves
        if fits.getval(tmp, "COORDSYS", ext=1).strip() != coordsys:
            fits.setval(tmp, "COORDSYS", value=coordsys, ext=1)

    write_atomic(Path(path), write)
