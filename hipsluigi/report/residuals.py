"""How well the background model removed the plates' differences, overlap by overlap.

Each overlap fit (``fitcombo.tbl``, :class:`~hipsluigi.background.overlap.DifferenceFit`) is a
plane ``D = a x + b y + c`` fitted to ``plus - minus`` over the overlap, in the plus plate's
global plane pixels ``x = p1 - crpix1``, ``y = p2 - crpix2``. The model subtracts a plane
``Q_k`` from each plate; after it the overlap's difference is
``D(x) - (Q_plus(x) - Q_minus(T x))``, with ``T`` the plus-to-minus map
``x_minus = L x + (L crpix + t - crpix)``. Both are evaluated at the overlap's centroid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def overlap_residuals(fits: Sequence, planes: Mapping[int, tuple[float, float, float]]
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The plates' difference at each overlap's centroid, before and after the correction.

    Parameters
    ----------
    fits : sequence of DifferenceFit
        Objects with the ``DifferenceFit`` attributes ``plus, minus, a, b, c, xcenter,
        ycenter, crpix1, crpix2, l11, l12, l21, l22, t1, t2``.
    planes : mapping of int to (float, float, float)
        Plate id -> correction ``(a, b, c)``, the plane ``a x + b y + c`` subtracted
        (``corrections.tbl``). A plate without one is taken as uncorrected.

    Returns
    -------
    before, after : numpy.ndarray
        float64 ``(len(fits),)``, data units: ``plus - minus`` at the centroid as fitted, and
        as left by the correction planes.
    """
    n = len(fits)
    before = np.empty(n)
    after = np.empty(n)
    for k, f in enumerate(fits):
        x = np.array([f.xcenter, f.ycenter], dtype=float)
        crpix = np.array([f.crpix1, f.crpix2], dtype=float)
        lin = np.array([[f.l11, f.l12], [f.l21, f.l22]], dtype=float)
        x_minus = lin @ x + lin @ crpix + np.array([f.t1, f.t2], dtype=float) - crpix
        before[k] = f.a * x[0] + f.b * x[1] + f.c
        after[k] = before[k] - (_plane(planes.get(f.plus), x) - _plane(planes.get(f.minus),
                                                                          x_minus))
    return before, after


def _plane(plane: tuple[float, float, float] | None, x: np.ndarray) -> float:
    if plane is None:
        return 0.0
    a, b, c = plane
    return a * x[0] + b * x[1] + c
