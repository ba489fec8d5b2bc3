"""HiPS ``Allsky`` preview files: every tile of a low order in one image.

Layout (HiPS 1.0 section 4.3.2; HiPS 2.0 draft "Allsky file", orders 0 to 3): the ``12 * 4**k``
tiles of order ``k``, each reduced to ``allsky_width`` pixels (a power of 2, 64 by default),
are laid side by side left to right, then top to bottom, in Npix order, on a grid
``ncols = floor(sqrt(ntiles))`` wide (27 at order 3) and ``nrows = ceil(ntiles / ncols)`` high.

Orientation. ``Allsky.png`` is stored top -> down like every PNG: tile Npix sits in grid row
``Npix // ncols`` counted from the top, holding the PNG tile as is. ``Allsky.fits`` is the same
picture in FITS row order, i.e. the vertical flip of the PNG-layout mosaic, so that displayed
the FITS way (first row at the bottom) it looks exactly like ``Allsky.png``. In array terms
tile Npix, in its own FITS orientation, fills rows ``(nrows - 1 - Npix // ncols) * aw ...`` of
the FITS array. This is what Hipsgen writes (cds-astro/aladin ``BuilderAllsky.createAllSky``:
``out.setPixelDouble(xOut, out.height-1-yOut, in.getPixelDouble(x, in.height-1-y))`` with
``yOut = (npix / width) * w + y``, where ``cds.fits.Fits`` counts ``y`` from the first FITS
row) and what the ``hips`` reader expects (hipspy/hips ``HipsTileAllskyArray.tile``: "tiles in
all-sky files are ordered top to bottom, left to right, always assuming the JPEG / PNG
orientation, even for FITS all-sky images"). astropy/reproject's ``_allsky.py`` instead puts
tile 0 in the first FITS rows; we follow Hipsgen, the reference implementation.

Reduction: FITS pixels are the NaN-ignoring mean of ``f x f`` blocks (``f = tile_width /
allsky_width``), NaN only where the whole block is blank, as ``pyramid.shrink2`` does for the
lower orders. PNG gray is the alpha-weighted mean (the mean over opaque pixels for the 0/255
alpha of our tiles) and alpha is the block maximum (opaque if any child is opaque), so a PNG
preview pixel is blank exactly where the FITS one is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from hipsluigi.storage import write_atomic, write_fits_atomic

#: Allsky files exist for orders 0 to 3 only (HiPS 2.0 draft; Hipsgen writes them up to 3).
ALLSKY_MAX_ORDER = 3
ALLSKY_WIDTH = 64


def allsky_layout(order: int) -> tuple[int, int]:
    """``(ncols, nrows)`` of the Allsky tile grid at ``order`` (0..3)."""
    if not 0 <= order <= ALLSKY_MAX_ORDER:
        raise ValueError(f"Allsky files exist for orders 0..{ALLSKY_MAX_ORDER}, got {order}")
    ntiles = 12 * 4**order
    ncols = math.isqrt(ntiles)
    return ncols, -(-ntiles // ncols)


def allsky_tile_width(tile_width: int, allsky_width: int = ALLSKY_WIDTH) -> int:
    """Width of one tile in the Allsky: ``allsky_width``, or ``tile_width`` if that is smaller."""
    for name, value in (("tile_width", tile_width), ("allsky_width", allsky_width)):
        if value < 1 or value & (value - 1):
            raise ValueError(f"{name} must be a power of 2, got {value}")
    return min(tile_width, allsky_width)


def reduce_fits_tile(tile: np.ndarray, width: int) -> np.ndarray:
    """NaN-ignoring block mean of a square float tile down to ``width`` (a divisor); float32."""
    w = tile.shape[0]
    f = w // width
    blocks = np.asarray(tile, dtype=np.float64).reshape(width, f, width, f)
    finite = np.isfinite(blocks)
    total = np.where(finite, blocks, 0.0).sum(axis=(1, 3))
    count = finite.sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan).astype(np.float32)


def reduce_png_tile(tile: np.ndarray, width: int) -> np.ndarray:
    """Block-reduce an LA uint8 tile ``(w, w, 2)`` to ``(width, width, 2)``.

    Gray is the alpha-weighted block mean (rounded), alpha the block maximum.
    """
    w = tile.shape[0]
    f = w // width
    blocks = np.asarray(tile).reshape(width, f, width, f, 2)
    gray = blocks[..., 0].astype(np.float64)
    alpha = blocks[..., 1].astype(np.float64)
    weight = alpha.sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(weight > 0, (gray * alpha).sum(axis=(1, 3)) / weight, 0.0)
    out = np.empty((width, width, 2), dtype=np.uint8)
    out[..., 0] = np.clip(np.rint(mean), 0, 255)
    out[..., 1] = blocks[..., 1].max(axis=(1, 3))
    return out


def _check_tile(npix: int, tile: np.ndarray, ntiles: int, shape: tuple[int, ...]) -> None:
    if not 0 <= npix < ntiles:
        raise ValueError(f"tile Npix {npix} outside 0..{ntiles - 1}")
    if tile.shape != shape:
        raise ValueError(f"tile {npix} has shape {tile.shape}, expected {shape}")


def allsky_png_array(
    tiles: Mapping[int, np.ndarray], order: int, tile_width: int,
    allsky_width: int = ALLSKY_WIDTH,
) -> np.ndarray:
    """The ``Allsky.png`` image: uint8 ``(nrows*aw, ncols*aw, 2)`` (gray, alpha), row 0 on top.

    ``tiles`` maps Npix to PNG-orientation LA tiles ``(tile_width, tile_width, 2)`` uint8;
    missing tiles stay transparent (alpha 0).
    """
    ncols, nrows = allsky_layout(order)
    aw = allsky_tile_width(tile_width, allsky_width)
    out = np.zeros((nrows * aw, ncols * aw, 2), dtype=np.uint8)
    for npix, tile in tiles.items():
        tile = np.asarray(tile)
        _check_tile(npix, tile, 12 * 4**order, (tile_width, tile_width, 2))
        if tile.dtype != np.uint8:
            raise ValueError(f"PNG tile {npix} must be uint8, got {tile.dtype}")
        r, c = divmod(npix, ncols)
        out[r * aw:(r + 1) * aw, c * aw:(c + 1) * aw] = reduce_png_tile(tile, aw)
    return out


def allsky_fits_array(
    tiles: Mapping[int, np.ndarray], order: int, tile_width: int,
    allsky_width: int = ALLSKY_WIDTH,
) -> np.ndarray:
    """The ``Allsky.fits`` data: float32 ``(nrows*aw, ncols*aw)`` in FITS row order, NaN blank.

    ``tiles`` maps Npix to FITS-orientation float tiles ``(tile_width, tile_width)``. The
    result is the vertical flip of the PNG-layout mosaic (see the module docstring): tile Npix
    keeps its FITS orientation and fills grid row ``nrows - 1 - Npix // ncols`` of the array.
    """
    ncols, nrows = allsky_layout(order)
    aw = allsky_tile_width(tile_width, allsky_width)
    out = np.full((nrows * aw, ncols * aw), np.nan, dtype=np.float32)
    for npix, tile in tiles.items():
        tile = np.asarray(tile)
        _check_tile(npix, tile, 12 * 4**order, (tile_width, tile_width))
        r, c = divmod(npix, ncols)
        row0 = (nrows - 1 - r) * aw
        out[row0:row0 + aw, c * aw:(c + 1) * aw] = reduce_fits_tile(tile, aw)
    return out


def write_allsky(
    hips_dir: str | Path,
    order: int,
    fits_tiles: Mapping[int, np.ndarray] | None,
    png_tiles: Mapping[int, np.ndarray] | None,
    tile_width: int,
    allsky_width: int = ALLSKY_WIDTH,
) -> list[Path]:
    """Write ``Norder{order}/Allsky.fits`` (BITPIX -32, NaN blanks) and/or ``Allsky.png`` (LA).

    A mapping that is None or empty skips its format (Hipsgen writes no Allsky without tiles).
    Returns the paths written.
    """
    from astropy.io import fits
    from PIL import Image

    folder = Path(hips_dir) / f"Norder{order}"
    written = []
    if fits_tiles:
        data = allsky_fits_array(fits_tiles, order, tile_width, allsky_width)
        path = folder / "Allsky.fits"
        write_fits_atomic(path, fits.PrimaryHDU(data))
        written.append(path)
    if png_tiles:
        image = Image.fromarray(allsky_png_array(png_tiles, order, tile_width, allsky_width))
        path = folder / "Allsky.png"
        # the temporary name does not end in .png, so name the format
        write_atomic(path, lambda tmp: image.save(tmp, format="PNG"))
        written.append(path)
    return written
