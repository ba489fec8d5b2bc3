"""Reductions of the aligned square blocks of an image, for the previews (Allsky files,
``preview.jpg``, the QA report's sky plots).

The float block mean of the FITS tiles, whose summation order fixes its bits, is
:func:`hipsluigi.pyramid.shrink.block_nanmean`; here are the reductions whose order cannot
matter (integer sums, maxima) of the 8-bit PNG tiles.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike


def block_reduce(x: np.ndarray, f: int, ufunc: np.ufunc, dtype: DTypeLike
                 ) -> np.ndarray:
    """``ufunc`` (``np.add``, ``np.maximum``) over each aligned ``f x f`` block of a square
    2-d array, or of each of a stack ``(..., w, w)`` of them, in ``dtype``: ``(..., w / f,
    w / f)``.

    First over the ``f`` rows of each block row (whole contiguous rows at a time), then over
    the ``f`` strided column views: several times faster than a reduction over axes (1, 3)
    of a 4-d view. The order of the operations is not that of such a reduction, so use it
    where it cannot matter (integers, maxima)."""
    w = x.shape[-1]
    rows = ufunc.reduce(x.reshape(*x.shape[:-2], w // f, f, w), axis=-2, dtype=dtype)
    out = rows[..., 0::f].copy()
    for k in range(1, f):
        ufunc(out, rows[..., k::f], out=out)
    return out
