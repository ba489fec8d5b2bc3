"""The HiPS ``properties`` file: build, format, parse and write it.

Follows the HiPS 1.0 standard (IVOA REC 2017-05-19, section 4.4.1) and the HiPS 2.0 draft
(ivoa-std/HiPS ``HiPS.tex``, "The properties file"): UTF-8, one ``key = value`` per line,
``#`` starts a comment line, blank lines are ignored, spaces around ``=`` are not significant.
The 9 mandatory keys are creator_did, obs_title, dataproduct_type, hips_version,
hips_release_date, hips_status, hips_tile_format, hips_order and hips_frame.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from hipsluigi.geometry.frames import check_frame
from hipsluigi.spec import OBS_REGIMES as OBS_REGIME_CHOICES
from hipsluigi.storage.atomic import write_bytes_atomic

HIPS_VERSION = "1.4"
HIPS_STATUS = "public master clonableOnce"
TILE_FORMATS = ("png", "fits", "jpeg")

#: Keys ``extra`` may not set: they describe how to read the tiles, or have their own argument.
PROTECTED_KEYS = frozenset({
    "dataproduct_type", "hips_version", "hips_tile_format", "hips_tile_width", "hips_order",
    "hips_frame", "creator_did", "obs_title", "hips_release_date",
})

#: Hipsgen pads keys to 20 characters so the ``=`` line up.
KEY_WIDTH = 20

_KEY_RE = re.compile(r"^[^\s=#][^\s=]*$")


def hips_date(when: datetime) -> str:
    """A date in the HiPS format, ``YYYY-mm-ddTHH:MMZ`` in UTC.

    Parameters
    ----------
    when : datetime.datetime
        Naive datetimes are taken as UTC.

    Returns
    -------
    str
    """
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def _num(x: float) -> str:
    """A number as a short, exact-enough decimal: integers stay integers, floats use 10 digits."""
    if isinstance(x, int) and not isinstance(x, bool):
        return str(x)
    return format(float(x), ".10g")


def _pair(pair: Sequence[float], name: str) -> str:
    if len(pair) != 2:
        raise ValueError(f"{name} must be a (lo, hi) pair, got {pair!r}")
    lo, hi = pair
    return f"{_num(lo)} {_num(hi)}"


def hips_properties(
    *,
    creator_did: str,
    obs_title: str,
    order: int,
    tile_width: int,
    frame: str,
    tile_formats: Sequence[str] = ("png", "fits"),
    order_min: int = 0,
    pixel_cut: Sequence[float] | None = None,
    data_range: Sequence[float] | None = None,
    initial_ra: float | None = None,
    initial_dec: float | None = None,
    initial_fov: float | None = None,
    pixel_scale: float | None = None,
    moc_sky_fraction: float | None = None,
    estsize_kb: int | None = None,
    sampling: str | None = None,
    overlay: str | None = None,
    hierarchy: str | None = None,
    provenance: Mapping[str, object] | None = None,
    bunit: str | None = None,
    builder: str = "hipsluigi",
    release_date: datetime | None = None,
    creation_date: datetime | None = None,
    extra: Mapping[str, object] | None = None,
) -> dict[str, str]:
    """The ordered ``key -> value`` mapping of an image HiPS ``properties`` file.

    Parameters
    ----------
    creator_did : str
        IVOID ``ivo://authority/id``.
    obs_title : str
        One-line title.
    order : int
        Deepest HiPS order.
    tile_width : int
        Tile width in pixels (a power of 2).
    frame : str
        HiPS frame (``galactic`` or ``equatorial``).
    tile_formats : sequence of str, optional
        Among :data:`TILE_FORMATS`; the first is the default offered to clients.
    order_min : int, optional
        Lowest order.
    pixel_cut, data_range : (float, float), optional
        ``(lo, hi)``, in physical pixel units.
    initial_ra, initial_dec : float, optional
        Initial view position, ICRS degrees (as the standard requires).
    initial_fov, pixel_scale : float, optional
        Degrees.
    moc_sky_fraction : float, optional
        0 to 1.
    estsize_kb : int, optional
        Estimated size, KB.
    sampling, overlay, hierarchy : str, optional
        How pixels were resampled (``hips_sampling``, e.g. ``bilinear``), how overlapping
        images were combined (``hips_overlay``, e.g. ``mean``) and how a tile was made from
        its four children (``hips_hierarchy``, e.g. ``mean``), in Hipsgen's words.
    provenance : mapping, optional
        What the data are (:data:`PROVENANCE_KEYS`: the standard's recommended
        ``obs_description``, ``prov_progenitor``, ``obs_regime``, ``em_min``/``em_max`` in
        metres, ``t_min``/``t_max`` in MJD; Hipsgen's ``s_pixel_scale`` in degrees and
        ``data_pixel_bitpix``). Keys left out are not written.
    bunit : str, optional
        The pixels' physical unit (the images' ``BUNIT``, e.g. ``DN``), written as
        ``hips_bunit``, the HiPS 2.0 draft's key ("pixel physical unit"; Hipsgen writes no
        unit key). None or empty: no unit is stated.
    builder : str, optional
        ``hips_builder``.
    release_date, creation_date : datetime.datetime, optional
        Default to now (UTC); ``creation_date`` defaults to ``release_date``.
    extra : mapping, optional
        Keys appended (or replacing optional keys); they may not touch
        :data:`PROTECTED_KEYS`.

    Returns
    -------
    dict of str to str

    Raises
    ------
    ValueError
        For a bad IVOID, frame, format list, order, tile width, key or value.
    """
    if not isinstance(creator_did, str) or not creator_did.startswith("ivo://") \
            or len(creator_did) <= len("ivo://") or any(c.isspace() for c in creator_did):
        raise ValueError(f"creator_did must be an IVOID 'ivo://authority/id', got {creator_did!r}")
    _check_value("obs_title", obs_title)
    check_frame(frame)
    formats = [str(f) for f in tile_formats]
    if not formats or any(f not in TILE_FORMATS for f in formats) or len(set(formats)) != len(
            formats):
        raise ValueError(f"tile_formats must be distinct values among {TILE_FORMATS}, "
                         f"got {tile_formats!r}")
    if not 0 <= order_min <= order:
        raise ValueError(f"need 0 <= order_min <= order, got order_min={order_min}, "
                         f"order={order}")
    if tile_width < 1 or tile_width & (tile_width - 1):
        raise ValueError(f"tile_width must be a power of 2, got {tile_width}")

    release = release_date if release_date is not None else datetime.now(UTC)
    created = creation_date if creation_date is not None else release

    props: dict[str, str] = {
        "creator_did": creator_did,
        "obs_title": obs_title,
        "dataproduct_type": "image",
        "hips_version": HIPS_VERSION,
        "hips_builder": builder,
        "hips_creation_date": hips_date(created),
        "hips_release_date": hips_date(release),
        "hips_status": HIPS_STATUS,
        "hips_frame": frame,
        "hips_order": str(int(order)),
        "hips_order_min": str(int(order_min)),
        "hips_tile_width": str(int(tile_width)),
        "hips_tile_format": " ".join(formats),
    }
    if "fits" in formats:
        # the FITS tiles are float32 with NaN blanks
        props["hips_pixel_bitpix"] = "-32"
    if pixel_cut is not None:
        props["hips_pixel_cut"] = _pair(pixel_cut, "pixel_cut")
    if data_range is not None:
        props["hips_data_range"] = _pair(data_range, "data_range")
    for key, value in (("hips_sampling", sampling), ("hips_overlay", overlay),
                       ("hips_hierarchy", hierarchy)):
        if value:
            props[key] = _check_value(key, str(value))
    props.update(_provenance(provenance or {}))
    if bunit:
        props["hips_bunit"] = _check_value("hips_bunit", str(bunit).strip())
    optional = {
        "hips_initial_ra": initial_ra,
        "hips_initial_dec": initial_dec,
        "hips_initial_fov": initial_fov,
        "hips_pixel_scale": pixel_scale,
        "moc_sky_fraction": moc_sky_fraction,
        "hips_estsize": None if estsize_kb is None else int(estsize_kb),
    }
    props.update({k: _num(v) for k, v in optional.items() if v is not None})

    for key, value in (extra or {}).items():
        if key in PROTECTED_KEYS:
            raise ValueError(f"extra may not set {key!r}: it is fixed by hipsluigi or has its "
                             "own argument")
        _check_key(key)
        props[key] = _check_value(key, str(value))
    return props


#: Keys of the ``provenance`` argument of :func:`hips_properties`.
PROVENANCE_KEYS = ("obs_description", "prov_progenitor", "obs_regime", "em_min", "em_max",
                   "t_min", "t_max", "s_pixel_scale", "data_pixel_bitpix")

#: ``obs_regime`` words of the HiPS standard (1.0, 4.4.1).
OBS_REGIMES = frozenset(OBS_REGIME_CHOICES) - {""}


def _provenance(given: Mapping[str, object]) -> dict[str, str]:
    unknown = set(given) - set(PROVENANCE_KEYS)
    if unknown:
        raise ValueError(f"unknown provenance keys {sorted(unknown)}; expected among "
                         f"{PROVENANCE_KEYS}")
    out = {}
    for key in PROVENANCE_KEYS:
        if key not in given:
            continue
        value = given[key]
        if key in ("obs_description", "prov_progenitor"):
            out[key] = _check_value(key, str(value))
        elif key == "obs_regime":
            if value not in OBS_REGIMES:
                raise ValueError(f"obs_regime {value!r} is not one of {sorted(OBS_REGIMES)}")
            out[key] = str(value)
        elif key == "data_pixel_bitpix":
            if value not in (8, 16, 32, 64, -32, -64):
                raise ValueError(f"data_pixel_bitpix {value!r} is not a FITS BITPIX")
            out[key] = str(int(value))
        else:
            number = float(value)
            if not np.isfinite(number) or (key != "t_min" and key != "t_max" and number <= 0):
                raise ValueError(f"{key} = {value!r}: expected a finite number"
                                 + ("" if key.startswith("t_") else " > 0"))
            out[key] = _num(number)
    for low, high in (("em_min", "em_max"), ("t_min", "t_max")):
        if low in out and high in out and float(out[low]) > float(out[high]):
            raise ValueError(f"{low} = {out[low]} is above {high} = {out[high]}")
    return out


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise ValueError(f"bad properties key {key!r}: no spaces or '=', not starting with '#'")


def _check_value(key: str, value: str) -> str:
    if not isinstance(value, str) or "\n" in value or "\r" in value:
        raise ValueError(f"value of {key!r} must be a one-line string, got {value!r}")
    return value


def format_properties(props: Mapping[str, object]) -> str:
    """The text of a properties file.

    Parameters
    ----------
    props : mapping of str to object
        Keys and values (values one line each).

    Returns
    -------
    str
        ``key = value`` lines, keys left-aligned on :data:`KEY_WIDTH` like Hipsgen, ending in a
        newline.

    Raises
    ------
    ValueError
        For a bad key or a multi-line value.
    """
    lines = []
    for key, value in props.items():
        _check_key(key)
        text = _check_value(key, str(value)).strip()
        lines.append(f"{key:<{KEY_WIDTH}} = {text}")
    return "\n".join(lines) + "\n"


def parse_properties(text: str) -> dict[str, str]:
    """Parse a properties text: skips blank and ``#`` comment lines, strips keys and values.

    Parameters
    ----------
    text : str
        The file's text.

    Returns
    -------
    dict of str to str
        In file order; a key given more than once (allowed for a few descriptive keys) keeps
        its last value.

    Raises
    ------
    ValueError
        On a non-comment line without ``=``.
    """
    props: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"properties line {number} is not 'key = value': {line!r}")
        props[key] = value.strip()
    return props


def write_properties(path: str | Path, props: Mapping[str, object]) -> None:
    """Write :func:`format_properties` of ``props`` to ``path`` (UTF-8, atomically)."""
    # encoded here: the standard requires UTF-8 whatever the locale
    write_bytes_atomic(Path(path), format_properties(props).encode("utf-8"))
