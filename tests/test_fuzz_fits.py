"""Fuzzing ``survey = fits``: a thousand and more mutated real images, none fatal, none misplaced.

Each example is one mutant of a real image shipped with astropy (:mod:`tests.fits_mutants`: the
TAN int16 m13, the AZP 1904-66 with NaNs beyond its edge, the TAN-SIP uint16 sip-wcs), alone in
a folder. The survey indexes it (:func:`~hipsluigi.surveys.fits_folder.scan_folder`) and the
plate mosaics of every plate it touches are made (order 0, 64-pixel tiles, padded plates, the
``interp`` engine); neither may raise. Then either

* the file is rejected with a reason (an index row ``skipped``, or the mosaics' skipped images),
  and files whose header holds a card WCSLIB or the scaling would silently replace
  (:func:`tests.fits_mutants.header_problems`) must be; or
* it is placed exactly where astropy puts it: at every HEALPix pixel centre (healpy, NESTED)
  near the image or holding data, the map equals a bilinear sample (scipy's
  ``map_coordinates``, order 1, reproject's edge rule) of the pixels read by hand (BSCALE,
  BZERO and BLANK applied here) at the position astropy gives: ``SkyCoord`` moved to the image's
  frame, ``world_to_pixel`` of astropy's full WCS (numbers read as astropy.io.fits reads them),
  kept only where ``pixel_to_world`` maps it back (no inverse "ghosts").

The summary (``pytest -s``) counts the mutants, the rejections by kind, the files placed and the
largest placement and value errors. ``HIPSLUIGI_FUZZ_EXAMPLES`` sets the number of mutants
(default 1,000, :data:`REGRESSIONS` included; hypothesis runs them derandomized, so CI draws the
same files every time).
"""

from __future__ import annotations

import os
import re
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import cache

import healpy as hp
import numpy as np
import pytest
from astropy import log as astropy_log
from astropy.coordinates import Galactic, SkyCoord
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import wcs_to_celestial_frame
from hypothesis import HealthCheck, example, given, settings
from scipy.ndimage import map_coordinates

from hipsluigi.geometry.plates import PlateGrid, default_pad
from hipsluigi.geometry.sky import plate_cap
from hipsluigi.geometry.wcs_mapping import image_projection
from hipsluigi.mosaic.coadd import mosaic_plate
from hipsluigi.surveys.base import caps_intersect
from hipsluigi.surveys.fits_folder import FitsFolderSurvey, scan_folder
from tests.fits_mutants import (
    BITPIX_DTYPES,
    BLOCK,
    WCS_NUMBER_KEYS,
    Mutant,
    header_cards,
    header_problems,
    mutants,
)

ORDER = 0
WIDTH = 64
NSIDE = WIDTH << ORDER
NPLATE = 5
FRAME = "galactic"
EXAMPLES = int(os.environ.get("HIPSLUIGI_FUZZ_EXAMPLES", "1000"))  # with the REGRESSIONS

#: Positions closer than this (pixels) to an image's outer edge may fall either side of it:
#: the fast projections agree with astropy's to 1e-6 pixel.
EDGE = 1e-5
#: A position astropy's inverse gives is a true one when mapping it back lands within this
#: many (local) pixels of the direction asked for, a "ghost" beyond ``GHOST`` or where it does
#: not map back at all; in between (or with no local pixel size) it is left out of the
#: comparison, and counted.
TRUE, GHOST = 1e-3, 0.1


@dataclass
class Stats:
    """What the fuzzing found (printed as the summary table)."""

    mutants: int = 0
    bases: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)
    must_reject: int = 0
    placed: int = 0
    placed_empty: int = 0
    compared: int = 0
    ambiguous: int = 0
    max_position_error: float = 0.0
    max_value_error: float = 0.0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    examples: dict = field(default_factory=dict)

    def table(self) -> str:
        """The summary as a Markdown table."""
        rows = [("mutated files (hypothesis examples)", self.mutants),
                *((f"  of {base}", n) for base, n in sorted(self.bases.items())),
                ("rejected with a reason", sum(self.rejected.values())),
                *((f"  {kind}", n) for kind, n in self.rejected.most_common()),
                ("  of which a header card WCSLIB or the scaling would replace silently",
                 self.must_reject),
                ("accepted and placed where astropy places them", self.placed),
                ("  of which no HEALPix pixel centre falls in the image", self.placed_empty),
                ("HEALPix pixels compared", self.compared),
                ("pixels left out (round trip between 0.001 and 0.1 pixel, or unknown)",
                 self.ambiguous),
                ("largest placement error vs astropy (pixels)", f"{self.max_position_error:.1e}"),
                ("largest value error (fraction of the image's largest value)",
                 f"{self.max_value_error:.1e}"),
                ("seconds (CPU seconds)", f"{self.seconds:.0f} ({self.cpu_seconds:.0f})")]
        width = max(len(r[0]) for r in rows)
        lines = [f"| {'fuzzing survey = fits':{width}} | count |", f"|{'-' * (width + 2)}|------:|"]
        lines += [f"| {name:{width}} | {value} |" for name, value in rows]
        return "\n".join(lines)


#: Reason classes of the summary, first match wins.
REASON_CLASSES = (
    ("a WCS or scaling card is not a number, not a string or given twice",
     r"is not a number|is not finite|is not a string|given twice|is not an integer"),
    ("singular WCS", r"singular"),
    ("WCSLIB refuses the WCS", r"invalid WCS"),
    ("no celestial WCS in the first two axes", r"no WCS|not celestial|celestial axes"),
    ("cannot be placed on the sky", r"cannot place"),
    ("truncated file", r"truncated"),
    ("not a readable FITS file or header", r"not a readable FITS|corrupt header|not a FITS"),
    ("pixels unreadable", r"cannot read the pixels"),
    ("every pixel blank", r"every pixel is blank"),
    ("not one image plane of 2 x 2 pixels or more", r"NAXIS|cube|too small|no pixels|not an image"),
    ("empty file", r"empty file"),
    ("no image HDU", r"no image HDU"),
    ("pixel values beyond the float32 range of the tiles", r"float32"),
)


def reason_class(reason: str) -> str:
    """The summary's class of a rejection reason (:data:`REASON_CLASSES`)."""
    for name, pattern in REASON_CLASSES:
        if re.search(pattern, reason):
            return name
    return f"other: {reason[:60]}"


@cache
def _grid() -> PlateGrid:
    """The deepest order's plates as the pipeline pads them."""
    return PlateGrid(ORDER, WIDTH, NPLATE, default_pad(ORDER, WIDTH, NPLATE))


@cache
def _plates() -> list[tuple[int, int, tuple, np.ndarray, np.ndarray, np.ndarray]]:
    """Every plate yielding tiles: ``(i, j, cap, rows, cols, ipix)``, the padded plate's
    ``[rows, cols]`` holding HEALPix NESTED pixel ``ipix`` (healpy's ``xyf2pix``; row ``r``,
    column ``c`` of a tile of width ``w`` hold ``ix = w-1-r, iy = c``)."""
    grid = _grid()
    r, c = np.meshgrid(np.arange(WIDTH), np.arange(WIDTH), indexing="ij")
    plates = []
    for i, j in grid.sky_plates:
        npix, row0, col0 = grid.tiles(i, j)
        rows, cols, ipix = [], [], []
        for n, r0, c0 in zip(npix, row0, col0, strict=True):
            tx, ty, face = hp.pix2xyf(1 << ORDER, int(n), nest=True)
            ipix.append(hp.xyf2pix(NSIDE, tx * WIDTH + WIDTH - 1 - r, ty * WIDTH + c, face,
                                   nest=True).ravel())
            rows.append((r0 + grid.pad + r).ravel())
            cols.append((c0 + grid.pad + c).ravel())
        if ipix:
            plates.append((i, j, plate_cap(grid, i, j), np.concatenate(rows),
                           np.concatenate(cols), np.concatenate(ipix)))
    return plates


@cache
def _sky() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """healpy's NESTED pixel centres: galactic ``(lon, lat)`` in degrees and unit vectors."""
    ipix = np.arange(hp.nside2npix(NSIDE))
    lon, lat = hp.pix2ang(NSIDE, ipix, nest=True, lonlat=True)
    return lon, lat, np.array(hp.pix2vec(NSIDE, ipix, nest=True)).T


def _map_of(index) -> tuple[np.ndarray, dict, object]:
    """The survey's mosaics of every plate the image's cap touches, as a HEALPix NESTED array,
    with the skipped images (survey and mosaics) and the survey image (None if it touches no
    plate). The survey image is read once and its pixels loaded once for all its plates."""
    survey = FitsFolderSurvey(index, FRAME)
    sky = np.full(hp.nside2npix(NSIDE), np.nan)
    skipped, images = {}, None
    for i, j, cap, rows, cols, ipix in _plates():
        if not caps_intersect(survey.centres, survey.radii, *cap).any():
            continue
        if images is None:
            images = [replace(image, loader=cache(image.loader))
                      for image in survey.images_touching(*cap)]
            skipped.update(getattr(survey, "skipped", {}))
        result = mosaic_plate(_grid(), i, j, images, FRAME)
        skipped.update(result.skipped_images)
        sky[ipix] = result.data[rows, cols]
    return sky, skipped, images[0] if images else None


def _reference_wcs(header: fits.Header) -> WCS:
    """astropy's full WCS of the header's numbers as astropy.io.fits reads them (the FITS
    standard's reading): every WCS number card is written anew, in Python's own notation."""
    cards = []
    for card in header.cards:
        value = card.value if WCS_NUMBER_KEYS.match(card.keyword) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            cards.append(f"{card.keyword:<8}= {value:>20.17G}".ljust(80))
        else:
            cards.append(card.image)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return WCS(fits.Header.fromstring("".join(cards))).celestial


def _physical(blob: bytes, header: fits.Header) -> np.ndarray:
    """The image's pixels read from the file's bytes by hand (the data start at the block
    after ``END``; BITPIX and NAXISn as astropy reads them): physical values, NaN where BLANK
    (integers) or not finite."""
    bitpix, nx, ny = header["BITPIX"], header["NAXIS1"], header["NAXIS2"]
    offset = -(-(80 * (len(header_cards(blob)) + 1)) // BLOCK) * BLOCK
    dtype = np.dtype(BITPIX_DTYPES[bitpix])
    size = nx * ny * dtype.itemsize
    assert len(blob) >= offset + size, f"accepted, but the file holds {len(blob)} bytes " \
                                       f"of the {offset + size} its header announces"
    raw = np.frombuffer(blob, dtype, nx * ny, offset).reshape(ny, nx)
    with np.errstate(invalid="ignore"):  # signalling NaNs
        data = raw.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        data = data * header.get("BSCALE", 1.0) + header.get("BZERO", 0.0)
    if bitpix > 0 and "BLANK" in header:
        data[raw == header["BLANK"]] = np.nan
    data[~np.isfinite(data)] = np.nan
    return data


def _vectors(wcs: WCS, world) -> np.ndarray:
    """Unit vectors of ``pixel_to_world_values`` output, in the WCS's frame."""
    lon, lat = np.radians(world[wcs.wcs.lng]), np.radians(world[wcs.wcs.lat])
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], -1)


def _candidates(wcs: WCS, shape: tuple[int, int], frame) -> np.ndarray:
    """NESTED pixels near the image by astropy's forward mapping: a cap around a lattice of its
    positions (edges included), widened; the whole sky if the lattice is not all on the sky or
    the cap is wider than a hemisphere."""
    ny, nx = shape
    xs, ys = np.meshgrid(np.linspace(-0.5, nx - 0.5, 17), np.linspace(-0.5, ny - 0.5, 17))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        world = wcs.pixel_to_world_values(xs.ravel(), ys.ravel())
    lon, lat = world[wcs.wcs.lng], world[wcs.wcs.lat]
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        return np.arange(hp.nside2npix(NSIDE))
    gal = SkyCoord(lon, lat, unit="deg", frame=frame).transform_to(Galactic())
    vec = np.array(hp.ang2vec(gal.l.deg, gal.b.deg, lonlat=True))
    centre = vec.mean(axis=0)
    if np.linalg.norm(centre) < 1e-6:
        return np.arange(hp.nside2npix(NSIDE))
    centre /= np.linalg.norm(centre)
    radius = np.arccos(np.clip(vec @ centre, -1, 1)).max()
    if radius > np.pi / 2:
        return np.arange(hp.nside2npix(NSIDE))
    return hp.query_disc(NSIDE, centre, radius * 1.1 + 3 * hp.nside2resol(NSIDE), nest=True,
                         inclusive=True)


def _astropy_positions(wcs: WCS, frame, ipix: np.ndarray, shape: tuple[int, int]
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """0-based ``(x, y)`` of healpy pixel centres by astropy (SkyCoord moved to the image's
    frame, ``world_to_pixel_values``), and, for positions within a pixel of the image, how far
    ``pixel_to_world_values`` maps them from where they were asked for, in local pixels
    (infinite where it maps them nowhere; NaN where no neighbour gives a local pixel size, and
    beyond the image)."""
    lon, lat, _ = _sky()
    sky = SkyCoord(lon[ipix], lat[ipix], unit="deg", frame=Galactic()).transform_to(frame)
    world = [None, None]
    world[wcs.wcs.lng], world[wcs.wcs.lat] = sky.spherical.lon.deg, sky.spherical.lat.deg
    ny, nx = shape
    miss = np.full(len(ipix), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x, y = (np.asarray(v, dtype=float) for v in wcs.world_to_pixel_values(*world))
        with np.errstate(invalid="ignore"):
            near = np.flatnonzero((x >= -1.5) & (x <= nx + 0.5) & (y >= -1.5) & (y <= ny + 0.5))
        if len(near):
            asked = _vectors(wcs, [np.asarray(w)[near] for w in world])
            back = _vectors(wcs, wcs.pixel_to_world_values(x[near], y[near]))
            # The local pixel size: the farthest of the four neighbours on the sky (some may
            # be off the projection's edge).
            local = np.fmax.reduce([np.linalg.norm(_vectors(wcs, wcs.pixel_to_world_values(
                x[near] + dx, y[near] + dy)) - back, axis=-1)
                for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))])
            with np.errstate(invalid="ignore", divide="ignore"):
                miss[near] = np.linalg.norm(back - asked, axis=-1) / local
            miss[near[~np.isfinite(back).all(axis=-1)]] = np.inf  # does not map back
    return x, y, miss


def _check_placed(mutant: Mutant, blob: bytes, path, sky: np.ndarray, image, stats: Stats
                  ) -> None:
    """Asserts that the map holds the image where astropy puts it (module docstring)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        header = fits.getheader(path)
    wcs = _reference_wcs(header)
    frame = wcs_to_celestial_frame(wcs)
    data = _physical(blob, header)
    ny, nx = data.shape
    ipix = np.union1d(_candidates(wcs, data.shape, frame), np.flatnonzero(np.isfinite(sky)))
    x, y, miss = _astropy_positions(wcs, frame, ipix, data.shape)
    with np.errstate(invalid="ignore"):
        inside = (x >= -0.5) & (x <= nx - 0.5) & (y >= -0.5) & (y <= ny - 0.5)
        near_edge = ((np.abs(x + 0.5) < EDGE) | (np.abs(x - nx + 0.5) < EDGE)
                     | (np.abs(y + 0.5) < EDGE) | (np.abs(y - ny + 0.5) < EDGE))
        true = inside & (miss <= TRUE)
        unsure = inside & ((miss > TRUE) & (miss <= GHOST) | np.isnan(miss)) | near_edge
    xc, yc = np.clip(np.nan_to_num(x), 0, nx - 1), np.clip(np.nan_to_num(y), 0, ny - 1)
    blank = np.isnan(data)
    value = map_coordinates(np.where(blank, 0.0, data), [yc, xc], order=1, mode="nearest")
    weight_blank = map_coordinates(blank.astype(float), [yc, xc], order=1, mode="nearest")
    x0, y0 = np.minimum(xc.astype(int), nx - 2), np.minimum(yc.astype(int), ny - 2)
    corner_blank = blank[y0, x0] | blank[y0, x0 + 1] | blank[y0 + 1, x0] | blank[y0 + 1, x0 + 1]
    expected = np.where(true & (weight_blank == 0), value, np.nan)
    got = sky[ipix]
    # A blank corner of zero weight may blank the sample (reproject_interp's rule) or not.
    either = true & (weight_blank == 0) & corner_blank
    where = f"{mutant.describe()}"
    stray = np.isfinite(got) & ~(true & (weight_blank == 0)) & ~unsure
    assert not stray.any(), f"{where}: {stray.sum()} map pixels hold data where astropy puts " \
                            f"none of the image (first at x, y = {x[stray][0]}, {y[stray][0]})"
    missing = np.isnan(got) & np.isfinite(expected) & ~either & ~unsure
    assert not missing.any(), f"{where}: {missing.sum()} map pixels are empty where astropy " \
                              f"puts the image (first at x, y = {x[missing][0]}, {y[missing][0]})"
    both = np.isfinite(got) & np.isfinite(expected)
    scale = np.nanmax(np.abs(data))
    error = np.abs(got[both] - expected[both]) / scale if both.any() else np.zeros(0)
    assert not (error > 1e-5).any(), f"{where}: values differ from astropy's placement by up " \
                                     f"to {error.max():.2e} of the image's largest value"
    # The survey's own positions, against astropy's.
    projection = image_projection(image.wcs, image.shape, Galactic())
    hx, hy = projection.vectors_to_pixels(_sky()[2][ipix[true]])
    if true.any():
        stats.max_position_error = max(stats.max_position_error, float(np.nanmax(np.hypot(
            hx - x[true], hy - y[true]))))
    stats.max_value_error = max(stats.max_value_error, float(error.max(initial=0.0)))
    stats.compared += int(both.sum())
    stats.ambiguous += int((unsure & inside).sum())
    stats.placed += 1
    stats.placed_empty += int(not true.any())


def _check_mutant(mutant: Mutant, folder, stats: Stats) -> None:
    blob = mutant.file_bytes()
    path = folder / "mutant.fits"
    path.write_bytes(blob)
    index = scan_folder(folder, FRAME)
    stats.mutants += 1
    stats.bases[mutant.base] += 1
    assert len(index) >= 1, f"{mutant.describe()}: no index row"
    ok = index[index["status"] == "ok"]
    problems = header_problems(blob)
    if len(ok) == 0:
        for reason in index["reason"]:
            assert str(reason).strip(), f"{mutant.describe()}: skipped without a reason"
        stats.rejected[reason_class(str(index["reason"][0]))] += 1
        stats.must_reject += bool(problems)
        stats.examples.setdefault(reason_class(str(index["reason"][0])),
                                  f"{mutant.describe()} -> {index['reason'][0]}")
        return
    assert not problems, f"{mutant.describe()}: accepted although {'; '.join(problems)}"
    assert len(ok) == 1 and int(ok["hdu"][0]) == 0, f"{mutant.describe()}: rows {list(index)}"
    sky, skipped, image = _map_of(index)
    if skipped:
        reason = next(iter(skipped.values()))
        assert str(path) in reason and len(reason) > len(str(path)) + 5, reason
        stats.rejected[f"skipped by the mosaic: {reason_class(reason)}"] += 1
        return
    assert image is not None, f"{mutant.describe()}: accepted, but its cap meets no plate"
    _check_placed(mutant, blob, path, sky, image, stats)


#: Mutants that once went wrong or cover a rule, run before the generated ones: the issue's
#: NaN CRVAL, invalid CUNIT and CDELT = 0; cards WCSLIB ignored or read as a default (PV, LONPOLE,
#: EQUINOX, RADESYS, a second CRVAL2, SIP); scalings that are not numbers or leave float32;
#: a Fortran exponent WCSLIB read as 2.504226; absurd scales and longitudes; and valid changes
#: (units, frames, blanks after a sign) that must be placed where astropy places them.
REGRESSIONS = (
    Mutant("m13 TAN int16", [("CRVAL1", "NaN")]),
    Mutant("m13 TAN int16", [("CRPIX1", "'abc'")]),
    Mutant("m13 TAN int16", [("CDELT2", "")]),
    Mutant("m13 TAN int16", [("CUNIT1", "'foo'")]),
    Mutant("m13 TAN int16", [("CDELT1", "0")]),
    Mutant("1904-66 AZP float32", [("PV2_1", "'x'")]),
    Mutant("1904-66 AZP float32", [("LONPOLE", "NaN")]),
    Mutant("m13 TAN int16", [("EQUINOX", "'B1950'")]),
    Mutant("sip-wcs TAN-SIP uint16", [("RADESYS", "12")]),
    Mutant("sip-wcs TAN-SIP uint16", [("A_2_0", "NaN")]),
    Mutant("m13 TAN int16", appended=[("CRVAL2", "10.0")]),
    Mutant("m13 TAN int16", [("BSCALE", "'2.5'")]),
    Mutant("m13 TAN int16", [("BLANK", "1.5")]),
    Mutant("m13 TAN int16", [("BSCALE", "1E300")]),
    Mutant("1904-66 AZP float32", [("BSCALE", "7E-131")]),
    Mutant("m13 TAN int16", [("CRVAL1", "2.504226D+02")]),
    Mutant("m13 TAN int16", [("CRVAL1", "+   250.4226")]),
    Mutant("m13 TAN int16", [("CDELT1", "1E300")]),
    Mutant("m13 TAN int16", [("CRVAL1", "1E20")]),
    Mutant("m13 TAN int16", [("EQUINOX", "1E300")]),
    Mutant("m13 TAN int16", [("CUNIT1", "'arcsec'"), ("CUNIT2", "'arcsec'"),
                             ("CDELT1", "-1800.0"), ("CDELT2", "1800.0")]),
    Mutant("m13 TAN int16", [("CTYPE1", "'GLON-TAN'"), ("CTYPE2", "'GLAT-TAN'")]),
    Mutant("m13 TAN int16", [("RADESYS", "'FK4'"), ("EQUINOX", "1950.0")]),
    Mutant("sip-wcs TAN-SIP uint16", [("PC1_1", "3.97742957D-01")]),
)


# Mutants make astropy warn (truncated files, BLANK of float pixels, signalling NaNs): each
# example asserts what happens to them instead.
@pytest.mark.filterwarnings("ignore::astropy.utils.exceptions.AstropyWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
def test_mutated_files_are_rejected_with_a_reason_or_placed_where_astropy_places_them(
        tmp_path):
    """Every mutant either is rejected with its reason, or lands where astropy puts it (each
    example asserts it, and that no header WCSLIB would silently "fix" is placed); both happen
    often, so that both halves are exercised."""
    stats = Stats()
    start, cpu = time.perf_counter(), time.process_time()

    @settings(max_examples=max(EXAMPLES - len(REGRESSIONS), 1), derandomize=True,
              deadline=None, database=None, suppress_health_check=list(HealthCheck),
              print_blob=False)
    @given(mutants())
    def run(mutant: Mutant) -> None:
        _check_mutant(mutant, tmp_path, stats)

    for mutant in REGRESSIONS:
        run = example(mutant)(run)
    level = astropy_log.level
    astropy_log.setLevel("WARNING")  # not the INFO on SIP cards without "-SIP", per example
    try:
        run()
    finally:
        astropy_log.setLevel(level)
    stats.seconds, stats.cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    print("\n" + stats.table())
    for kind, case in sorted(stats.examples.items()):
        print(f"  e.g. {kind}: {case[:220]}")
    assert stats.mutants >= max(EXAMPLES, len(REGRESSIONS) + 1)
    assert sum(stats.rejected.values()) + stats.placed == stats.mutants
    assert stats.placed >= stats.mutants // 10 and stats.compared >= 50 * stats.placed // 2
    assert sum(stats.rejected.values()) >= stats.mutants // 10
    # Headers WCSLIB would silently "fix" occur, and were all rejected.
    assert stats.must_reject >= stats.mutants // 20
