"""``preview.jpg``: a small whole-sky picture of the map (HiPS 1.0, section 4.4.4), in the
Mollweide projection of the map's own frame, longitude rising to the left (as the sky is seen),
made from the PNG tiles of one order. Its pure pieces (PNG tile pixels to HEALPix cells, the
Mollweide projection) also draw the QA report's sky plots."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import healpy as hp
import numpy as np

from hipsluigi.metadata.blocks import block_reduce

#: Width of ``preview.jpg`` in pixels (the Mollweide ellipse fills it; height is half).
PREVIEW_WIDTH = 512
#: HEALPix resolution the preview samples: about two cells a picture pixel along the equator.
PREVIEW_NSIDE = 256


def preview_block(tile_width: int, order: int, max_nside: int | None = PREVIEW_NSIDE) -> int:
    """Side, in tile pixels, of the blocks :func:`preview_map` averages tiles of ``order``
    over: as many as bring them to at most ``max_nside`` (None: 1)."""
    return 1 if max_nside is None else max(1, (tile_width << order) // max_nside)


def preview_cells(tiles: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """``(count, total)`` of each ``block x block`` block of a PNG tile, or of each tile of a
    stack ``(n, w, w, 2)``: uint32 ``(..., w / block, w / block)``, the number of opaque
    pixels (alpha > 0) and the sum of their gray levels (exact integers)."""
    seen = tiles[..., 1] > 0
    count = block_reduce(seen.view(np.uint8), block, np.add, np.uint32)
    total = block_reduce(tiles[..., 0] * seen, block, np.add, np.uint32)
    return count, total


def preview_map_of_cells(npix: Sequence[int], count: np.ndarray, total: np.ndarray,
                         order: int) -> tuple[np.ndarray, int]:
    """The NESTED map of :func:`preview_map` from the tiles' :func:`preview_cells`
    (``count``, ``total``: ``(n, side, side)``, tile ``npix[k]`` in row ``k``)."""
    if not len(npix):
        return np.full(12, np.nan), 1
    side = count.shape[-1]  # cells a tile side, at the map's resolution
    nside = side << order
    values = np.full(12 * nside * nside, np.nan)
    ix, iy = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    for n, c, t in zip(npix, count, total, strict=True):
        tx, ty, face = hp.pix2xyf(1 << order, int(n), nest=True)
        cells = hp.xyf2pix(nside, tx * side + ix, ty * side + iy, face, nest=True)
        values[cells] = np.where(c > 0, t / np.maximum(c, 1), np.nan)
    return values, nside


def preview_map(png_tiles: Mapping[int, np.ndarray], order: int,
                max_nside: int | None = PREVIEW_NSIDE) -> tuple[np.ndarray, int]:
    """A NESTED HEALPix map of gray levels from PNG tiles, block-averaged to at most
    ``max_nside`` (None: one cell a tile pixel).

    Parameters
    ----------
    png_tiles : mapping of int to numpy.ndarray
        Tile index (NESTED, ``order``) -> ``(w, w, 2)`` uint8 gray and alpha, rows top-down
        (row ``r``, column ``c`` holds sub-pixel ``ix = r, iy = c``: the FITS tile's
        ``ix = w-1-row`` flipped).
    order : int
        HiPS order of the tiles.
    max_nside : int or None, optional
        The resolution to average down to, at most.

    Returns
    -------
    tuple
        ``(map, nside)``: float gray levels, NaN where no tile or alpha is 0.
    """
    if not png_tiles:
        return np.full(12, np.nan), 1
    width = next(iter(png_tiles.values())).shape[0]
    block = preview_block(width, order, max_nside)
    cells = [preview_cells(tile, block) for tile in png_tiles.values()]
    return preview_map_of_cells(list(png_tiles), np.stack([c for c, _ in cells]),
                                np.stack([t for _, t in cells]), order)


def mollweide_projection(values: np.ndarray, xsize: int) -> tuple[np.ndarray, list]:
    """A NESTED map in healpy's Mollweide projection (longitude 0 at the centre, growing to
    the left): ``(picture, extent)``, ``(xsize // 2, xsize)`` with rows rising northwards
    (``origin="lower"``), NaN outside the sky and where the map is NaN; ``extent`` as
    matplotlib's ``imshow`` takes it."""
    nside = hp.npix2nside(values.size)
    proj = hp.projector.MollweideProj(xsize=xsize)
    image = proj.projmap(values, lambda x, y, z: hp.vec2pix(nside, x, y, z, nest=True))
    return np.where(np.isinf(image), np.nan, image), proj.get_extent()


def mollweide_image(values: np.ndarray, width: int = PREVIEW_WIDTH) -> np.ndarray:
    """The Mollweide picture of a NESTED gray-level map: ``(width // 2, width)`` uint8, rows
    top-down (north up), black outside the sky and where the map is blank."""
    image, _ = mollweide_projection(values, width)
    image = np.where(np.isfinite(image), image, 0.0)
    return np.clip(np.rint(image[::-1]), 0, 255).astype(np.uint8)  # healpy's rows rise


def preview_jpeg(values: np.ndarray) -> bytes:
    """``preview.jpg`` of a NESTED map of gray levels (:func:`preview_map`)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(mollweide_image(values), mode="L").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()
