"""``[hips] survey = fits``: a folder of FITS images with celestial WCS.

:func:`scan_folder` indexes the folder (the ``SurveyIndex`` task writes the result as an
IPAC table): one row per image HDU of every file (multi-extension files and tile-compressed
HDUs included), with its shape, a cap on the sky holding it, its pixel unit and the file's size
and modification time. :func:`listing_fingerprint` identifies the folder's listing (names,
sizes, modification times): the index is redone when it changes. Whatever cannot
be used (not FITS, an HTML page, empty, truncated or corrupt, no or a non-celestial or singular
WCS, a cube of several planes, every pixel blank) is a row with ``status = skipped`` and a
one-line reason; it never stops the rest of the sky. :class:`FitsFolderSurvey` serves the
usable images to the plate mosaics; an image whose pixels still turn out unusable when read, or
whose file is gone since it was indexed, is skipped there, with its name and the reason in the
log and in the plate's FITS header.

File names may hold any character (a newline, non-UTF-8 bytes): keys and reasons hold them as
they are, and whoever logs or stores them escapes them
(:func:`~hipsluigi.storage.artifacts.escape_text`).

Pixels are read raw (``do_not_scale_image_data``) and made physical by
:func:`physical_pixels`: ``BLANK`` is compared with the *stored* integers, before ``BSCALE``
and ``BZERO``, so unsigned 16-bit images (``BZERO = 32768``) keep their blanks.
"""

from __future__ import annotations

import hashlib
import math
import os
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
from hipsluigi.geometry.wcs_mapping import pixel_steps
from hipsluigi.storage.artifacts import escape_text
from hipsluigi.storage.iometer import count_read
from hipsluigi.surveys.base import BadImageError, SurveyImage, caps_intersect

PATTERNS = ("*.fits", "*.fit", "*.fts", "*.fits.gz", "*.fit.gz", "*.fits.fz", "*.fz")

INDEX_COLUMNS = ("path", "hdu", "naxis1", "naxis2", "lon", "lat", "radius", "bunit", "magzp",
                 "status", "reason", "size", "mtime")
_INDEX_DTYPES = (str, int, int, int, float, float, float, str, float, str, str, np.int64,
                 np.int64)

# Pixels converted to float64 at once when the index checks an image's data (32 MiB).
_BLOCK_PIXELS = 1 << 22
# The header keywords holding numbers of the first two axes' WCS (SIP's, which astropy reads,
# included) and those holding text: checked before WCSLIB "fixes" them.
_WCS_NUMBER = re.compile(r"^(?:CRVAL[12]|CRPIX[12]|CDELT[12]|CROTA[12]|CD[12]_[12]|PC[12]_[12]"
                         r"|PV[12]_\d{1,2}|LONPOLE|LATPOLE|EQUINOX|EPOCH|[AB]P?_ORDER"
                         r"|[AB]P?_\d{1,2}_\d{1,2})$")
_WCS_TEXT = re.compile(r"^(?:CTYPE[12]|CUNIT[12]|RADESYS|RADECSYS)$")
# A number as every reader reads it (no Fortran exponent: WCSLIB reads "1.0D2" as "1.0").
_PLAIN_NUMBER = re.compile(r"^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[Ee][+-]?\d+)?\s*(?:/|$)")
# Sanity limits of a WCS (degrees): beyond ten turns WCSLIB loses a reference longitude's
# precision (at 1e20 every pixel gets the same longitude), and wider pixels are garbage.
_LONGITUDE_LIMIT = 3600.0
_PIXEL_LIMIT = 30.0
# The magnitudes a float32 tile pixel holds without overflow or loss of precision.
_FLOAT32_TINY = float(np.finfo(np.float32).tiny)
_FLOAT32_MAX = float(np.finfo(np.float32).max)
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


def _card_text(card: fits.Card) -> str:
    """A card's value as written (quotes and comment removed), for messages."""
    try:
        image = card.image
    except ValueError as err:  # astropy shows no card it cannot fix (a NUL in the value)
        return f"<{_one_line(err, 120)}>"
    return _one_line(image[10:].split("/")[0].strip().strip("'").strip(), 40) or "(no value)"


def _header_wcs_problem(header: fits.Header) -> str | None:
    """What makes the first two axes' WCS keywords unusable, read from the header itself.

    WCSLIB silently replaces an unparsable CRVAL or CRPIX by 0, a CDELT by 1 and an all-zero
    CD matrix by the identity, ignores a PV, LONPOLE, LATPOLE or EQUINOX it cannot parse and a
    CTYPE, CUNIT or RADESYS that is not a string, and takes one of two cards of the same key:
    so these are checked before it sees them.
    """
    if "CTYPE1" not in header and "CTYPE2" not in header:
        return "no WCS (no CTYPE1/CTYPE2 keywords)"
    values: dict[str, float] = {}
    seen: dict[str, fits.Card] = {}
    for card in header.cards:
        key = card.keyword
        number, text = _WCS_NUMBER.match(key), _WCS_TEXT.match(key)
        if not (number or text):
            continue
        if key in seen:
            return f"{key} is given twice ({_card_text(seen[key])} and {_card_text(card)})"
        seen[key] = card
        try:
            value = card.value
        except Exception:  # noqa: BLE001  (astropy refuses unparsable cards such as "NaN")
            value = None
        if text:
            if not isinstance(value, str):
                return f"{key} = {_card_text(card)} is not a string"
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            # astropy may have rewritten an unparsable value as a string: show it bare.
            return f"{key} = {_card_text(card)} is not a number"
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


def _scaling_problem(header: fits.Header) -> str | None:
    """What makes ``BSCALE``, ``BZERO`` or ``BLANK`` unusable: not a finite number (an integer
    for ``BLANK`` of integer pixels), or integer pixels scaled beyond the float32 of the tiles."""
    scaling = {"BSCALE": 1.0, "BZERO": 0.0}
    for key in scaling:
        if key not in header:
            continue
        card = header.cards[key]
        try:
            value = card.value
        except Exception:  # noqa: BLE001  (unparsable)
            value = None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{key} = {_card_text(card)} is not a number"
        if not math.isfinite(value):
            return f"{key} = {value} is not finite"
        scaling[key] = float(value)
    bitpix = header.get("BITPIX")
    if not isinstance(bitpix, int) or bitpix <= 0:
        return None
    if "BLANK" in header:
        card = header.cards["BLANK"]
        try:
            blank = card.value
        except Exception:  # noqa: BLE001  (unparsable)
            blank = None
        if isinstance(blank, bool) or not isinstance(blank, int):
            return f"BLANK = {_card_text(card)} is not an integer"
    largest = abs(scaling["BZERO"]) + abs(scaling["BSCALE"]) * 2.0 ** (bitpix - (bitpix > 8))
    if largest > _FLOAT32_MAX:
        return (f"BSCALE = {scaling['BSCALE']:g}, BZERO = {scaling['BZERO']:g} scale pixels "
                f"up to {largest:.3g}, beyond the float32 range of the tiles")
    return None


def _wcslib_header(header: fits.Header) -> fits.Header:
    """The header as WCSLIB must see it: WCS numbers not written plainly (a Fortran ``D``
    exponent, which FITS allows and WCSLIB reads as the digits before the ``D``; blanks after
    the sign) rewritten with the value astropy reads, the FITS standard's."""
    fixed = None
    for k, card in enumerate(header.cards):
        if (_WCS_NUMBER.match(card.keyword) and not _PLAIN_NUMBER.match(card.image[10:])
                and isinstance(card.value, (int, float)) and not isinstance(card.value, bool)):
            if fixed is None:
                fixed = header.copy()
            # A new card: setting the same value again would keep the card's text.
            del fixed[k]
            fixed.insert(k, fits.Card(card.keyword, card.value, card.comment))
    return header if fixed is None else fixed


def _celestial_wcs(header: fits.Header, hdul: fits.HDUList | None = None) -> WCS:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(_wcslib_header(header), fobj=hdul).celestial


def _image_wcs(header: fits.Header, hdul: fits.HDUList) -> WCS:
    """The image's 2-D celestial WCS; :class:`_Unusable` saying why there is none."""
    problem = _header_wcs_problem(header)
    if problem:
        raise _Unusable(problem)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            full = WCS(_wcslib_header(header), fobj=hdul)
    except Exception as err:  # noqa: BLE001  (WCSLIB's errors come in many classes)
        raise _Unusable(f"invalid WCS ({type(err).__name__}: {_one_line(err)})") from None
    lng, lat = full.wcs.lng, full.wcs.lat
    if lng < 0 or lat < 0:
        ctypes = ", ".join(f"CTYPE{n} = {header.get(f'CTYPE{n}', '')!r}" for n in (1, 2))
        raise _Unusable(f"the WCS is not celestial ({ctypes})")
    if sorted((lng, lat)) != [0, 1]:
        raise _Unusable(f"the celestial axes are axes {min(lng, lat) + 1} and "
                         f"{max(lng, lat) + 1}, not the image's first two")
    crval = float(full.wcs.crval[lng])  # degrees, whatever CUNIT
    if not abs(crval) <= _LONGITUDE_LIMIT:
        raise _Unusable(f"CRVAL{lng + 1} = {crval:.6g} degrees of longitude, beyond "
                        f"+/-{_LONGITUDE_LIMIT:g}: WCSLIB cannot place the image precisely")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return full.celestial


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
        If no sampled pixel maps to the sky, if the pixels are more than 30 degrees wide by
        the WCS's linear part, or 0 or more than 30 degrees along an axis of the image
        (:func:`~hipsluigi.geometry.wcs_mapping.pixel_steps`), or if the image's frame does
        not move to the map's.
    """
    # Near the horizon of a projection, absurd scales give small steps: both are checked.
    linear = float(np.linalg.svd(wcs.pixel_scale_matrix, compute_uv=False).max())
    if not linear <= _PIXEL_LIMIT:
        raise ValueError(f"its pixels are {linear:.3g} degrees wide by the linear part of its "
                         f"WCS (CDELT with PC, or CD), more than {_PIXEL_LIMIT:g}")
    steps = [math.degrees(step) for step in pixel_steps(wcs, shape)]
    if not all(0.0 < step <= _PIXEL_LIMIT for step in steps):
        raise ValueError(f"its pixels are {steps[0]:.3g} x {steps[1]:.3g} degrees, not within "
                         f"(0, {_PIXEL_LIMIT:g}]: the WCS collapses or scatters them")
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
    frame = frame_of_wcs(wcs)
    vec = lonlat_to_vec(lon[ok], lat[ok]) @ rotation_matrix(frame, astropy_frame(map_frame)).T
    if not np.isfinite(vec).all():
        # e.g. an EQUINOX of 1e300 years, which astropy precesses to NaN
        raise ValueError(f"its frame {_one_line(frame, 80)} does not move to the map's")
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
    """Read an HDU's pixels by blocks of rows; :class:`_Unusable` if every one is blank, if
    its scaling is unusable (:func:`_scaling_problem`), or if the values read do not fit the
    tiles' float32 (one beyond its largest value would be infinite there, and an image whose
    largest value is below its normal range would be zeros or a few digits).

    Compressed HDUs are decompressed to the end (a corrupt tile raises); plain ones stop at
    the first block holding a value (:func:`_check_last_row` has seen that they are whole).
    """
    problem = _scaling_problem(hdu.header)
    if problem:
        raise _Unusable(problem)
    ny, nx = shape
    lead = (0,) * (len(hdu.shape) - 2)
    scaling = _scaling(hdu.header)
    compressed = isinstance(hdu, fits.CompImageHDU)
    found, largest = False, 0.0
    step = max(1, _BLOCK_PIXELS // nx)
    if compressed:
        # Whole tiles per block, so that no tile is decompressed twice.
        tile_rows = int(hdu.tile_shape[-2]) if len(hdu.tile_shape) >= 2 else 1
        step = max(1, step // tile_rows) * tile_rows
    for r0 in range(0, ny, step):
        block = hdu.section[lead + (slice(r0, min(r0 + step, ny)), slice(None))]
        values = np.abs(physical_pixels(block, *scaling))
        if np.isfinite(values).any():
            largest = max(largest, float(np.nanmax(values)))
            found = True
        if largest > _FLOAT32_MAX:
            raise _Unusable(f"pixel values up to {largest:.3g} (rows {r0 + 1}.."
                             f"{min(r0 + step, ny)}), beyond the float32 of the tiles (at most "
                             f"{_FLOAT32_MAX:.3g})")
        if found and not compressed:
            break
    if not found:
        raise _Unusable("every pixel is blank (NaN or BLANK)")
    if 0.0 < largest < _FLOAT32_TINY:
        # Smaller values only lose what float32 rounding loses anyway, relative to the largest.
        raise _Unusable(f"pixel values only up to {largest:.3g}: the float32 of the tiles would "
                         f"hold them as 0 or with few digits (its normal values start at "
                         f"{_FLOAT32_TINY:.3g})")


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
                "reason": "", "size": 0, "mtime": 0}

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


def survey_files(folder: str | Path) -> list[tuple[Path, os.stat_result]]:
    """The files of ``folder`` (not recursive) matching :data:`PATTERNS`, sorted, each with
    its ``stat`` (symbolic links followed); ``ValueError`` if ``folder`` is not a folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"[hips] survey_path {str(folder)!r} is not a folder")
    files = []
    for path in sorted({p for pattern in PATTERNS for p in folder.glob(pattern)}):
        try:
            info = path.stat()
        except OSError:
            continue  # gone since the listing, or a dangling link: not an input
        if not os.path.isdir(path):
            files.append((path, info))
    return files


def listing_fingerprint(folder: str | Path) -> str:
    """Identifies the inputs of ``folder``: a SHA-1 (hex) of the names, sizes and modification
    times (ns) of :func:`survey_files`. It changes when a file is added, removed, renamed or
    rewritten; the survey index records it and is redone when it differs."""
    digest = hashlib.sha1()
    for path, info in survey_files(folder):
        digest.update(os.fsencode(path.name) + b"\0")
        digest.update(f"{info.st_size} {info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


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
        if none), ``status`` (``ok`` or ``skipped``), ``reason`` (one line saying why it
        was skipped, naming the HDU when it is about one), ``size`` (the file's bytes) and
        ``mtime`` (its modification time, ns since the epoch) when it was listed.

    Raises
    ------
    ValueError
        If ``folder`` is not a folder. A bad file never raises: it is a ``skipped`` row.
    """
    rows = []
    for path, info in survey_files(folder):
        try:
            found = _scan_file(path, map_frame)
        except Exception as err:  # noqa: BLE001  (a bad file is reported, never fatal)
            found = [{"path": str(path), "hdu": -1, "naxis1": 0, "naxis2": 0,
                      "lon": np.nan, "lat": np.nan, "radius": np.nan, "bunit": "",
                      "magzp": np.nan, "status": "skipped",
                      "reason": f"{type(err).__name__}: {_one_line(err)}"}]
        for row in found:
            row.update(size=int(info.st_size), mtime=int(info.st_mtime_ns))
        rows.extend(found)
    rows.sort(key=lambda r: (r["path"], r["hdu"]))
    if not rows:
        return Table(names=INDEX_COLUMNS, dtype=_INDEX_DTYPES)
    return Table(rows=[[r[n] for n in INDEX_COLUMNS] for r in rows], names=INDEX_COLUMNS,
                 dtype=_INDEX_DTYPES)


def _load(path: str, hdu: int) -> np.ndarray:
    """The pixels ``[row, col]`` of image HDU ``hdu`` (the first plane's axes 1 and 2),
    physical values in float64, NaN where blank; :class:`BadImageError` naming the file."""
    try:
        with fits.open(path, do_not_scale_image_data=True) as hdul:
            image = hdul[hdu]
            raw = np.asarray(image.data)
            count_read(path, raw.nbytes)
            ny, nx = _image_shape(raw.shape)
            return physical_pixels(raw.reshape(ny, nx), *_scaling(image.header))
    except Exception as err:  # noqa: BLE001  (any read error makes the image unusable)
        raise BadImageError(f"{path}[{hdu}]: cannot read the pixels "
                            f"({type(err).__name__}: {_one_line(err)})") from None


def _gone_or_unreadable(path: str, hdu: int, err: Exception) -> str:
    """Why an indexed image cannot be opened at mosaic time, naming it (the name as it is:
    whoever shows or stores the reason escapes it)."""
    name = f"{path}[{hdu}]"
    if not os.path.exists(path):
        return (f"{name}: the file is gone since the survey was indexed; the next run "
                "refreshes the index")
    return (f"{name}: cannot read its header since the survey was indexed "
            f"({type(err).__name__}: {_one_line(err)}); the next run refreshes the index")


class FitsFolderSurvey:
    """The images of a :func:`scan_folder` index (its ``ok`` rows), as a :class:`Survey`.

    Parameters
    ----------
    index : astropy.table.Table
        The index :func:`scan_folder` made.
    map_frame : str
        The map's frame (the frame of the index's caps).

    Attributes
    ----------
    rows : astropy.table.Table
        The index's ``ok`` rows, in the order of :meth:`touching`'s indices.
    skipped : dict of str to str
        Image key -> reason, for indexed images whose file could no longer be opened when
        :meth:`images_touching` read their WCS (deleted or rewritten since the index was made).
    """

    def __init__(self, index: Table, map_frame: str):
        good = index[np.asarray(index["status"]) == "ok"]
        self.rows = good
        self.paths = [str(p) for p in good["path"]]
        self.hdus = [int(k) for k in good["hdu"]]
        self.shapes = [(int(ny), int(nx)) for nx, ny in zip(good["naxis1"], good["naxis2"],
                                                             strict=True)]
        self.centres = lonlat_to_vec(np.asarray(good["lon"], dtype=float),
                                     np.asarray(good["lat"], dtype=float)).reshape(-1, 3)
        self.radii = np.asarray(good["radius"], dtype=float)
        self.map_frame = map_frame
        self.skipped: dict[str, str] = {}

    def touching(self, centre: np.ndarray, radius: float) -> np.ndarray:
        """Indices (into the ``ok`` rows) of the images whose cap meets the cap
        ``(centre, radius)`` (map frame, radians)."""
        if len(self.paths) == 0:
            return np.zeros(0, dtype=np.intp)
        return np.flatnonzero(caps_intersect(self.centres, self.radii, centre, radius))

    def images_touching(self, centre: np.ndarray, radius: float) -> list[SurveyImage]:
        """The images whose cap meets the cap ``(centre, radius)`` (map frame, radians).

        Each image's WCS is read now, its pixels when the mosaic loads them. Keys are
        ``path[hdu]``. An image whose file cannot be opened any more is left out, with the
        reason in :attr:`skipped`.
        """
        images = []
        for k in self.touching(centre, radius):
            try:
                images.append(self._image(k))
            except Exception as err:  # noqa: BLE001  (one lost input never stops the plate)
                path, hdu = self.paths[k], self.hdus[k]
                self.skipped[f"{path}[{hdu}]"] = _gone_or_unreadable(path, hdu, err)
        return images

    def inputs_id(self, centre: np.ndarray, radius: float, extra: str = "") -> str:
        """Identifies what a plate mosaic of the cap ``(centre, radius)`` is made from: a
        SHA-1 (hex) of the index rows of the images touching it (every column, files' sizes
        and modification times included) and of ``extra``. A mosaic whose id differs from
        the current index's is out of date."""
        digest = hashlib.sha1(extra.encode("utf-8", "surrogateescape"))
        columns = self.rows.colnames
        for k in self.touching(centre, radius):
            row = self.rows[int(k)]
            text = "\t".join(escape_text(str(row[c])) for c in columns)
            digest.update(text.encode() + b"\n")
        return digest.hexdigest()

    def _image(self, k: int) -> SurveyImage:
        path, hdu = self.paths[k], self.hdus[k]
        with fits.open(path, do_not_scale_image_data=True) as hdul:
            wcs = _celestial_wcs(hdul[hdu].header, hdul)
        return SurveyImage(key=f"{path}[{hdu}]", wcs=wcs, shape=self.shapes[k],
                           centre=self.centres[k], radius=float(self.radii[k]),
                           loader=partial(_load, path, hdu))
