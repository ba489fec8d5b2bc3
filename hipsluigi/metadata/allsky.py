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
allsky_width``), NaN only where the whole block is blank: the kernel that makes the lower orders
(:func:`hipsluigi.pyramid.shrink.block_nanmean`), here summing in float64. PNG gray (each of
red, green and blue for RGBA tiles) is the alpha-weighted mean (the mean over opaque pixels for
the 0/255 alpha of our tiles) and alpha is the block maximum (opaque if any child is opaque),
so a PNG preview pixel is blank exactly where the FITS one is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hipsluigi.metadata.blocks import block_reduce
from hipsluigi.pyramid.shrink import block_nanmean
from hipsluigi.storage.atomic import write_bytes_atomic, write_fits_atomic

#: Allsky files exist for orders 0 to 3 only (HiPS 2.0 draft; Hipsgen writes them up to 3).
ALLSKY_MAX_ORDER = 3
ALLSKY_WIDTH = 64


def allsky_layout(order: int) -> tuple[int, int]:
    """The tile grid of the Allsky file of ``order``.

    Parameters
    ----------
    order : int
        HiPS order, 0 to 3.

    Returns
    -------
    tuple of int
        ``(ncols, nrows)``: ``floor(sqrt(ntiles))`` tiles a row, as many rows as needed.

    Raises
    ------
    ValueError
        If ``order`` is outside 0..3.
    """
    if not 0 <= order <= ALLSKY_MAX_ORDER:
        raise ValueError(f"Allsky files exist for orders 0..{ALLSKY_MAX_ORDER}, got {order}")
    ntiles = 12 * 4**order
    ncols = math.isqrt(ntiles)
    return ncols, -(-ntiles // ncols)


def allsky_tile_width(tile_width: int, allsky_width: int = ALLSKY_WIDTH) -> int:
    """Width of one tile in the Allsky, in pixels.

    Parameters
    ----------
    tile_width : int
        Width of the HiPS tiles (a power of 2).
    allsky_width : int, optional
        Wanted width in the Allsky (a power of 2).

    Returns
    -------
    int
        ``allsky_width``, or ``tile_width`` if that is smaller.

    Raises
    ------
    ValueError
        If either width is not a power of 2.
    """
    for name, value in (("tile_width", tile_width), ("allsky_width", allsky_width)):
        if value < 1 or value & (value - 1):
            raise ValueError(f"{name} must be a power of 2, got {value}")
    return min(tile_width, allsky_width)


def reduce_fits_tile(tile: np.ndarray, width: int) -> np.ndarray:
    """A square float tile, or a stack of them, reduced to ``width`` by NaN-ignoring block
    means (in float64).

    Parameters
    ----------
    tile : numpy.ndarray
        Square FITS tile ``[row, col]``, or a stack ``[tile, row, col]`` of them (each reduced
        to the same bits as alone, with less overhead).
    width : int
        Output width in pixels, a divisor of the tile width.

    Returns
    -------
    numpy.ndarray
        float32 ``(..., width, width)``; blank blocks are the positive quiet NaN that also
        fills the missing tiles (``0 / 0``, which :func:`block_nanmean` leaves there, has the
        sign bit set on x86).
    """
    mean = block_nanmean(tile, tile.shape[-1] // width, np.float64)
    return np.where(np.isnan(mean), np.nan, mean).astype(np.float32)


def reduce_png_tile(tile: np.ndarray, width: int) -> np.ndarray:
    """A PNG tile, or a stack of them, reduced to ``width``: alpha-weighted block means of the
    colour channels and block maxima of alpha.

    Parameters
    ----------
    tile : numpy.ndarray
        uint8 ``(w, w, 2)`` (gray, alpha) or ``(w, w, 4)`` (red, green, blue, alpha) PNG
        tile, rows top-down; alpha is the last channel. Or a stack ``(n, w, w, C)`` of them.
    width : int
        Output width in pixels, a divisor of ``w``.

    Returns
    -------
    numpy.ndarray
        uint8 ``(..., width, width, C)``, ``C`` as the input: each colour channel is the
        alpha-weighted block mean (rounded, 0 where the block is transparent), alpha the block
        maximum.
    """
    tile = np.asarray(tile)
    w, nchan = tile.shape[-2], tile.shape[-1]
    f = w // width
    alpha = tile[..., nchan - 1]
    # Exact integer sums (255 * 255 * f * f fits uint32 up to f = 256), divided in float64.
    total = np.uint32 if f <= 256 else np.uint64
    weight = block_reduce(alpha, f, np.add, total)
    out = np.empty((*tile.shape[:-3], width, width, nchan), dtype=np.uint8)
    for k in range(nchan - 1):
        weighted = block_reduce(tile[..., k].astype(np.uint16) * alpha, f, np.add, total)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(weight > 0, weighted / weight, 0.0)
        out[..., k] = np.clip(np.rint(mean), 0, 255)
    out[..., nchan - 1] = block_reduce(alpha, f, np.maximum, np.uint8)
    return out


def _check_tile(npix: int, tile: np.ndarray, ntiles: int, shape: tuple[int, ...]) -> None:
    if not 0 <= npix < ntiles:
        raise ValueError(f"tile Npix {npix} outside 0..{ntiles - 1}")
    if tile.shape != shape:
        raise ValueError(f"tile {npix} has shape {tile.shape}, expected {shape}")


#: Tiles reduced together: a stack shares the reductions' per-pass overhead (64 passes of
#: numpy calls on 64 x 64 arrays for 8 x 8 blocks) and still fits the processor's cache
#: (8 tiles of 512 pixels: 16 MB in float64; 32 were slower than one at a time).
_STACK = 8


def _batches(ntiles: int) -> Iterator[slice]:
    """Slices of at most :data:`_STACK` of ``ntiles`` tiles, reduced as one stack."""
    return (slice(k, k + _STACK) for k in range(0, ntiles, _STACK))


def allsky_png_array(
    tiles: Mapping[int, np.ndarray], order: int, tile_width: int,
    allsky_width: int = ALLSKY_WIDTH,
) -> np.ndarray:
    """The ``Allsky.png`` image of ``order``.

    Parameters
    ----------
    tiles : mapping of int to numpy.ndarray
        Npix (NESTED) -> PNG-orientation tile, uint8 ``(tile_width, tile_width, C)``: every
        tile LA (``C = 2``) or every tile RGBA (``C = 4``). Missing tiles stay transparent
        (alpha 0).
    order : int
        HiPS order, 0 to 3.
    tile_width : int
        Width of the tiles, in pixels.
    allsky_width : int, optional
        Width of a tile in the Allsky (see :func:`allsky_tile_width`).

    Returns
    -------
    numpy.ndarray
        uint8 ``(nrows*aw, ncols*aw, C)`` (gray, alpha or red, green, blue, alpha; ``C = 2``
        without tiles), row 0 on top; tile Npix in grid row ``Npix // ncols`` from the top,
        column ``Npix % ncols``.

    Raises
    ------
    ValueError
        For an Npix outside the order, a tile of the wrong shape (LA and RGBA mixed
        included) or a non-uint8 tile.
    """
    ncols, nrows = allsky_layout(order)
    aw = allsky_tile_width(tile_width, allsky_width)
    first = next(iter(tiles.values()), None)
    nchan = np.shape(first)[2] if first is not None and np.ndim(first) == 3 else 2
    if nchan not in (2, 4):
        nchan = 2  # reported as a wrong shape below
    out = np.zeros((nrows * aw, ncols * aw, nchan), dtype=np.uint8)
    for npix, tile in tiles.items():
        tile = np.asarray(tile)
        _check_tile(npix, tile, 12 * 4**order, (tile_width, tile_width, nchan))
        if tile.dtype != np.uint8:
            raise ValueError(f"PNG tile {npix} must be uint8, got {tile.dtype}")
    npix, arrays = list(tiles), [np.asarray(tile) for tile in tiles.values()]
    for part in _batches(len(npix)):
        _place_png(out, order, npix[part], reduce_png_tile(np.stack(arrays[part]), aw))
    return out


def _place_png(out: np.ndarray, order: int, npix: Sequence[int], small: np.ndarray) -> None:
    ncols, _ = allsky_layout(order)
    aw = small.shape[1] if len(small) else 0
    for n, tile in zip(npix, small, strict=True):
        r, c = divmod(int(n), ncols)
        out[r * aw:(r + 1) * aw, c * aw:(c + 1) * aw] = tile


def _place_fits(out: np.ndarray, order: int, npix: Sequence[int], small: np.ndarray) -> None:
    ncols, nrows = allsky_layout(order)
    aw = small.shape[1] if len(small) else 0
    for n, tile in zip(npix, small, strict=True):
        r, c = divmod(int(n), ncols)
        row0 = (nrows - 1 - r) * aw
        out[row0:row0 + aw, c * aw:(c + 1) * aw] = tile


def allsky_fits_array(
    tiles: Mapping[int, np.ndarray], order: int, tile_width: int,
    allsky_width: int = ALLSKY_WIDTH,
) -> np.ndarray:
    """The ``Allsky.fits`` data of ``order``.

    Parameters
    ----------
    tiles : mapping of int to numpy.ndarray
        Npix (NESTED) -> FITS-orientation float tile ``(tile_width, tile_width)``, NaN blank.
    order : int
        HiPS order, 0 to 3.
    tile_width : int
        Width of the tiles, in pixels.
    allsky_width : int, optional
        Width of a tile in the Allsky (see :func:`allsky_tile_width`).

    Returns
    -------
    numpy.ndarray
        float32 ``(nrows*aw, ncols*aw)`` in FITS row order, NaN where blank: the vertical flip
        of the PNG-layout mosaic (see the module docstring). Tile Npix keeps its FITS
        orientation and fills grid row ``nrows - 1 - Npix // ncols`` of the array.

    Raises
    ------
    ValueError
        For an Npix outside the order or a tile of the wrong shape.
    """
    ncols, nrows = allsky_layout(order)
    aw = allsky_tile_width(tile_width, allsky_width)
    out = np.full((nrows * aw, ncols * aw), np.nan, dtype=np.float32)
    for npix, tile in tiles.items():
        _check_tile(npix, np.asarray(tile), 12 * 4**order, (tile_width, tile_width))
    npix, arrays = list(tiles), [np.asarray(tile) for tile in tiles.values()]
    for part in _batches(len(npix)):
        _place_fits(out, order, npix[part], reduce_fits_tile(np.stack(arrays[part]), aw))
    return out


def write_allsky(
    hips_dir: str | Path,
    order: int,
    fits_tiles: Mapping[int, np.ndarray] | None,
    png_tiles: Mapping[int, np.ndarray] | None,
    tile_width: int,
    allsky_width: int = ALLSKY_WIDTH,
) -> list[Path]:
    """Write ``Norder{order}/Allsky.fits`` (BITPIX -32, NaN blanks) and/or ``Allsky.png`` (LA,
    or RGBA for RGBA tiles).

    Each file is written atomically (a temporary file, checked to hold every byte, renamed
    into place).

    Parameters
    ----------
    hips_dir : str or pathlib.Path
        The HiPS folder.
    order : int
        HiPS order, 0 to 3.
    fits_tiles, png_tiles : mapping of int to numpy.ndarray or None
        The tiles, as for :func:`allsky_fits_array` and :func:`allsky_png_array`. None or an
        empty mapping skips that format (Hipsgen writes no Allsky without tiles).
    tile_width : int
        Width of the tiles, in pixels.
    allsky_width : int, optional
        Width of a tile in the Allsky (see :func:`allsky_tile_width`).

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    return write_allsky_arrays(
        hips_dir, order,
        allsky_fits_array(fits_tiles, order, tile_width, allsky_width) if fits_tiles else None,
        allsky_png_array(png_tiles, order, tile_width, allsky_width) if png_tiles else None)


def write_allsky_arrays(hips_dir: str | Path, order: int, fits_data: np.ndarray | None,
                        png_pixels: np.ndarray | None, cards: Sequence[tuple] = ()
                        ) -> list[Path]:
    """Write ``Norder{order}/Allsky.fits`` (``fits_data``, float32 FITS row order, with the
    header ``cards``) and ``Allsky.png`` (``png_pixels``, uint8 rows top-down), each unless
    None, atomically. Returns the files written."""
    from astropy.io import fits

    from hipsluigi.tiles.png import png_bytes

    folder = Path(hips_dir) / f"Norder{order}"
    written = []
    if fits_data is not None:
        path = folder / "Allsky.fits"
        hdu = fits.PrimaryHDU(fits_data)
        for card in cards:
            hdu.header.append(fits.Card(*card))
        write_fits_atomic(path, hdu)
        written.append(path)
    if png_pixels is not None:
        path = folder / "Allsky.png"
        # encoded first, so that the file's size is checked; zlib level 6 (Pillow's default
        # before): one file every viewer fetches first, so size matters more than time
        write_bytes_atomic(path, png_bytes(png_pixels, level=6))
        written.append(path)
    return written


@dataclass
class AllskyPart:
    """What the ``Allsky`` files (and ``preview.jpg``) need of some tiles of one order: each
    tile reduced as for the Allsky, taken from the tiles when they are made, so that the
    metadata need not read them back.

    Attributes
    ----------
    npix : numpy.ndarray
        int64 ``(n,)``: the tiles (NESTED).
    fits : numpy.ndarray
        float32 ``(n, aw, aw)``: :func:`reduce_fits_tile` of each FITS tile.
    png : numpy.ndarray
        uint8 ``(n, aw, aw, C)``: :func:`reduce_png_tile` of each PNG tile.
    preview_count, preview_total : numpy.ndarray or None
        uint32 ``(n, s, s)``: :func:`hipsluigi.metadata.preview.preview_cells` of each PNG
        tile, for the order ``preview.jpg`` is drawn from; None for the other orders.
    """

    npix: np.ndarray
    fits: np.ndarray
    png: np.ndarray
    preview_count: np.ndarray | None = None
    preview_total: np.ndarray | None = None


def allsky_part(fits_tiles: Sequence[np.ndarray], png_tiles: Sequence[np.ndarray],
                npix: Sequence[int], tile_width: int, preview_block: int | None = None,
                allsky_width: int = ALLSKY_WIDTH) -> AllskyPart:
    """The :class:`AllskyPart` of tiles ``npix``.

    Parameters
    ----------
    fits_tiles, png_tiles : sequence of numpy.ndarray
        Each tile as :func:`allsky_fits_array` and :func:`allsky_png_array` take them, in the
        order of ``npix``; reduced :data:`_STACK` at a time.
    npix : sequence of int
        The tiles (NESTED).
    tile_width : int
        Width of the tiles, pixels.
    preview_block : int or None, optional
        The block side of ``preview.jpg``'s cells
        (:func:`hipsluigi.metadata.preview.preview_block`), for the order it is drawn from;
        None for another order.
    allsky_width : int, optional
        Width of a tile in the Allsky.
    """
    from hipsluigi.metadata.preview import preview_cells

    aw = allsky_tile_width(tile_width, allsky_width)
    nchan = png_tiles[0].shape[-1] if len(png_tiles) else 2
    fits_small = np.empty((len(npix), aw, aw), dtype=np.float32)
    png_small = np.empty((len(npix), aw, aw, nchan), dtype=np.uint8)
    side = tile_width // preview_block if preview_block else 0
    count = np.empty((len(npix), side, side), dtype=np.uint32)
    total = np.empty_like(count)
    for part in _batches(len(npix)):
        fits_small[part] = reduce_fits_tile(np.stack(fits_tiles[part]), aw)
        png_stack = np.stack(png_tiles[part])
        png_small[part] = reduce_png_tile(png_stack, aw)
        if preview_block:
            count[part], total[part] = preview_cells(png_stack, preview_block)
    return AllskyPart(np.asarray(npix, dtype=np.int64), fits_small, png_small,
                      count if preview_block else None, total if preview_block else None)


def part_preview_block(order: int, deepest: int, tile_width: int) -> int | None:
    """The ``preview_block`` of :func:`allsky_part` for tiles of ``order`` in a map whose
    deepest order is ``deepest``: ``preview.jpg`` is drawn from order ``min(3, deepest)``;
    None for the other orders."""
    from hipsluigi.metadata.preview import preview_block

    return (preview_block(tile_width, order) if order == min(ALLSKY_MAX_ORDER, deepest)
            else None)


def merge_allsky_parts(parts: Sequence[AllskyPart]) -> AllskyPart:
    """One :class:`AllskyPart` of the tiles of several (of one order)."""
    def joined(name: str) -> np.ndarray | None:
        arrays = [getattr(p, name) for p in parts]
        return None if any(a is None for a in arrays) else np.concatenate(arrays)

    return AllskyPart(*(joined(name) for name in ("npix", "fits", "png", "preview_count",
                                                  "preview_total")))


def allsky_arrays(part: AllskyPart, order: int) -> tuple[np.ndarray, np.ndarray]:
    """``(Allsky.fits data, Allsky.png pixels)`` of ``order`` from its tiles' part: the
    arrays :func:`allsky_fits_array` and :func:`allsky_png_array` give for those tiles."""
    ncols, nrows = allsky_layout(order)
    aw = part.fits.shape[1]
    ntiles = 12 * 4**order
    bad = part.npix[(part.npix < 0) | (part.npix >= ntiles)]
    if bad.size:
        raise ValueError(f"tile Npix {int(bad[0])} outside 0..{ntiles - 1}")
    fits_out = np.full((nrows * aw, ncols * aw), np.nan, dtype=np.float32)
    _place_fits(fits_out, order, part.npix, part.fits)
    png_out = np.zeros((nrows * aw, ncols * aw, part.png.shape[-1]), dtype=np.uint8)
    _place_png(png_out, order, part.npix, part.png)
    return fits_out, png_out
