"""The all-sky HPX plane: pixels, faces, NESTED indices and WCS headers.

Conventions used throughout hipsluigi (``docs/design.md``, "HPX geometry"):

* A map of tile order ``k`` and tile width ``w`` has pixel order ``k + log2(w)`` and
  ``N = w * 2**k`` pixels along a HEALPix face side ("nside" of the pixels). The all-sky plane
  is ``5N x 5N`` pixels.
* Plane pixels are 0-based. ``p1`` is the column (FITS axis 1), ``p2`` the row (FITS axis 2);
  numpy arrays are indexed ``[p2, p1]``.
* The plane WCS uses ``CD = (45/N) [[-1, -1], [+1, -1]]`` (degrees per pixel), the orientation of
  standard HiPS FITS tiles, so that any ``w x w`` block aligned on the ``w`` grid *is* a standard
  tile as stored: ``data[row][col]`` holds the sub-pixel ``ix = w-1-row, iy = col``.
  (Montage uses the transposed plane; its FITS tiles need a transpose, ours do not.)
* The plane is a 5 x 5 grid of face cells ``I = p1 // N``, ``J = p2 // N``. The 13 cells with
  ``|I - J| <= 1`` hold sky; cell (4, 4) repeats face 6 shifted by 360 degrees. The plane is
  periodic under a shift of ``(4N, 4N)``, which is how pixels beyond the +/-180 degree wrap (the
  padding of edge plates) are given their sky position.
* Inside a cell, with ``u = p1 - I*N`` and ``v = p2 - J*N``: ``ix = N-1-v``, ``iy = u`` and the
  NESTED index is ``face * N**2 + interleave(ix on even bits, iy on odd bits)``. The same rule
  applied to the tile grid (``nside = 2**k``) gives tile numbers.
* A FITS tile's WCS is the plane's with CRPIX moved to the tile, except on face 6, which
  WCSLIB's HPX cuts at x = +/-180 degrees: its tiles are referred to the plane turned by 180
  degrees (CRVAL1 = 180, :func:`tile_wcs_reference`), so that every tile's every pixel is in
  WCSLIB's domain.
"""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from hipsluigi.geometry.frames import ctypes_for

#: FACE_GRID[J, I] is the HEALPix base pixel held by plane cell (I, J), or -1 off the sky.
FACE_GRID = np.full((5, 5), -1, dtype=np.int64)
for (_i, _j), _face in {
    (2, 2): 4, (1, 1): 5, (0, 0): 6, (3, 3): 7,    # equatorial faces
    (2, 1): 0, (1, 0): 1, (4, 3): 2, (3, 2): 3,    # north faces
    (1, 2): 8, (0, 1): 9, (3, 4): 10, (2, 3): 11,  # south faces
    (4, 4): 6,                                     # face 6 again, 360 degrees on
}.items():
    FACE_GRID[_j, _i] = _face

#: CELL_OF_FACE[face] = (I, J): the canonical cell of each face (cell (0, 0) for face 6).
CELL_OF_FACE = np.array(
    [next((i, j) for j in range(5) for i in range(5) if FACE_GRID[j, i] == f) for f in range(12)],
    dtype=np.int64,
)

_SPREAD = (
    (16, 0x0000FFFF0000FFFF),
    (8, 0x00FF00FF00FF00FF),
    (4, 0x0F0F0F0F0F0F0F0F),
    (2, 0x3333333333333333),
    (1, 0x5555555555555555),
)


def spread_bits(v: np.ndarray) -> np.ndarray:
    """Move bit ``b`` of each (up to 32-bit) non-negative integer to bit ``2b`` (int64)."""
    v = np.asarray(v, dtype=np.int64) & 0xFFFFFFFF
    for shift, mask in _SPREAD:
        v = (v | (v << shift)) & mask
    return v


def compact_bits(v: np.ndarray) -> np.ndarray:
    """Inverse of :func:`spread_bits`: keep the even bits and pack them together (int64)."""
    v = np.asarray(v, dtype=np.int64) & 0x5555555555555555
    v = (v | (v >> 1)) & 0x3333333333333333
    v = (v | (v >> 2)) & 0x0F0F0F0F0F0F0F0F
    v = (v | (v >> 4)) & 0x00FF00FF00FF00FF
    v = (v | (v >> 8)) & 0x0000FFFF0000FFFF
    v = (v | (v >> 16)) & 0x00000000FFFFFFFF
    return v


def face_side(order: int, tile_width: int) -> int:
    """Pixels along a HEALPix face side.

    Parameters
    ----------
    order : int
        HiPS tile order (>= 0).
    tile_width : int
        Tile width in pixels (a power of 2).

    Returns
    -------
    int
        ``N = tile_width * 2**order``, the nside of the map's pixels.

    Raises
    ------
    ValueError
        For a negative order or a tile width that is not a power of 2.
    """
    _check_tile_width(tile_width)
    if order < 0:
        raise ValueError(f"order must be >= 0, got {order}")
    return tile_width << order


def _check_tile_width(tile_width: int) -> None:
    if tile_width < 1 or tile_width & (tile_width - 1):
        raise ValueError(f"tile_width must be a power of 2, got {tile_width}")


def plane_to_nested(p1: np.ndarray, p2: np.ndarray, nside: int) -> np.ndarray:
    """NESTED HEALPix index of plane pixels.

    Works on the pixel grid (``nside = N``) and on the tile grid (``nside = 2**order``) alike.

    Parameters
    ----------
    p1, p2 : array_like of int
        0-based plane pixels, ``p1`` the column and ``p2`` the row. Pixels outside
        ``[0, 5*nside)`` (plate padding beyond the plane's edge) are placed by the plane's
        ``(4N, 4N)`` periodicity.
    nside : int
        HEALPix nside of the grid.

    Returns
    -------
    numpy.ndarray
        int64 NESTED indices at ``nside``; -1 where off the sky.
    """
    p1 = np.asarray(p1, dtype=np.int64)
    p2 = np.asarray(p2, dtype=np.int64)
    cell_i = np.floor_divide(p1, nside)
    cell_j = np.floor_divide(p2, nside)
    on_sky = np.abs(cell_i - cell_j) <= 1
    # Bring the cell into the 5 x 5 plane: a shift of 4 cells on both axes is 360 degrees.
    turns = np.floor_divide(np.minimum(cell_i, cell_j), 4)
    ci = np.clip(cell_i - 4 * turns, 0, 4)
    cj = np.clip(cell_j - 4 * turns, 0, 4)
    face = np.where(on_sky, FACE_GRID[cj, ci], -1)
    u = p1 - cell_i * nside
    v = p2 - cell_j * nside
    ix = nside - 1 - v
    iy = u
    nest = face * nside * nside + (spread_bits(ix) | (spread_bits(iy) << 1))
    return np.where(face >= 0, nest, -1)


def nested_to_plane(nest: np.ndarray, nside: int) -> tuple[np.ndarray, np.ndarray]:
    """Canonical plane position of NESTED indices (face 6 in cell (0, 0)).

    Parameters
    ----------
    nest : array_like of int
        NESTED indices at ``nside``.
    nside : int
        HEALPix nside.

    Returns
    -------
    tuple of numpy.ndarray
        ``(p1, p2)``: 0-based plane column and row.

    Raises
    ------
    ValueError
        For an index outside ``0 .. 12 nside**2 - 1``.
    """
    nest = np.asarray(nest, dtype=np.int64)
    if np.any((nest < 0) | (nest >= 12 * nside * nside)):
        raise ValueError(f"NESTED index out of range for nside {nside}")
    face = nest // (nside * nside)
    rem = nest - face * nside * nside
    ix = compact_bits(rem)
    iy = compact_bits(rem >> 1)
    cell = CELL_OF_FACE[face]
    p1 = cell[..., 0] * nside + iy
    p2 = cell[..., 1] * nside + (nside - 1 - ix)
    return p1, p2


def plane_crpix(nside: int) -> float:
    """CRPIX1 = CRPIX2 (1-based) of the all-sky ``5N x 5N`` plane, ``(5N + 1) / 2``.

    The plane's centre, the reference point (0, 0) of the HPX projection. Montage's background
    planes use ``x = p1 - CRPIX1`` with 0-based ``p1``.
    """
    return (5 * nside + 1) / 2


def plane_wcs_header(
    order: int, tile_width: int, frame: str = "galactic", *, crpix_shift=(0.0, 0.0),
    naxis=None,
) -> fits.Header:
    """WCS header of the all-sky HPX plane (or of a sub-image of it).

    Parameters
    ----------
    order : int
        HiPS tile order.
    tile_width : int
        Tile width in pixels.
    frame : str, optional
        HiPS frame.
    crpix_shift : (int, int), optional
        The 0-based plane pixel ``(p1, p2)`` that becomes the sub-image's first pixel.
    naxis : (int, int), optional
        The sub-image's ``(NAXIS1, NAXIS2)``; by default the whole ``5N x 5N`` plane.

    Returns
    -------
    astropy.io.fits.Header
        HPX WCS with ``CD = (45/N) [[-1, -1], [+1, -1]]`` degrees per pixel (see the module
        docstring).
    """
    n = face_side(order, tile_width)
    ctype1, ctype2, radesys = ctypes_for(frame)
    r = 45.0 / n
    header = fits.Header()
    header["NAXIS"] = 2
    header["NAXIS1"], header["NAXIS2"] = naxis if naxis is not None else (5 * n, 5 * n)
    header["CTYPE1"], header["CTYPE2"] = ctype1, ctype2
    if radesys:
        header["RADESYS"] = radesys
    header["CRVAL1"], header["CRVAL2"] = 0.0, 0.0
    header["CRPIX1"] = plane_crpix(n) - crpix_shift[0]
    header["CRPIX2"] = plane_crpix(n) - crpix_shift[1]
    header["CD1_1"], header["CD1_2"] = -r, -r
    header["CD2_1"], header["CD2_2"] = r, -r
    header["PV2_1"], header["PV2_2"] = 4, 3
    return header


def tile_plane_position(order: int, npix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tile-grid column and row of tiles.

    Parameters
    ----------
    order : int
        HiPS tile order.
    npix : array_like of int
        NESTED tile indices.

    Returns
    -------
    tuple of numpy.ndarray
        ``(tc, tr)``: the tile's first plane pixel is ``(p1, p2) = (tc * w, tr * w)``.
    """
    return nested_to_plane(npix, 1 << order)


#: The HEALPix base pixel centred on the +/-180 degree cut of the HPX plane.
SPLIT_FACE = 6


def tile_wcs_reference(order: int, npix: int, tile_width: int) -> tuple[float, float, float]:
    """``(CRVAL1, CRPIX1, CRPIX2)`` of the WCS of FITS tile ``npix``.

    WCSLIB refuses HPX plane points with ``|x| > 180`` degrees, and face 6 is centred on that
    cut: in the plane of CRVAL1 = 0 its canonical cell (0, 0) spans x = 135..225 degrees, so
    most of its tiles would map to no sky at all. Tiles of face 6 are therefore referred to
    the plane turned by 180 degrees in longitude (CRVAL1 = 180), where face 6 takes the
    centre cell (2, 2), x = -45..45. HEALPix is unchanged by that turn (face 6 takes the place
    of face 4, sub-pixel for sub-pixel), so the tile's pixels are the same; only the reference
    point moves. Every other tile keeps CRVAL1 = 0 and the shared plane.

    Parameters
    ----------
    order : int
        HiPS order.
    npix : int
        NESTED tile index.
    tile_width : int
        Tile width in pixels.

    Returns
    -------
    tuple of float
        CRVAL1 in degrees, and the 1-based CRPIX1, CRPIX2 of the tile's ``w x w`` image.
    """
    tc, tr = (int(t) for t in tile_plane_position(order, np.array(npix)))
    crval1 = 0.0
    if npix >> (2 * order) == SPLIT_FACE:
        crval1 = 180.0
        tc, tr = tc + (2 << order), tr + (2 << order)  # cell (0, 0) -> cell (2, 2)
    crpix = plane_crpix(face_side(order, tile_width))
    return crval1, crpix - tc * tile_width, crpix - tr * tile_width


def tile_header(order: int, npix: int, tile_width: int, frame: str = "galactic") -> fits.Header:
    """Header of the standard FITS tile ``npix`` at ``order``.

    Parameters
    ----------
    order : int
        HiPS order.
    npix : int
        NESTED tile index.
    tile_width : int
        Tile width in pixels.
    frame : str, optional
        HiPS frame.

    Returns
    -------
    astropy.io.fits.Header
        The tile's HPX WCS (NAXIS1 = NAXIS2 = ``tile_width``; reference point as
        :func:`tile_wcs_reference` says), ORDER and NPIX.
    """
    header = plane_wcs_header(order, tile_width, frame, naxis=(tile_width, tile_width))
    header["CRVAL1"], header["CRPIX1"], header["CRPIX2"] = tile_wcs_reference(
        order, npix, tile_width)
    header["ORDER"] = (order, "HiPS tile order")
    header["NPIX"] = (int(npix), "HiPS tile index (NESTED)")
    return header


#: Tiles per ``Dir`` folder of a HiPS (HiPS 1.0: ``Dir = (Npix // 10000) * 10000``).
DIR_SIZE = 10000


def tile_relpath(order: int, npix: int, ext: str) -> str:
    """Path of a tile inside a HiPS: ``Norder{k}/Dir{D}/Npix{N}.{ext}``, D = 10000*(N//10000)
    (:data:`DIR_SIZE`).

    Parameters
    ----------
    order : int
        HiPS order ``k``.
    npix : int
        NESTED tile index ``N``.
    ext : str
        File extension without the dot (``fits``, ``png``).

    Returns
    -------
    str
        The path relative to the HiPS folder.
    """
    return f"Norder{order}/Dir{(npix // DIR_SIZE) * DIR_SIZE}/Npix{npix}.{ext}"


def unfold_across_cuts(p1: np.ndarray, p2: np.ndarray, cell_i: int, cell_j: int, nside: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Move pixels that lie beyond a polar cut of cell ``(cell_i, cell_j)`` onto the sky.

    A polar face's cell touches off-sky cells along two edges that are polar cuts; on the sky,
    what lies beyond such an edge is the next polar face, reached by a 90 degree turn about the
    cut's corner at the pole end (Calabretta & Roukema 2007). This maps plane pixels in those
    off-sky strips (the padding of a plate) to the plane pixels holding that sky.

    Parameters
    ----------
    p1, p2 : array_like of int
        0-based plane pixels (column, row); a pixel's centre is at ``p + 0.5``.
    cell_i, cell_j : int
        The face cell ``(I, J)`` the pixels are padding of.
    nside : int
        HEALPix nside of the pixel grid.

    Returns
    -------
    tuple of numpy.ndarray
        The moved ``(p1, p2)``, int64; pixels not beyond a cut of this cell are unchanged.
    """
    p1 = np.asarray(p1, dtype=np.int64)
    p2 = np.asarray(p2, dtype=np.int64)
    out1, out2 = p1.copy(), p2.copy()
    n = nside
    if cell_i == cell_j + 1:  # north face: cuts along its right and bottom edges
        # beyond the right edge: turn +90 degrees about the top-right corner
        _turn(out1, out2, p1, p2, (p1 >= (cell_i + 1) * n) & (p2 >= cell_j * n)
              & (p2 < (cell_j + 1) * n), (cell_i + 1) * n, (cell_j + 1) * n, +1)
        # beyond the bottom edge: turn -90 degrees about the bottom-left corner
        _turn(out1, out2, p1, p2, (p2 < cell_j * n) & (p1 >= cell_i * n)
              & (p1 < (cell_i + 1) * n), cell_i * n, cell_j * n, -1)
    elif cell_j == cell_i + 1:  # south face: cuts along its top and left edges
        _turn(out1, out2, p1, p2, (p2 >= (cell_j + 1) * n) & (p1 >= cell_i * n)
              & (p1 < (cell_i + 1) * n), (cell_i + 1) * n, (cell_j + 1) * n, -1)
        _turn(out1, out2, p1, p2, (p1 < cell_i * n) & (p2 >= cell_j * n)
              & (p2 < (cell_j + 1) * n), cell_i * n, cell_j * n, +1)
    return out1, out2


def _turn(out1, out2, p1, p2, mask, pivot1: int, pivot2: int, sense: int) -> None:
    """Rotate pixel centres in ``mask`` by ``sense`` * 90 degrees about a pixel corner."""
    d1 = p1[mask] - pivot1  # centre offset minus 0.5
    d2 = p2[mask] - pivot2
    if sense > 0:  # (dx, dy) -> (-dy, dx), on centres (d + 0.5)
        out1[mask] = pivot1 - d2 - 1
        out2[mask] = pivot2 + d1
    else:  # (dx, dy) -> (dy, -dx)
        out1[mask] = pivot1 + d2
        out2[mask] = pivot2 - d1 - 1
