"""The HiPS ``Moc.fits`` coverage file, in ICRS.

The MOC 2.0 standard (IVOA REC 2022-07-27, section 2.1) defines spatial MOCs in ICRS only,
mocpy reads back ``COORDSYS = 'C'`` only, and Hipsgen's LINT warns on any other frame. So a
galactic HiPS gets the ICRS MOC of its galactic coverage (:func:`icrs_coverage`), as Hipsgen
writes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import healpy as hp
import numpy as np
from mocpy import MOC

from hipsluigi.geometry.frames import check_frame
from hipsluigi.storage.atomic import write_atomic

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


def icrs_coverage(frame: str, order: int, npix: Iterable[int]) -> MOC:
    """The ICRS MOC, of depth ``order``, of a set of tiles of a HiPS in ``frame``.

    For an equatorial HiPS these are the tiles themselves. For another frame, an ICRS cell is
    in the MOC when a sample point of a tile falls in it (the tile's centre, its 4 corners
    and the centres of its 4 children), or when its own centre falls in a tile; the second
    test, on the neighbours of the first cells, fills cells no sample point happened to hit.
    So every tile's centre and corners are covered, and the MOC overshoots the tiles by at
    most about one cell.

    Parameters
    ----------
    frame : str
        The HiPS frame (``galactic`` or ``equatorial``).
    order : int
        HiPS order of the tiles, 0 to :data:`MOC_MAX_ORDER`.
    npix : iterable of int
        NESTED tile indices in ``frame``.

    Returns
    -------
    mocpy.MOC
    """
    from astropy.coordinates import ICRS

    from hipsluigi.geometry.frames import astropy_frame, rotation_matrix

    tiles = tiles_moc(order, npix)
    if check_frame(frame) == "equatorial":
        return tiles
    nside = 1 << order
    covered = np.zeros(12 * nside * nside, dtype=bool)
    ipix = tiles.flatten().astype(np.int64)  # cells at max_depth == order
    covered[ipix] = True
    if covered.all():
        return tiles
    to_icrs = rotation_matrix(astropy_frame(frame), ICRS())
    points = [np.array(hp.pix2vec(nside, ipix, nest=True))]
    corners = hp.boundaries(nside, ipix, step=1, nest=True)  # (n, 3, 4)
    points.extend(corners[..., k].T for k in range(4))
    children = (ipix[:, None] * 4 + np.arange(4)).ravel()
    points.append(np.array(hp.pix2vec(2 * nside, children, nest=True)))
    sampled = np.unique(np.concatenate([hp.vec2pix(nside, *(to_icrs @ p), nest=True)
                                        for p in points]))
    candidates = np.unique(hp.get_all_neighbours(nside, sampled, nest=True).ravel())
    candidates = candidates[candidates >= 0]
    centres = to_icrs.T @ np.array(hp.pix2vec(nside, candidates, nest=True))
    inside = covered[hp.vec2pix(nside, *centres, nest=True)]
    cells = np.union1d(sampled, candidates[inside])
    return MOC.from_healpix_cells(cells, np.full(cells.size, order, dtype=np.uint8),
                                  max_depth=order)


def moc_sky_fraction(moc: MOC) -> float:
    """Fraction of the sphere covered by ``moc``, 0 to 1 (the ``moc_sky_fraction`` property)."""
    return float(moc.sky_fraction)


def write_moc(path: str | Path, moc: MOC) -> None:
    """Write the ICRS ``moc`` as a FITS MOC (``COORDSYS = 'C'``), atomically.

    Parameters
    ----------
    path : str or pathlib.Path
        The file (``Moc.fits``).
    moc : mocpy.MOC
        The coverage, in ICRS (:func:`icrs_coverage`).
    """
    from astropy.io import fits

    # Declared at depth 29, the depth its ranges are stored at: Aladin 12.001's LINT takes
    # a range's cells to be of the declared depth, and for a HiPS whose frame is not the
    # MOC's it then aborts on a cell index out of range (BuilderLint.getOneNpix).
    moc = MOC.from_depth29_ranges(MOC_MAX_ORDER, moc.to_depth29_ranges)

    def write(tmp: Path) -> None:
        moc.save(str(tmp), format="fits", overwrite=True)
        # mocpy writes no COORDSYS in some releases; the standard's ICRS is 'C'
        if str(fits.getheader(tmp, 1).get("COORDSYS", "")).strip() != "C":
            fits.setval(tmp, "COORDSYS", value="C", ext=1)

    write_atomic(Path(path), write)
