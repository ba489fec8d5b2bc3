"""Display stretches: monotone maps from data values to 8-bit gray levels.

Every kind is represented the same way, by 255 non-decreasing thresholds ``edges``: the gray
level of a value ``v`` is the number of edges strictly below it,
``np.searchsorted(edges, v, side="left")``, so 0..255. NaN has no gray level (callers make it
transparent); :meth:`Stretch.gray` returns 0 for it.

The range ``[lo, hi]`` is given in Montage mHistogram's syntax (:func:`parse_level`). The
``gaussian`` and ``gaussian-log`` kinds follow mHistogram's histogram equalisation to a
Gaussian; ``linear``, ``log``, ``sqrt`` and ``asinh`` apply a fixed transfer function to
``x = (v - lo) / (hi - lo)`` clipped to ``[0, 1]``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np
from scipy.special import ndtri

from hipsluigi.stretch.histogram import PixelHistogram, percentile

STRETCH_KINDS = ("gaussian-log", "gaussian", "linear", "log", "sqrt", "asinh")

NGRAY = 256

# Montage's `mHistogram -2s max gaussian-log`; the transfer kinds clip half a percent each side.
DEFAULT_LEVELS = {
    "gaussian-log": ("-2s", "max"),
    "gaussian": ("-2s", "max"),
    "linear": ("0.5%", "99.5%"),
    "log": ("0.5%", "99.5%"),
    "sqrt": ("0.5%", "99.5%"),
    "asinh": ("0.5%", "99.5%"),
}

_LOG_SCALE = 1000.0
_ASINH_SCALE = 10.0

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?"
# Montage allows blanks after the sign and before the unit, not inside the number.
_LEVEL = re.compile(rf"(?P<sign>[+-]?)\s*(?P<num>{_NUMBER})\s*(?P<unit>[%s]?)")


@dataclass(frozen=True)
class Level:
    """A display level as written, before any data is seen.

    Attributes
    ----------
    kind : str
        ``value`` (``number`` in data units), ``percentile`` (``number`` in 0..100; ``min``,
        ``max`` and ``med`` are 0, 100 and 50) or ``sigma`` (the median plus ``number``
        sigma, with sigma = (P84 - P16) / 2).
    number : float
    """

    kind: str
    number: float


def read_level(text: str) -> Level:
    """Parse a Montage range string (:func:`parse_level`'s syntax) without data.

    Parameters
    ----------
    text : str
        ``"3.2"``, ``"99.5%"``, ``"-2s"``, ``"min"``, ``"max"`` or ``"med"``; case is ignored,
        and blanks around the text, after the sign and before the unit.

    Returns
    -------
    Level

    Raises
    ------
    ValueError
        Naming ``text``, if it is none of these forms or a percentile is outside 0..100.
    """
    key = str(text).strip().lower()
    named = {"min": 0.0, "max": 100.0, "med": 50.0}
    if key in named:
        return Level("percentile", named[key])
    match = _LEVEL.fullmatch(key)
    if match is None:
        raise ValueError(f"invalid stretch level {text!r}: expected a value, 'N%', 'Ns', "
                         f"'min', 'max' or 'med'")
    number = float(match["sign"] + match["num"])
    if not np.isfinite(number):
        raise ValueError(f"invalid stretch level {text!r}: not a finite number")
    unit = match["unit"]
    if unit == "%":
        if not 0.0 <= number <= 100.0:
            raise ValueError(f"invalid stretch level {text!r}: percentile outside 0..100")
        return Level("percentile", number)
    return Level("sigma" if unit == "s" else "value", number)


def level_texts(kind: str, min_text: str = "", max_text: str = "") -> tuple[str, str]:
    """The black and white level strings a stretch of ``kind`` uses: empty texts take
    :data:`DEFAULT_LEVELS`. ``kind`` must be one of :data:`STRETCH_KINDS` (case and blanks
    ignored)."""
    default_min, default_max = DEFAULT_LEVELS[kind.strip().lower()]
    return min_text.strip() or default_min, max_text.strip() or default_max


def levels_inverted(lo: Level, hi: Level) -> bool:
    """True when black level ``lo`` is at or above white level ``hi`` whatever the data.

    Levels of one kind compare by their numbers (percentiles and ``median + k sigma`` never
    decrease with the number); a value against a percentile or a sigma depends on the data,
    and counts as not inverted.
    """
    return lo.kind == hi.kind and lo.number >= hi.number


def parse_level(text: str, hist: PixelHistogram) -> float:
    """The data value that a Montage range string names, given the data's histogram.

    Parameters
    ----------
    text : str
        ``"3.2"`` is a data value, ``"99.5%"`` a percentile, ``"-2s"`` the median plus -2 sigma
        with sigma = (P84 - P16) / 2, and ``"min"``, ``"max"``, ``"med"`` the 0th, 100th and
        50th percentiles. Case is ignored, and blanks around the text, after the sign and before
        the unit.
    hist : PixelHistogram
        The data's histogram.

    Returns
    -------
    float
        Data units.

    Raises
    ------
    ValueError
        Naming ``text``, if it is none of these forms or a percentile is outside 0..100
        (:func:`read_level`).
    """
    level = read_level(text)
    if level.kind == "percentile":
        return percentile(hist, level.number)
    if level.kind == "sigma":
        median = percentile(hist, 50.0)
        sigma = (percentile(hist, 84.0) - percentile(hist, 16.0)) / 2.0
        return median + level.number * sigma
    return level.number


@dataclass
class Stretch:
    """A display stretch: ``gray(v) = searchsorted(edges, v, "left")``, 255 ``edges``.

    Attributes
    ----------
    kind : str
        One of :data:`STRETCH_KINDS`.
    lo, hi : float
        The display range, data units.
    edges : numpy.ndarray
        255 non-decreasing thresholds, data units.
    data_min, data_max : float
        The histogram's data range, data units (kept for the metadata and for inspection).

    Raises
    ------
    ValueError
        For an unknown kind, or edges that are not 255 non-decreasing numbers.
    """

    kind: str
    lo: float
    hi: float
    edges: np.ndarray
    data_min: float
    data_max: float
    _edges32: np.ndarray = field(init=False, repr=False, compare=False)
    _table: GrayTable | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self.kind not in STRETCH_KINDS:
            raise ValueError(f"unknown stretch kind {self.kind!r}; expected one of "
                             f"{', '.join(STRETCH_KINDS)}")
        self.lo, self.hi = float(self.lo), float(self.hi)
        self.data_min, self.data_max = float(self.data_min), float(self.data_max)
        self.edges = np.asarray(self.edges, dtype=np.float64)
        if self.edges.shape != (NGRAY - 1,):
            raise ValueError(f"a stretch needs {NGRAY - 1} edges, got shape {self.edges.shape}")
        if np.isnan(self.edges).any() or (np.diff(self.edges) < 0).any():
            raise ValueError("stretch edges must be non-decreasing numbers")
        self._edges32 = float32_edges(self.edges)

    def gray(self, values: np.ndarray) -> np.ndarray:
        """Gray levels 0..255 (uint8, same shape) of ``values``; NaN gives 0.

        Floats of at most 32 bits (in either byte order) are compared in float32 with
        :func:`float32_edges`, which gives the same levels as the float64 edges without a
        float64 copy of the data, through a :func:`gray_table` (the same levels as
        ``searchsorted``, about 2.8 times faster on a 512-pixel tile); other values are
        compared with ``edges`` as they are.
        """
        values = np.asarray(values)
        if values.dtype.kind == "f" and values.dtype.itemsize <= 4:
            values = values.astype(np.float32, copy=False)  # native order: no swap per compare
            if self._table is None:
                self._table = gray_table(self._edges32)
            if self._table.steps <= MAX_TABLE_STEPS:
                gray = self._table.gray(values)
            else:
                gray = np.searchsorted(self._edges32, values, side="left").astype(np.uint8)
        else:
            gray = np.searchsorted(self.edges, values, side="left").astype(np.uint8)
        # NaN sorts after every edge, so it would come out as 255.
        gray[np.isnan(values)] = 0
        return gray

    def to_json(self) -> str:
        """The stretch as a JSON object; ``edges`` is a list of 255 numbers."""
        return json.dumps({"kind": self.kind, "lo": self.lo, "hi": self.hi,
                           "data_min": self.data_min, "data_max": self.data_max,
                           "edges": self.edges.tolist()})

    @classmethod
    def from_json(cls, text: str) -> Stretch:
        """The stretch :meth:`to_json` wrote."""
        d = json.loads(text)
        return cls(kind=d["kind"], lo=d["lo"], hi=d["hi"], edges=np.asarray(d["edges"]),
                   data_min=d["data_min"], data_max=d["data_max"])

    def save(self, path: str | PathLike) -> None:
        """Write :meth:`to_json` to ``path`` (not atomically)."""
        Path(path).write_text(self.to_json())

    @classmethod
    def load(cls, path: str | PathLike) -> Stretch:
        """The stretch :meth:`save` wrote to ``path``."""
        return cls.from_json(Path(path).read_text())


def float32_edges(edges: np.ndarray) -> np.ndarray:
    """Float32 thresholds that sort every float32 value as the float64 ``edges`` do.

    Each edge ``e`` is rounded down to the largest float32 ``e32 <= e`` (``-inf`` below the
    float32 range). For a float32 ``v``, ``e < v`` holds exactly when ``e32 < v``: if ``e`` is
    not a float32, no float32 lies in ``(e32, e]``. So ``searchsorted(e32, v)`` equals
    ``searchsorted(edges, v)`` for every float32 ``v`` (NaN and infinities included), and the
    rounded edges stay non-decreasing.

    Parameters
    ----------
    edges : numpy.ndarray
        Non-decreasing float64 thresholds, data units.

    Returns
    -------
    numpy.ndarray
        float32 thresholds, same shape.
    """
    edges = np.asarray(edges, dtype=np.float64)
    with np.errstate(over="ignore"):  # beyond the float32 range: +-inf, stepped down below
        e32 = edges.astype(np.float32)
    above = e32.astype(np.float64) > edges
    e32[above] = np.nextafter(e32[above], np.float32(-np.inf))
    return e32


#: A :class:`GrayTable` has one entry per ``2**LUT_SHIFT`` consecutive float32 values (1 MiB).
LUT_SHIFT = 12

#: Edges sharing one table entry beyond this (a stretch of a nearly constant image, whose edges
#: coincide) make the table slower than ``searchsorted``, which is used instead.
MAX_TABLE_STEPS = 4


def float32_keys(values: np.ndarray) -> np.ndarray:
    """uint32 keys of native float32 ``values`` in the order of the numbers: ``x < y`` gives
    ``key(x) < key(y)``, and ``-0.0`` comes just below ``+0.0``; NaNs fall outside
    ``[key(-inf), key(inf)]``."""
    bits = values.view(np.uint32)
    # sign set: flip every bit (more negative, smaller key); clear: set the sign bit
    flip = (values.view(np.int32) >> 31).view(np.uint32) | np.uint32(0x80000000)
    return bits ^ flip


@dataclass(frozen=True)
class GrayTable:
    """Gray levels of float32 values by table look-up; see :func:`gray_table`.

    Attributes
    ----------
    first : numpy.ndarray
        uint8, one entry per bucket of ``2**LUT_SHIFT`` consecutive :func:`float32_keys`: the
        number of edges in lower buckets.
    edges : numpy.ndarray
        The float32 edges (``-0.0`` as ``+0.0``) and one ``+inf``.
    steps : int
        The most edges in one bucket.
    """

    first: np.ndarray
    edges: np.ndarray
    steps: int

    def gray(self, values: np.ndarray) -> np.ndarray:
        """``searchsorted(edges, values, "left")`` as uint8, for native float32 ``values``;
        NaN gives an arbitrary level."""
        gray = self.first[float32_keys(values) >> LUT_SHIFT]
        # The bucket's level counts the edges of lower buckets; the edges in the value's own
        # bucket come next in order, at most `steps` of them.
        for _ in range(self.steps):
            gray += self.edges[gray] < values
        return gray


def gray_table(edges32: np.ndarray) -> GrayTable:
    """The look-up table of ``searchsorted(edges32, v, "left")`` for float32 ``v``.

    A value's bucket (its :func:`float32_keys` without the low :data:`LUT_SHIFT` bits) gives
    the number of edges in lower buckets, which are all below it; an edge in a higher bucket
    is not below it. The edges in its own bucket are then compared one by one, in order. An
    edge ``-0.0`` is taken as ``+0.0``: equal numbers, so the same comparisons, and the key
    of ``+0.0`` keeps the lower buckets' edges strictly below every value of the bucket.

    Parameters
    ----------
    edges32 : numpy.ndarray
        255 non-decreasing float32 edges, no NaN.

    Returns
    -------
    GrayTable
    """
    edges = np.asarray(edges32, dtype=np.float32) + np.float32(0.0)  # -0.0 + 0.0 is +0.0
    buckets = (float32_keys(edges) >> LUT_SHIFT).astype(np.int64)
    nbuckets = 1 << (32 - LUT_SHIFT)
    # bucket b gets k, the edges of lower buckets, for buckets[k-1] < b <= buckets[k]
    bounds = np.concatenate([[-1], buckets, [nbuckets - 1]])
    first = np.repeat(np.arange(len(edges) + 1, dtype=np.uint8), np.diff(bounds))
    steps = int(np.unique(buckets, return_counts=True)[1].max())
    return GrayTable(first=first, edges=np.append(edges, np.float32(np.inf)), steps=steps)


def _transfer_inverse(kind: str, y: np.ndarray) -> np.ndarray:
    """``x`` in [0, 1] with ``f(x) = y`` for the transfer function ``f`` of ``kind``."""
    if kind == "linear":
        return y
    if kind == "sqrt":
        return y * y
    if kind == "log":
        # f(x) = log10(1 + 1000 x) / log10(1001)
        return np.expm1(y * np.log1p(_LOG_SCALE)) / _LOG_SCALE
    if kind == "asinh":
        # f(x) = asinh(10 x) / asinh(10)
        return np.sinh(y * np.arcsinh(_ASINH_SCALE)) / _ASINH_SCALE
    raise ValueError(f"no transfer function for stretch kind {kind!r}")


def transfer_edges(kind: str, lo: float, hi: float) -> np.ndarray:
    """The edges of a transfer stretch.

    Parameters
    ----------
    kind : str
        ``linear``, ``log``, ``sqrt`` or ``asinh``.
    lo, hi : float
        The display range, data units.

    Returns
    -------
    numpy.ndarray
        255 edges giving gray ``round(255 f(x))``, ``x = (v - lo) / (hi - lo)`` clipped to
        ``[0, 1]``.
    """
    y = (np.arange(NGRAY - 1) + 0.5) / (NGRAY - 1)
    return lo + (hi - lo) * _transfer_inverse(kind, y)


def _interp_first(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Linear interpolation at the first ``k`` with ``xp[k] >= x``, for non-decreasing ``xp``.

    Unlike ``np.interp`` this is well defined on flat runs of ``xp`` (empty histogram bins):
    it interpolates across the segment where ``xp`` actually crosses ``x``. Outside the range
    of ``xp`` it returns the end values of ``fp``.
    """
    x = np.asarray(x, dtype=np.float64)
    k = np.searchsorted(xp, x, side="left")
    inner = np.clip(k, 1, xp.size - 1)
    x0, x1 = xp[inner - 1], xp[inner]
    f0, f1 = fp[inner - 1], fp[inner]
    # Inside the range x0 < x <= x1, so the width is positive wherever it is used.
    width = np.where(x1 > x0, x1 - x0, 1.0)
    out = f0 + np.clip((x - x0) / width, 0.0, 1.0) * (f1 - f0)
    out = np.where(k == 0, fp[0], out)
    return np.where(k >= xp.size, fp[-1], out)


def gaussian_levels(hist: PixelHistogram) -> np.ndarray:
    """The Gaussianised level ``ndtri(F)`` at each of the ``nbins + 1`` bin edges.

    ``F`` is the fraction of pixels below the edge, the count clamped to
    ``[1, npix - 1]`` so every level is finite. Montage pairs the count through bin ``i``
    with the lower edge of bin ``i``; here it is paired with the upper edge, where that
    fraction actually holds, which shifts thresholds by at most one bin width.

    Parameters
    ----------
    hist : PixelHistogram
        A non-empty histogram.

    Returns
    -------
    numpy.ndarray
        ``(nbins + 1,)`` levels, in standard deviations of the unit normal.
    """
    npix = float(hist.npix)
    cum = np.concatenate(([0], np.cumsum(hist.counts))).astype(np.float64)
    # With one or two pixels [1, npix - 1] is empty; the middle keeps the level finite.
    low, high = min(1.0, npix / 2.0), max(npix - 1.0, npix / 2.0)
    return ndtri(np.clip(cum, low, high) / npix)


def gaussian_targets(kind: str, g_min: float, g_max: float) -> np.ndarray:
    """Montage's 256 Gaussianised levels ``G_j`` that start gray levels ``j = 0..255``.

    Parameters
    ----------
    kind : str
        ``gaussian``: ``G_j = g_min + j (g_max - g_min) / 255``. ``gaussian-log``:
        ``G_j = g_max - (g_max - g_min) ** ((256 - j) / 255)``, which crowds gray levels
        toward the bright tail; when ``g_max - g_min <= 1`` that power would no longer
        increase with ``j``, so the ``gaussian`` form is used instead.
    g_min, g_max : float
        The Gaussianised levels of the display range.

    Returns
    -------
    numpy.ndarray
        ``(256,)`` levels.
    """
    j = np.arange(NGRAY, dtype=np.float64)
    span = g_max - g_min
    if kind == "gaussian-log" and span > 1.0:
        return g_max - span ** ((NGRAY - j) / (NGRAY - 1))
    return g_min + j * span / (NGRAY - 1)


def gaussian_edges(hist: PixelHistogram, kind: str, lo: float, hi: float) -> np.ndarray:
    """Montage's gaussian(-log) thresholds: the data values where the levels reach ``G_j``.

    Montage's gray index is the smallest ``j`` with ``t_j >= v``, which is
    ``searchsorted(t[:255], v)``, so the edges are ``t_0 .. t_254``.

    Parameters
    ----------
    hist : PixelHistogram
        A non-empty histogram.
    kind : str
        ``gaussian`` or ``gaussian-log`` (:func:`gaussian_targets`).
    lo, hi : float
        The display range, data units.

    Returns
    -------
    numpy.ndarray
        255 non-decreasing edges, data units.
    """
    data_edges = hist.edges
    g = gaussian_levels(hist)
    g_min = float(_interp_first(lo, data_edges, g))
    g_max = float(_interp_first(hi, data_edges, g))
    t = _interp_first(gaussian_targets(kind, g_min, g_max), g, data_edges)
    return np.maximum.accumulate(t[:NGRAY - 1])


def _widen(lo: float, hi: float) -> tuple[float, float]:
    """``(lo, hi)`` with ``hi > lo``: an empty or inverted range becomes ``[lo, lo + tiny]``."""
    if hi > lo:
        return lo, hi
    # Relative to the magnitude so the step survives in float64; everything above lo is white.
    return lo, lo + max(abs(lo), 1.0) * 1e-9


def make_stretch(hist: PixelHistogram, kind: str = "gaussian-log", min_text: str = "",
                 max_text: str = "") -> Stretch:
    """The stretch of ``kind`` over the range that two Montage level strings name.

    Parameters
    ----------
    hist : PixelHistogram
        The histogram of the data (all of the map's pixels at the histogram order).
    kind : str, optional
        One of :data:`STRETCH_KINDS` (case and blanks ignored).
    min_text, max_text : str, optional
        The black and white levels (:func:`parse_level`); empty texts take the defaults of
        :data:`DEFAULT_LEVELS`. If the parsed ``lo >= hi`` the range is widened to
        ``[lo, lo + 1e-9 max(|lo|, 1)]``, so it stays a valid, nearly binary stretch instead
        of dividing by zero.

    Returns
    -------
    Stretch

    Raises
    ------
    ValueError
        For an unknown kind, a bad level or an empty histogram.
    """
    kind = kind.strip().lower()
    if kind not in STRETCH_KINDS:
        raise ValueError(f"unknown stretch kind {kind!r}; expected one of "
                         f"{', '.join(STRETCH_KINDS)}")
    if hist.npix <= 0:
        raise ValueError("cannot make a stretch from an empty histogram")
    min_text, max_text = level_texts(kind, min_text, max_text)
    lo = parse_level(min_text, hist)
    hi = parse_level(max_text, hist)
    lo, hi = _widen(lo, hi)
    if kind in ("gaussian", "gaussian-log"):
        edges = gaussian_edges(hist, kind, lo, hi)
    else:
        edges = transfer_edges(kind, lo, hi)
    return Stretch(kind=kind, lo=lo, hi=hi, edges=edges, data_min=hist.lo,
                   data_max=hist.hi)


#: Percentiles bounding :func:`display_cut`: the linear stretch's default levels.
DISPLAY_PERCENTILES = (0.5, 99.5)


def display_cut(hist: PixelHistogram, stretch: Stretch) -> tuple[float, float]:
    """The linear display range of the FITS tiles (``hips_pixel_cut``), data units.

    Viewers map FITS tiles linearly through ``hips_pixel_cut``. The PNG stretch's own levels
    can be too wide for that (the gaussian kinds run to the data maximum, which leaves the sky
    nearly black), so they are narrowed to the histogram's 0.5 and 99.5 percentiles, the
    levels the linear stretch takes by default; levels set inside those are kept.

    Returns
    -------
    tuple of float
        ``(lo, hi)`` with ``lo < hi``, or the stretch's levels if narrowing leaves none.
    """
    low, high = (percentile(hist, q) for q in DISPLAY_PERCENTILES)
    lo, hi = max(stretch.lo, low), min(stretch.hi, high)
    return (lo, hi) if lo < hi else (stretch.lo, stretch.hi)
