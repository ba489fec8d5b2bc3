"""``[hips] survey = fits``: a folder of FITS images with celestial WCS.

:func:`scan_folder` indexes the folder once (the ``SurveyIndex`` task writes the result as an
IPAC table): one row per image HDU of every file (multi-extension files and tile-compressed
HDUs included), with its shape, a cap on the sky holding it and its pixel unit. Whatever cannot
be used (not FITS, an HTML page, empty, truncated or corrupt, no or a non-celestial or singular
WCS, a cube of several planes, every pixel blank) is a row with ``status = skipped`` and a
one-line reason; it never stops the rest of the sky. :class:`FitsFolderSurvey` serves the
usable images to the plate mosaics; an image whose pixels still turn out unusable when read is
skipped there, with its name and the reason in the log and in the plate's FITS header.

Pixels are read raw (``do_not_scale_image_data``) and made physical by
:func:`physical_pixels`: ``BLANK`` is compared with the *stored* integers, before ``BSCALE``
and ``BZERO``, so unsigned 16-bit images (``BZERO = 32768``) keep their blanks.
"""

from __future__ import annotations

import math
import re
import warnings
from functools import partial
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS, FITSFixedWarning

from hipsluigi.geometry.frames import (
    astropy_frame,
    frame_of_wcs,
    lonlat_to_vec,
    rotation_matrix,
    vec_to_lonlat,
)
from hipsluigi.geometry.sky import cap_of_vectors
from hipsluigi.surveys.base import BadImageError, SurveyImage, caps_intersect

PATTERNS = ("*.fits", "*.fit", "*.fts", "*.fits.gz", "*.fit.gz", "*.fits.fz", "*.fz")

INDEX_COLUMNS = ("path", "hdu", "naxis1", "naxis2", "lon", "lat", "radius", "bunit", "magzp",
                 "status", "reason")
_INDEX_DTYPES = (str, int, int, int, float, float, float, str, float, str, str)

# Pixels converted to float64 at once when the index checks an image's data (32 MiB).
_BLOCK_PIXELS = 1 << 22
# The header keywords of the image axes' linear transform, checked before WCSLIB "fixes" them.
_WCS_NUMBER = re.compile(r"^(?:CRVAL[12]|CRPIX[12]|CDELT[12]|CROTA2|CD[12]_[12]|PC[12]_[12])$")
_TRUNCATED = re.compile(r"actual file length \((\d+)\) is smaller than the expected size "
                        r"\((\d+)\)")
_BAD_HEADER = re.compile(r"Error validating header for HDU #(\d+)[^\n]*\n\s*([^\n]*)")


class _Unusable(ValueError):
    """An HDU that cannot be used; the message says why (one line, without the HDU)."""


def physical_pixels(raw: np.ndarray, bscale: float = 1.0, bzero: float = 0.0,
                    blank: int | None = None) -> np.ndarray:
    """Physical values of stored FITS pixels.

    Parameters
    ----------
    raw : numpy.ndarray
        The pixels as stored (integers or floats), any shape.
    bscale, bzero : float, optional
        ``BSCALE`` and ``BZERO``: physical = ``bzero + bscale * stored``.
    blank : int, optional
        ``BLANK``: the *stored* integer marking undefined pixels (ignored for float data, which
        marks them with NaN).

    Returns
    -------
    numpy.ndarray
        float64, same shape, NaN where blank or not finite.
    """
    raw = np.asarray(raw)
    blanks = raw == blank if blank is not None and raw.dtype.kind in "iu" else None
    data = raw.astype(np.float64)
    if bscale != 1.0:
        data *= bscale
    if bzero != 0.0:
        data += bzero
    if blanks is not None:
        data[blanks] = np.nan
    data[~np.isfinite(data)] = np.nan
    return data


def _scaling(header: fits.Header) -> tuple[float, float, int | None]:
    """``(BSCALE, BZERO, BLANK)`` of an image header (1, 0, None when absent)."""
    blank = header.get("BLANK")
    if isinstance(blank, bool) or not isinstance(blank, (int, np.integer)):
        blank = None
    return float(header.get("BSCALE", 1.0)), float(header.get("BZERO", 0.0)), blank


def _one_line(text: object, limit: int = 200) -> str:
    """A message on one line, without WCSLIB's "ERROR n in f() at line ..." locations and
    without ``|`` (the IPAC column separator)."""
    lines = [s.strip() for s in str(text).splitlines()]
    kept = [s for s in lines if s and not re.match(r"ERROR \d+ in \w+\(\)", s)]
    line = "; ".join(kept or [s for s in lines if s]).replace("|", "/")
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _sniff(path: Path) -> str | None:
    """Why a file is certainly not FITS, from its first bytes; None if it may be."""
    with path.open("rb") as f:
        head = f.read(4096)
    if not head:
        return "empty file (0 bytes)"
    # gzip and bzip2 files are FITS files astropy decompresses.
    if head.startswith((b"SIMPLE  =", b"\x1f\x8b", b"BZh")):
        return None
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html")) or b"<html" in text or b"<body" in text:
        title = re.search(rb"<title[^>]*>(.*?)</title>", head, re.IGNORECASE | re.DOTALL)
        named = ""
        if title:
            named = " " + repr(" ".join(title.group(1).decode("utf-8", "replace").split()))
        return f"an HTML page{named}, not FITS (a failed download saved under a FITS name?)"
    return "not a FITS file: it does not start with 'SIMPLE  ='"


def _header_wcs_problem(header: fits.Header) -> str | None:
    """What makes the first two axes' WCS keywords unusable, read from the header itself.

    WCSLIB silently replaces an unparsable CRVAL or CRPIX by 0, a CDELT by 1 and an all-zero
    CD matrix by the identity, so these are checked before it sees them.
    """
    if "CTYPE1" not in header and "CTYPE2" not in header:
        return "no WCS (no CTYPE1/CTYPE2 keywords)"
    values: dict[str, float] = {}
    for card in header.cards:
        key = card.keyword
        if not _WCS_NUMBER.match(key):
            continue
        try:
            value = card.value
        except Exception:  # noqa: BLE001  (astropy refuses unparsable cards such as "NaN")
            value = None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            # astropy may have rewritten an unparsable value as a string: show it bare.
            text = card.image[10:].split("/")[0].strip().strip("'").strip()
            return f"{key} = {_one_line(text, 40)} is not a number"
        if not math.isfinite(value):
            return f"{key} = {value} is not finite"
        values[key] = float(value)
    if any(key.startswith("CD") and "_" in key for key in values):
        matrix = np.array([[values.get(f"CD{i}_{j}", 0.0) for j in (1, 2)] for i in (1, 2)])
        name = "the CD matrix"
    else:
        for i in (1, 2):
            if values.get(f"CDELT{i}", 1.0) == 0.0:
                return f"singular WCS: CDELT{i} = 0"
        pc = np.array([[values.get(f"PC{i}_{j}", float(i == j)) for j in (1, 2)]
                       for i in (1, 2)])
        matrix = np.diag([values.get("CDELT1", 1.0), values.get("CDELT2", 1.0)]) @ pc
        name = "the PC matrix"
    if np.linalg.det(matrix) == 0.0:
        return f"singular WCS: {name} {matrix.tolist()} has determinant 0"
    return None


def _celestial_wcs(header: fits.Header, hdul: fits.HDUList | None = None) -> WCS:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(header, fobj=hdul).celestial


def _image_wcs(header: fits.Header, hdul: fits.HDUList) -> WCS:
    """The image's 2-D celestial WCS; :class:`_Unusable` saying why there is none."""
    problem = _header_wcs_problem(header)
    if problem:
        raise _Unusable(problem)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            full = WCS(header, fobj=hdul)
    except Exception as err:  # noqa: BLE001  (WCSLIB's errors come in many classes)
        raise _Unusable(f"invalid WCS ({type(err).__name__}: {_one_line(err)})") from None
    lng, lat = full.wcs.lng, full.wcs.lat
    if lng < 0 or lat < 0:
        ctypes = ", ".join(f"CTYPE{n} = {header.get(f'CTYPE{n}', '')!r}" for n in (1, 2))
        raise _Unusable(f"the WCS is not celestial ({ctypes})")
    if sorted((lng, lat)) != [0, 1]:
        raise _Unusable(f"the celestial axes are axes {min(lng, lat) + 1} and "
                         f"{max(lng, lat) + 1}, not the image's first two")
    return _celestial_wcs(header, hdul)


def footprint_cap(wcs: WCS, shape: tuple[int, int], map_frame: str,
                  samples: int = 9) -> tuple[np.ndarray, float]:
    """A cap on the sky holding every pixel of an image.

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        The image's 2-D celestial WCS (longitude or latitude first).
    shape : tuple of int
        The image's ``(rows, cols)``.
    map_frame : str
        The map's frame (``galactic`` or ``equatorial``).
    samples : int, optional
        Points sampled along each edge of the image (its outer pixel edges, 0-based
        ``-0.5 .. n - 0.5``), plus the centre.

    Returns
    -------
    tuple
        ``(centre, radius)``: unit vector ``(3,)`` in the map frame, radius in radians (widened
        by one sampling step so the cap holds the whole image).

    Raises
    ------
    ValueError
        If no sampled pixel maps to the sky.
    """
    ny, nx = shape
    edge_x = np.linspace(-0.5, nx - 0.5, samples)
    edge_y = np.linspace(-0.5, ny - 0.5, samples)
    xs = np.concatenate([edge_x, edge_x, np.full(samples, -0.5), np.full(samples, nx - 0.5),
                         [(nx - 1) / 2]])
    ys = np.concatenate([np.full(samples, -0.5), np.full(samples, ny - 0.5), edge_y, edge_y,
                         [(ny - 1) / 2]])
    # World values come in the WCS's axis order, which is latitude first for DEC--/RA--- axes.
    world = wcs.pixel_to_world_values(xs, ys)
    lon, lat = np.asarray(world[wcs.wcs.lng]), np.asarray(world[wcs.wcs.lat])
    ok = np.isfinite(lon) & np.isfinite(lat)
    if not ok.any():
        raise ValueError("no pixel of the image maps to the sky")
    rot = rotation_matrix(frame_of_wcs(wcs), astropy_frame(map_frame))
    vec = lonlat_to_vec(lon[ok], lat[ok]) @ rot.T
    centre, radius = cap_of_vectors(vec)
    # Edges were sampled: widen by one sampling step (plus a pixel) so the cap holds them all.
    step = radius * 2.0 / (samples - 1)
    return centre, radius + step + 1e-6


def _image_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(rows, cols)`` of an HDU of numpy ``shape``; :class:`_Unusable` unless one plane."""
    if len(shape) < 2:
        raise _Unusable(f"not an image (NAXIS = {len(shape)})")
    planes = math.prod(shape[:-2])
    if planes != 1:
        raise _Unusable(f"a cube of {planes} planes (NAXIS1..{len(shape)} = "
                         f"{' x '.join(str(n) for n in shape[::-1])}); only images of one "
                         "plane are used")
    if 0 in shape:
        raise _Unusable(f"no pixels (NAXIS1, NAXIS2 = {shape[-1]}, {shape[-2]})")
    return shape[-2], shape[-1]


def _check_last_row(hdu, shape: tuple[int, int]) -> None:
    """Read the last row of a plain HDU: astropy's error if the file is cut short."""
    if not isinstance(hdu, fits.CompImageHDU):
        _ = hdu.section[(0,) * (len(hdu.shape) - 2) + (shape[0] - 1, slice(None))]


def _check_pixels(hdu, shape: tuple[int, int]) -> None:
    """Read an HDU's pixels by blocks of rows; :class:`_Unusable` if every one is blank.

    Compressed HDUs are decompressed to the end (a corrupt tile raises); plain ones stop at
    the first block holding a value (:func:`_check_last_row` has seen that they are whole).
    """
    ny, nx = shape
    lead = (0,) * (len(hdu.shape) - 2)
    scaling = _scaling(hdu.header)
    compressed = isinstance(hdu, fits.CompImageHDU)
    found = False
    step = max(1, _BLOCK_PIXELS // nx)
    if compressed:
        # Whole tiles per block, so that no tile is decompressed twice.
        tile_rows = int(hdu.tile_shape[-2]) if len(hdu.tile_shape) >= 2 else 1
        step = max(1, step // tile_rows) * tile_rows
    for r0 in range(0, ny, step):
        block = hdu.section[lead + (slice(r0, min(r0 + step, ny)), slice(None))]
        found = found or bool(np.isfinite(physical_pixels(block, *scaling)).any())
        if found and not compressed:
            break
    if not found:
        raise _Unusable("every pixel is blank (NaN or BLANK)")


def _text_key(header: fits.Header, key: str) -> str:
    value = header.get(key)
    return "" if value is None else _one_line(value, 60)


#: Extension names of the planes that ride along with a science image (HST, JWST, Euclid, DES
#: and SCAMP/SWarp conventions): their pixels are not sky intensity and are never averaged in.
AUXILIARY_EXTNAMES = frozenset({
    "ERR", "ERROR", "SIGMA", "UNC", "VAR", "VARIANCE", "IVAR", "INVVAR", "WHT", "WEIGHT", "DQ",
    "MASK", "FLAGS", "BPM", "CTX", "CON", "EXP", "EXPTIME", "SAMP", "TIME", "COV", "COVERAGE",
    "AREA", "VAR_POISSON", "VAR_RNOISE", "VAR_FLAT",
})


def _number_key(header: fits.Header, key: str) -> float:
    value = header.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def _scan_hdu(hdul: fits.HDUList, k: int, map_frame: str, row: dict) -> None:
    """Fill ``row`` for image HDU ``k``; :class:`_Unusable` saying why it cannot be used (or
    astropy's own error when its pixels cannot be read)."""
    hdu = hdul[k]
    header = hdu.header
    extname = _text_key(header, "EXTNAME").upper()
    if extname in AUXILIARY_EXTNAMES:
        raise _Unusable(f"EXTNAME {extname!r} is an auxiliary plane (errors, quality, weights or "
                        "exposure), not sky intensity")
    row.update(bunit=_text_key(header, "BUNIT"), magzp=_number_key(header, "MAGZP"))
    ny, nx = _image_shape(tuple(hdu.shape))
    row.update(naxis1=nx, naxis2=ny)
    if min(ny, nx) < 2:
        # The plate mosaics interpolate between pixel centres, and refuse smaller images too.
        raise _Unusable(f"too small (NAXIS1 x NAXIS2 = {nx} x {ny}); at least 2 x 2 pixels "
                        "are needed")
    _check_last_row(hdu, (ny, nx))
    wcs = _image_wcs(header, hdul)
    try:
        centre, radius = footprint_cap(wcs, (ny, nx), map_frame)
    except Exception as err:  # noqa: BLE001  (e.g. a frame astropy cannot name)
        raise _Unusable(f"cannot place the image on the sky ({_one_line(err)})") from None
    _check_pixels(hdu, (ny, nx))
    lon, lat = vec_to_lonlat(centre)
    row.update(lon=float(lon), lat=float(lat), radius=float(radius))


def _truncation(caught: list) -> str | None:
    for w in caught:
        match = _TRUNCATED.search(str(w.message))
        if match:
            return f"truncated file ({match.group(1)} bytes, its headers announce {match.group(2)})"
    return None


def _unreadable(err: Exception, caught: list) -> str:
    """Why astropy could not open a file, with the header problems it only warned about."""
    details = [f"HDU {m.group(1)}: {m.group(2).strip()}"
               for m in (_BAD_HEADER.search(str(w.message)) for w in caught) if m]
    why = _truncation(caught) or "; ".join([f"{type(err).__name__}: {err}", *details])
    return f"not a readable FITS file ({_one_line(why)})"


def _read_error(err: Exception, caught: list) -> str:
    """Why an HDU's pixels could not be read."""
    return _truncation(caught) or f"cannot read the pixels ({type(err).__name__}: " \
                                  f"{_one_line(err)})"


def _scan_file(path: Path, map_frame: str) -> list[dict]:
    """The index rows of one file: one per image HDU, or one (``hdu = -1``) saying why none."""

    def new_row(hdu: int) -> dict:
        return {"path": str(path), "hdu": hdu, "naxis1": 0, "naxis2": 0, "lon": np.nan,
                "lat": np.nan, "radius": np.nan, "bunit": "", "magzp": np.nan, "status": "ok",
                "reason": ""}

    def skipped(hdu: int, reason: str) -> dict:
        row = new_row(hdu)
        row.update(status="skipped", reason=reason)
        return row

    try:
        problem = _sniff(path)
    except OSError as err:
        return [skipped(-1, f"cannot read the file ({_one_line(err)})")]
    if problem:
        return [skipped(-1, problem)]
    rows: list[dict] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            hdul = fits.open(path, do_not_scale_image_data=True)
        except Exception as err:  # noqa: BLE001  (astropy raises many kinds for a bad file)
            return [skipped(-1, _unreadable(err, caught))]
        with hdul:
            try:
                hdul.readall()
            except Exception as err:  # noqa: BLE001
                return [skipped(-1, _unreadable(err, caught))]
            for k, hdu in enumerate(hdul):
                if not hdu.is_image or hdu.header.get("NAXIS", 0) == 0:
                    continue
                row = new_row(k)
                try:
                    _scan_hdu(hdul, k, map_frame, row)
                except _Unusable as err:
                    row.update(status="skipped", reason=f"HDU {k}: {_one_line(err)}")
                except Exception as err:  # noqa: BLE001  (a bad HDU is reported, never fatal)
                    row.update(status="skipped", reason=f"HDU {k}: {_read_error(err, caught)}")
                rows.append(row)
        # astropy drops an HDU whose header is cut short, with only a warning.
        cut = {int(m.group(1)): m.group(2)
               for m in (_BAD_HEADER.search(str(w.message)) for w in caught) if m}
        rows.extend(skipped(k, f"HDU {k}: truncated or corrupt header ({_one_line(why)})")
                    for k, why in cut.items())
    if not rows:
        return [skipped(-1, "no image HDU (only tables or empty HDUs)")]
    return rows


def scan_folder(folder: str | Path, map_frame: str) -> Table:
    """Index every FITS file in ``folder`` (not recursive), one row per image HDU.

    Parameters
    ----------
    folder : str or pathlib.Path
        The folder; files matching :data:`PATTERNS` are read.
    map_frame : str
        The map's frame, in which the caps are given.

    Returns
    -------
    astropy.table.Table
        Rows sorted by ``(path, hdu)``, columns :data:`INDEX_COLUMNS`: ``path``, ``hdu``
        (0-based HDU index; -1 when the file as a whole is unusable), ``naxis1``, ``naxis2``
        (pixels), ``lon``, ``lat`` (cap centre in the map frame, degrees), ``radius``
        (radians), ``bunit`` (the HDU's ``BUNIT``, ``''`` if none), ``magzp`` (``MAGZP``, NaN
        if none), ``status`` (``ok`` or ``skipped``) and ``reason`` (one line saying why it
        was skipped, naming the HDU when it is about one).

    Raises
    ------
    ValueError
        If ``folder`` is not a folder. A bad file never raises: it is a ``skipped`` row.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"[hips] survey_path {str(folder)!r} is not a folder")
    paths = sorted({p for pattern in PATTERNS for p in folder.glob(pattern) if p.is_file()})
    rows = []
    for path in paths:
        try:
            rows.extend(_scan_file(path, map_frame))
        except Exception as err:  # noqa: BLE001  (a bad file is reported, never fatal)
            rows.append({"path": str(path), "hdu": -1, "naxis1": 0, "naxis2": 0,
                         "lon": np.nan, "lat": np.nan, "radius": np.nan, "bunit": "",
                         "magzp": np.nan, "status": "skipped",
                         "reason": f"{type(err).__name__}: {_one_line(err)}"})
    rows.sort(key=lambda r: (r["path"], r["hdu"]))
    if not rows:
        return Table(names=INDEX_COLUMNS, dtype=_INDEX_DTYPES)
    return Table(rows=[[r[n] for n in INDEX_COLUMNS] for r in rows], names=INDEX_COLUMNS)


def _load(path: str, hdu: int) -> np.ndarray:
    """The pixels ``[row, col]`` of image HDU ``hdu`` (the first plane's axes 1 and 2),
    physical values in float64, NaN where blank; :class:`BadImageError` naming the file."""
    try:
        with fits.open(path, do_not_scale_image_data=True) as hdul:
            image = hdul[hdu]
            raw = np.asarray(image.data)
            ny, nx = _image_shape(raw.shape)
            return physical_pixels(raw.reshape(ny, nx), *_scaling(image.header))
    except Exception as err:  # noqa: BLE001  (any read error makes the image unusable)
        raise BadImageError(f"{path}[{hdu}]: cannot read the pixels "
                            f"({type(err).__name__}: {_one_line(err)})") from None


class FitsFolderSurvey:
    """The images of a :func:`scan_folder` index (its ``ok`` rows), as a :class:`Survey`.

    Parameters
    ----------
    index : astropy.table.Table
        The index :func:`scan_folder` made.
    map_frame : str
        The map's frame (the frame of the index's caps).
    """

    def __init__(self, index: Table, map_frame: str):
        good = index[index["status"] == "ok"]
        self.paths = [str(p) for p in good["path"]]
        self.hdus = [int(k) for k in good["hdu"]]
        self.shapes = [(int(ny), int(nx)) for nx, ny in zip(good["naxis1"], good["naxis2"],
                                                             strict=True)]
        self.centres = lonlat_to_vec(np.asarray(good["lon"], dtype=float),
                                     np.asarray(good["lat"], dtype=float)).reshape(-1, 3)
        self.radii = np.asarray(good["radius"], dtype=float)
        self.map_frame = map_frame

    def images_touching(self, centre: np.ndarray, radius: float) -> list[SurveyImage]:
        """The images whose cap meets the cap ``(centre, radius)`` (map frame, radians).

        Each image's WCS is read now, its pixels when the mosaic loads them. Keys are
        ``path[hdu]``.
        """
        if len(self.paths) == 0:
            return []
        hit = np.flatnonzero(caps_intersect(self.centres, self.radii, centre, radius))
        return [self._image(k) for k in hit]

    def _image(self, k: int) -> SurveyImage:
        path, hdu = self.paths[k], self.hdus[k]
        with fits.open(path, do_not_scale_image_data=True) as hdul:
            wcs = _celestial_wcs(hdul[hdu].header, hdul)
        return SurveyImage(key=f"{path}[{hdu}]", wcs=wcs, shape=self.shapes[k],
                           centre=self.centres[k], radius=float(self.radii[k]),
                           loader=partial(_load, path, hdu))
