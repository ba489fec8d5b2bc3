"""``[hips] survey = wise``: the AllWISE Atlas images of one band, from IRSA's SIA v2 service.

:func:`atlas_index` asks the SIA v2 service (through pyvo) for the Atlas images of a band
(``COLLECTION = wise_allwise``, ``BAND`` = the band's wavelength in metres) that touch a set of
ICRS cones, keeps the intensity images (``-int-`` files; the service also lists the
uncertainty, coverage and mask files of every Atlas tile), removes the duplicates that
overlapping query circles return, and gives each image a cap on the sky (the ``SurveyIndex``
task writes the result as an IPAC table). :class:`WiseSurvey` serves the indexed images to the
plate mosaics: it downloads them through a :class:`~hipsluigi.surveys.downloads.DownloadCache`
and reads their headers; an image that cannot be downloaded or read is left out and recorded in
:attr:`WiseSurvey.skipped` with the reason, never stopping the rest of the sky.

The Atlas images are in their own unit (``BUNIT = 'DN'``) with a photometric zero point per band
(``MAGZP``); both are recorded, and nothing is rescaled.
"""

from __future__ import annotations

import logging
import math
import re
import time
import warnings
from collections.abc import Sequence
from functools import partial
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import healpy as hp
import numpy as np
import requests
from astropy.coordinates import ICRS, Galactic
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS, FITSFixedWarning

from hipsluigi.geometry.frames import (
    astropy_frame,
    lonlat_to_vec,
    rotation_matrix,
    vec_to_lonlat,
)
from hipsluigi.geometry.sky import cap_of_vectors
from hipsluigi.storage.iometer import count_read
from hipsluigi.surveys.base import BadImageError, SurveyImage, caps_intersect
from hipsluigi.surveys.downloads import DownloadCache
from hipsluigi.surveys.fits_folder import footprint_cap

log = logging.getLogger(__name__)

#: The SIA ``BAND`` of each WISE band: its wavelength, metres.
BAND_WAVELENGTH = {1: 3.4e-6, 2: 4.6e-6, 3: 1.2e-5, 4: 2.2e-5}
#: The Atlas images' unit and zero points (Vega magnitudes of 1 DN), as the AllWISE
#: documentation and the images' headers give them.
ATLAS_BUNIT = "DN"
ATLAS_MAGZP = {1: 20.5, 2: 19.5, 3: 18.0, 4: 13.0}
#: Atlas image side, pixels, and pixel size, arcsec: the footprint when the service gives
#: neither a polygon nor a size.
ATLAS_NAXIS = 4095
ATLAS_PIXEL_ARCSEC = 1.375

#: Query circles are HEALPix cells of this Nside (14.6 degrees in radius) or smaller: the whole
#: sky in 192 queries.
QUERY_NSIDE = 4
#: Attempts after the first for a failed query, and the seconds before the first retry (doubled
#: before each further one).
QUERY_RETRIES = 3
QUERY_BACKOFF = 2.0
QUERY_TIMEOUT = 300.0
#: A query circle whose answer the service cuts short (OVERFLOW) is asked again as smaller
#: circles, down to this radius (degrees; an Atlas tile is 1.56 degrees wide).
MIN_QUERY_RADIUS = 0.25

INDEX_COLUMNS = ("path", "url", "name", "naxis1", "naxis2", "lon", "lat", "radius", "status",
                 "reason", "bunit", "magzp")
_INDEX_DTYPES = (str, str, str, int, int, float, float, float, str, str, str, float)


class ArchiveQueryError(RuntimeError):
    """An archive query that failed on every attempt; the message names the service and the
    query."""


def query_circles(cones_icrs: Sequence[tuple[float, float, float]], nside: int = QUERY_NSIDE
                  ) -> list[tuple[float, float, float]]:
    """Fewer, larger circles that cover a set of cones, for archive queries.

    A cone wider than a HEALPix cell of ``nside`` is covered by the cells it touches (one
    circle each, around the cell); smaller cones whose centres fall in the same cell are merged
    into one circle holding them all. So a whole sky of small plates needs at most about
    ``12 nside**2`` queries, and one small region one small query.

    Parameters
    ----------
    cones_icrs : sequence of tuple
        ``(ra, dec, radius)``, degrees, ICRS.
    nside : int, optional
        The HEALPix Nside of the coarsest cells.

    Returns
    -------
    list of tuple
        ``(ra, dec, radius)`` circles, degrees, ICRS, whose union holds every cone.

    Raises
    ------
    ValueError
        For a cone with a non-finite position or a radius not in (0, 180] degrees.
    """
    pixrad = hp.max_pixrad(nside)
    cones = np.asarray(cones_icrs, dtype=float).reshape(-1, 3)
    bad = ~(np.isfinite(cones).all(axis=1) & (cones[:, 2] > 0) & (cones[:, 2] <= 180))
    if bad.any():
        ra, dec, radius = cones[np.flatnonzero(bad)[0]]
        raise ValueError(f"bad query cone ({ra}, {dec}, {radius}): degrees, radius in "
                         "(0, 180]")
    vecs = lonlat_to_vec(cones[:, 0], cones[:, 1]).reshape(-1, 3)
    rads = np.radians(cones[:, 2])
    big = rads > pixrad
    big_cells: set[int] = set()
    for k in np.flatnonzero(big):
        big_cells.update(int(c) for c in hp.query_disc(nside, vecs[k], rads[k], inclusive=True,
                                                        nest=True))
    circles = [(np.asarray(hp.pix2vec(nside, cell, nest=True)), pixrad)
               for cell in sorted(big_cells)]
    small_vecs, small_rads = vecs[~big], rads[~big]
    cells = hp.vec2pix(nside, small_vecs[:, 0], small_vecs[:, 1], small_vecs[:, 2], nest=True)
    order = np.argsort(cells, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(cells[order]) != 0])
    for members in np.split(order, starts[1:]) if len(order) else []:
        cell = int(cells[members[0]])
        group_vecs, group_rads = small_vecs[members], small_rads[members]
        options = []
        for centre in (group_vecs.sum(axis=0), np.asarray(hp.pix2vec(nside, cell, nest=True))):
            centre = centre / np.linalg.norm(centre)
            spread = np.arccos(np.clip(group_vecs @ centre, -1, 1)) + group_rads
            options.append((centre, float(spread.max())))
        centre, rad = min(options, key=lambda option: option[1])
        # Cones already inside the circle of a queried cell need no query of their own.
        if cell in big_cells:
            cell_centre = np.asarray(hp.pix2vec(nside, cell, nest=True))
            if math.acos(min(1.0, float(centre @ cell_centre))) + rad <= pixrad:
                continue
        circles.append((centre, rad))
    result = []
    for centre, rad in circles:
        lon, lat = vec_to_lonlat(centre)
        result.append((float(lon), float(lat), float(min(180.0, math.degrees(rad)))))
    return result


def split_circle(circle: tuple[float, float, float]) -> list[tuple[float, float, float]]:
    """Seven circles of about half the radius covering a circle: one at its centre and six
    around it, at ``sqrt(3)/2`` of the radius (the plane's tightest covering by seven equal
    discs), widened by 5 % for the sphere's curvature.

    Parameters
    ----------
    circle : tuple of float
        ``(ra, dec, radius)``, degrees, radius up to 90.

    Returns
    -------
    list of tuple
        Seven ``(ra, dec, radius)`` circles, degrees, whose union holds the circle.
    """
    ra, dec, radius = circle
    centre = lonlat_to_vec(ra, dec)
    # Two unit vectors perpendicular to the centre (east and north, away from the poles).
    east = np.cross([0.0, 0.0, 1.0], centre)
    east = east / np.linalg.norm(east) if np.linalg.norm(east) > 1e-9 else np.array([0., 1., 0.])
    north = np.cross(centre, east)
    step = math.radians(radius) * math.sqrt(3.0) / 2.0
    points = [centre] + [math.cos(step) * centre + math.sin(step) * (math.cos(a) * east
                                                                      + math.sin(a) * north)
                         for a in np.radians(np.arange(0, 360, 60))]
    lon, lat = vec_to_lonlat(np.array(points))
    return [(float(a), float(b), radius * 0.525) for a, b in zip(lon, lat, strict=True)]


def atlas_index(service: str, collection: str, band: int,
                cones_icrs: Sequence[tuple[float, float, float]], map_frame: str, *,
                retries: int | None = None, backoff: float | None = None,
                timeout: float = QUERY_TIMEOUT) -> Table:
    """The Atlas intensity images of one band that touch a set of cones.

    Parameters
    ----------
    service : str
        The SIA v2 query endpoint (``https://irsa.ipac.caltech.edu/SIA``).
    collection : str
        The SIA ``COLLECTION`` (``wise_allwise``).
    band : int
        WISE band, 1..4.
    cones_icrs : sequence of tuple
        ``(ra, dec, radius)`` in degrees, ICRS, covering the map's plates; merged into fewer
        queries by :func:`query_circles`.
    map_frame : str
        The map's frame, in which the caps are given.
    retries : int, optional
        Attempts after the first for a failed query (:data:`QUERY_RETRIES`).
    backoff : float, optional
        Seconds before the first retry, doubled before each further one
        (:data:`QUERY_BACKOFF`).
    timeout : float, optional
        Seconds to wait for the service's answer.

    Returns
    -------
    astropy.table.Table
        One row per image, sorted by name: ``path`` and ``url`` (the file's URL), ``name`` (its
        file name, unique), ``naxis1``, ``naxis2`` (pixels), ``lon``, ``lat`` (cap centre in the
        map frame, degrees), ``radius`` (radians; the cap holds the whole image), ``status``
        (``ok``, or ``skipped`` for a listed image that cannot be used), ``reason``, ``bunit``
        and ``magzp`` (the Atlas unit and zero point the headers must carry).

    Raises
    ------
    ValueError
        For a band outside 1..4 or a bad cone.
    ArchiveQueryError
        When a query fails on every attempt (connection errors, HTTP errors, an unreadable or
        error answer), or the service cuts its answer short (OVERFLOW) even for small circles,
        naming the service and the query.
    """
    import pyvo

    if band not in BAND_WAVELENGTH:
        raise ValueError(f"WISE band {band}: must be 1..4")
    rot = rotation_matrix(ICRS(), astropy_frame(map_frame))
    session = _TimeoutSession(timeout)
    # The service URL is the query endpoint itself: no capabilities round trip.
    sia = pyvo.dal.SIA2Service(service, session=session, check_baseurl=False)
    rows: dict[str, dict] = {}
    attempts = (QUERY_RETRIES if retries is None else retries) + 1
    pause = QUERY_BACKOFF if backoff is None else backoff
    pending = query_circles(cones_icrs)
    while pending:
        circle = pending.pop()
        results = _query(sia, service, collection, band, circle, attempts, pause)
        if str(results.status[0]).lower() == "overflow":
            # A cut answer would lose images silently: ask again in smaller circles.
            smaller = split_circle(circle)
            if smaller[0][2] < MIN_QUERY_RADIUS:
                raise ArchiveQueryError(f"{service}: {_describe(collection, band, circle)}: "
                                        "the service cut its answer short (OVERFLOW) even for "
                                        f"circles under {MIN_QUERY_RADIUS} degrees")
            pending.extend(smaller)
            continue
        for row in _atlas_rows(results.to_table(), band, rot):
            rows.setdefault(row["name"], row)
    if not rows:
        return Table(names=INDEX_COLUMNS, dtype=_INDEX_DTYPES)
    ordered = [rows[name] for name in sorted(rows)]
    return Table(rows=[[r[c] for c in INDEX_COLUMNS] for r in ordered], names=INDEX_COLUMNS)


class _TimeoutSession(requests.Session):
    """A requests session with a default timeout (pyvo's queries set none)."""

    def __init__(self, timeout: float):
        super().__init__()
        self.timeout = timeout

    def request(self, method, url, **kwargs):
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, **kwargs)


def _describe(collection: str, band: int, circle: tuple[float, float, float]) -> str:
    ra, dec, radius = circle
    return (f"SIA query COLLECTION={collection} BAND={BAND_WAVELENGTH[band]:g} "
            f"POS=CIRCLE {ra:.6f} {dec:.6f} {radius:.6f}")


def _query(sia, service: str, collection: str, band: int, circle: tuple[float, float, float],
           attempts: int, backoff: float):
    """One SIA query, retried; raises :class:`ArchiveQueryError` naming it."""
    from pyvo.dal import DALFormatError, DALQueryError, DALServiceError

    last = ""
    for attempt in range(attempts):
        if attempt:
            time.sleep(min(120.0, backoff * 2 ** (attempt - 1)))
        try:
            with warnings.catch_warnings():
                # Overflow is handled by the caller, from the answer's status.
                warnings.simplefilter("ignore")
                return sia.search(pos=circle, band=BAND_WAVELENGTH[band],
                                  collection=collection)
        except DALServiceError as err:
            code = err.code or 0
            last = (f"HTTP {code}: " if code else "") + " ".join(str(err).split())[:300]
            if 400 <= code < 500 and code not in (408, 429):
                break
        except (DALQueryError, DALFormatError) as err:
            last = " ".join(str(err).split())[:300]
        except requests.RequestException as err:
            last = f"{type(err).__name__}: " + " ".join(str(err).split())[:300]
    raise ArchiveQueryError(f"{service}: {_describe(collection, band, circle)} failed after "
                            f"{attempt + 1} attempt(s): {last}")


def _text(value) -> str:
    if value is None or np.ma.is_masked(value):
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).strip()


def _number(value) -> float:
    text = _text(value)
    try:
        return float(text) if text else math.nan
    except ValueError:
        return math.nan


_BAND_IN_NAME = re.compile(r"-w(\d)-", re.IGNORECASE)
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _polygon(value) -> tuple[np.ndarray, str] | None:
    """``(vertices (n, 2) in degrees, frame name)`` of an ObsCore ``s_region``: an STC-S
    ``POLYGON [frame] lon lat ...`` string or a DALI polygon (bare numbers); ``None`` if it is
    not a polygon."""
    if value is None or np.ma.is_masked(value):
        return None
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        numbers = [float(v) for v in np.ravel(value)]
        frame = "icrs"
    else:
        text = _text(value)
        words = text.split()
        if not words or (words[0].upper() != "POLYGON" and not _NUMBER.fullmatch(words[0])):
            return None
        frame = "icrs"
        if len(words) > 1 and words[0].upper() == "POLYGON" and not _NUMBER.fullmatch(words[1]):
            frame = "galactic" if words[1].upper().startswith("GALACTIC") else "icrs"
        numbers = [float(w) for w in words if _NUMBER.fullmatch(w)]
    if len(numbers) < 6 or len(numbers) % 2 or not np.all(np.isfinite(numbers)):
        return None
    return np.array(numbers).reshape(-1, 2), frame


def _atlas_rows(table: Table, band: int, rot: np.ndarray):
    """The intensity images of ``band`` among an SIA answer's rows, as index rows."""
    names = set(table.colnames)
    column = {c: (table[c] if c in names else None)
              for c in ("access_url", "access_format", "s_region", "s_ra", "s_dec", "s_xel1",
                        "s_xel2", "s_pixel_scale")}
    for k in range(len(table)):
        def get(col, k=k):
            return None if column[col] is None else column[col][k]

        url = _text(get("access_url"))
        if not url:
            continue
        name = unquote(PurePosixPath(urlsplit(url).path).name)
        # The service lists every file of an Atlas tile (int, unc, cov, msk, ...).
        if "-int-" not in name:
            continue
        named_band = _BAND_IN_NAME.search(name)
        if named_band is not None and int(named_band.group(1)) != band:
            continue
        row = {"path": url, "url": url, "name": name, "naxis1": 0, "naxis2": 0,
               "lon": math.nan, "lat": math.nan, "radius": math.nan, "status": "ok",
               "reason": "", "bunit": ATLAS_BUNIT, "magzp": ATLAS_MAGZP[band]}
        naxis1, naxis2 = _number(get("s_xel1")), _number(get("s_xel2"))
        row["naxis1"] = int(naxis1) if naxis1 > 0 else ATLAS_NAXIS
        row["naxis2"] = int(naxis2) if naxis2 > 0 else ATLAS_NAXIS
        scale = _number(get("s_pixel_scale"))
        pixel = math.radians((scale if scale > 0 else ATLAS_PIXEL_ARCSEC) / 3600.0)
        # A pixel's diagonal: polygons may join the corner pixels' centres, not their edges.
        margin = pixel * math.sqrt(2.0) + 1e-6
        fmt = _text(get("access_format"))
        polygon = _polygon(get("s_region"))
        if polygon is not None:
            vertices, frame = polygon
            to_map = rot if frame == "icrs" else rot @ rotation_matrix(Galactic(), ICRS())
            vec = lonlat_to_vec(vertices[:, 0], vertices[:, 1]) @ to_map.T
            centre, radius = cap_of_vectors(vec)
            radius += margin
        else:
            ra, dec = _number(get("s_ra")), _number(get("s_dec"))
            if not (np.isfinite(ra) and np.isfinite(dec)):
                row.update(status="skipped", reason=f"{name}: the service gives no position")
                yield row
                continue
            centre = rot @ lonlat_to_vec(ra, dec)
            radius = pixel * math.hypot(row["naxis1"], row["naxis2"]) / 2 + margin
        lon, lat = vec_to_lonlat(centre)
        row.update(lon=float(lon), lat=float(lat), radius=float(radius))
        if fmt and "fits" not in fmt.lower():
            row.update(status="skipped", reason=f"{name}: access_format {fmt!r} is not FITS")
        yield row


def _celestial_wcs(header: fits.Header) -> WCS:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(header).celestial


def _load(path: Path, name: str) -> np.ndarray:
    """The pixels ``[row, col]`` of a cached Atlas image, float64, NaN where blank."""
    try:
        with fits.open(path, memmap=False) as hdul:
            image = hdul[0]
            raw = np.squeeze(np.asarray(image.data))
            count_read(path, raw.nbytes)
            data = raw.astype(np.float64)
            blank = image.header.get("BLANK")
            if raw.dtype.kind in "iu" and blank is not None:
                data[raw == blank] = np.nan
    except (OSError, ValueError, TypeError) as err:
        raise BadImageError(f"{name}: cannot read the pixels of {path} ({err})") from None
    data[~np.isfinite(data)] = np.nan
    return data


class WiseSurvey:
    """The images of an :func:`atlas_index` (its ``ok`` rows), downloaded when a plate needs
    them, as a :class:`~hipsluigi.surveys.base.Survey`.

    Parameters
    ----------
    index : astropy.table.Table
        The index :func:`atlas_index` made (maybe read back from its IPAC table).
    map_frame : str
        The map's frame (the frame of the index's caps).
    cache : DownloadCache
        Where the images are downloaded to.

    Attributes
    ----------
    skipped : dict of str to str
        ``{image name: reason}`` for the images :meth:`images_touching` left out because they
        could not be downloaded or their header read; the reason starts with the name.
    image_units : dict of str to dict
        ``{image name: {"BUNIT": ..., "MAGZP": ...}}`` as each image's header gives them.
    """

    def __init__(self, index: Table, map_frame: str, cache: DownloadCache):
        good = index[np.asarray(index["status"]) == "ok"] if len(index) else index
        self.names = [_text(n) for n in good["name"]]
        self.urls = [_text(u) for u in good["url"]]
        self.centres = lonlat_to_vec(np.asarray(good["lon"], dtype=float),
                                     np.asarray(good["lat"], dtype=float)).reshape(-1, 3)
        self.radii = np.asarray(good["radius"], dtype=float)
        cols = good.colnames
        self.bunits = [_text(u) for u in good["bunit"]] if "bunit" in cols else [""] * len(good)
        self.magzps = ([_number(z) for z in good["magzp"]] if "magzp" in cols
                       else [math.nan] * len(good))
        self.map_frame = map_frame
        self.cache = cache
        self.skipped: dict[str, str] = {}
        self.image_units: dict[str, dict[str, object]] = {}

    def images_touching(self, centre: np.ndarray, radius: float) -> list[SurveyImage]:
        """The images whose cap meets the cap ``(centre, radius)`` (map frame, radians).

        Each is downloaded (unless cached) and its header read now, its pixels when the mosaic
        loads them. An image that cannot be downloaded or read is left out, with the reason in
        :attr:`skipped` and the log.
        """
        if len(self.names) == 0:
            return []
        images = []
        for k in np.flatnonzero(caps_intersect(self.centres, self.radii, centre, radius)):
            try:
                images.append(self._image(int(k)))
            except BadImageError as err:
                self.skipped[self.names[k]] = str(err)
                log.warning("wise: skipping %s", err)
        return images

    def units(self) -> dict[str, object]:
        """``{"BUNIT": ..., "MAGZP": ...}`` shared by every image read so far (a key is absent
        when the images disagree or none states it)."""
        result: dict[str, object] = {}
        for key in ("BUNIT", "MAGZP"):
            values = {u[key] for u in self.image_units.values()}
            if len(values) == 1 and None not in values:
                result[key] = values.pop()
        return result

    def _image(self, k: int) -> SurveyImage:
        name, url = self.names[k], self.urls[k]
        path = self.cache.fetch(url, name)
        try:
            header = fits.getheader(path, 0)
            wcs = _celestial_wcs(header)
            shape = (int(header["NAXIS2"]), int(header["NAXIS1"]))
            if wcs.naxis != 2:
                raise ValueError("no celestial WCS")
            centre, radius = footprint_cap(wcs, shape, self.map_frame)
        except (OSError, ValueError, KeyError) as err:
            # Unreadable although whole: remove it, so that a later run fetches it afresh.
            path.unlink(missing_ok=True)
            raise BadImageError(f"{name}: unreadable header in {path} ({err})") from None
        bunit = _text(header.get("BUNIT"))
        magzp = header.get("MAGZP")
        magzp = float(magzp) if isinstance(magzp, (int, float)) else None
        self.image_units[name] = {"BUNIT": bunit or None, "MAGZP": magzp}
        if self.bunits[k] and bunit != self.bunits[k]:
            raise BadImageError(f"{name}: BUNIT {bunit!r}, not the Atlas unit "
                                f"{self.bunits[k]!r}; pixels are not rescaled")
        if math.isfinite(self.magzps[k]) and (magzp is None
                                              or abs(magzp - self.magzps[k]) > 1e-6):
            raise BadImageError(f"{name}: MAGZP {magzp}, not the Atlas zero point "
                                f"{self.magzps[k]}; pixels are not rescaled")
        return SurveyImage(key=name, wcs=wcs, shape=shape, centre=centre, radius=float(radius),
                           loader=partial(_load, path, name))
