"""8-bit PNG tiles from FITS tiles (gray plus alpha, 'LA').

A FITS tile is a float32 ``(w, w)`` array, ``data[row][col]`` with row 0 the first FITS row,
the bottom of the displayed image; NaN is blank. PNG rows run top to bottom, so the HiPS
standard PNG tile is the FITS tile flipped vertically: ``png[r] = fits[w - 1 - r]``. Blank
pixels get alpha 0 (and gray 0), all others alpha 255.
"""

from __future__ import annotations

import io
from os import PathLike

import numpy as np
from PIL import Image

from hipsluigi.stretch.stretch import Stretch

# PNG is lossless, so the zlib level only trades file size for time; tiles are many and small.
COMPRESS_LEVEL = 2


def png_pixels(tile: np.ndarray, stretch: Stretch) -> np.ndarray:
    """The gray/alpha pixels of the PNG tile of a FITS tile.

    Parameters
    ----------
    tile : numpy.ndarray
        2-D FITS tile ``[row, col]``, row 0 the first FITS row (the bottom); NaN blank.
    stretch : Stretch
        The display stretch.

    Returns
    -------
    numpy.ndarray
        uint8 ``(h, w, 2)`` in PNG (top-down) row order: gray from ``stretch``, alpha 0 where
        the tile is NaN (gray 0 there) and 255 elsewhere.

    Raises
    ------
    ValueError
        If ``tile`` is not 2-d.
    """
    tile = np.asarray(tile)
    if tile.ndim != 2:
        raise ValueError(f"a tile must be 2-d, got shape {tile.shape}")
    flipped = tile[::-1]
    blank = np.isnan(flipped)
    pixels = np.empty(flipped.shape + (2,), dtype=np.uint8)
    pixels[..., 0] = stretch.gray(flipped)
    pixels[..., 1] = np.where(blank, 0, 255)
    return pixels


def encode_png(tile: np.ndarray, stretch: Stretch) -> bytes:
    """The PNG file (mode 'LA') of FITS ``tile`` under ``stretch``, as bytes (see
    :func:`png_pixels`)."""
    return png_bytes(png_pixels(tile, stretch))


def png_bytes(pixels: np.ndarray) -> bytes:
    """The PNG file of uint8 pixels ``(h, w, 2)`` (gray, alpha) or ``(h, w, 4)`` (RGBA), rows
    top-down, as bytes (zlib level :data:`COMPRESS_LEVEL`)."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", optimize=False,
                                 compress_level=COMPRESS_LEVEL)
    return buf.getvalue()


def decode_png(data_or_path: bytes | str | PathLike, mode: str = "LA") -> np.ndarray:
    """The uint8 pixels (rows top-down) of a PNG given as bytes or a path, in ``mode``
    (``LA``: ``(h, w, 2)`` gray/alpha; ``RGBA``: ``(h, w, 4)``); other modes are converted."""
    source = data_or_path
    if isinstance(source, bytes | bytearray):
        source = io.BytesIO(source)
    with Image.open(source) as img:
        if img.mode != mode:
            img = img.convert(mode)
        return np.array(img, dtype=np.uint8)
