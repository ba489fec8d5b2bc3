"""Mutated FITS files for the fuzz test (``tests/test_fuzz_fits.py``).

Three real images shipped with astropy, cut small and widened so that a low-order map holds
hundreds of their pixels, are written card by card: any text can go in any card, including what
astropy itself refuses to write (``NaN``, ``1.0D2``, a quoted number, a bare word). The
hypothesis strategy :func:`mutants` changes their WCS, structure and scaling cards (a new value,
a wrong type, or the card removed) and their bytes (NaN or BLANK blocks, extreme values, flipped
bytes in the header text or the data, a file cut short).

:func:`header_problems` is the test's own reading of a header, independent of hipsluigi: the
cards whose value WCSLIB or the pixel scaling would silently replace by a default (a number
card that is not a finite FITS number, a text card that is not a string, a card given twice).
Such a file must be rejected.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import astropy
import numpy as np
from astropy.io import fits
from hypothesis import strategies as st

ASTROPY = Path(astropy.__file__).parent
M13 = ASTROPY / "io/fits/hdu/compressed/tests/data/m13.fits"      # TAN, int16
AZP = ASTROPY / "modeling/tests/data/1904-66_AZP.fits"              # AZP with PV, float32, NaNs
SIP = ASTROPY / "nddata/tests/data/sip-wcs.fits"                    # TAN-SIP, PC, uint16

#: FITS block size, bytes.
BLOCK = 2880

#: Stored pixel types of each BITPIX (big-endian).
BITPIX_DTYPES = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}

#: Cards holding a number that WCSLIB (or astropy's SIP reader) takes for the first two axes.
WCS_NUMBER_KEYS = re.compile(
    r"^(?:CRVAL[12]|CRPIX[12]|CDELT[12]|CROTA[12]|CD[12]_[12]|PC[12]_[12]|PV[12]_\d{1,2}"
    r"|LONPOLE|LATPOLE|EQUINOX|EPOCH|[AB]P?_ORDER|[AB]P?_\d_\d)$")
#: Cards holding text that WCSLIB takes.
WCS_TEXT_KEYS = re.compile(r"^(?:CTYPE[12]|CUNIT[12]|RADESYS|RADECSYS)$")
#: A FITS number (FITS 4.0, section 4.2.4), which a ``D`` exponent may end, with the blanks
#: after the sign and around the exponent's letter that every reader tolerates.
FITS_NUMBER = re.compile(r"^[+-]? *(?:\d+\.?\d*|\.\d+)(?: *[EeDd] *[+-]?\d+)?$")
FITS_INTEGER = re.compile(r"^[+-]?\d+$")


@dataclass(frozen=True)
class Base:
    """One real image as the fuzzer starts from it: its cards (key, value text) and its stored
    pixels (the type BITPIX names, big-endian, ``[row, col]``)."""

    name: str
    cards: tuple[tuple[str, str], ...]
    data: np.ndarray


def _number(value: float) -> str:
    return repr(float(value)).upper()


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _bases() -> dict[str, Base]:
    # m13 (SkyView DSS cut-out, 1"/pixel): 64 x 64 from its centre at 0.5 degree a pixel,
    # stored as int16 with BSCALE, BZERO and a few BLANK pixels.
    raw = fits.getdata(M13, do_not_scale_image_data=True)[118:182, 118:182].astype(">i2")
    raw[5, 7] = raw[40, 2] = -32768
    m13 = Base("m13 TAN int16", (
        ("SIMPLE", "T"), ("BITPIX", "16"), ("NAXIS", "2"), ("NAXIS1", "64"), ("NAXIS2", "64"),
        ("CTYPE1", _text("RA---TAN")), ("CTYPE2", _text("DEC--TAN")),
        ("CRVAL1", "250.4226"), ("CRVAL2", "36.4602"), ("CRPIX1", "32.5"), ("CRPIX2", "32.5"),
        ("CDELT1", "-0.5"), ("CDELT2", "0.5"), ("CROTA2", "0.0"), ("EQUINOX", "2000.0"),
        ("BSCALE", "0.5"), ("BZERO", "100.0"), ("BLANK", "-32768"),
    ), raw)

    # 1904-66 (Parkes, zenithal AZP with PV2_1, PV2_2 near the pole): every third pixel, which
    # keeps the projection and triples the pixel (0.2 degree); NaN beyond the projection's edge.
    header = fits.getheader(AZP)
    azp = Base("1904-66 AZP float32", (
        ("SIMPLE", "T"), ("BITPIX", "-32"), ("NAXIS", "2"), ("NAXIS1", "64"), ("NAXIS2", "64"),
        ("CTYPE1", _text("RA---AZP")), ("CTYPE2", _text("DEC--AZP")),
        ("CRVAL1", _number(header["CRVAL1"])), ("CRVAL2", _number(header["CRVAL2"])),
        ("CRPIX1", _number((header["CRPIX1"] + 1) / 3)),
        ("CRPIX2", _number((header["CRPIX2"] + 1) / 3)),
        ("CDELT1", _number(header["CDELT1"] * 3)), ("CDELT2", _number(header["CDELT2"] * 3)),
        ("LONPOLE", "180.0"), ("LATPOLE", "-90.0"), ("PV2_1", "2.0"), ("PV2_2", "30.0"),
        ("EQUINOX", "2000.0"), ("BUNIT", _text("JY/BEAM")),
    ), fits.getdata(AZP)[1::3, 1::3].astype(">f4"))

    # sip-wcs (a CCD frame with SIP distortions, in pixel units): its PC matrix times 2600
    # (0.4 degree a pixel), stored as unsigned 16-bit (BZERO 32768).
    header = fits.getheader(SIP)
    sip_cards = [("SIMPLE", "T"), ("BITPIX", "16"), ("NAXIS", "2"), ("NAXIS1", "100"),
                 ("NAXIS2", "50"), ("CTYPE1", _text("RA---TAN-SIP")),
                 ("CTYPE2", _text("DEC--TAN-SIP")), ("CUNIT1", _text("deg")),
                 ("CUNIT2", _text("deg")), ("RADESYS", _text("FK5")), ("EQUINOX", "2000.0")]
    for key in ("LONPOLE", "LATPOLE", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CDELT1",
                "CDELT2"):
        sip_cards.append((key, _number(header[key])))
    for key in ("PC1_1", "PC1_2", "PC2_1", "PC2_2"):
        sip_cards.append((key, _number(header[key] * 2600.0)))
    for key in header:
        if re.match(r"^[AB]P?_", key):
            sip_cards.append((key, str(header[key]) if key.endswith("ORDER")
                              else _number(header[key])))
    sip_cards += [("BSCALE", "1"), ("BZERO", "32768")]
    sip = Base("sip-wcs TAN-SIP uint16", tuple(sip_cards),
               fits.getdata(SIP, do_not_scale_image_data=True).astype(">i2"))
    return {base.name: base for base in (m13, azp, sip)}


BASES = _bases()


def card_image(key: str, text: str) -> str:
    """An 80-character card: a string value from column 11, any other right-aligned to
    column 30 (fixed format), cut at 80 characters."""
    if key in ("END", "COMMENT", "HISTORY"):
        return f"{key:<8}{text}".ljust(80)[:80]
    value = text if text.startswith("'") else f"{text:>20}"
    return f"{key:<8}= {value}".ljust(80)[:80]


@dataclass
class Mutant:
    """A base image and what is done to it (see :func:`mutants`)."""

    base: str
    cards: list[tuple[str, str]] = field(default_factory=list)  # (key, text), text None: remove
    appended: list[tuple[str, str]] = field(default_factory=list)  # more cards, e.g. a 2nd CRVAL1
    data: tuple | None = None
    header_flips: tuple[tuple[int, int], ...] = ()
    data_flips: tuple[tuple[int, int], ...] = ()
    truncate: float | None = None

    def describe(self) -> str:
        """One line: the base and its mutations."""
        parts = [f"{key}={'<removed>' if text is None else text}" for key, text in self.cards]
        parts += [f"another {key}={text}" for key, text in self.appended]
        if self.data:
            parts.append(f"data {self.data[0]} {self.data[3]} x {self.data[4]} pixels")
        if self.header_flips:
            parts.append(f"{len(self.header_flips)} header bytes flipped")
        if self.data_flips:
            parts.append(f"{len(self.data_flips)} data bytes flipped")
        if self.truncate is not None:
            parts.append(f"cut at {self.truncate:.3f}")
        return f"{self.base}: " + ", ".join(parts or ["unchanged"])

    def file_bytes(self) -> bytes:
        """The mutant as a FITS file."""
        base = BASES[self.base]
        cards = list(base.cards)
        for key, text in self.cards:
            at = [k for k, (name, _) in enumerate(cards) if name == key]
            if text is None:
                cards = [c for c in cards if c[0] != key]
            elif at:
                cards[at[0]] = (key, text)
            else:
                cards.append((key, text))
        cards += self.appended
        head = "".join(card_image(k, t) for k, t in cards) + card_image("END", "")
        head = head.ljust(-(-len(head) // BLOCK) * BLOCK).encode("ascii", "replace")
        data = _mutated_data(base.data, self.data)
        body = bytearray(data.tobytes())
        body += b"\0" * (-len(body) % BLOCK)
        head = bytearray(head)
        for where, value in self.header_flips:
            head[where % (len(cards) * 80 + 80)] = value  # within the cards and END
        for where, value in self.data_flips:
            body[where % data.nbytes] = value
        blob = bytes(head + body)
        if self.truncate is not None:
            blob = blob[:int(len(blob) * self.truncate)]
        return blob


def _mutated_data(raw: np.ndarray, change: tuple | None) -> np.ndarray:
    data = raw.copy()
    if change is None:
        return data
    kind, r0, c0, h, w, value = change
    ny, nx = data.shape
    rows = slice(r0 % ny, r0 % ny + h)
    cols = slice(c0 % nx, c0 % nx + w)
    if kind == "nan block":
        data[rows, cols] = np.nan if data.dtype.kind == "f" else np.iinfo(data.dtype).min
    elif kind == "extreme block":
        if data.dtype.kind == "f":
            with np.errstate(over="ignore"):  # beyond float32: stored as infinity
                data[rows, cols] = value
        else:
            data[rows, cols] = np.iinfo(data.dtype).max if value > 0 else np.iinfo(data.dtype).min
    return data


# -- strategies -----------------------------------------------------------------------------

_BAD_NUMBERS = ["NaN", "nan", "-NaN", "Inf", "-Inf", "Infinity", "1E999", "-1E999", "1.0D999",
                "NAN"]
_EDGE_NUMBERS = ["0", "0.0", "-0.0", "1", "-1", "1E300", "-1E300", "1E-300", "3.5E38", "1E38",
                 "1E-30", "1E6", "-1E6", "2147483648", "90", "-90", "90.0000001", "180",
                 "360", "-360", "720"]
_WRONG_TYPES = ["T", "F", "(1.0, 2.0)", "(0, 0)", "", "abc", "1.0 2.0", "1..2", "0x10", "1_0",
                "'1.5'", "'NaN'", "''", "'abc'", "'  '", "--1", "1e", ".", "+"]
_CTYPES = ["'RA---TAN'", "'DEC--TAN'", "'RA---SIN'", "'DEC--SIN'", "'RA---ZEA'", "'DEC--ZEA'",
           "'RA---CAR'", "'DEC--CAR'", "'RA---AZP'", "'DEC--AZP'", "'RA---TAN-SIP'",
           "'DEC--TAN-SIP'", "'GLON-TAN'", "'GLAT-TAN'", "'RA---XYZ'", "'LINEAR'", "'RA--TAN'",
           "'RA---TAN-FOO'", "'PIXEL'", "''", "'RA'", "'DEC'", "'ra---tan'", "'RA---HPX'",
           "'RA---MER'", "'RA---AIT'", "'DEC--AIT'", "'FREQ'", "'STOKES'"]
_CUNITS = ["'deg'", "'DEG'", "'degree'", "'arcsec'", "'arcmin'", "'rad'", "'mas'", "'m'", "'s'",
           "'foo'", "''", "'deg/s'", "'Hz'"]
_RADESYS = ["'ICRS'", "'FK5'", "'FK4'", "'FK4-NO-E'", "'GAPPT'", "'foo'", "''", "'fk5'"]
_BITPIX = ["8", "16", "32", "64", "-32", "-64", "7", "0", "-16", "'16'", "16.0"]
_NAXIS = ["0", "1", "2", "3", "-1", "'2'", "2.0"]
_NAXISN = ["0", "1", "2", "3", "32", "50", "63", "64", "65", "99", "100", "101", "128", "-1",
           "1000000000", "'64'", "64.0"]

#: Keys changed, by what they hold.
NUMBER_KEYS = ["CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CDELT1", "CDELT2", "CROTA2", "CROTA1",
               "CD1_1", "CD1_2", "CD2_1", "CD2_2", "PC1_1", "PC1_2", "PC2_1", "PC2_2",
               "PV2_1", "PV2_2", "PV1_1", "LONPOLE", "LATPOLE", "EQUINOX", "A_2_0", "B_0_2",
               "AP_1_0", "A_ORDER"]
SCALE_KEYS = ["BSCALE", "BZERO", "BLANK"]


def _float_text(x: float, style: int) -> str:
    if style == 0:
        return repr(x).upper()
    if style == 1:
        return f"{x:.6e}".replace("e", "D")  # Fortran double, as AIPS writes
    if style == 2:
        return f"{x:.9e}"  # lower-case exponent
    return f"{x:.3f}"


def _original(base: str, key: str) -> float | None:
    for name, text in BASES[base].cards:
        if name == key:
            try:
                return float(text)
            except ValueError:
                return None
    return None


@st.composite
def _number_text(draw, base: str, key: str) -> str:
    choice = draw(st.integers(0, 5))
    if choice == 0:
        return draw(st.sampled_from(_BAD_NUMBERS))
    if choice == 1:
        return draw(st.sampled_from(_EDGE_NUMBERS))
    if choice == 2:
        return draw(st.sampled_from(_WRONG_TYPES))
    original = _original(base, key)
    style = draw(st.integers(0, 3))
    if choice == 3 and original is not None:
        factor = draw(st.sampled_from([-1.0, 2.0, 0.5, 1.001, 10.0, 0.1, 1e3, 1e-3, 0.0]))
        return _float_text(original * factor, style)
    if choice == 4:
        return _float_text(draw(st.floats(-1000.0, 1000.0)), style)
    return _float_text(draw(st.floats(allow_nan=False, allow_infinity=False)), 0)


@st.composite
def _card(draw, base: str) -> tuple[str, str | None]:
    kind = draw(st.integers(0, 9))
    if kind <= 3:
        key = draw(st.sampled_from(NUMBER_KEYS))
        text = draw(_number_text(base, key))
    elif kind == 4:
        key = draw(st.sampled_from(["CTYPE1", "CTYPE2"]))
        text = draw(st.sampled_from(_CTYPES + ["1", "T", "NaN"]))
    elif kind == 5:
        key = draw(st.sampled_from(["CUNIT1", "CUNIT2", "RADESYS"]))
        text = draw(st.sampled_from((_CUNITS if key.startswith("CUNIT") else _RADESYS)
                                    + ["12", "T", "NaN"]))
    elif kind == 6:
        key = draw(st.sampled_from(["BITPIX", "NAXIS", "NAXIS1", "NAXIS2"]))
        text = draw(st.sampled_from(_BITPIX if key == "BITPIX" else
                                    _NAXIS if key == "NAXIS" else _NAXISN))
    elif kind == 7:
        key = draw(st.sampled_from(SCALE_KEYS))
        text = draw(st.one_of(_number_text(base, key),
                              st.sampled_from(["-32768", "32767", "0", "-1", "1.5", "65535"])))
    elif kind == 8:
        key = draw(st.sampled_from(NUMBER_KEYS + ["CTYPE1", "CTYPE2", "CUNIT1", "RADESYS",
                                                  "NAXIS1", "BITPIX"] + SCALE_KEYS))
        text = None  # removed
    else:
        key = draw(st.sampled_from(NUMBER_KEYS + SCALE_KEYS + ["CTYPE1", "CUNIT2"]))
        text = "'" + draw(st.text(st.characters(min_codepoint=32, max_codepoint=126,
                                                exclude_characters="'"), max_size=12)) + "'"
    return key, text


@st.composite
def mutants(draw) -> Mutant:
    """A base image with up to three changed or removed cards, and maybe a second card of a
    key, a block of blank or extreme pixels, flipped bytes or a cut."""
    base = draw(st.sampled_from(sorted(BASES)))
    mutant = Mutant(base, draw(st.lists(_card(base), max_size=3)))
    extra = draw(st.integers(0, 9))
    position = st.integers(0, 1 << 20)
    byte = st.integers(0, 255)
    if extra in (0, 1):
        mutant.data = (draw(st.sampled_from(["nan block", "extreme block"])),
                       draw(position), draw(position), draw(st.integers(1, 64)),
                       draw(st.integers(1, 64)),
                       draw(st.sampled_from([3.0e38, -3.0e38, 1.0e30, 1.0e39, -1.0e300])))
    elif extra == 2:
        mutant.header_flips = tuple(draw(st.lists(st.tuples(position, byte), min_size=1,
                                                  max_size=4)))
    elif extra == 3:
        mutant.data_flips = tuple(draw(st.lists(st.tuples(position, byte), min_size=1,
                                                max_size=16)))
    elif extra == 4:
        mutant.truncate = draw(st.floats(0.0, 1.0))
    elif extra == 5:
        key = draw(st.sampled_from(NUMBER_KEYS[:8] + ["CTYPE1", "RADESYS"]))
        mutant.appended = [(key, draw(_number_text(base, key)) if key in NUMBER_KEYS
                            else draw(st.sampled_from(_CTYPES + _RADESYS)))]
    if not (mutant.cards or mutant.appended or mutant.data or mutant.header_flips
            or mutant.data_flips or mutant.truncate is not None):
        mutant.cards = [draw(_card(base))]
    return mutant


# -- the test's own reading of a header -------------------------------------------------------


def header_cards(blob: bytes) -> list[tuple[str, str | None]]:
    """``(key, value text)`` of a primary header's cards up to ``END`` (value text None for a
    card without ``= `` in columns 9-10), the comment removed; [] if there is no ``END``."""
    cards = []
    for start in range(0, len(blob) - 79, 80):
        image = blob[start:start + 80].decode("latin-1")
        key = image[:8].rstrip()
        if key == "END" and not image[8:].strip():
            return cards
        if image[8:10] != "= ":
            cards.append((key, None))
            continue
        cards.append((key, _value_text(image[10:])))
    return []


def _value_text(field: str) -> str:
    text = field.lstrip()
    if text.startswith("'"):
        k = 1
        while k < len(text):
            if text[k] == "'":
                if text[k + 1:k + 2] == "'":
                    k += 2
                    continue
                return text[:k + 1]
            k += 1
        return text  # no closing quote
    return text.split("/", 1)[0].strip()


def fits_number(text: str | None) -> float | None:
    """The finite value of a FITS number card's text, None if it is not one."""
    if text is None or not FITS_NUMBER.match(text):
        return None
    value = float(re.sub("[Dd]", "E", text.replace(" ", "")))
    return value if math.isfinite(value) else None


def header_problems(blob: bytes) -> list[str]:
    """Why a header must be rejected: its WCS or scaling cards that WCSLIB or the pixel
    scaling would read as a default (see the module docstring); [] if none."""
    cards = header_cards(blob)
    problems = []
    seen: dict[str, str | None] = {}
    values = dict(cards)
    bitpix = fits_number(values.get("BITPIX"))
    for key, text in cards:
        wcs_key = WCS_NUMBER_KEYS.match(key) or WCS_TEXT_KEYS.match(key)
        if wcs_key and key in seen:
            problems.append(f"{key} given twice")
        seen[key] = text
        if WCS_NUMBER_KEYS.match(key) and fits_number(text) is None:
            problems.append(f"{key} = {text} is not a finite number")
        if WCS_TEXT_KEYS.match(key) and not (text or "").startswith("'"):
            problems.append(f"{key} = {text} is not a string")
        if key in ("BSCALE", "BZERO") and fits_number(text) is None:
            problems.append(f"{key} = {text} is not a finite number")
        if (key == "BLANK" and bitpix is not None and bitpix > 0
                and not FITS_INTEGER.match(text or "")):
            problems.append(f"BLANK = {text} is not an integer")
    return problems
