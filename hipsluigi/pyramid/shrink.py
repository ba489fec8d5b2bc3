"""Lower orders: each parent pixel is the NaN-ignoring mean of its 2 x 2 children.

In the HPX plane an aligned 2 x 2 block of pixels is exactly the four NESTED children of one
parent pixel, so shrinking a plate by 2 is the HiPS rule "parent = mean of the 4 children".
Unlike Montage's mShrink, every output row is written (mShrink leaves the last row at zero).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def shrink2(plate: np.ndarray) -> np.ndarray:
    """NaN-ignoring mean of aligned 2 x 2 blocks; NaN only where all four are NaN.

    ``plate`` has even dimensions ``(rows, cols)``; returns float32 ``(rows/2, cols/2)``.
    Works on the four strided quarter views in float32 (a sum of four values loses nothing that
    matters; float64 temporaries made this 6x slower); big-endian FITS data (a memory-mapped
    plate) is swapped quarter by quarter, never copied whole.
    """
    rows, cols = plate.shape
    if rows % 2 or cols % 2:
        raise ValueError(f"cannot shrink a plate of odd shape {plate.shape}")
    if plate.dtype.kind != "f" or plate.dtype.itemsize != 4:
        plate = np.asarray(plate, dtype=np.float32)  # float32 of either byte order is used as is
    quarters = (plate[0::2, 0::2], plate[0::2, 1::2], plate[1::2, 0::2], plate[1::2, 1::2])
    total = np.zeros(quarters[0].shape, dtype=np.float32)
    count = np.zeros(quarters[0].shape, dtype=np.float32)
    for quarter in quarters:
        finite = np.isfinite(quarter)
        total += np.where(finite, quarter, np.float32(0.0))
        count += finite
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count  # 0/0 is NaN: all four children blank


def assemble_quad(children: Mapping[tuple[int, int], np.ndarray | None], side: int) -> np.ndarray:
    """Place four child plates ``(a, b)``, a, b in {0, 1}, into one ``2*side`` square plate.

    Child ``(a, b)`` is plate ``(2i + a, 2j + b)``: ``a`` steps along columns, ``b`` along rows.
    Missing children (None or absent, e.g. outside a region) are NaN.
    """
    out = np.full((2 * side, 2 * side), np.nan, dtype=np.float32)
    for (a, b), child in children.items():
        if child is None:
            continue
        if child.shape != (side, side):
            raise ValueError(f"child plate {(a, b)} has shape {child.shape}, expected "
                             f"{(side, side)}")
        out[b * side:(b + 1) * side, a * side:(a + 1) * side] = child
    return out


def crop_padding(plate: np.ndarray, pad: int) -> np.ndarray:
    """The unpadded interior of a padded plate."""
    if pad == 0:
        return plate
    return plate[pad:-pad, pad:-pad]
