"""Mosaic engines: how survey images are resampled onto a plate and averaged.

:func:`~hipsluigi.mosaic.coadd.mosaic_plate` walks a plate block by block and hands every
block's images to an engine, chosen once by name with :func:`engine_for` (``[hips] reproject``),
as reproject's ``reproject_and_coadd`` takes its ``reproject_function``:

* ``interp`` (:class:`InterpEngine`, the default): bilinear interpolation with
  reproject_interp's rules (:func:`bilinear_sample`), at plate pixel positions computed once per
  plate through healpy rather than once per image through the plate's WCS. It completes each
  block before the next, and fills the whole of cell (0, 0) across the +/-180 degree wrap
  without a second pass.
* ``reproject_interp``, ``reproject_exact``, ``reproject_adaptive`` (:class:`ReprojectEngine`):
  reproject's functions, run per image once the walk has found the plate sub-image the image
  touches; plates reaching past the wrap are reprojected a second time onto the plane copy
  shifted by ``(4N, 4N)`` and the two merged.

Overlapping images are combined with a plain mean (Hipsgen's ``overlayMean``). Plate arrays are
``[row, col]`` with ``col`` along the plane's ``p1`` (FITS axis 1); image pixel positions are
0-based with ``x`` along columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from astropy.wcs import WCS

from hipsluigi.geometry.hpx import plane_wcs_header
from hipsluigi.geometry.plates import PlateGrid
from hipsluigi.geometry.sky import plate_pixel_vectors
from hipsluigi.mosaic.images import ImageCache


@dataclass(frozen=True)
class TargetPlate:
    """The padded plate being mosaicked.

    Attributes
    ----------
    grid : PlateGrid
        The plate grid (its padding included).
    i, j : int
        The plate: ``i`` along plane columns (``p1``), ``j`` along rows (``p2``).
    map_frame : str
        The map's celestial frame.
    block : int
        Side, in pixels, of the blocks the plate is walked in.
    """

    grid: PlateGrid
    i: int
    j: int
    map_frame: str
    block: int

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the padded plate."""
        return self.grid.shape(padded=True)


class PlateCoadd(Protocol):
    """One plate's accumulation by an engine (what :meth:`MosaicEngine.start` returns).

    The walk calls, for every block of plate pixels that some image may touch,
    :meth:`begin_block`, then :meth:`add` once per usable image, then :meth:`end_block`; after
    each band of blocks, :meth:`image_done` for every image no later block can touch; at the
    end, :meth:`finish`.
    """

    def begin_block(self, rows: slice, cols: slice, on_sky: np.ndarray, all_sky: bool) -> None:
        """Start block ``[rows, cols]``; ``on_sky`` marks its pixels that hold sky (``all_sky``:
        all of them)."""

    def add(self, k: int, data: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        """Add image ``k``, pixels ``data`` ``[row, col]``, at 0-based positions ``(x, y)`` of
        the block's on-sky pixels (in row-major order)."""

    def end_block(self) -> None:
        """The block has seen all its images."""

    def image_done(self, k: int) -> None:
        """No later block touches image ``k``."""

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """The plate: its mean (float32, NaN where no image) and the number of images averaged
        into each pixel (int32)."""


class MosaicEngine(Protocol):
    """A way to resample and average survey images onto plates."""

    #: The ``[hips] reproject`` value that selects the engine.
    name: str

    def start(self, plate: TargetPlate, cache: ImageCache) -> PlateCoadd:
        """A fresh accumulation of ``plate`` from the images of ``cache``."""
        ...


def _inside(x: np.ndarray, y: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Positions within an image's outer pixel edges, ``-0.5 <= x <= nx - 0.5`` (and ``y``)."""
    ny, nx = shape
    return (x >= -0.5) & (x <= nx - 0.5) & (y >= -0.5) & (y <= ny - 0.5)


def bilinear_sample(data: np.ndarray, x: np.ndarray, y: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear samples of an image at pixel positions, with reproject_interp's edge rules.

    Parameters
    ----------
    data : numpy.ndarray
        The image ``[row, col]``, at least 2 x 2.
    x, y : numpy.ndarray
        0-based pixel positions, ``x`` along columns and ``y`` along rows (pixel centres at
        integers).

    Returns
    -------
    tuple of numpy.ndarray
        ``(inside, values)``: ``inside`` marks positions within the outer pixel edges
        (``-0.5 <= x <= nx - 0.5``, likewise ``y``); ``values`` are the samples there (one per
        true ``inside``), clamped to the edge pixels within the outer half pixel, NaN if a
        neighbour is NaN.

    Raises
    ------
    ValueError
        If ``data`` is smaller than 2 x 2.
    """
    ny, nx = data.shape
    if nx < 2 or ny < 2:
        raise ValueError(f"bilinear sampling needs at least 2 x 2 pixels, got {data.shape}")
    inside = _inside(x, y, data.shape)
    if not inside.all():  # most blocks lie wholly inside an image: skip the gathers there
        x, y = x[inside], y[inside]
    xs = np.clip(x, 0.0, nx - 1)
    ys = np.clip(y, 0.0, ny - 1)
    x0 = np.minimum(xs.astype(np.intp), max(nx - 2, 0))
    y0 = np.minimum(ys.astype(np.intp), max(ny - 2, 0))
    fx = xs - x0
    fy = ys - y0
    # With at least 2 x 2 pixels, x0 + 1 and y0 + 1 stay inside.
    flat = data.ravel()
    i00 = y0 * nx + x0
    top = flat[i00] * (1 - fx) + flat[i00 + 1] * fx
    i00 += nx
    bottom = flat[i00] * (1 - fx) + flat[i00 + 1] * fx
    values = top * (1 - fy) + bottom * fy
    return inside, values


@dataclass(frozen=True)
class InterpEngine:
    """The fast bilinear engine (see the module docstring)."""

    name: str = "interp"

    def start(self, plate: TargetPlate, cache: ImageCache) -> PlateCoadd:
        """A fresh accumulation of ``plate`` (see :meth:`MosaicEngine.start`)."""
        return _InterpCoadd(plate, cache)


class _InterpCoadd:
    """Sums each block in block-sized buffers and writes its mean straight into the plate:
    plate-sized float64 temporaries cost more in page faults than the arithmetic on them."""

    def __init__(self, plate: TargetPlate, cache: ImageCache):
        self.cache = cache
        self.image = np.full(plate.shape, np.nan, dtype=np.float32)
        self.count = np.zeros(plate.shape, dtype=np.int32)
        self.total_buf = np.empty(plate.block * plate.block)
        self.count_buf = np.empty(plate.block * plate.block, np.int32)

    def begin_block(self, rows: slice, cols: slice, on_sky: np.ndarray, all_sky: bool) -> None:
        self.rows, self.cols, self.on_sky, self.all_sky = rows, cols, on_sky, all_sky
        # Contiguous views (also for short edge blocks), so ravel() never copies.
        self.b_total = self.total_buf[:on_sky.size].reshape(on_sky.shape)
        self.b_count = self.count_buf[:on_sky.size].reshape(on_sky.shape)
        self.b_total.fill(0.0)
        self.b_count.fill(0)

    def add(self, k: int, data: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        inside, values = bilinear_sample(data, x, y)
        _accumulate(self.b_total, self.b_count, self.on_sky, self.all_sky, inside, values)

    def end_block(self) -> None:
        self.count[self.rows, self.cols] = self.b_count
        np.divide(self.b_total, self.b_count, out=self.image[self.rows, self.cols],
                  where=self.b_count > 0)

    def image_done(self, k: int) -> None:
        self.cache.release(k)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        return self.image, self.count


def _accumulate(total, count, on_sky, all_sky, inside, values) -> None:
    """Add an image's ``values`` (at the ``inside`` ones of the block's ``on_sky`` pixels) to a
    block's ``total`` and ``count``."""
    good = np.isfinite(values)
    if all_sky and len(values) == total.size and good.all():
        total += values.reshape(total.shape)
        count += 1
        return
    if not good.any():
        return
    idx = np.flatnonzero(on_sky.ravel())
    if not inside.all():
        idx = idx[inside]
    idx = idx[good]
    total.ravel()[idx] += values[good]  # block buffers are contiguous: ravel() is a view
    count.ravel()[idx] += 1


@dataclass(frozen=True)
class ReprojectEngine:
    """An engine running one of reproject's functions (see the module docstring).

    Attributes
    ----------
    name : str
        ``reproject_interp``, ``reproject_exact`` or ``reproject_adaptive``: the function of
        the ``reproject`` package.
    """

    name: str

    def start(self, plate: TargetPlate, cache: ImageCache) -> PlateCoadd:
        """A fresh accumulation of ``plate`` (see :meth:`MosaicEngine.start`)."""
        return _ReprojectCoadd(self.name, plate, cache)


class _ReprojectCoadd:
    """The walk only finds the rectangle of plate pixels each image touches; :meth:`finish`
    reprojects each image onto its rectangle (its pixels stay loaded until then)."""

    def __init__(self, function: str, plate: TargetPlate, cache: ImageCache):
        self.function, self.plate, self.cache = function, plate, cache
        self.total = np.zeros(plate.shape)
        self.count = np.zeros(plate.shape, dtype=np.int32)
        self.footprints: dict[int, list[int]] = {}  # image index -> [r0, r1, c0, c1] it touches

    def begin_block(self, rows: slice, cols: slice, on_sky: np.ndarray, all_sky: bool) -> None:
        self.rows, self.cols = rows, cols

    def add(self, k: int, data: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        if np.any(_inside(x, y, data.shape)):
            rows, cols = self.rows, self.cols
            fp = self.footprints.setdefault(k, [rows.start, rows.stop, cols.start, cols.stop])
            fp[:] = [min(fp[0], rows.start), max(fp[1], rows.stop),
                     min(fp[2], cols.start), max(fp[3], cols.stop)]

    def end_block(self) -> None:
        pass

    def image_done(self, k: int) -> None:
        pass  # finish() reprojects it

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        for k, (r0, r1, c0, c1) in self.footprints.items():
            data = self.cache.get(k)
            if data is not None:
                _reproject_image(self.plate, self.cache.images[k].wcs, data, self.function,
                                 self.total, self.count, slice(r0, r1), slice(c0, c1))
                self.cache.release(k)
        image = np.full(self.plate.shape, np.nan, dtype=np.float32)
        np.divide(self.total, self.count, out=image, where=self.count > 0)
        return image, self.count


def _reproject_image(plate: TargetPlate, wcs: WCS, data: np.ndarray, function: str,
                     total: np.ndarray, count: np.ndarray, rows: slice, cols: slice) -> None:
    """Reproject ``data`` (WCS ``wcs``) onto ``[rows, cols]`` of the plate; add it to
    ``total`` and ``count`` where finite."""
    import reproject

    func = getattr(reproject, function)
    grid, i, j = plate.grid, plate.i, plate.j
    n = grid.face_side
    o1, o2 = grid.origin(i, j, padded=True)
    shape = (rows.stop - rows.start, cols.stop - cols.start)
    p1_lo, p2_lo = o1 + cols.start, o2 + rows.start
    p1_hi, p2_hi = o1 + cols.stop - 1, o2 + rows.stop - 1
    # WCSLIB refuses |x| > 180 deg, i.e. p1 + p2 + 1 < N or > 9N: use the (4N, 4N) copies there.
    shifts = [0]
    if p1_lo + p2_lo + 1 < n:
        shifts.append(4 * n)
    if p1_hi + p2_hi + 1 > 9 * n:
        shifts.append(-4 * n)
    merged = np.full(shape, np.nan)
    for shift in shifts:
        header = plane_wcs_header(grid.order, grid.tile_width, plate.map_frame,
                                  crpix_shift=(p1_lo + shift, p2_lo + shift),
                                  naxis=(shape[1], shape[0]))
        out, footprint = func((data, wcs), WCS(header), shape_out=shape)
        fill = np.isnan(merged) & (footprint > 0) & np.isfinite(out)
        merged[fill] = out[fill]
    vec = plate_pixel_vectors(grid, i, j, rows, cols)
    merged[~np.isfinite(vec[..., 0])] = np.nan
    good = np.isfinite(merged)
    total[rows, cols][good] += merged[good]
    count[rows, cols][good] += 1


#: The engines by ``[hips] reproject`` name.
ENGINES: dict[str, MosaicEngine] = {engine.name: engine for engine in (
    InterpEngine(),
    ReprojectEngine("reproject_interp"),
    ReprojectEngine("reproject_exact"),
    ReprojectEngine("reproject_adaptive"),
)}


def engine_for(name: str) -> MosaicEngine:
    """The mosaic engine called ``name``.

    Parameters
    ----------
    name : str
        A key of :data:`ENGINES` (``[hips] reproject``).

    Returns
    -------
    MosaicEngine

    Raises
    ------
    ValueError
        For an unknown name.
    """
    try:
        return ENGINES[name]
    except KeyError:
        raise ValueError(f"[hips] reproject must be one of {tuple(ENGINES)}, got {name!r}"
                         ) from None
