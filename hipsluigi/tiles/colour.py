"""RGB(A) colour tiles from three maps' gray/alpha PNG tiles, and the groups they are made in.

Each input is a map's own PNG tile (:func:`hipsluigi.tiles.png.png_pixels`): uint8
``(w, w, 2)`` gray and alpha, rows top-down (PNG orientation), gray already through that
map's own stretch. The colour tile keeps that orientation: pixel ``[r, c]`` of the colour
tile is pixel ``[r, c]`` of each input. Red, green and blue are the gray levels of the red,
green and blue maps where that map has data (alpha > 0) and 0 where it is blank or has no
tile; alpha is 255 where at least one map has data, 0 elsewhere, so that a pixel one band
misses shows the other two rather than a hole.
"""

from __future__ import annotations

from os import PathLike

import numpy as np

from hipsluigi.tiles.png import decode_png, png_bytes

#: Tiles of order ``k`` are made in groups, one per cell of order ``group_order(k)``: at most
#: this order (192 groups), so that a deep order is many tasks...
MAX_GROUP_ORDER = 2
#: ... and at least this many orders above ``k`` (64 tiles a group), so that shallow orders
#: are not hundreds of one-tile tasks.
GROUP_DEPTH = 3


def compose_rgba(red: np.ndarray | None, green: np.ndarray | None,
                 blue: np.ndarray | None) -> np.ndarray:
    """The RGBA pixels of a colour tile from three gray/alpha tiles.

    Parameters
    ----------
    red, green, blue : numpy.ndarray or None
        uint8 ``(h, w, 2)`` gray/alpha tiles of the same shape, rows top-down; None for a map
        without this tile (blank everywhere). At least one must be given.

    Returns
    -------
    numpy.ndarray
        uint8 ``(h, w, 4)``, same orientation as the inputs: channel ``k`` is map ``k``'s gray
        where its alpha is > 0, else 0; alpha is 255 where any map's alpha is > 0, else 0.

    Raises
    ------
    ValueError
        If no tile is given, or for a tile that is not uint8 ``(h, w, 2)`` or of another shape
        than the others.
    """
    given = [t for t in (red, green, blue) if t is not None]
    if not given:
        raise ValueError("a colour tile needs at least one of the red, green and blue tiles")
    shape = np.shape(given[0])
    out = np.zeros(shape[:2] + (4,), dtype=np.uint8)
    for k, (name, tile) in enumerate((("red", red), ("green", green), ("blue", blue))):
        if tile is None:
            continue
        tile = np.asarray(tile)
        if tile.dtype != np.uint8 or tile.ndim != 3 or tile.shape[2] != 2:
            raise ValueError(f"the {name} tile must be uint8 (h, w, 2) gray/alpha, got "
                             f"{tile.dtype} {tile.shape}")
        if tile.shape != shape:
            raise ValueError(f"the {name} tile has shape {tile.shape}, the others {shape}")
        has_data = tile[..., 1] > 0
        out[..., k] = np.where(has_data, tile[..., 0], 0)
        out[..., 3] |= np.where(has_data, 255, 0).astype(np.uint8)
    return out


def encode_rgba_png(pixels: np.ndarray) -> bytes:
    """The PNG file (mode 'RGBA') of uint8 ``(h, w, 4)`` pixels, rows top-down, as bytes.

    Raises
    ------
    ValueError
        For an array that is not uint8 ``(h, w, 4)``.
    """
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 4:
        raise ValueError(f"RGBA pixels must be uint8 (h, w, 4), got {pixels.dtype} "
                         f"{pixels.shape}")
    return png_bytes(pixels)


def decode_rgba_png(data_or_path: bytes | str | PathLike) -> np.ndarray:
    """The uint8 ``(h, w, 4)`` RGBA pixels (rows top-down) of a PNG given as bytes or a path;
    other modes are converted to RGBA."""
    return decode_png(data_or_path, mode="RGBA")


def group_order(order: int) -> int:
    """The order of the cells that group the colour tiles of ``order``:
    ``clip(order - GROUP_DEPTH, 0, MAX_GROUP_ORDER)``.

    Raises
    ------
    ValueError
        For a negative order.
    """
    if order < 0:
        raise ValueError(f"order must be >= 0, got {order}")
    return min(MAX_GROUP_ORDER, max(0, order - GROUP_DEPTH))


def group_cells(order: int) -> range:
    """The cells (NESTED indices at :func:`group_order`) whose groups make every tile of
    ``order``."""
    return range(12 * 4 ** group_order(order))


def group_tiles(order: int, cell: int) -> range:
    """The tiles of ``order`` (NESTED indices) inside ``cell`` of :func:`group_order`: the
    ``4**(order - g)`` consecutive indices of its descendants.

    Raises
    ------
    ValueError
        For a cell outside its order.
    """
    g = group_order(order)
    if not 0 <= cell < 12 * 4**g:
        raise ValueError(f"cell {cell} outside 0..{12 * 4**g - 1} (order {g})")
    n = 4 ** (order - g)
    return range(cell * n, (cell + 1) * n)

