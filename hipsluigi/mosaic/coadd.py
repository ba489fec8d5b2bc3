"""Plate mosaics: the frames touching a padded HPX plate, resampled onto it and averaged.

Two engines, selected by ``[hips] reproject``:

* ``interp`` (default): bilinear interpolation with reproject_interp's rules (a plate pixel takes
  a frame's value if its centre falls within the frame's outer pixel edges; NaN neighbours give
  NaN), but each plate pixel's sky position is computed once per plate, through healpy, instead
  of once per frame through the plate's WCS. That is what makes it several times faster, and it
  fills the whole of cell (0, 0) across the +/-180 degree wrap without a second pass.
* ``reproject_interp``, ``reproject_exact``, ``reproject_adaptive``: reproject's functions, run
  per frame on the plate sub-image that the frame touches; plates reaching past the wrap are
  reprojected a second time onto the plane copy shifted by ``(4N, 4N)`` and the two merged.

Overlapping frames are combined with a plain mean (Hipsgen's ``overlayMean``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from astropy.wcs import WCS

from hipsluigi.background.frames import FramePlanes, frame_coordinates, plane_values
from hipsluigi.geometry.frames import astropy_frame, frame_of_wcs, rotation_matrix, vec_to_lonlat
from hipsluigi.geometry.hpx import plane_wcs_header
from hipsluigi.geometry.plates import PlateGrid
from hipsluigi.geometry.sky import (
    block_cap,
    plane_pixel_vectors,
    plate_pixel_vectors,
    plate_plane_pixels,
)
from hipsluigi.geometry.tan import (
    CarProjection,
    TanProjection,
    car_projection,
    tan_projection,
)
from hipsluigi.surveys.base import BadFrameError, Frame

log = logging.getLogger("hipsluigi.mosaic")

METHODS = ("interp", "reproject_interp", "reproject_exact", "reproject_adaptive")


@dataclass
class MosaicResult:
    """A plate mosaic: ``image`` (float32, NaN where no frame), ``count`` of frames per pixel,
    the keys of the frames used, ``skipped``: ``{frame key: reason}`` for unusable frames, and
    ``planes``: ``{frame key: (c, a, b)}`` subtracted when frames were matched."""

    image: np.ndarray
    count: np.ndarray
    used: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    planes: dict[str, np.ndarray] = field(default_factory=dict)


def bilinear_sample(data: np.ndarray, x: np.ndarray, y: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear samples of ``data`` at 0-based pixel positions ``(x, y)`` (x along columns).

    Returns ``(inside, values)``: ``inside`` marks positions within the outer pixel edges
    (``-0.5 <= x <= nx - 0.5``, likewise ``y``); ``values`` are the samples there, clamped to
    the edge pixels within the outer half pixel, NaN if a neighbour is NaN (reproject_interp's
    behaviour).
    """
    ny, nx = data.shape
    if nx < 2 or ny < 2:
        raise ValueError(f"bilinear sampling needs at least 2 x 2 pixels, got {data.shape}")
    inside = (x >= -0.5) & (x <= nx - 0.5) & (y >= -0.5) & (y <= ny - 0.5)
    if not inside.all():  # most blocks lie wholly inside a frame: skip the gathers there
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


class _FrameCache:
    """Loads each frame once per plate (within a memory budget); applies background planes;
    remembers frames that cannot be used and why."""

    def __init__(self, map_frame: str, budget_bytes: float = 2e9):
        self.map_frame = astropy_frame(map_frame)
        self.data: dict[str, np.ndarray] = {}  # insertion order = least recently loaded first
        self.projections: dict[str, object] = {}
        self.skipped: dict[str, str] = {}
        self.used: list[str] = []
        self.planes: dict[str, np.ndarray] = {}
        self.budget = budget_bytes
        self.nbytes = 0

    def get(self, frame: Frame) -> np.ndarray | None:
        if frame.key in self.skipped:
            return None
        if frame.key not in self.data:
            try:
                rot = rotation_matrix(self.map_frame, frame_of_wcs(frame.wcs))
                data = frame.load()
                if min(data.shape) < 2:
                    raise BadFrameError(f"{frame.key}: image {data.shape} is too small")
            except (BadFrameError, ValueError, OSError) as err:
                reason = str(err) if frame.key in str(err) else f"{frame.key}: {err}"
                log.warning("skipping frame %s", reason)
                self.skipped[frame.key] = reason
                return None
            if frame.key in self.planes:
                data = data - _plane_image(self.planes[frame.key], data.shape)
            while self.data and self.nbytes + data.nbytes > self.budget:
                self.release(next(iter(self.data)))
            self.data[frame.key] = data
            self.nbytes += data.nbytes
            if frame.key not in self.projections:
                fast = tan_projection(frame.wcs) or car_projection(frame.wcs)
                self.projections[frame.key] = (fast.rotated(rot) if fast is not None
                                               else partial(_wcs_pixels, frame.wcs, rot))
                self.used.append(frame.key)
        return self.data[frame.key]

    def set_planes(self, planes: dict[str, np.ndarray]) -> None:
        """From now on, frames come with their background plane subtracted."""
        self.planes = planes
        for key, data in self.data.items():
            if key in planes:
                data -= _plane_image(planes[key], data.shape)

    def release(self, key: str) -> None:
        data = self.data.pop(key, None)
        if data is not None:
            self.nbytes -= data.nbytes


def _plane_image(params: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
    return plane_values(params, *frame_coordinates(xs, ys, shape))


def _wcs_pixels(wcs: WCS, rotation: np.ndarray, vec: np.ndarray) -> tuple[np.ndarray, ...]:
    lon, lat = vec_to_lonlat(vec @ rotation.T)
    return wcs.world_to_pixel_values(lon, lat)


def frame_pixels(projection, vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0-based pixel positions ``(x, y)`` of map-frame unit vectors ``(..., 3)`` in a frame.

    ``projection`` is a :class:`TanProjection` or :class:`CarProjection` already rotated to the
    map frame, or a callable wrapping the frame's WCS (any projection, distortions included).
    """
    if isinstance(projection, TanProjection | CarProjection):
        return projection.vectors_to_pixels(vec)
    return projection(vec)


def _blocks(shape: tuple[int, int], block: int):
    nrow, ncol = shape
    for r0 in range(0, nrow, block):
        rows = slice(r0, min(r0 + block, nrow))
        yield r0 // block, [(rows, slice(c0, min(c0 + block, ncol)))
                            for c0 in range(0, ncol, block)]


def mosaic_plate(
    grid: PlateGrid, i: int, j: int, frames: Sequence[Frame], map_frame: str,
    method: str = "interp", block: int = 256, match_frames: bool = False,
    match_stride: int = 4,
) -> MosaicResult:
    """Mosaic of ``frames`` on padded plate ``(i, j)`` of ``grid`` (map frame ``map_frame``).

    With ``match_frames``, a first pass over every ``match_stride``-th row and column solves one
    background plane per frame from their overlaps (:mod:`hipsluigi.background.frames`), and
    the frames are coadded with their planes subtracted; ``MosaicResult.planes`` holds them.
    ``frames`` may include frames that miss the plate; frames that cannot be read are skipped
    and reported in ``MosaicResult.skipped``, never turned into zeros.
    """
    if method not in METHODS:
        raise ValueError(f"[hips] reproject must be one of {METHODS}, got {method!r}")
    shape = grid.shape(padded=True)
    # The interp engine completes a block before the next, so it sums in block-sized buffers
    # and writes each block's mean straight into the image: plate-sized float64 temporaries
    # cost more in page faults than the arithmetic on them.
    image = np.full(shape, np.nan, dtype=np.float32)
    count = np.zeros(shape, dtype=np.int32)
    if method == "interp":
        total_buf, count_buf = np.empty(block * block), np.empty(block * block, np.int32)
    else:
        total = np.zeros(shape)
    cache = _FrameCache(map_frame)
    frames = list(frames)
    centres = np.array([f.centre for f in frames]).reshape(-1, 3)
    radii = np.array([f.radius for f in frames])
    bands = list(_blocks(shape, block))
    last_band = _last_band_of_frames(grid, i, j, bands, centres, radii)
    planes: dict[str, np.ndarray] = {}
    if match_frames:
        planes = _match_frames(grid, i, j, frames, centres, radii, bands, cache, match_stride)
        cache.set_planes(planes)
    footprints: dict[int, list[int]] = {}  # frame index -> [r0, r1, c0, c1] it touches

    for band, blocks in bands:
        for rows, cols in blocks:
            near, vec = _near_frames(grid, i, j, rows, cols, centres, radii)
            if vec is None:
                continue
            on_sky = np.isfinite(vec[..., 0])
            all_sky = on_sky.all()
            sky_vec = vec.reshape(-1, 3) if all_sky else vec[on_sky]
            if method == "interp":
                # Contiguous views (also for short edge blocks), so ravel() never copies.
                b_total = total_buf[:on_sky.size].reshape(on_sky.shape)
                b_count = count_buf[:on_sky.size].reshape(on_sky.shape)
                b_total.fill(0.0)
                b_count.fill(0)
            for k in near:
                data = cache.get(frames[k])
                if data is None:
                    continue
                x, y = frame_pixels(cache.projections[frames[k].key], sky_vec)
                if method == "interp":
                    inside, values = bilinear_sample(data, x, y)
                    _accumulate(b_total, b_count, on_sky, all_sky, inside, values)
                else:
                    ny, nx = data.shape
                    if np.any((x >= -0.5) & (x <= nx - 0.5) & (y >= -0.5) & (y <= ny - 0.5)):
                        fp = footprints.setdefault(k, [rows.start, rows.stop, cols.start,
                                                       cols.stop])
                        fp[:] = [min(fp[0], rows.start), max(fp[1], rows.stop),
                                 min(fp[2], cols.start), max(fp[3], cols.stop)]
            if method == "interp":
                count[rows, cols] = b_count
                np.divide(b_total, b_count, out=image[rows, cols], where=b_count > 0)
        if method == "interp":
            for k in np.flatnonzero(last_band == band):
                cache.release(frames[k].key)

    if method != "interp":
        for k, (r0, r1, c0, c1) in footprints.items():
            data = cache.get(frames[k])
            if data is not None:
                _reproject_frame(grid, i, j, frames[k], data, method, map_frame, total, count,
                                 slice(r0, r1), slice(c0, c1))
                cache.release(frames[k].key)
        np.divide(total, count, out=image, where=count > 0)
    return MosaicResult(image, count, cache.used, cache.skipped, planes)


def _near_frames(grid, i, j, rows, cols, centres, radii, stride: int = 1):
    """Frames whose cap meets a block, and the block's pixel vectors (None if off the sky)."""
    centre, radius = block_cap(grid, i, j, rows, cols)
    if not np.isfinite(centre[0]):
        return [], None
    near = np.flatnonzero(np.arccos(np.clip(centres @ centre, -1, 1)) <= radii + radius)
    if len(near) == 0:
        return [], None
    if stride > 1:
        rows = slice(rows.start, rows.stop, stride)
        cols = slice(cols.start, cols.stop, stride)
        p1_0, p2_0 = grid.origin(i, j, padded=True)
        p2 = np.arange(rows.start, rows.stop, stride) + p2_0
        p1 = np.arange(cols.start, cols.stop, stride) + p1_0
        u1, u2 = plate_plane_pixels(grid, i, j, *np.broadcast_arrays(p1[None, :],
                                                                      p2[:, None]))
        return near, plane_pixel_vectors(u1, u2, grid.face_side)
    return near, plate_pixel_vectors(grid, i, j, rows, cols)


def _match_frames(grid, i, j, frames, centres, radii, bands, cache, stride):
    """First pass: per-pair overlap statistics on a sub-lattice, then the frame planes."""
    solver = FramePlanes()
    for _, blocks in bands:
        for rows, cols in blocks:
            near, vec = _near_frames(grid, i, j, rows, cols, centres, radii, stride)
            if vec is None:
                continue
            sky_idx = np.flatnonzero(np.isfinite(vec[..., 0]))
            sky_vec = vec.reshape(-1, 3)[sky_idx]
            samples = []
            for k in near:
                data = cache.get(frames[k])
                if data is None:
                    continue
                x, y = frame_pixels(cache.projections[frames[k].key], sky_vec)
                inside, values = bilinear_sample(data, x, y)
                good = np.isfinite(values)
                u, v = frame_coordinates(x[inside][good], y[inside][good], data.shape)
                samples.append((solver.frame(frames[k].key),
                                np.flatnonzero(inside)[good], values[good], u, v))
            for a in range(len(samples)):
                for b in range(a + 1, len(samples)):
                    fa, ia, va, ua, wa = samples[a]
                    fb, ib, vb, ub, wb = samples[b]
                    _, ka, kb = np.intersect1d(ia, ib, assume_unique=True, return_indices=True)
                    solver.add(fa, fb, ua[ka], wa[ka], ub[kb], wb[kb], va[ka] - vb[kb])
    return solver.solve()


def _accumulate(total, count, on_sky, all_sky, inside, values) -> None:
    """Add a frame's ``values`` (at the ``inside`` ones of the block's ``on_sky`` pixels) to a
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


def _last_band_of_frames(grid, i, j, bands, centres, radii) -> np.ndarray:
    """Index of the last band of blocks each frame can touch (to free its pixels after it)."""
    last = np.full(len(centres), -1)
    for band, blocks in bands:
        rows = blocks[0][0]
        cols = slice(0, blocks[-1][1].stop)
        centre, radius = block_cap(grid, i, j, rows, cols, samples=17)
        if np.isfinite(centre[0]) and len(centres):
            hit = np.arccos(np.clip(centres @ centre, -1, 1)) <= radii + radius
            last[hit] = band
    return last


def _reproject_frame(grid, i, j, frame, data, method, map_frame, total, count, rows, cols):
    import reproject

    func = getattr(reproject, method)
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
        header = plane_wcs_header(grid.order, grid.tile_width, map_frame,
                                  crpix_shift=(p1_lo + shift, p2_lo + shift),
                                  naxis=(shape[1], shape[0]))
        out, footprint = func((data, frame.wcs), WCS(header), shape_out=shape)
        fill = np.isnan(merged) & (footprint > 0) & np.isfinite(out)
        merged[fill] = out[fill]
    vec = plate_pixel_vectors(grid, i, j, rows, cols)
    merged[~np.isfinite(vec[..., 0])] = np.nan
    good = np.isfinite(merged)
    total[rows, cols][good] += merged[good]
    count[rows, cols][good] += 1
