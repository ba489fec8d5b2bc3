"""Fixed-bin histograms of float data, built per plate and merged into an all-sky histogram.

A :class:`PixelHistogram` has ``nbins`` equal bins spanning ``[lo, hi]``, the finite data range:
bin ``k`` covers ``[lo + k*delta, lo + (k+1)*delta)`` with ``delta = (hi - lo) / nbins``, and
the last bin is closed so the maximum falls in it (numpy's ``np.histogram`` convention).
NaN and infinities are ignored. An empty histogram has ``npix == 0`` and ``lo = hi = nan``.
Constant data (``lo == hi``) puts every pixel in bin 0. Percentiles follow the cumulative
distribution linearly within bins, as Montage's mHistogram does with its 200000 bins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NBINS = 200_000

# Values binned at a time: the float64 temporaries of 2**18 values (2 MB each) stay in the
# processor's cache, where 2**22 made binning a fifth slower (counts do not depend on it).
_CHUNK = 1 << 18


@dataclass
class PixelHistogram:
    """Counts of finite pixel values in ``nbins`` equal bins over ``[lo, hi]``.

    Attributes
    ----------
    lo, hi : float
        The range, data units (NaN for an empty histogram).
    counts : numpy.ndarray
        int64 ``(nbins,)`` counts (see the module docstring for the bins).
    npix : int
        Number of pixels counted.

    Raises
    ------
    ValueError
        If ``counts`` is not a non-empty 1-d array.
    """

    lo: float
    hi: float
    counts: np.ndarray
    npix: int

    def __post_init__(self) -> None:
        self.lo = float(self.lo)
        self.hi = float(self.hi)
        self.counts = np.asarray(self.counts, dtype=np.int64)
        self.npix = int(self.npix)
        if self.counts.ndim != 1 or self.counts.size < 1:
            raise ValueError("histogram counts must be a non-empty 1-d array")

    @property
    def nbins(self) -> int:
        """Number of bins."""
        return int(self.counts.size)

    @property
    def edges(self) -> np.ndarray:
        """The ``nbins + 1`` bin edges, ``edges[0] == lo`` and ``edges[-1] == hi``."""
        return np.linspace(self.lo, self.hi, self.nbins + 1)


def _bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value in ``[edges[0], edges[-1]]``; the last bin is closed.

    ``values`` are floats, compared with the float64 ``edges`` exactly (float32 converts to
    float64 without rounding); the arithmetic runs in one float64 copy, in place.
    """
    nbins = edges.size - 1
    lo, hi = edges[0], edges[-1]
    if hi == lo:
        return np.zeros(values.shape, dtype=np.intp)
    x = np.subtract(values, lo, dtype=np.float64)
    x *= nbins / (hi - lo)
    np.floor(x, out=x)
    np.clip(x, 0, nbins - 1, out=x)
    idx = x.astype(np.intp)
    # The product can round across an edge; one step against the edges themselves fixes it.
    # At most one of the two steps applies (edges never decrease), so both compare with the
    # first guess; the last bin is closed, so nothing is above its upper edge.
    upper = np.append(edges[1:-1], np.inf)
    below = values < np.take(edges, idx)
    above = values >= np.take(upper, idx)
    idx -= below
    idx += above
    return idx


def _empty(nbins: int) -> PixelHistogram:
    return PixelHistogram(np.nan, np.nan, np.zeros(nbins, dtype=np.int64), 0)


def _check_nbins(nbins: int) -> None:
    if nbins < 1:
        raise ValueError(f"nbins must be at least 1, got {nbins}")


def histogram_of(values: np.ndarray, nbins: int = NBINS) -> PixelHistogram:
    """The histogram of the finite entries of an array over their own range.

    Parameters
    ----------
    values : numpy.ndarray
        Any shape, any real dtype and byte order (a memory-mapped plate is fine).
    nbins : int, optional
        Number of bins (>= 1).

    Returns
    -------
    PixelHistogram
        Empty (``npix == 0``, NaN range) if no value is finite.

    Raises
    ------
    ValueError
        If ``nbins < 1``.
    """
    _check_nbins(nbins)
    flat = np.asarray(values).ravel()
    finite = flat[np.isfinite(flat)]
    if finite.size == 0:
        return _empty(nbins)
    if finite.dtype.kind != "f" or finite.dtype.itemsize > 8:
        finite = finite.astype(np.float64)  # compared as float64, as the edges are
    # Native byte order once (a FITS plate is big-endian), not a swap in every pass.
    finite = finite.astype(finite.dtype.newbyteorder("="), copy=False)
    lo, hi = float(finite.min()), float(finite.max())
    hist = PixelHistogram(lo, hi, np.zeros(nbins, dtype=np.int64), finite.size)
    edges = hist.edges
    for start in range(0, finite.size, _CHUNK):
        hist.counts += np.bincount(_bin_index(finite[start:start + _CHUNK], edges),
                                   minlength=nbins)
    return hist


def merge_histograms(hists: Sequence[PixelHistogram], nbins: int = NBINS) -> PixelHistogram:
    """One histogram over the union of the ranges of several.

    Each input bin's count goes to the output bin holding that input bin's centre, so a
    pixel moves by at most one input bin width plus one output bin width.

    Parameters
    ----------
    hists : sequence of PixelHistogram
        The histograms (of plates); empty ones are skipped.
    nbins : int, optional
        Number of bins of the result.

    Returns
    -------
    PixelHistogram

    Raises
    ------
    ValueError
        If every input is empty (or there is none), or ``nbins < 1``.
    """
    _check_nbins(nbins)
    full = [h for h in hists if h.npix > 0]
    if not full:
        raise ValueError("cannot merge histograms: all are empty")
    lo = min(h.lo for h in full)
    hi = max(h.hi for h in full)
    out_edges = np.linspace(lo, hi, nbins + 1)
    counts = np.zeros(nbins, dtype=np.float64)
    for h in full:
        used = np.flatnonzero(h.counts)
        edges = h.edges
        centres = 0.5 * (edges[used] + edges[used + 1])
        # Float weights are exact: any bin total stays far below 2**53.
        counts += np.bincount(_bin_index(centres, out_edges), weights=h.counts[used],
                              minlength=nbins)
    return PixelHistogram(lo, hi, np.rint(counts).astype(np.int64), sum(h.npix for h in full))


def percentile(hist: PixelHistogram, q: float) -> float:
    """The data value below which a given percentage of the pixels lie.

    The cumulative distribution is taken as linear within each bin.

    Parameters
    ----------
    hist : PixelHistogram
        A non-empty histogram.
    q : float
        Percentage, 0 to 100; 0 gives ``lo`` and 100 gives ``hi``.

    Returns
    -------
    float
        Data units.

    Raises
    ------
    ValueError
        For an empty histogram or ``q`` outside 0..100.
    """
    q = float(q)
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    if hist.npix <= 0:
        raise ValueError("percentile of an empty histogram")
    if q == 0.0:
        return hist.lo
    if q == 100.0:
        return hist.hi
    cum = np.concatenate(([0], np.cumsum(hist.counts)))
    target = q / 100.0 * hist.npix
    # First edge whose cumulative count reaches the target: cum[k-1] < target <= cum[k].
    k = int(np.clip(np.searchsorted(cum, target, side="left"), 1, hist.nbins))
    edges = hist.edges
    below, inside = cum[k - 1], cum[k] - cum[k - 1]
    frac = min(max((target - below) / inside, 0.0), 1.0) if inside > 0 else 1.0
    return float(edges[k - 1] + frac * (edges[k] - edges[k - 1]))
