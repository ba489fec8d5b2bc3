"""Cutting FITS tiles out of a plate.

Plates live on the CDS-oriented HPX plane (see ``hipsluigi.geometry.hpx``), so a tile is a plain
``w x w`` slice of the plate, already in the standard orientation; no transpose (Montage's FITS
tiles are transposed) and no all-NaN tile is written (Montage writes them).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from astropy.io import fits

from hipsluigi.geometry.hpx import tile_header
from hipsluigi.geometry.plates import PlateGrid


def plate_tiles(plate: np.ndarray, grid: PlateGrid, i: int, j: int
                ) -> Iterator[tuple[int, np.ndarray]]:
    """``(npix, tile)`` for every tile of unpadded plate ``(i, j)`` holding a finite pixel.

    ``tile`` is a float32 view ``(w, w)``, ``data[row][col]`` holding sub-pixel
    ``ix = w-1-row, iy = col`` of tile ``npix`` (the HiPS FITS convention).
    """
    if plate.shape != grid.shape(padded=False):
        raise ValueError(f"plate {i},{j} has shape {plate.shape}, expected "
                         f"{grid.shape(padded=False)}")
    w = grid.tile_width
    npix, rows0, cols0 = grid.tiles(i, j)
    for n, r0, c0 in zip(npix, rows0, cols0, strict=True):
        tile = plate[r0:r0 + w, c0:c0 + w]
        if np.isfinite(tile).any():
            yield int(n), np.asarray(tile, dtype=np.float32)


def tile_hdu(tile: np.ndarray, order: int, npix: int, frame: str) -> fits.PrimaryHDU:
    """A FITS tile: BITPIX -32, NaN blanks, the tile's HPX WCS, ORDER and NPIX keywords."""
    header = tile_header(order, npix, tile.shape[0], frame)
    finite = tile[np.isfinite(tile)]
    if finite.size:
        header["DATAMIN"] = float(finite.min())
        header["DATAMAX"] = float(finite.max())
    return fits.PrimaryHDU(np.ascontiguousarray(tile, dtype=np.float32), header=header)
