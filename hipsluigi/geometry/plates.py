"""The plate grid over the HPX plane: plate headers, the sky mask, tiles per plate, the pyramid.

A plate grid of ``nplate x nplate`` plates covers the ``5N x 5N`` plane of one order; plate
``(i, j)`` covers plane columns ``[i*S, (i+1)*S)`` and rows ``[j*S, (j+1)*S)`` with
``S = 5N / nplate`` (0-based plane pixels, ``i`` along FITS axis 1). ``nplate = 5 * 2**m`` so
that plates never straddle a face cell. A *padded* plate adds ``pad`` pixels on each side.

Lower orders (the pyramid): each order halves the pixels; a plate keeps its grid position while
it stays at least one tile wide, and below that 2 x 2 plates are combined (the grid halves), down
to the 5 x 5 grid of one-tile plates at order 0. See ``docs/design.md``, "Plates and orders".
Plate arrays are indexed ``[row, col]``: ``plate[r, c]`` is plane pixel
``(p1, p2) = origin + (c, r)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from hipsluigi.geometry.frames import check_frame
from hipsluigi.geometry.hpx import face_side, plane_to_nested, plane_wcs_header

#: Finest plate grid a cone region chooses by itself: 5 * 2**6 plates a side (plates 0.92
#: degrees wide), so that whole-grid bookkeeping (the plate list, the plate neighbours) stays
#: small.
CONE_NPLATE_MAX = 320


def default_nplate(order: int, cone_radius: float | None = None) -> int:
    """Default plates a side at ``order``.

    Parameters
    ----------
    order : int
        HiPS tile order of the deepest plates.
    cone_radius : float, optional
        For a map limited to a cone, its radius in degrees.

    Returns
    -------
    int
        ``5 * 2**m`` with ``m = max(0, order - 5)`` (5 up to order 5, doubling per order after
        that). For a cone, plates are made smaller if need be, until they are no wider than
        the cone's radius (the cone then touches 4 to 16 plates, which cover little more than
        it), but never narrower than one tile (``m <= order``) and not beyond
        :data:`CONE_NPLATE_MAX` unless the plain default is finer already.
    """
    m = max(0, order - 5)
    if cone_radius is not None and cone_radius > 0:
        # A plate of a 5 * 2**m grid is one HEALPix cell of order m, sqrt(pi/3) / 2**m wide.
        fit = math.ceil(math.log2(math.degrees(math.sqrt(math.pi / 3)) / cone_radius))
        finest = min(order, (CONE_NPLATE_MAX // 5).bit_length() - 1)
        m = max(m, min(fit, finest))
    return 5 * 2**m


def default_pad(order: int, tile_width: int, nplate: int) -> int:
    """Default padding of the deepest plates, pixels.

    Parameters
    ----------
    order : int
        HiPS tile order.
    tile_width : int
        Tile width in pixels.
    nplate : int
        Plates a side.

    Returns
    -------
    int
        1/32 of the plate side, at least 8 and at most 512 pixels.
    """
    side = 5 * face_side(order, tile_width) // nplate
    return int(min(512, max(8, side // 32)))


@dataclass(frozen=True)
class PlateGrid:
    """The plates of one order.

    Parameters
    ----------
    order : int
        HiPS tile order of this grid's pixels.
    tile_width : int
        Tile width in pixels (a power of 2).
    nplate : int
        Plates per side of the plane, ``5 * 2**m``, with plates at least one tile wide.
    pad : int, optional
        Padding, in pixels, on each side of a padded plate.

    Raises
    ------
    ValueError
        For an ``nplate`` that is not ``5 * 2**m`` or makes plates narrower than a tile, or a
        negative ``pad``.
    """

    order: int
    tile_width: int
    nplate: int
    pad: int = 0

    def __post_init__(self):
        n = face_side(self.order, self.tile_width)
        m = self.nplate // 5
        if self.nplate < 5 or self.nplate % 5 or m & (m - 1):
            raise ValueError(f"nplate must be 5 * 2**m, got {self.nplate}")
        if 5 * n // self.nplate < self.tile_width:
            raise ValueError(
                f"nplate {self.nplate} makes plates narrower than one tile at order {self.order}"
                f" (at most {5 * 2 ** self.order} plates a side)"
            )
        if self.pad < 0:
            raise ValueError(f"pad must be >= 0, got {self.pad}")

    @property
    def face_side(self) -> int:
        """N, pixels along a face side."""
        return face_side(self.order, self.tile_width)

    @property
    def plate_side(self) -> int:
        """S, pixels along an unpadded plate side."""
        return 5 * self.face_side // self.nplate

    @property
    def plates_per_face(self) -> int:
        """Plates along a face cell's side."""
        return self.nplate // 5

    @property
    def tiles_per_plate_side(self) -> int:
        """Tiles along an unpadded plate's side."""
        return self.plate_side // self.tile_width

    def origin(self, i: int, j: int, padded: bool = False) -> tuple[int, int]:
        """0-based plane pixel ``(p1, p2)`` of the plate's first pixel (``plate[0, 0]``)."""
        pad = self.pad if padded else 0
        return i * self.plate_side - pad, j * self.plate_side - pad

    def shape(self, padded: bool = False) -> tuple[int, int]:
        """Array shape ``(rows, cols)`` of a plate."""
        side = self.plate_side + (2 * self.pad if padded else 0)
        return side, side

    def cell(self, i: int, j: int) -> tuple[int, int]:
        """Face cell ``(I, J)`` holding plate ``(i, j)``."""
        return i // self.plates_per_face, j // self.plates_per_face

    def on_sky(self, i: int, j: int) -> bool:
        """True if the plate lies on one of the 13 sky cells (|I - J| <= 1)."""
        ci, cj = self.cell(i, j)
        return 0 <= i < self.nplate and 0 <= j < self.nplate and abs(ci - cj) <= 1

    def is_duplicate(self, i: int, j: int) -> bool:
        """True for plates in cell (4, 4), the copy of face 6 that yields no tiles."""
        return self.cell(i, j) == (4, 4)

    @cached_property
    def sky_plates(self) -> tuple[tuple[int, int], ...]:
        """Every on-sky plate ``(i, j)``, i-major (the order of ``id`` in ``platelist.tbl``)."""
        i, j = np.meshgrid(np.arange(self.nplate), np.arange(self.nplate), indexing="ij")
        on = np.abs(i // self.plates_per_face - j // self.plates_per_face) <= 1
        return tuple(zip(i[on].tolist(), j[on].tolist(), strict=True))

    def plate_header(self, i: int, j: int, frame: str = "galactic", padded: bool = True):
        """HPX WCS header of plate ``(i, j)`` (mTileHdr semantics: CRPIX moves, CD is kept).

        Parameters
        ----------
        i, j : int
            The plate.
        frame : str, optional
            HiPS frame.
        padded : bool, optional
            Header of the padded plate.

        Returns
        -------
        astropy.io.fits.Header
        """
        check_frame(frame)
        rows, cols = self.shape(padded)
        return plane_wcs_header(
            self.order, self.tile_width, frame,
            crpix_shift=self.origin(i, j, padded), naxis=(cols, rows),
        )

    def tiles(self, i: int, j: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Tiles cut from the unpadded plate.

        Parameters
        ----------
        i, j : int
            The plate.

        Returns
        -------
        tuple of numpy.ndarray
            ``(npix, row0, col0)``: ``plate[row0:row0+w, col0:col0+w]`` is standard tile
            ``npix`` (NESTED). Plates of cell (4, 4) (the face-6 copy) and off-sky plates yield
            none.
        """
        if self.is_duplicate(i, j) or not self.on_sky(i, j):
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        w = self.tile_width
        t = self.tiles_per_plate_side
        rows0, cols0 = np.meshgrid(np.arange(t) * w, np.arange(t) * w, indexing="ij")
        p1_0, p2_0 = self.origin(i, j)
        tc = (p1_0 + cols0.ravel()) // w
        tr = (p2_0 + rows0.ravel()) // w
        npix = plane_to_nested(tc, tr, 1 << self.order)
        return npix, rows0.ravel(), cols0.ravel()


def grid_at_order(base: PlateGrid, order: int) -> PlateGrid:
    """The unpadded plate grid of the pyramid at a lower order.

    The grid keeps ``base.nplate`` while plates stay at least one tile wide, then halves.

    Parameters
    ----------
    base : PlateGrid
        The deepest order's grid.
    order : int
        0 to ``base.order``.

    Returns
    -------
    PlateGrid

    Raises
    ------
    ValueError
        For an order outside ``0 .. base.order``.
    """
    if not 0 <= order <= base.order:
        raise ValueError(f"order {order} outside 0..{base.order}")
    m = (base.nplate // 5).bit_length() - 1
    return PlateGrid(order, base.tile_width, 5 * 2 ** min(m, order), 0)


def children(base: PlateGrid, order: int, i: int, j: int) -> list[tuple[int, int]]:
    """Plates at ``order + 1`` that shrink into plate ``(i, j)`` at ``order``.

    Parameters
    ----------
    base : PlateGrid
        The deepest order's grid.
    order : int
        The lower order, below ``base.order``.
    i, j : int
        The plate at ``order``.

    Returns
    -------
    list of (int, int)
        One plate (the same ``(i, j)``) while the grid is unchanged, else the 2 x 2 block
        ``(2i + a, 2j + b)``, ``b`` then ``a`` increasing.
    """
    upper = grid_at_order(base, order + 1)
    lower = grid_at_order(base, order)
    if upper.nplate == lower.nplate:
        return [(i, j)]
    return [(2 * i + a, 2 * j + b) for b in (0, 1) for a in (0, 1)]


def base_plate(base: PlateGrid, order: int, i: int, j: int) -> tuple[int, int]:
    """The deepest-order plate at the first corner (lowest ``p1, p2``) of plate ``(i, j)`` of
    ``order``."""
    f = base.nplate // grid_at_order(base, order).nplate
    return i * f, j * f


def plate_neighbours(grid: PlateGrid) -> dict[tuple[int, int, int, int], str]:
    """Pairs of plates that touch on the sky, with how they touch.

    Returns ``{(i1, j1, i2, j2): kind}`` with ``(i1, j1) < (i2, j2)``, over the plates that
    yield tiles (cell (4, 4) copies excluded; their sky is cell (0, 0)'s). A plate of a
    ``5 * 2**m`` grid is one HEALPix cell at nside ``2**m``, so the pairs are healpy's
    neighbours of those cells. A pair is classed by where its plates sit on the plane:
    ``"plane"`` when they touch there as on the sky (along an edge, or at a corner), ``"wrap"``
    when they do once one is shifted by ``(4N, 4N)`` (the +/-180 degree wrap), ``"cut"``
    otherwise (a polar cut, where the plane turns by 90 degrees, so that some pixels along
    their common edge are not neighbours on the plane).

    Parameters
    ----------
    grid : PlateGrid
        The plate grid.

    Returns
    -------
    dict
        ``{(i1, j1, i2, j2): kind}``.
    """
    import healpy as hp

    from hipsluigi.geometry.hpx import nested_to_plane

    nside, nplate = grid.plates_per_face, grid.nplate
    plates = np.array([p for p in grid.sky_plates if not grid.is_duplicate(*p)], dtype=np.int64)
    i, j = plates[:, 0], plates[:, 1]
    # healpy's order: SW, W, NW, N, NE, E, SE, S; SW, NW, NE and SE share an edge.
    around = hp.get_all_neighbours(nside, plane_to_nested(i, j, nside), nest=True)  # (8, n)
    ok = around >= 0
    k, m = nested_to_plane(np.where(ok, around, 0), nside)
    shares_edge = np.array([True, False] * 4)[:, None]

    def touching(d1, d2):
        a1, a2 = np.abs(d1), np.abs(d2)
        return np.where(shares_edge, a1 + a2 == 1, np.maximum(a1, a2) == 1)

    d1, d2 = k - i, m - j
    wrap = touching(d1 + 4 * nside, d2 + 4 * nside) | touching(d1 - 4 * nside, d2 - 4 * nside)
    kind = np.where(touching(d1, d2), 0, np.where(wrap, 1, 2))[ok]
    own = np.broadcast_to(i * nplate + j, around.shape)[ok]
    other = (k * nplate + m)[ok]
    # One key per pair, lo * nplate**2 + hi with lo, hi = i * nplate + j: sorted as (i, j) are.
    key = np.minimum(own, other) * nplate**2 + np.maximum(own, other)
    order = np.lexsort((kind, key))  # the strongest kind of each pair last
    key, kind = key[order], kind[order]
    last = np.append(key[1:] != key[:-1], True)
    lo, hi = np.divmod(key[last], nplate**2)
    names = ("plane", "wrap", "cut")
    return {(i1, j1, i2, j2): names[c] for i1, j1, i2, j2, c in zip(
        *(v.tolist() for v in (*np.divmod(lo, nplate), *np.divmod(hi, nplate), kind[last])),
        strict=True)}
