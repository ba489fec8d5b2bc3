"""The global background model: one correction plane per plate, from every overlap fit.

Each plate ``k`` gets a plane ``Q_k(x, y) = a_k x + b_k y + c_k`` (global plane pixel
coordinates, Montage's ``x = p1 - CRPIX1``, ``y = p2 - CRPIX2`` with 0-based plane pixels
``p`` and the 1-based all-sky CRPIX) that is subtracted from it. After correction two
overlapping plates should agree, ``Q_plus(p) - Q_minus(T p) = D(p)`` over their overlap, with
``D`` the fitted difference and ``T`` the plus-to-minus map (identity, wrap shift or polar
turn). Because every term is linear in ``p``, the least-squares misfit over an overlap depends
only on its pixel count and first and second moments, so each difference fit
(:class:`~hipsluigi.background.overlap.DifferenceFit`) contributes three weighted equations,
and the whole sky is one sparse linear least-squares problem (3 unknowns a plate), solved
directly. The free constant is fixed by ``sum_k c_k = 0`` (levels at each plate's
reference point); a ridge on the slopes settles their near-degenerate modes. Differences that
disagree with the solution by more than ``reject`` robust sigmas are dropped and the model
solved again.

Montage's mBgModel solves the same problem by 10,000 damped Jacobi passes in single precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla


@dataclass
class BackgroundSolution:
    """The solved background model.

    Attributes
    ----------
    planes : dict of int to (float, float, float)
        Plate id -> correction plane ``(a, b, c)``: ``a x + b y + c`` in global plane pixels
        about the all-sky CRPIX (Montage's convention), data units.
    rejected : list of int
        Indices, in the ``diffs`` given to :func:`solve_background`, of the differences
        rejected as outliers.
    used : int
        Number of differences in the final solve.
    """

    planes: dict[int, tuple[float, float, float]]
    rejected: list[int]
    used: int


def solve_background(diffs: Sequence, plate_ids: Sequence[int], scale: float,
                     slopes: bool = True, reject: float = 5.0, iterations: int = 3,
                     ridge: float = 1e-2) -> BackgroundSolution:
    """Solve the correction planes of the plates from their fitted differences.

    Internally each plate's plane is taken about the mean of its overlaps, which keeps levels
    and slopes from trading against each other in the solve.

    Parameters
    ----------
    diffs : sequence
        :class:`~hipsluigi.background.overlap.DifferenceFit`-like records (attributes ``plus
        minus a b c npixel xcenter ycenter sxx sxy syy l11 l12 l21 l22 t1 t2 crpix1 crpix2``).
        Records naming a plate outside ``plate_ids``, with no pixels or a non-finite ``c``
        are left out.
    plate_ids : sequence of int
        The plates to solve for.
    scale : float
        Normalises coordinates, in pixels (the face side N).
    slopes : bool, optional
        Fit planes; False fits levels only (``a = b = 0``).
    reject : float, optional
        Differences whose misfit exceeds the median by more than ``reject`` robust sigmas are
        dropped and the model solved again.
    iterations : int, optional
        At most this many solves.
    ridge : float, optional
        Holds the slopes back: overlaps are thin strips along plate edges, so a surface that is
        continuous but kinked along every edge is nearly invisible to them. On the synthetic
        order-9 network the plates' corrections come back to 0.012 with 1e-2 and to 0.04 with
        1e-6 (fit noise 0.01).

    Returns
    -------
    BackgroundSolution
    """
    index = {pid: k for k, pid in enumerate(plate_ids)}
    kept = [k for k, d in enumerate(diffs) if d.plus in index and d.minus in index
            and d.npixel > 0 and np.isfinite(d.c)]
    usable = [diffs[k] for k in kept]
    system = _System(usable, index, scale, slopes)
    active = np.ones(len(usable), dtype=bool)
    rejected: list[int] = []
    solution = np.zeros(system.npar * len(index))
    for _ in range(iterations):
        solution = system.solve(active, ridge)
        misfit = system.misfit(solution)
        if active.sum() < 3:
            break
        centre = np.median(misfit[active])
        spread = 1.4826 * np.median(np.abs(misfit[active] - centre)) or np.finfo(float).eps
        bad = active & (misfit > centre + reject * spread)
        if not bad.any():
            break
        # A bad difference drags its neighbours' misfits up too: per pass, drop one only if no
        # worse one over the threshold shares a plate with it.
        claimed: set[int] = set()
        for k in sorted(np.flatnonzero(bad), key=lambda k: -misfit[k]):
            plates = {int(system.plus[k]), int(system.minus[k])}
            if plates & claimed:
                bad[k] = False
            claimed |= plates
        rejected += [kept[k] for k in np.flatnonzero(bad)]
        active &= ~bad
    planes = {pid: system.plane(solution, k) for pid, k in index.items()}
    return BackgroundSolution(planes, rejected, int(active.sum()))


class _System:
    """The weighted equations ``W (P q_plus - M q_minus - delta) = 0`` of every difference.

    ``q = (c', a', b')``: level at the plate's reference point and slopes, in coordinates
    normalised by ``scale``.
    """

    def __init__(self, diffs, index, scale, slopes):
        self.scale, self.slopes = scale, slopes
        self.npar = 3 if slopes else 1
        self.nplates = len(index)
        nf = len(diffs)
        self.plus = np.array([index[d.plus] for d in diffs], dtype=np.int64)
        self.minus = np.array([index[d.minus] for d in diffs], dtype=np.int64)
        self.npix = np.array([float(d.npixel) for d in diffs])
        mean = np.array([[d.xcenter, d.ycenter] for d in diffs]).reshape(nf, 2) / scale
        lin = np.array([[[d.l11, d.l12], [d.l21, d.l22]] for d in diffs]).reshape(nf, 2, 2)
        crpix = np.array([[d.crpix1, d.crpix2] for d in diffs]).reshape(nf, 2)
        t = np.array([[d.t1, d.t2] for d in diffs]).reshape(nf, 2)
        # x_minus = L x_plus + shift, with x = p - CRPIX on both sides
        shift = (np.einsum("fij,fj->fi", lin, crpix) + t - crpix) / scale
        # Each plate's reference point: the mean of its overlaps (in its own coordinates).
        mapped = np.einsum("fij,fj->fi", lin, mean) + shift
        ref = np.zeros((self.nplates, 2))
        count = np.zeros(self.nplates)
        np.add.at(ref, self.plus, mean)
        np.add.at(ref, self.minus, mapped)
        np.add.at(count, self.plus, 1)
        np.add.at(count, self.minus, 1)
        self.ref = ref / np.maximum(count, 1)[:, None]
        self.delta = np.array([[d.c, d.a * scale, d.b * scale] for d in diffs]).reshape(nf, 3)
        if not slopes:
            level = self.delta[:, 0] + np.einsum("fi,fi->f", self.delta[:, 1:], mean)
            self.w = np.sqrt(self.npix)[:, None, None]
            self.p = np.ones((nf, 1, 1))
            self.m = np.ones((nf, 1, 1))
            self.delta = level[:, None]
            return
        cov = np.array([[[d.sxx, d.sxy], [d.sxy, d.syy]] for d in diffs]).reshape(nf, 2, 2)
        second = np.empty((nf, 3, 3))
        second[:, 0, 0] = 1.0
        second[:, 0, 1:] = mean
        second[:, 1:, 0] = mean
        second[:, 1:, 1:] = cov / scale**2 + np.einsum("fi,fj->fij", mean, mean)
        self.w = np.transpose(np.linalg.cholesky(
            self.npix[:, None, None] * second + 1e-12 * np.eye(3)), (0, 2, 1))
        # phi(p) = (1, x, y); plus plate's plane about its reference: S_p phi(p);
        # minus plate's: S_m H phi(p), with H the plus-to-minus map on (1, x, y).
        h = np.zeros((nf, 3, 3))
        h[:, 0, 0] = 1.0
        h[:, 1:, 0] = shift
        h[:, 1:, 1:] = lin
        self.p = np.transpose(_about(self.ref[self.plus]), (0, 2, 1))
        self.m = np.transpose(np.einsum("fij,fjk->fik", _about(self.ref[self.minus]), h),
                              (0, 2, 1))

    def solve(self, active: np.ndarray, ridge: float) -> np.ndarray:
        npar = self.npar
        idx = np.flatnonzero(active)
        nf = len(idx)
        wp = np.einsum("fij,fjk->fik", self.w[idx], self.p[idx])
        wm = -np.einsum("fij,fjk->fik", self.w[idx], self.m[idx])
        rows = np.repeat(np.arange(nf * npar).reshape(nf, npar, 1), npar, axis=2)
        cols_p = (npar * self.plus[idx])[:, None, None] + np.arange(npar)[None, None, :]
        cols_m = (npar * self.minus[idx])[:, None, None] + np.arange(npar)[None, None, :]
        cols_p = np.broadcast_to(cols_p, rows.shape)
        cols_m = np.broadcast_to(cols_m, rows.shape)
        rhs = np.einsum("fij,fj->fi", self.w[idx], self.delta[idx]).ravel()
        weight = np.sqrt(self.npix[idx].mean()) if nf else 1.0
        nrow = nf * npar
        # Gauge: the sum of the levels is zero. Ridge: slopes and isolated plates at zero.
        gauge_rows = np.full(self.nplates, nrow)
        ridge_rows = nrow + 1 + np.arange(npar * self.nplates)
        ridge_vals = np.tile([1e-6] + [np.sqrt(ridge)] * (npar - 1), self.nplates) * weight
        matrix = sp.csr_matrix(
            (np.concatenate([wp.ravel(), wm.ravel(), np.full(self.nplates, weight), ridge_vals]),
             (np.concatenate([rows.ravel(), rows.ravel(), gauge_rows, ridge_rows]),
              np.concatenate([cols_p.ravel(), cols_m.ravel(),
                              npar * np.arange(self.nplates), np.arange(npar * self.nplates)]))),
            shape=(nrow + 1 + npar * self.nplates, npar * self.nplates))
        full_rhs = np.concatenate([rhs, np.zeros(1 + npar * self.nplates)])
        normal = (matrix.T @ matrix).tocsc()
        return spla.spsolve(normal, matrix.T @ full_rhs)

    def misfit(self, q: np.ndarray) -> np.ndarray:
        """RMS disagreement of each difference with the solution, over its overlap."""
        npar = self.npar
        q = q.reshape(self.nplates, npar)
        e = (np.einsum("fij,fj->fi", self.p, q[self.plus])
             - np.einsum("fij,fj->fi", self.m, q[self.minus]) - self.delta)
        r = np.einsum("fij,fj->fi", self.w, e)
        return np.sqrt(np.einsum("fi,fi->f", r, r) / self.npix)

    def plane(self, q: np.ndarray, k: int) -> tuple[float, float, float]:
        """``(a, b, c)`` in pixels about the all-sky CRPIX (Montage's convention)."""
        if not self.slopes:
            return 0.0, 0.0, float(q[k])
        c_ref, a, b = q[3 * k:3 * k + 3]
        x, y = self.ref[k]
        return float(a / self.scale), float(b / self.scale), float(c_ref - a * x - b * y)


def _about(ref: np.ndarray) -> np.ndarray:
    """(n, 3, 3) maps of (1, x, y) to (1, x - x_ref, y - y_ref)."""
    s = np.zeros((len(ref), 3, 3))
    s[:, 0, 0] = s[:, 1, 1] = s[:, 2, 2] = 1.0
    s[:, 1:, 0] = -ref
    return s
