"""Plate mosaics: the survey images touching a padded HPX plate, resampled onto it and averaged.

:func:`mosaic_plate` walks the padded plate in square blocks, finds for each block the images
whose cap meets the block's cap, computes the block's pixel positions in each image
(:class:`~hipsluigi.mosaic.images.ImageCache`) and hands them to a mosaic engine
(:mod:`hipsluigi.mosaic.engines`), which resamples and averages. With image matching, a first
walk over a sub-lattice of the plate solves one background plane per image from the images'
overlaps (:mod:`hipsluigi.mosaic.matching`) before the coadd. See ``docs/design.md``, "Plates
and orders", for the plates and their padding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from hipsluigi.geometry.plates import PlateGrid
from hipsluigi.geometry.sky import (
    block_cap,
    plane_pixel_vectors,
    plate_pixel_vectors,
    plate_plane_pixels,
)
from hipsluigi.mosaic.engines import MosaicEngine, TargetPlate, bilinear_sample, engine_for
from hipsluigi.mosaic.images import ImageCache
from hipsluigi.mosaic.matching import ImagePlanes, image_coordinates
from hipsluigi.surveys.base import SurveyImage


@dataclass
class MosaicResult:
    """A plate mosaic and what went into it.

    Attributes
    ----------
    data : numpy.ndarray
        The padded plate ``[row, col]``, float32, NaN where no image covers a pixel.
    count : numpy.ndarray
        int32, same shape: the number of images averaged into each pixel.
    used_images : list of str
        Keys of the images coadded, in order of first use.
    skipped_images : dict of str to str
        Key -> reason, for images that could not be used (the reason names the image).
    image_planes : dict of str to numpy.ndarray
        Key -> background plane ``(c, a, b)`` subtracted from the image before the coadd, with
        image matching (empty without). The plane is ``c + a u + b v`` in the image's
        normalised coordinates ``u = (x - x0)/s``, ``v = (y - y0)/s``
        (:func:`hipsluigi.mosaic.matching.image_coordinates`).
    """

    data: np.ndarray
    count: np.ndarray
    used_images: list[str] = field(default_factory=list)
    skipped_images: dict[str, str] = field(default_factory=dict)
    image_planes: dict[str, np.ndarray] = field(default_factory=dict)


def _blocks(shape: tuple[int, int], block: int):
    nrow, ncol = shape
    for r0 in range(0, nrow, block):
        rows = slice(r0, min(r0 + block, nrow))
        yield r0 // block, [(rows, slice(c0, min(c0 + block, ncol)))
                            for c0 in range(0, ncol, block)]


def mosaic_plate(
    grid: PlateGrid, i: int, j: int, images: Sequence[SurveyImage], map_frame: str,
    engine: str | MosaicEngine = "interp", block: int = 256, match_images: bool = False,
    match_stride: int = 4, progress: Callable[[int, int], None] | None = None,
) -> MosaicResult:
    """The mosaic of survey images on one padded plate.

    Parameters
    ----------
    grid : PlateGrid
        The deepest order's plate grid, with its padding.
    i, j : int
        The plate: ``i`` along plane columns (``p1``), ``j`` along rows (``p2``).
    images : sequence of SurveyImage
        The images; some may miss the plate. Images that cannot be read are skipped and
        reported in :attr:`MosaicResult.skipped_images`, never turned into zeros.
    map_frame : str
        The map's celestial frame (``galactic`` or ``equatorial``).
    engine : str or MosaicEngine, optional
        The mosaic engine, or its name in :data:`hipsluigi.mosaic.engines.ENGINES`
        (``[hips] reproject``).
    block : int, optional
        Side, in pixels, of the blocks the plate is walked in.
    match_images : bool, optional
        Subtract one background plane per image, solved from the images' overlaps on every
        ``match_stride``-th row and column of the plate, before the coadd.
    match_stride : int, optional
        Sampling step of the matching walk, in plate pixels.
    progress : callable, optional
        ``progress(done, total)``, called as the coadd walks the plate: ``done`` of the
        ``total`` images given are finished (an image is finished once the walk has passed
        the last band of blocks it can touch; one that touches none is finished at once).
        Called at the start and whenever ``done`` grows, last with ``done == total``.

    Returns
    -------
    MosaicResult

    Raises
    ------
    ValueError
        For an unknown engine name.
    """
    if isinstance(engine, str):
        engine = engine_for(engine)
    shape = grid.shape(padded=True)
    cache = ImageCache(images, map_frame)
    images = cache.images
    centres = np.array([image.centre for image in images]).reshape(-1, 3)
    radii = np.array([image.radius for image in images])
    bands = list(_blocks(shape, block))
    block_images = _block_images(grid, i, j, bands, centres, radii)
    last_band = _last_band_of_images(block_images, len(images))
    planes: dict[str, np.ndarray] = {}
    if match_images:
        planes = _match_images(grid, i, j, bands, block_images, cache, match_stride)
        cache.set_planes(planes)
    coadd = engine.start(TargetPlate(grid, i, j, map_frame, block), cache)
    reported = -1

    def report(done: int) -> None:
        nonlocal reported
        if progress is not None and done > reported:
            reported = done
            progress(done, len(images))

    report(int(np.count_nonzero(last_band < 0)))
    for (band, blocks), nears in zip(bands, block_images, strict=True):
        for (rows, cols), near in zip(blocks, nears, strict=True):
            if not len(near):
                continue
            vec = plate_pixel_vectors(grid, i, j, rows, cols)
            on_sky = np.isfinite(vec[..., 0])
            all_sky = on_sky.all()
            sky_vec = vec.reshape(-1, 3) if all_sky else vec[on_sky]
            coadd.begin_block(rows, cols, on_sky, all_sky)
            for k in near:
                data = cache.get(k)
                if data is None:
                    continue
                x, y = cache.positions(k, sky_vec)
                coadd.add(k, data, x, y)
            coadd.end_block()
        for k in np.flatnonzero(last_band == band):
            coadd.image_done(k)
        report(int(np.count_nonzero(last_band <= band)))
    report(len(images))
    data, count = coadd.finish()
    return MosaicResult(data, count, cache.used, cache.skipped, planes)


def _block_images(grid, i, j, bands, centres, radii) -> list[list[np.ndarray]]:
    """For each band of blocks, for each block: the images whose cap meets the block's cap
    (none for a block off the sky), the images the walks give that block."""
    out = []
    for _, blocks in bands:
        row = []
        for rows, cols in blocks:
            centre, radius = block_cap(grid, i, j, rows, cols)
            if not np.isfinite(centre[0]) or not len(centres):
                row.append(np.empty(0, dtype=np.int64))
                continue
            row.append(np.flatnonzero(np.arccos(np.clip(centres @ centre, -1, 1))
                                      <= radii + radius))
        out.append(row)
    return out


def _strided_vectors(grid, i, j, rows: slice, cols: slice, stride: int) -> np.ndarray:
    """Unit vectors of every ``stride``-th row and column of block ``[rows, cols]``."""
    p1_0, p2_0 = grid.origin(i, j, padded=True)
    p2 = np.arange(rows.start, rows.stop, stride) + p2_0
    p1 = np.arange(cols.start, cols.stop, stride) + p1_0
    u1, u2 = plate_plane_pixels(grid, i, j, *np.broadcast_arrays(p1[None, :], p2[:, None]))
    return plane_pixel_vectors(u1, u2, grid.face_side)


def _match_images(grid, i, j, bands, block_images, cache, stride):
    """First walk: per-pair overlap statistics on a sub-lattice, then the image planes."""
    solver = ImagePlanes()
    for (_, blocks), nears in zip(bands, block_images, strict=True):
        for (rows, cols), near in zip(blocks, nears, strict=True):
            if not len(near):
                continue
            vec = _strided_vectors(grid, i, j, rows, cols, stride)
            sky_idx = np.flatnonzero(np.isfinite(vec[..., 0]))
            sky_vec = vec.reshape(-1, 3)[sky_idx]
            samples = []
            for k in near:
                data = cache.get(k)
                if data is None:
                    continue
                x, y = cache.positions(k, sky_vec)
                inside, values = bilinear_sample(data, x, y)
                good = np.isfinite(values)
                u, v = image_coordinates(x[inside][good], y[inside][good], data.shape)
                samples.append((solver.image_index(cache.images[k].key),
                                np.flatnonzero(inside)[good], values[good], u, v))
            for a in range(len(samples)):
                for b in range(a + 1, len(samples)):
                    fa, ia, va, ua, wa = samples[a]
                    fb, ib, vb, ub, wb = samples[b]
                    _, ka, kb = np.intersect1d(ia, ib, assume_unique=True, return_indices=True)
                    solver.add(fa, fb, ua[ka], wa[ka], ub[kb], wb[kb], va[ka] - vb[kb])
    return solver.solve()


def _last_band_of_images(block_images: list[list[np.ndarray]], nimages: int) -> np.ndarray:
    """Index of the last band with a block that uses each image (-1: none): after it the walk
    no longer asks for the image, so its pixels can be freed.

    Taken block by block: a cap around a whole band, which on a plate many blocks wide spans
    much more sky than its blocks, kept images loaded long after their last block, and a
    plate's images overran the cache and were read again (2.5 times each on the order-5
    measured run)."""
    last = np.full(nimages, -1)
    for band, nears in enumerate(block_images):
        for near in nears:
            last[near] = band
    return last
