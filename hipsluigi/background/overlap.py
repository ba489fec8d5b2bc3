"""The background difference between two neighbouring plates, fitted on their overlap.

Padded plates overlap along shared edges: on the plane for most pairs, one copy shifted by
``(4N, 4N)`` across the +/-180 degree wrap, and through the unfolded padding across the polar
cuts. :func:`overlap_pixels` finds the pixel pairs holding the same sky, by HEALPix index,
whichever the case; :func:`fit_overlap` fits the plane ``z = a x + b y + c`` to
``plus - minus`` by least squares with sigma clipping (:func:`fit_plane_clipped`) in global
plane coordinates ``x = p1 - CRPIX1``, ``y = p2 - CRPIX2`` of the *plus* plate (0-based plane
pixels, the 1-based all-sky CRPIX, Montage's convention), and records the affine map from plus
to minus plane coordinates (identity, a shift, or a 90 degree turn) for the global solve: a
:class:`DifferenceFit`, after Montage's mDiffFit. Plate arrays are ``[row, col]`` with ``col``
along ``p1``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from hipsluigi.geometry.hpx import plane_crpix, plane_to_nested
from hipsluigi.geometry.plates import PlateGrid
from hipsluigi.geometry.sky import plate_plane_pixels


@dataclass
class DifferenceFit:
    """The fitted difference ``plus - minus`` of two overlapping plates (one ``fitcombo.tbl``
    row).

    Coordinates are global plane pixels of the *plus* plate, ``x = p1 - crpix1`` and
    ``y = p2 - crpix2`` (0-based ``p``, 1-based all-sky ``crpix``); values are in data units.

    Attributes
    ----------
    plus, minus : int
        Plate ids (``platelist.tbl``).
    a, b, c : float
        The plane ``a x + b y + c`` fitted to ``plus - minus``.
    crpix1, crpix2 : float
        The all-sky CRPIX the coordinates are taken from.
    xmin, xmax, ymin, ymax : int
        Bounds of the fitted pixels' coordinates.
    xcenter, ycenter : float
        Mean of the fitted pixels' coordinates.
    npixel : int
        Number of fitted pixels (samples times ``stride**2``).
    rms : float
        RMS residual of the fitted pixels.
    boxx, boxy, boxwidth, boxheight, boxang : float
        The rectangle with the same first and second moments (mBgModel's region); angle in
        degrees.
    sxx, sxy, syy : float
        Central second moments of the fitted pixels' coordinates.
    l11, l12, l21, l22, t1, t2 : float
        The map of plus plane pixels to minus plane pixels, ``p_minus = L p_plus + t``.
    plus_profile, minus_profile : list or None
        Rows ``[edge, bin, median diff, p1, p2]`` along each plate's edges
        (:func:`edge_profile`).
    """

    plus: int
    minus: int
    a: float
    b: float
    c: float
    crpix1: float
    crpix2: float
    xmin: int
    xmax: int
    ymin: int
    ymax: int
    xcenter: float
    ycenter: float
    npixel: int
    rms: float
    boxx: float
    boxy: float
    boxwidth: float
    boxheight: float
    boxang: float
    sxx: float
    sxy: float
    syy: float
    l11: float
    l12: float
    l21: float
    l22: float
    t1: float
    t2: float
    plus_profile: list | None = None
    minus_profile: list | None = None

    def row(self) -> dict:
        """Every field, by name (JSON-ready)."""
        return asdict(self)

    def montage_row(self) -> dict:
        """The fields without the edge profiles (the ``fitcombo.tbl`` columns)."""
        row = self.row()
        row.pop("plus_profile")
        row.pop("minus_profile")
        return row


def ring_stride(grid: PlateGrid, samples: float = 2e6) -> int:
    """Sampling step of the overlap ring of a plate.

    Parameters
    ----------
    grid : PlateGrid
        The padded plate grid.
    samples : float, optional
        Wanted number of pixels in the ring (two paddings wide).

    Returns
    -------
    int
        The step, in pixels along each axis, that keeps the ring near ``samples`` pixels: 1
        (all of them) for small plates, 6 at order 9 with 512-pixel tiles.
    """
    ring = 4 * grid.shape(padded=True)[0] * 4 * grid.pad
    return max(1, int(np.ceil(np.sqrt(ring / samples))))


def _ring(grid: PlateGrid, width: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Array indices ``(rows, cols)`` of the padded plate's pixels within ``width`` of its
    border, every ``stride`` pixels."""
    side = grid.shape(padded=True)[0]
    idx = np.arange(0, side, stride)
    r, c = np.meshgrid(idx, idx, indexing="ij")
    near = (np.minimum(r, side - 1 - r) < width) | (np.minimum(c, side - 1 - c) < width)
    return r[near], c[near]


def _sky_index(grid: PlateGrid, plate: tuple[int, int], rows, cols):
    o1, o2 = grid.origin(*plate, padded=True)
    u1, u2 = plate_plane_pixels(grid, *plate, cols + o1, rows + o2)
    return plane_to_nested(u1, u2, grid.face_side), u1, u2


def overlap_pixels(grid: PlateGrid, plus: tuple[int, int], minus: tuple[int, int],
                   stride: int = 1) -> tuple[np.ndarray, ...]:
    """Pixel pairs of two padded plates that hold the same sky.

    Parameters
    ----------
    grid : PlateGrid
        The padded plate grid.
    plus, minus : (int, int)
        The plates ``(i, j)``.
    stride : int, optional
        Only pixels within two paddings of a plate's border can be shared; they are sampled
        every ``stride`` pixels along each axis (all of them with ``stride = 1``).

    Returns
    -------
    tuple of numpy.ndarray
        ``(rows_plus, cols_plus, rows_minus, cols_minus, how)``: 0-based array indices into
        each padded plate, and a label of how each pair was found (which plate's padding was
        unfolded across a polar cut and which wrap shift was applied); pairs with one label
        share one exact plus-to-minus map.
    """
    width = 2 * grid.pad
    side = grid.shape(padded=True)[0]
    n = grid.face_side
    found = []  # (plus rows, plus cols, minus rows, minus cols, label)
    ring = _ring(grid, width, stride)  # the same array indices on both plates
    for pass_, (first, second) in enumerate(((plus, minus), (minus, plus))):
        ra, ca = ring
        nest_a, u1, u2 = _sky_index(grid, first, ra, ca)
        o1, o2 = grid.origin(*first, padded=True)
        moved = (u1 != ca + o1) | (u2 != ra + o2)
        keep = nest_a >= 0
        ra, ca, nest_a, u1, u2, moved = (v[keep] for v in (ra, ca, nest_a, u1, u2, moved))
        q1, q2 = grid.origin(*second, padded=True)
        for k, shift in enumerate((0, 4 * n, -4 * n)):
            cb, rb = u1 + shift - q1, u2 + shift - q2
            inside = (cb >= 0) & (cb < side) & (rb >= 0) & (rb < side)
            if not inside.any():
                continue
            same = _sky_index(grid, second, rb[inside], cb[inside])[0] == nest_a[inside]
            sel = np.flatnonzero(inside)[same]
            label = 6 * pass_ + 2 * k + moved[sel].astype(np.int64)
            pair = (ra[sel], ca[sel], rb[sel], cb[sel]) if pass_ == 0 else (
                rb[sel], cb[sel], ra[sel], ca[sel])
            found.append((*pair, label))
    if not found:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty, empty
    rp, cp, rm, cm, how = (np.concatenate([f[k] for f in found]) for k in range(5))
    key = (rp * side + cp) * side * side + rm * side + cm
    _, first_seen = np.unique(key, return_index=True)
    return rp[first_seen], cp[first_seen], rm[first_seen], cm[first_seen], how[first_seen]


def fit_plane_clipped(x: np.ndarray, y: np.ndarray, z: np.ndarray, iterations: int = 10,
                      clip: float = 3.0) -> tuple[np.ndarray, float, np.ndarray]:
    """Least-squares plane ``z = a x + b y + c`` with sigma clipping.

    Each pass fits the kept pixels and keeps those within ``clip`` robust sigmas (1.4826 MAD of
    all residuals) of the plane, until the kept set stops changing. (mFitplane's rule,
    2 x the rms of the kept pixels, recomputed every pass, shrinks the set pass after pass even
    for Gaussian noise.)

    Parameters
    ----------
    x, y : numpy.ndarray
        Coordinates (any unit; the plane's slopes are per that unit).
    z : numpy.ndarray
        Values; NaN ones are left out.
    iterations : int, optional
        At most this many passes.
    clip : float, optional
        Rejection threshold in robust sigmas.

    Returns
    -------
    tuple
        ``(plane, rms, keep)``: ``array([a, b, c])``, the rms residual of the kept pixels and
        the boolean mask of the kept pixels.
    """
    keep = np.isfinite(z)
    # Centre and scale the coordinates for a well-conditioned solve.
    x0, y0 = x[keep].mean(), y[keep].mean()
    scale = max(np.ptp(x[keep]), np.ptp(y[keep]), 1.0)
    xs, ys = (x - x0) / scale, (y - y0) / scale
    coef = np.zeros(3)
    for _ in range(iterations):
        design = np.stack([xs[keep], ys[keep], np.ones(keep.sum())], axis=1)
        coef = np.linalg.lstsq(design, z[keep], rcond=None)[0]
        resid = z - (coef[0] * xs + coef[1] * ys + coef[2])
        finite = np.isfinite(resid)
        sigma = 1.4826 * np.median(np.abs(resid[finite] - np.median(resid[finite])))
        new = finite & (np.abs(resid) <= clip * max(sigma, 1e-12))
        if new.sum() < 3 or np.array_equal(new, keep):
            break
        keep = new
    rms = float(np.sqrt(np.mean(resid[keep] ** 2)))
    a, b = coef[0] / scale, coef[1] / scale
    return np.array([a, b, coef[2] - a * x0 - b * y0]), rms, keep


def pages_touched(rows: np.ndarray, cols: np.ndarray, ncols: int, itemsize: int = 4,
                  page: int = 4096) -> int:
    """Bytes of the memory pages an array of ``ncols`` columns (row-major, ``itemsize``-byte
    pixels, starting on a page boundary) holds at pixels ``(rows, cols)``: what reading those
    pixels from a memory-mapped file pulls from the disk, read-ahead aside."""
    offsets = (np.asarray(rows, np.int64) * ncols + np.asarray(cols, np.int64)) * itemsize
    return int(np.unique(offsets // page).size) * page


def fit_overlap(grid: PlateGrid, plus: tuple[int, int], minus: tuple[int, int],
                plus_data: np.ndarray, minus_data: np.ndarray, plus_id: int, minus_id: int,
                stride: int = 1, pixels: tuple[np.ndarray, ...] | None = None
                ) -> DifferenceFit | None:
    """Fit the difference ``plus - minus`` of two padded plates over their shared sky.

    Parameters
    ----------
    grid : PlateGrid
        The padded plate grid.
    plus, minus : (int, int)
        The plates ``(i, j)``.
    plus_data, minus_data : numpy.ndarray
        The padded plate arrays ``[row, col]`` (memory maps are fine: only the overlap is
        read).
    plus_id, minus_id : int
        The plates' ids, recorded in the fit.
    stride : int, optional
        Sampling step of the overlap (:func:`ring_stride`).
    pixels : tuple of numpy.ndarray, optional
        ``overlap_pixels(grid, plus, minus, stride)`` when the caller has it already.

    Returns
    -------
    DifferenceFit or None
        The fit, or None if the plates share fewer than 3 finite pixels.
    """
    rp, cp, rm, cm, how = pixels if pixels is not None else overlap_pixels(grid, plus, minus,
                                                                          stride)
    if len(rp) < 3:
        return None
    # One exact plus-to-minus map per fit: keep the largest way the plates meet (a pair of
    # small plates can also touch at a corner across the wrap or a cut).
    labels, counts = np.unique(how, return_counts=True)
    main = how == labels[np.argmax(counts)]
    rp, cp, rm, cm = rp[main], cp[main], rm[main], cm[main]
    z = np.asarray(plus_data[rp, cp], dtype=np.float64) - np.asarray(minus_data[rm, cm],
                                                                       dtype=np.float64)
    good = np.isfinite(z)
    if good.sum() < 3:
        return None
    rp, cp, rm, cm, z = rp[good], cp[good], rm[good], cm[good], z[good]
    crpix = plane_crpix(grid.face_side)
    po1, po2 = grid.origin(*plus, padded=True)
    mo1, mo2 = grid.origin(*minus, padded=True)
    pp1, pp2 = cp + po1, rp + po2  # plus plane pixels (raw, not wrapped)
    mp1, mp2 = cm + mo1, rm + mo2
    x, y = pp1 - crpix, pp2 - crpix
    plane, rms, keep = fit_plane_clipped(x, y, z)
    # p_minus = L p_plus + t, exact for the three kinds of overlap.
    design = np.stack([pp1, pp2, np.ones(len(pp1))], axis=1).astype(np.float64)
    m1 = np.linalg.lstsq(design, mp1.astype(np.float64), rcond=None)[0]
    m2 = np.linalg.lstsq(design, mp2.astype(np.float64), rcond=None)[0]
    # Profiles use every sample: the plane's clipping drops exactly where the mismatch
    # changes along the edge, which is what they must follow (bin medians reject outliers).
    plus_profile = edge_profile(grid, rp, cp, z, pp1, pp2)
    minus_profile = edge_profile(grid, rm, cm, z, mp1, mp2)
    xk, yk = x[keep], y[keep]
    mean = np.array([xk.mean(), yk.mean()])
    cov = np.cov(np.stack([xk, yk]), bias=True) if len(xk) > 1 else np.zeros((2, 2))
    evals, evecs = np.linalg.eigh(cov)
    angle = float(np.degrees(np.arctan2(evecs[1, 1], evecs[0, 1])))
    return DifferenceFit(
        plus=plus_id, minus=minus_id, a=float(plane[0]), b=float(plane[1]),
        c=float(plane[2]), crpix1=crpix, crpix2=crpix,
        xmin=int(np.floor(xk.min())), xmax=int(np.ceil(xk.max())),
        ymin=int(np.floor(yk.min())), ymax=int(np.ceil(yk.max())),
        xcenter=float(mean[0]), ycenter=float(mean[1]), npixel=int(keep.sum()) * stride**2,
        rms=rms, boxx=float(mean[0]), boxy=float(mean[1]),
        boxwidth=float(np.sqrt(12 * max(evals[1], 0.0))) or 1.0,
        boxheight=float(np.sqrt(12 * max(evals[0], 0.0))) or 1.0, boxang=angle,
        sxx=float(cov[0, 0]), sxy=float(cov[0, 1]), syy=float(cov[1, 1]),
        l11=float(m1[0]), l12=float(m1[1]), l21=float(m2[0]), l22=float(m2[1]),
        t1=float(m1[2]), t2=float(m2[2]),
        plus_profile=plus_profile, minus_profile=minus_profile,
    )


#: Bins along a plate edge for the mismatch profiles.
EDGE_BINS = 64


def edge_of(grid: PlateGrid, rows: np.ndarray, cols: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """The nearest edge of the unpadded plate to padded-plate pixels, and where along it.

    Parameters
    ----------
    grid : PlateGrid
        The padded plate grid.
    rows, cols : numpy.ndarray
        0-based indices into the padded plate array.

    Returns
    -------
    tuple of numpy.ndarray
        ``(edge, along)``: 0 bottom (first row), 1 top (last row), 2 left (first column),
        3 right (last column); and the 0-based unpadded pixel along that edge (a column for
        edges 0 and 1, a row for 2 and 3), clipped to the plate.
    """
    side = grid.plate_side
    r = rows - grid.pad
    c = cols - grid.pad
    dist = np.stack([np.abs(r), np.abs(side - 1 - r), np.abs(c), np.abs(side - 1 - c)])
    edge = np.argmin(dist, axis=0)
    along = np.where(edge < 2, c, r)
    return edge, np.clip(along, 0, side - 1)


def edge_profile(grid: PlateGrid, rows, cols, z, p1, p2) -> list:
    """Median of a difference along each edge of one plate, in :data:`EDGE_BINS` bins an edge.

    Parameters
    ----------
    grid : PlateGrid
        The padded plate grid.
    rows, cols : numpy.ndarray
        0-based indices of the samples in the padded plate array.
    z : numpy.ndarray
        The difference at the samples.
    p1, p2 : numpy.ndarray
        0-based plane pixels of the samples.

    Returns
    -------
    list
        Rows ``[edge, bin, median z, p1, p2]`` (:func:`edge_of` numbering; ``p1, p2`` the mean
        plane pixel of the bin's samples) for every bin with at least 3 samples.
    """
    edge, along = edge_of(grid, rows, cols)
    binw = max(1, grid.plate_side // EDGE_BINS)
    key = edge * EDGE_BINS + np.minimum(along // binw, EDGE_BINS - 1)
    order = np.argsort(key, kind="stable")
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    out = []
    for group in np.split(order, bounds):
        if len(group) >= 3:
            k = int(key[group[0]])
            out.append([k // EDGE_BINS, k % EDGE_BINS, float(np.median(z[group])),
                        float(p1[group].mean()), float(p2[group].mean())])
    return out
