"""A loopback stand-in for IRSA's SIA v2 service and image server, for the ``wise`` tests.

:class:`SiaServer` is a ``ThreadingHTTPServer`` on 127.0.0.1 (a free port) run in a thread. It
answers ``GET /SIA?POS=CIRCLE ra dec r&BAND=...&COLLECTION=...`` with a VOTable written by
astropy in the ObsCore columns IRSA returns, one row per file of every fixture Atlas tile whose
footprint meets a POS circle and whose band meets BAND: the intensity image (``-int-``) and the
uncertainty, coverage and mask files beside it, as IRSA lists them. It serves the intensity
images under IRSA's paths (``/ibe/data/wise/allwise/p3am_cdd/...``) with ``Content-Length`` and
``Range`` support, counts every request (path and headers), and injects faults per file name:
a body cut after N bytes (once), HTTP 500 K times, an HTML page with status 200 K times.

:func:`make_atlas_image` writes the fixture images: small float32 SIN images with the Atlas
header keys (``BUNIT = 'DN'``, ``MAGZP``, ``BAND``, ``COADDID`` ...), whose pixels sample the
analytic sky :func:`sky_value`.
"""

from __future__ import annotations

import io
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.io.votable.tree import Field, Info, Resource, TableElement, VOTableFile
from astropy.wcs import WCS

#: Per band: wavelength range (metres, ObsCore em_min/em_max), zero point, effective wavelength
#: (microns, the Atlas header's WAVELEN).
BANDS = {1: (2.8e-6, 3.8e-6, 20.5, 3.368), 2: (4.0e-6, 5.2e-6, 19.5, 4.618),
         3: (7.5e-6, 16.5e-6, 18.0, 12.082), 4: (19.5e-6, 27.9e-6, 13.0, 22.194)}
PRODUCTS = (("int", "science", ".fits"), ("unc", "uncertainty", ".fits.gz"),
            ("cov", "coverage", ".fits.gz"), ("msk", "mask", ".fits.gz"))
COLLECTION = "wise_allwise"


def sky_value(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """The fixture sky (DN) at ICRS positions (degrees): a smooth background with structure on
    sub-degree scales and a few compact sources."""
    ra, dec = np.radians(ra), np.radians(dec)
    value = 100.0 + 30.0 * np.sin(7.0 * ra) * np.cos(9.0 * dec) + 12.0 * np.cos(23.0 * dec)
    for ra0, dec0, peak, width in ((150.1, 2.2, 400.0, 0.15), (149.6, 1.7, 250.0, 0.1),
                                   (150.5, 1.5, 300.0, 0.2)):
        d2 = ((ra - np.radians(ra0)) * np.cos(dec)) ** 2 + (dec - np.radians(dec0)) ** 2
        value = value + peak * np.exp(-0.5 * d2 / np.radians(width) ** 2)
    return value


def coadd_id(ra: float, dec: float) -> str:
    """An Atlas tile id in IRSA's form (``1497p015_ac51``) for a tile centre."""
    sign = "p" if dec >= 0 else "m"
    return f"{round(ra * 10) % 3600:04d}{sign}{round(abs(dec) * 10):03d}_ac51"


def atlas_header(coadd: str, band: int, ra: float, dec: float, naxis: int,
                 cdelt: float) -> fits.Header:
    """An Atlas intensity image's header (the keys IRSA's files carry), SIN projection."""
    header = fits.Header()
    header["SIMPLE"] = True
    header["BITPIX"] = -32
    header["NAXIS"] = 2
    header["NAXIS1"] = naxis
    header["NAXIS2"] = naxis
    header["BAND"] = (band, "WISE band number")
    header["WAVELEN"] = (BANDS[band][3], "[microns] effective wavelength of band")
    header["COADDID"] = (coadd, "atlas-image identifier")
    header["MAGZP"] = (BANDS[band][2], "[mag] relative photometric zero point")
    header["MAGZPUNC"] = (0.006, "[mag] 1-sigma uncertainty in zero point")
    header["BUNIT"] = ("DN", "image pixel units")
    header["CTYPE1"] = "RA---SIN"
    header["CTYPE2"] = "DEC--SIN"
    header["EQUINOX"] = 2000.0
    header["CRPIX1"] = (naxis + 1) / 2
    header["CRPIX2"] = (naxis + 1) / 2
    header["CRVAL1"] = ra
    header["CRVAL2"] = dec
    header["CDELT1"] = -cdelt
    header["CDELT2"] = cdelt
    header["CROTA2"] = 0.0
    header["ORIGIN"] = "WISE Science Data Center (fixture)"
    return header


def make_atlas_image(folder: Path, band: int, ra: float, dec: float, naxis: int = 96,
                     cdelt: float = 0.02) -> Path:
    """Write one fixture Atlas intensity image; returns its path (IRSA's file name)."""
    coadd = coadd_id(ra, dec)
    header = atlas_header(coadd, band, ra, dec, naxis, cdelt)
    wcs = WCS(header)
    rows, cols = np.mgrid[0:naxis, 0:naxis]
    lon, lat = wcs.pixel_to_world_values(cols, rows)
    data = (sky_value(lon, lat) * (1.0 + 0.1 * band)).astype(np.float32)
    path = Path(folder) / f"{coadd}-w{band}-int-3.fits"
    fits.PrimaryHDU(data, header).writeto(path, overwrite=True)
    return path


@dataclass
class Fixture:
    """One served Atlas tile: its intensity image and footprint."""

    path: Path
    band: int
    coadd: str
    header: fits.Header
    centre: np.ndarray          # ICRS unit vector
    radius: float               # radians, a cap holding the image
    corners: np.ndarray         # (4, 2) ICRS degrees, centres of the corner pixels
    url_path: str = ""


def _vec(ra, dec):
    ra, dec = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], -1)


@dataclass
class Faults:
    """Faults injected for one file name."""

    cut_after: int | None = None     # send this many body bytes then close, once
    status_500: int = 0              # answer HTTP 500 this many times
    html: int = 0                    # answer an HTML page (status 200) this many times
    delay: float = 0.0               # seconds to wait before answering, every time
    ranges: bool = True              # honour Range requests (else answer the whole file)


@dataclass
class RequestLog:
    counts: Counter = field(default_factory=Counter)
    headers: list = field(default_factory=list)     # (path, {header: value})
    lock: threading.Lock = field(default_factory=threading.Lock)


class SiaServer:
    """The loopback SIA v2 + image server (a context manager).

    Attributes
    ----------
    base : str
        ``http://127.0.0.1:PORT``.
    sia_url : str
        The SIA v2 query endpoint, ``base + "/SIA"``.
    fixtures : list of Fixture
    faults : dict of str to Faults
        Per file name.
    sia_failures : int
        The SIA endpoint answers HTTP 500 this many times before answering.
    max_rows : int or None
        The most rows of an SIA answer; a longer one is cut, with ``QUERY_STATUS = OVERFLOW``.
    log : RequestLog
        ``counts[path]`` of every request (path without query), ``headers`` in order.
    """

    def __init__(self, images: Sequence[Path] = ()):
        self.fixtures: list[Fixture] = []
        self.faults: dict[str, Faults] = {}
        self.sia_failures = 0
        self.max_rows: int | None = None
        self.log = RequestLog()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self
        self.base = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.sia_url = self.base + "/SIA"
        self._thread: threading.Thread | None = None
        for path in images:
            self.add(path)

    def add(self, path: Path) -> Fixture:
        """Serve a fixture image (made by :func:`make_atlas_image`)."""
        header = fits.getheader(path)
        wcs = WCS(header)
        n1, n2 = header["NAXIS1"], header["NAXIS2"]
        xs = np.array([-0.5, n1 - 0.5, n1 - 0.5, -0.5, (n1 - 1) / 2])
        ys = np.array([-0.5, -0.5, n2 - 0.5, n2 - 0.5, (n2 - 1) / 2])
        lon, lat = wcs.pixel_to_world_values(xs, ys)
        centre = _vec(lon[4], lat[4])
        radius = float(np.arccos(np.clip(_vec(lon[:4], lat[:4]) @ centre, -1, 1)).max())
        clon, clat = wcs.pixel_to_world_values(np.array([0, n1 - 1, n1 - 1, 0]),
                                               np.array([0, 0, n2 - 1, n2 - 1]))
        coadd = header["COADDID"]
        fixture = Fixture(Path(path), int(header["BAND"]), coadd, header, centre, radius,
                          np.stack([clon, clat], -1))
        fixture.url_path = self.url_path(coadd, fixture.band, "int", ".fits")
        self.fixtures.append(fixture)
        return fixture

    @staticmethod
    def url_path(coadd: str, band: int, product: str, ext: str) -> str:
        return (f"/ibe/data/wise/allwise/p3am_cdd/{coadd[:2]}/{coadd[:4]}/{coadd}/"
                f"{coadd}-w{band}-{product}-3{ext}")

    def file_requests(self, name: str | None = None) -> int:
        """Requests for one served file (by file name), or for every served file."""
        with self.log.lock:
            return sum(n for path, n in self.log.counts.items()
                       if not path.startswith("/SIA")
                       and (name is None or path.rsplit("/", 1)[-1] == name))

    def sia_requests(self) -> int:
        with self.log.lock:
            return self.log.counts["/SIA"]

    def headers_for(self, name: str) -> list[dict[str, str]]:
        """The headers of every request for one file, in order."""
        with self.log.lock:
            return [h for path, h in self.log.headers if path.rsplit("/", 1)[-1] == name]

    def __enter__(self) -> SiaServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.05})
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # -- the SIA answer -------------------------------------------------------------------------

    def votable(self, query: dict[str, list[str]]) -> bytes:
        """The SIA v2 answer to a query, as IRSA writes it (ObsCore columns)."""
        circles = []
        for pos in query.get("POS", []):
            words = pos.split()
            if words[0].upper() != "CIRCLE":
                raise ValueError(f"POS {pos!r}: only CIRCLE is served")
            ra, dec, r = (float(w) for w in words[1:4])
            circles.append((_vec(ra, dec), np.radians(r)))
        bands = []
        for band in query.get("BAND", []):
            words = band.split()
            lo = float(words[0])
            hi = float(words[1]) if len(words) > 1 else lo
            bands.append((lo, hi))
        collections = query.get("COLLECTION", [])
        rows = []
        for fx in self.fixtures:
            if collections and COLLECTION not in collections:
                continue
            em_min, em_max = BANDS[fx.band][:2]
            if bands and not any(lo <= em_max and hi >= em_min for lo, hi in bands):
                continue
            if circles and not any(np.arccos(np.clip(c @ fx.centre, -1, 1)) <= r + fx.radius
                                   for c, r in circles):
                continue
            rows.extend(self._rows(fx))
        limits = [n for n in (self.max_rows, int(query["MAXREC"][0]) if "MAXREC" in query
                              else None) if n is not None]
        maxrec = min(limits) if limits else None
        overflow = maxrec is not None and len(rows) > maxrec
        return _write_votable(rows[:maxrec] if overflow else rows, overflow)

    def _rows(self, fx: Fixture) -> list[dict]:
        h = fx.header
        ra, dec = h["CRVAL1"], h["CRVAL2"]
        em_min, em_max = BANDS[fx.band][:2]
        region = "POLYGON ICRS " + " ".join(f"{lon:.8f} {lat:.8f}" for lon, lat in fx.corners)
        rows = []
        for product, subtype, ext in PRODUCTS:
            rows.append({
                "s_ra": ra, "s_dec": dec,
                "facility_name": "WISE", "instrument_name": "WISE",
                "obs_collection": COLLECTION,
                "obs_title": f"AllWISE Atlas W{fx.band} {fx.coadd}",
                "obs_id": f"{fx.coadd}_W{fx.band}",
                "obs_publisher_did": f"ivo://irsa.ipac/{COLLECTION}?{fx.coadd}/"
                                     f"{fx.coadd}_W{fx.band}",
                "dataproduct_type": "image", "dataproduct_subtype": subtype,
                "calib_level": 3,
                "energy_bandpassname": f"W{fx.band}", "energy_emband": "Infrared",
                "em_min": em_min, "em_max": em_max,
                "s_xel1": h["NAXIS1"], "s_xel2": h["NAXIS2"],
                "s_pixel_scale": abs(h["CDELT2"]) * 3600,
                "s_fov": abs(h["CDELT2"]) * h["NAXIS1"] * np.sqrt(2),
                "s_region": region,
                "t_min": 55203.0, "t_max": 55593.0,
                "access_url": self.base + self.url_path(fx.coadd, fx.band, product, ext),
                "access_format": "image/fits",
                "access_estsize": fx.path.stat().st_size // 1024,
            })
        return rows


#: ObsCore columns in IRSA's SIA v2 answers: name, datatype, unit, ucd.
COLUMNS = (
    ("s_ra", "double", "deg", "pos.eq.ra"),
    ("s_dec", "double", "deg", "pos.eq.dec"),
    ("facility_name", "char", None, "meta.id;instr.tel"),
    ("instrument_name", "char", None, "meta.id;instr"),
    ("obs_collection", "char", None, "meta.id"),
    ("obs_title", "char", None, "meta.title;obs"),
    ("obs_id", "char", None, "meta.id"),
    ("obs_publisher_did", "char", None, "meta.ref.ivoid"),
    ("dataproduct_type", "char", None, "meta.id"),
    ("dataproduct_subtype", "char", None, "meta.id"),
    ("calib_level", "int", None, "meta.code;obs.calib"),
    ("energy_bandpassname", "char", None, "instr.bandpass"),
    ("energy_emband", "char", None, "instr.bandpass"),
    ("em_min", "double", "m", "em.wl;stat.min"),
    ("em_max", "double", "m", "em.wl;stat.max"),
    ("s_xel1", "long", None, "meta.number"),
    ("s_xel2", "long", None, "meta.number"),
    ("s_pixel_scale", "double", "arcsec", "phys.angSize;instr.pixel"),
    ("s_fov", "double", "deg", "phys.angSize;instr.fov"),
    ("s_region", "char", None, "pos.outline;obs.field"),
    ("t_min", "double", "d", "time.start;obs.exposure"),
    ("t_max", "double", "d", "time.end;obs.exposure"),
    ("access_url", "char", None, "meta.ref.url"),
    ("access_format", "char", None, "meta.code.mime"),
    ("access_estsize", "long", "kbyte", "phys.size;meta.file"),
)


def _write_votable(rows: list[dict], overflow: bool) -> bytes:
    votable = VOTableFile()
    resource = Resource(type="results")
    votable.resources.append(resource)
    resource.infos.append(Info(name="QUERY_STATUS", value="OVERFLOW" if overflow else "OK"))
    table = TableElement(votable)
    resource.tables.append(table)
    for name, datatype, unit, ucd in COLUMNS:
        kwargs = {"arraysize": "*"} if datatype == "char" else {}
        table.fields.append(Field(votable, name=name, datatype=datatype, unit=unit, ucd=ucd,
                                  **kwargs))
    table.create_arrays(len(rows))
    for k, row in enumerate(rows):
        table.array[k] = tuple(row[name] for name, *_ in COLUMNS)
    out = io.BytesIO()
    votable.to_xml(out)
    return out.getvalue()


_HTML = (b"<!DOCTYPE html>\n<html><head><title>IRSA</title></head><body>"
         b"<h1>Service temporarily unavailable</h1></body></html>\n")


class _Handler(BaseHTTPRequestHandler):
    server_version = "FixtureIRSA/1.0"

    def log_message(self, format, *args):  # noqa: A002  (silence the per-request log)
        pass

    def do_GET(self):  # noqa: N802  (http.server's name)
        owner: SiaServer = self.server.owner
        parts = urllib.parse.urlsplit(self.path)
        with owner.log.lock:
            owner.log.counts[parts.path] += 1
            owner.log.headers.append((parts.path, dict(self.headers.items())))
        if parts.path == "/SIA":
            with owner.log.lock:
                failing = owner.sia_failures > 0
                owner.sia_failures -= failing
            if failing:
                self._send(500, b"internal error\n", "text/plain")
                return
            query = urllib.parse.parse_qs(parts.query)
            try:
                body = owner.votable({k.upper(): v for k, v in query.items()})
            except ValueError as err:
                self._send(400, str(err).encode(), "text/plain")
                return
            self._send(200, body, "application/x-votable+xml")
            return
        fixture = next((f for f in owner.fixtures if f.url_path == parts.path), None)
        if fixture is None:
            self._send(404, b"not found\n", "text/plain")
            return
        name = fixture.path.name
        with owner.log.lock:
            fault = owner.faults.get(name, Faults())
            cut, fault.cut_after = fault.cut_after, None
            delay, ranges = fault.delay, fault.ranges
            if fault.status_500 > 0:
                fault.status_500 -= 1
                self._send(500, b"internal error\n", "text/plain")
                return
            if fault.html > 0:
                fault.html -= 1
                self._send(200, _HTML, "text/html")
                return
        time.sleep(delay)
        data = fixture.path.read_bytes()
        start, status = 0, 200
        wanted = self.headers.get("Range", "")
        if ranges and wanted.startswith("bytes="):
            first, _, last = wanted[6:].partition("-")
            start = int(first)
            end = int(last) if last else len(data) - 1
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data_range = data[start:end + 1]
            status = 206
        else:
            data_range = data
        self.send_response(status)
        self.send_header("Content-Type", "image/fits")
        self.send_header("Content-Length", str(len(data_range)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{fixture.coadd}-w{fixture.band}"')
        if status == 206:
            self.send_header("Content-Range",
                             f"bytes {start}-{start + len(data_range) - 1}/{len(data)}")
        self.end_headers()
        if cut is not None:
            self.wfile.write(data_range[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data_range)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
