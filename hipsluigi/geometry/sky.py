"""Sky positions of plate pixels (HEALPix formulas inside a face, healpy elsewhere) and bounding
caps of plates.

Positions are unit vectors ``(..., 3)`` in the map's frame; plane pixels ``(p1, p2)`` are 0-based
(column, row); cap radii are radians.
"""

from __future__ import annotations

import healpy as hp
import numpy as np

from hipsluigi.geometry.hpx import FACE_GRID, plane_to_nested, unfold_across_cuts
from hipsluigi.geometry.plates import PlateGrid


def plane_pixel_vectors(p1: np.ndarray, p2: np.ndarray, nside: int) -> np.ndarray:
    """Unit vectors of plane pixel centres.

    The HPX pixel centre is the HEALPix pixel centre, so healpy's ``pix2vec`` gives it exactly,
    including beyond the +/-180 degree wrap, where WCSLIB refuses by default.

    Parameters
    ----------
    p1, p2 : array_like of int
        0-based plane pixels (column, row).
    nside : int
        HEALPix nside of the pixel grid.

    Returns
    -------
    numpy.ndarray
        ``p1.shape + (3,)``, NaN off the sky.
    """
    nest = plane_to_nested(p1, p2, nside)
    ok = nest >= 0
    if ok.all():  # most blocks: no gather, no scatter
        out = np.empty(nest.shape + (3,))
        for axis, component in enumerate(hp.pix2vec(nside, nest, nest=True)):
            out[..., axis] = component
        return out
    out = np.full(nest.shape + (3,), np.nan)
    if ok.any():
        out[ok] = np.stack(hp.pix2vec(nside, nest[ok], nest=True), axis=-1)
    return out


#: HEALPix ring index of each base pixel's southern corner and longitude index of its centre
#: (``jrll``, ``jpll`` of the HEALPix C++ library), per face 0..11.
_JRLL = (2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4)
_JPLL = (1, 3, 5, 7, 0, 2, 4, 6, 1, 3, 5, 7)


def face_block_vectors(face: int, u: np.ndarray, v: np.ndarray, nside: int) -> np.ndarray:
    """Unit vectors of the pixel centres of a block of face ``face`` at in-face plane offsets
    ``u`` (columns, 1-D) and ``v`` (rows, 1-D); shape ``(len(v), len(u), 3)``.

    The centres of healpy's ``pix2vec`` for ``ix = N - 1 - v``, ``iy = u`` (HEALPix's own
    formulas, as in its C++ ``pix2loc``): z depends only on the ring ``ix + iy``, one value per
    diagonal of the block, and the longitude is ``pi/4 (jpll + (ix - iy) / nr)``. In the
    equatorial belt ``nr = N`` and the longitude is linear in ``u`` and ``v``, so cos and sin
    factor into row and column terms; in the polar caps they are taken per pixel.

    Parameters
    ----------
    face : int
        HEALPix base pixel, 0 to 11.
    u, v : numpy.ndarray
        1-D in-face plane offsets ``p1 - I*N`` (columns) and ``p2 - J*N`` (rows), 0 to N - 1.
    nside : int
        HEALPix nside ``N``.

    Returns
    -------
    numpy.ndarray
        ``(len(v), len(u), 3)`` unit vectors.
    """
    n = nside
    u = np.asarray(u, dtype=np.int64)
    v = np.asarray(v, dtype=np.int64)
    diag = np.arange(u.min() - v.max(), u.max() - v.min() + 1)  # u - v
    jr = _JRLL[face] * n - (n - 1 + diag) - 1  # ring index, 1 .. 4N - 1, north to south
    north, south = jr < n, jr > 3 * n
    nr = np.where(north, jr, np.where(south, 4 * n - jr, n))
    cap = nr.astype(np.float64) ** 2 / (3.0 * n * n)  # 1 - |z| in the caps
    z = np.where(north, 1.0 - cap, np.where(south, cap - 1.0, (2 * n - jr) * (2.0 / (3 * n))))
    sin_theta = np.where(north | south, np.sqrt(cap * (2.0 - cap)),
                         np.sqrt((1.0 - z) * (1.0 + z)))
    k = u[None, :] - v[:, None] - diag[0]  # diagonal of each pixel
    st = sin_theta[k]
    out = np.empty((len(v), len(u), 3))
    if not (north.any() or south.any()):
        # phi = pi/4 (jpll + (ix - iy) / N) = a(u) - b(v)
        step = np.pi / (4 * n)
        a = np.pi / 4 * _JPLL[face] + step * (n - 1) - step * u
        b = step * v
        cos_a, sin_a, cos_b, sin_b = np.cos(a), np.sin(a), np.cos(b), np.sin(b)
        cos_phi = cos_b[:, None] * cos_a[None, :] + sin_b[:, None] * sin_a[None, :]
        sin_phi = cos_b[:, None] * sin_a[None, :] - sin_b[:, None] * cos_a[None, :]
    else:
        ix_minus_iy = (n - 1) - u[None, :] - v[:, None]
        phi = np.pi / 4 * _JPLL[face] + (np.pi / 4 / nr)[k] * ix_minus_iy
        cos_phi, sin_phi = np.cos(phi), np.sin(phi)
    np.multiply(cos_phi, st, out=out[..., 0])
    np.multiply(sin_phi, st, out=out[..., 1])
    out[..., 2] = z[k]
    return out


def plate_plane_pixels(grid: PlateGrid, i: int, j: int, p1: np.ndarray, p2: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Plane pixels holding the sky of plate ``(i, j)``'s pixels at plane positions ``(p1, p2)``.

    The same positions, except padding beyond a polar cut of the plate's face, which is
    unfolded onto the next polar face (so padded plates overlap across cuts too).

    Parameters
    ----------
    grid : PlateGrid
        The plate grid.
    i, j : int
        The plate.
    p1, p2 : array_like of int
        0-based plane pixels (column, row) of the plate's (padded) pixels.

    Returns
    -------
    tuple of numpy.ndarray
        ``(u1, u2)``, int64 plane pixels.
    """
    ci, cj = grid.cell(i, j)
    return unfold_across_cuts(p1, p2, ci, cj, grid.face_side)


def plate_pixel_vectors(grid: PlateGrid, i: int, j: int, rows: slice, cols: slice,
                        padded: bool = True) -> np.ndarray:
    """Unit vectors of the centres of a block of plate pixels.

    Parameters
    ----------
    grid : PlateGrid
        The plate grid.
    i, j : int
        The plate.
    rows, cols : slice
        The block ``plate[rows, cols]`` (unit steps).
    padded : bool, optional
        Indices into the padded plate.

    Returns
    -------
    numpy.ndarray
        ``(nrows, ncols, 3)``, NaN off the sky.
    """
    p1_0, p2_0 = grid.origin(i, j, padded)
    p2 = np.arange(rows.start, rows.stop) + p2_0
    p1 = np.arange(cols.start, cols.stop) + p1_0
    n = grid.face_side
    ci, cj = grid.cell(i, j)
    # Within the plate's own cell nothing is unfolded: one face, HEALPix's formulas.
    if (ci * n <= p1[0] and p1[-1] < (ci + 1) * n and cj * n <= p2[0] and p2[-1] < (cj + 1) * n
            and FACE_GRID[cj, ci] >= 0):
        return face_block_vectors(int(FACE_GRID[cj, ci]), p1 - ci * n, p2 - cj * n, n)
    u1, u2 = plate_plane_pixels(grid, i, j, *np.broadcast_arrays(p1[None, :], p2[:, None]))
    return plane_pixel_vectors(u1, u2, n)


def cap_of_vectors(vec: np.ndarray) -> tuple[np.ndarray, float]:
    """Bounding cap of the finite vectors of an array.

    Parameters
    ----------
    vec : numpy.ndarray
        ``(..., 3)`` unit vectors, NaN rows ignored.

    Returns
    -------
    tuple
        ``(centre, radius)``: the normalised mean and the largest angle from it, radians. A
        NaN centre and radius 0 when no vector is finite; the whole sphere (radius pi) when the
        mean vanishes.
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

    Parameters
    ----------
    grid : PlateGrid
        The plate grid.
    i, j : int
        The plate.
    rows, cols : slice
        The block ``plate[rows, cols]``.
    padded : bool, optional
        Indices into the padded plate.
    samples : int, optional
        Lattice points along each side of the block.

    Returns
    -------
    tuple
        ``(centre, radius)``: unit vector ``(3,)`` (NaN if the block is off the sky) and
        radius in radians.
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
    """Bounding cap ``(centre, radius in radians)`` of a whole plate (see :func:`block_cap`)."""
    rows, cols = grid.shape(padded)
    return block_cap(grid, i, j, slice(0, rows), slice(0, cols), padded, samples)
