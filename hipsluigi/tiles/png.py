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

# Named, not reached through the package: imagecodecs loads a codec's extension module on
# first use, which every forked task process would then do again.
from imagecodecs import PNG, png_decode, png_encode
from PIL import Image

from hipsluigi.stretch.stretch import Stretch

# PNG is lossless, so the zlib level only trades file size for time; tiles are many and small.
# Measured on WMAP tiles (CHANGELOG): libpng with the Up filter only at level 2 encodes a 512-px
# LA tile about 2.7x faster than Pillow's level 2, which tries every filter on every row, for
# a file 5% larger.
COMPRESS_LEVEL = 2

#: Channels of the uint8 pixels of each PNG mode hipsluigi writes.
_CHANNELS = {"LA": 2, "RGBA": 4}


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
    pixels = np.empty(flipped.shape + (2,), dtype=np.uint8)
    pixels[..., 0] = stretch.gray(flipped)
    # 255 * (not NaN): no int64 temporary as np.where(blank, 0, 255) would make
    np.multiply(~np.isnan(flipped), 255, out=pixels[..., 1], dtype=np.uint8)
    return pixels


def encode_png(tile: np.ndarray, stretch: Stretch) -> bytes:
    """The PNG file (mode 'LA') of FITS ``tile`` under ``stretch``, as bytes (see
    :func:`png_pixels`)."""
    return png_bytes(png_pixels(tile, stretch))


def png_bytes(pixels: np.ndarray, level: int = COMPRESS_LEVEL) -> bytes:
    """The PNG file of uint8 pixels ``(h, w, 2)`` (gray, alpha) or ``(h, w, 4)`` (RGBA), rows
    top-down, as bytes: libpng (``imagecodecs``), every row filtered "Up" (the difference
    from the row above, which zeroes a constant alpha and smooth sky), zlib at ``level``
    (default :data:`COMPRESS_LEVEL`). Any PNG reader gives back ``pixels``.

    Raises
    ------
    ValueError
        If ``pixels`` is not uint8 ``(h, w, 2)`` or ``(h, w, 4)`` with ``h, w >= 1``.
    """
    pixels = np.asarray(pixels)
    if (pixels.dtype != np.uint8 or pixels.ndim != 3
            or pixels.shape[2] not in _CHANNELS.values() or 0 in pixels.shape):
        raise ValueError("PNG pixels must be uint8 (h, w, 2) or (h, w, 4), got "
                         f"{pixels.dtype} {pixels.shape}")
    return bytes(png_encode(np.ascontiguousarray(pixels), level=level, filter=PNG.FILTER.UP))


def decode_png(data_or_path: bytes | str | PathLike, mode: str = "LA") -> np.ndarray:
    """The uint8 pixels (rows top-down) of a PNG given as bytes or a path, in ``mode``
    (``LA``: ``(h, w, 2)`` gray/alpha; ``RGBA``: ``(h, w, 4)``); other modes are converted.

    Decoded by libpng (``imagecodecs``) when the file is 8-bit and already in ``mode``; any
    other file, or one libpng refuses, is left to Pillow, which converts it or raises its
    usual errors for a damaged file.
    """
    source = data_or_path
    if not isinstance(source, bytes | bytearray):
        with open(source, "rb") as f:
            source = f.read()
    try:
        pixels = png_decode(bytes(source))
    except Exception:  # noqa: BLE001  (any refusal: Pillow says why, or converts)
        pixels = None
    if (pixels is not None and pixels.dtype == np.uint8 and pixels.ndim == 3
            and pixels.shape[2] == _CHANNELS.get(mode)):
        return pixels
    with Image.open(io.BytesIO(source)) as img:
        if img.mode != mode:
            img = img.convert(mode)
        return np.array(img, dtype=np.uint8)
