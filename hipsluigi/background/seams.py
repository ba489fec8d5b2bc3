"""Seams: what the plate planes leave along plate edges, removed by a smooth field per plate.

A plane (or level) per plate cannot follow a mismatch that changes along a 50-degree edge, and
such a step is what a viewer sees. After the global model, each overlap's remaining mismatch
``r`` is known along both plates' edges (binned, :func:`~hipsluigi.background.overlap.
edge_profile`); each plate takes half: the plus plate's field is ``+r/2`` on its edge and the
minus plate's ``-r/2`` on its own, so both meet at the common value. :func:`coons_patch` fills
the plate from its four edge profiles (bilinear blending, exact on the edges, smooth inside);
the field is subtracted together with the plane. Edges without a neighbour get zero.

A plate shrunk by 2 before its correction (:func:`hipsluigi.pyramid.shrink.
shrink2_with_members`, written with the mosaic) is corrected by :func:`block_mean_correction`:
the mean of the same field over the pixels each parent pixel averages.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hipsluigi.background.overlap import EDGE_BINS


def _plane(q: tuple[float, float, float], p1, p2, crpix: float):
    a, b, c = q
    return a * (p1 - crpix) + b * (p2 - crpix) + c


def edge_fields(diffs: Sequence, planes: dict[int, tuple[float, float, float]],
                crpix: float) -> dict[int, np.ndarray]:
    """The edge corrections of every plate: each takes half of what the planes leave.

    Parameters
    ----------
    diffs : sequence
        :class:`~hipsluigi.background.overlap.DifferenceFit`-like records: ``plus``,
        ``minus``, the ``plus_profile``/``minus_profile`` rows ``[edge, bin, median diff, p1,
        p2]`` and the plus-to-minus map ``l11 l12 l21 l22 t1 t2``.
    planes : dict of int to (float, float, float)
        The background model's planes ``(a, b, c)`` (see :func:`correct_plate`).
    crpix : float
        The all-sky CRPIX of the planes (1-based).

    Returns
    -------
    dict of int to numpy.ndarray
        Plate id -> ``(4, EDGE_BINS)`` corrections, data units (edges numbered as in
        :func:`~hipsluigi.background.overlap.edge_of`), NaN where no overlap.
    """
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, np.ndarray] = {}

    def add(pid, edge, k, value):
        sums.setdefault(pid, np.zeros((4, EDGE_BINS)))[edge, k] += value
        counts.setdefault(pid, np.zeros((4, EDGE_BINS)))[edge, k] += 1

    for d in diffs:
        if d.plus not in planes or d.minus not in planes:
            continue
        lin = np.array([[d.l11, d.l12], [d.l21, d.l22]])
        shift = np.array([d.t1, d.t2])
        inv = np.linalg.inv(lin)
        for edge, k, z, p1, p2 in d.plus_profile or ():
            m1, m2 = lin @ np.array([p1, p2]) + shift
            r = z - (_plane(planes[d.plus], p1, p2, crpix)
                     - _plane(planes[d.minus], m1, m2, crpix))
            add(d.plus, int(edge), int(k), r / 2)
        for edge, k, z, m1, m2 in d.minus_profile or ():
            p1, p2 = inv @ (np.array([m1, m2]) - shift)
            r = z - (_plane(planes[d.plus], p1, p2, crpix)
                     - _plane(planes[d.minus], m1, m2, crpix))
            add(d.minus, int(edge), int(k), -r / 2)
    with np.errstate(invalid="ignore"):
        return {pid: sums[pid] / np.where(counts[pid] > 0, counts[pid], np.nan)
                for pid in sums}


def edge_curve(values: np.ndarray, side: int, smooth: int = 3) -> np.ndarray:
    """The per-pixel profile along one edge from its binned values.

    Parameters
    ----------
    values : numpy.ndarray
        The edge's bins (NaN where no data), evenly spread along it.
    side : int
        Pixels along the edge.
    smooth : int, optional
        A running mean over this many bins damps the bins' noise (each bin is a median of a
        few hundred differences); the mismatch itself varies on the plate's scale.

    Returns
    -------
    numpy.ndarray
        ``(side,)``: the bins interpolated linearly to the pixels (NaN bins filled the same
        way), zero if the edge has no data.
    """
    good = np.isfinite(values)
    if not good.any():
        return np.zeros(side)
    nbins = len(values)
    centres = (np.arange(nbins) + 0.5) * side / nbins - 0.5
    filled = np.interp(centres, centres[good], values[good])
    if smooth > 1 and nbins >= smooth:
        half = smooth // 2
        padded = np.concatenate([filled[half:0:-1], filled, filled[-2:-half - 2:-1]])
        filled = np.convolve(padded, np.ones(smooth) / smooth, mode="valid")
    return np.interp(np.arange(side), centres, filled)


def correct_plate(plate: np.ndarray, origin: tuple[int, int], plane: tuple[float, float, float],
                  edges: np.ndarray | None, crpix: float) -> np.ndarray:
    """An unpadded square plate less its background.

    Parameters
    ----------
    plate : numpy.ndarray
        The plate ``[row, col]``.
    origin : (int, int)
        0-based plane pixel ``(p1, p2)`` of ``plate[0, 0]``.
    plane : (float, float, float)
        ``(a, b, c)``: the plane ``a (p1 - crpix) + b (p2 - crpix) + c`` at plane pixels
        ``p1 = origin[0] + col``, ``p2 = origin[1] + row`` (mBackground's convention).
    edges : numpy.ndarray or None
        The plate's edge corrections (:func:`edge_fields`), subtracted as the seam field of
        :func:`coons_patch`; None for none.
    crpix : float
        The all-sky CRPIX (1-based).

    Returns
    -------
    numpy.ndarray
        float32, the shape of ``plate``.
    """
    rows, cols = plate.shape
    p1 = np.arange(cols) + origin[0]
    p2 = np.arange(rows) + origin[1]
    out = (plate - _plane(plane, p1[None, :], p2[:, None], crpix)).astype(np.float32)
    if edges is not None:
        out -= coons_patch(edges, rows)
    return out


def block_mean_correction(side: int, origin: tuple[int, int], plane: tuple[float, float, float],
                          edges: np.ndarray | None, crpix: float, partial: np.ndarray,
                          members: np.ndarray) -> np.ndarray:
    """The mean of a plate's correction (what :func:`correct_plate` subtracts) over the finite
    pixels of each of its aligned 2 x 2 blocks.

    Subtracted from the plate shrunk by 2, it gives the corrected plate shrunk by 2, to float
    rounding: the shrink's NaN-ignoring mean of ``pixel - correction`` is the mean of the
    pixels less the mean of the correction over the same pixels. Both parts of the correction
    are sums of products of a function of the row and one of the column, so a whole block's
    mean is computed from the rows' and the columns' pair means, without a plate-sized field;
    a partly blank block's from its finite pixels.

    Parameters
    ----------
    side : int
        The plate's side, in pixels (even).
    origin, plane, edges, crpix
        As for :func:`correct_plate`.
    partial, members : numpy.ndarray
        The partly blank blocks (flat row-major indices into the ``side / 2`` square) and their
        finite pixels, as :class:`~hipsluigi.pyramid.shrink.HalfPlate` holds them.

    Returns
    -------
    numpy.ndarray
        float64 ``(side / 2, side / 2)`` ``[row, col]``.
    """
    half = side // 2
    p1 = np.arange(side, dtype=np.float64) + origin[0]  # along columns
    p2 = np.arange(side, dtype=np.float64) + origin[1]  # along rows
    out = _plane(plane, _pair_means(p1)[None, :], _pair_means(p2)[:, None], crpix)
    curves = None
    if edges is not None:
        curves = [edge_curve(edges[k], side) for k in range(4)]
        t = np.linspace(0.0, 1.0, side)
        out = out + _coons_sum(curves, _pair_means(t), _pair_means(1 - t))
    if partial.size:
        rows, cols = np.divmod(partial, half)
        bits = np.array([1, 2, 4, 8], dtype=np.uint8)
        r = 2 * rows[:, None] + np.array([0, 0, 1, 1])  # the block's pixels, bit 2 r + c
        c = 2 * cols[:, None] + np.array([0, 1, 0, 1])
        finite = (members[:, None] & bits) != 0
        values = _plane(plane, p1[c], p2[r], crpix)
        if curves is not None:
            values = values + _coons_at(curves, side, r, c)
        out[rows, cols] = np.where(finite, values, 0.0).sum(axis=1) / finite.sum(axis=1)
    return out


def _pair_means(x: np.ndarray) -> np.ndarray:
    """Means of consecutive pairs ``(x[0], x[1]), (x[2], x[3]), ...``."""
    return 0.5 * (x[0::2] + x[1::2])


def _coons_sum(curves, v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """:func:`coons_patch`'s field averaged over 2 x 2 blocks, in float64: ``v`` the pair
    means of the blending weight ``t`` and ``w`` of ``1 - t`` (the same along rows and
    columns)."""
    bottom, top, left, right = (_pair_means(x) for x in curves)
    return _coons_blend(bottom[None, :], top[None, :], left[:, None], right[:, None],
                        v[None, :], v[:, None], w[None, :], w[:, None], _corners(curves))


def _coons_at(curves, side: int, r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """:func:`coons_patch`'s field at pixels ``(r, c)``, in float64."""
    bottom, top, left, right = curves
    t = np.linspace(0.0, 1.0, side)
    u, v = t[c], t[r]
    return _coons_blend(bottom[c], top[c], left[r], right[r], u, v, 1 - u, 1 - v,
                        _corners(curves))


def _corners(curves) -> tuple[float, float, float, float]:
    bottom, top, _, _ = curves
    return bottom[0], bottom[-1], top[0], top[-1]


def _coons_blend(bottom, top, left, right, u, v, ou, ov, corners) -> np.ndarray:
    """The Coons blend of edge values: ``bottom`` and ``top`` at the pixels' columns, ``left``
    and ``right`` at their rows, the blending weights ``u`` (columns) and ``v`` (rows) and
    their complements ``ou = 1 - u``, ``ov = 1 - v``, and the corner values ``(bottom first,
    bottom last, top first, top last)``; arrays broadcast together."""
    b0, b1, t0, t1 = corners
    field = ov * bottom + v * top + ou * left + u * right
    return field - (ou * ov * b0 + u * ov * b1 + ou * v * t0 + u * v * t1)


def coons_patch(edges: np.ndarray, side: int) -> np.ndarray:
    """The smooth field over a plate that takes given profiles along its four edges.

    Bilinear (Coons) blending of the four edge curves (:func:`edge_curve`): exact on the
    edges, smooth inside.

    Parameters
    ----------
    edges : numpy.ndarray
        ``(4, nbins)`` binned profiles: 0 bottom (row 0), 1 top (last row), 2 left (column 0),
        3 right (last column).
    side : int
        Plate side, in pixels.

    Returns
    -------
    numpy.ndarray
        float32 ``(side, side)`` field ``[row, col]``.
    """
    curves = [edge_curve(edges[k], side) for k in range(4)]
    bottom, top, left, right = curves
    t = np.linspace(0.0, 1.0, side)
    u = t[None, :]  # along columns
    v = t[:, None]  # along rows
    return _coons_blend(bottom[None, :], top[None, :], left[:, None], right[:, None], u, v,
                        1 - u, 1 - v, _corners(curves)).astype(np.float32)
