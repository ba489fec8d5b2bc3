"""Sky positions of plane pixels (through healpy) and bounding caps of plates."""

from __future__ import annotations

import healpy as hp
import numpy as np

from hipsluigi.geometry.hpx import plane_to_nested, unfold_across_cuts
from hipsluigi.geometry.plates import PlateGrid


def plane_pixel_vectors(p1: np.ndarray, p2: np.ndarray, nside: int) -> np.ndarray:
    """Unit vectors (map frame) of plane pixel centres; shape ``p1.shape + (3,)``, NaN off sky.

    The HPX pixel centre is the HEALPix pixel centre, so healpy's ``pix2vec`` gives it exactly,
    including beyond the +/-180 degree wrap, where WCSLIB refuses by default.
    """
    nest = plane_to_nested(p1, p2, nside)
    out = np.full(nest.shape + (3,), np.nan)
    ok = nest >= 0
    if ok.any():
        out[ok] = np.stack(hp.pix2vec(nside, nest[ok], nest=True), axis=-1)
    return out


def plate_plane_pixels(grid: PlateGrid, i: int, j: int, p1: np.ndarray, p2: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Plane pixels holding the sky of plate ``(i, j)``'s pixels at plane positions ``(p1, p2)``.

    The same positions, except padding beyond a polar cut of the plate's face, which is
    unfolded onto the next polar face (so padded plates overlap across cuts too).
    """
    ci, cj = grid.cell(i, j)
    return unfold_across_cuts(p1, p2, ci, cj, grid.face_side)


def plate_pixel_vectors(grid: PlateGrid, i: int, j: int, rows: slice, cols: slice,
                        padded: bool = True) -> np.ndarray:
    """Unit vectors of a block ``[rows, cols]`` of plate pixels; shape ``(nrows, ncols, 3)``."""
    p1_0, p2_0 = grid.origin(i, j, padded)
    p2 = np.arange(rows.start, rows.stop) + p2_0
    p1 = np.arange(cols.start, cols.stop) + p1_0
    u1, u2 = plate_plane_pixels(grid, i, j, *np.broadcast_arrays(p1[None, :], p2[:, None]))
    return plane_pixel_vectors(u1, u2, grid.face_side)


def cap_of_vectors(vec: np.ndarray) -> tuple[np.ndarray, float]:
    """Bounding cap ``(centre unit vector, radius in radians)`` of the finite vectors.

    The centre is the normalised mean, the radius the largest angle from it. A NaN centre and
    radius 0 when no vector is finite.
    """
    v = vec.reshape(-1, 3)
    v = v[np.isfinite(v[:, 0])]
    if len(v) == 0:
        return np.full(3, np.nan), 0.0
    centre = v.mean(axis=0)
    norm = np.linalg.norm(centre)
    if norm < 1e-9:
        return np.array([0.0, 0.0, 1.0]), np.pi
    centre = centre / norm
    return centre, float(np.arccos(np.clip(v @ centre, -1.0, 1.0)).max())


def block_cap(grid: PlateGrid, i: int, j: int, rows: slice, cols: slice, padded: bool = True,
              samples: int = 9) -> tuple[np.ndarray, float]:
    """Bounding cap of a block of plate pixels, from a lattice of ``samples``^2 pixels.

    The radius is widened by one lattice diagonal (plus half a pixel) so that the cap holds every
    pixel of the block, not only the sampled ones.
    """
    r = np.unique(np.linspace(rows.start, rows.stop - 1, samples).round().astype(np.int64))
    c = np.unique(np.linspace(cols.start, cols.stop - 1, samples).round().astype(np.int64))
    p1_0, p2_0 = grid.origin(i, j, padded)
    u1, u2 = plate_plane_pixels(grid, i, j, *np.broadcast_arrays(c[None, :] + p1_0,
                                                                  r[:, None] + p2_0))
    centre, radius = cap_of_vectors(plane_pixel_vectors(u1, u2, grid.face_side))
    # An HPX pixel is at most sqrt(2) * 90/N degrees across along a diagonal in the polar faces.
    pixel = np.radians(90.0 / grid.face_side) * np.sqrt(2)
    step = max(rows.stop - rows.start, cols.stop - cols.start) / max(samples - 1, 1)
    return centre, radius + pixel * (step + 1)


def plate_cap(grid: PlateGrid, i: int, j: int, padded: bool = True,
              samples: int = 33) -> tuple[np.ndarray, float]:
    """Bounding cap of a whole plate (see :func:`block_cap`)."""
    rows, cols = grid.shape(padded)
    return block_cap(grid, i, j, slice(0, rows), slice(0, cols), padded, samples)
