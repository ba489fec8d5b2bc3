"""The map schema: every setting of a map, declared once, with its type, choices and meaning.

:class:`MapSpec` (``[hips]`` keys) and :class:`SyntheticSpec` (``[synthetic]`` keys) are plain,
frozen, hashable dataclasses. Everything else derives from their fields: validation
(:meth:`MapSpec.__post_init__`), the Luigi ``[hips]``/``[synthetic]`` sections and their
command-line flags (``hipsluigi.pipeline.settings``; ``luigi --help-all`` prints their
descriptions), the keys ``luigi.cfg`` documents (a test holds the file to this schema) and the
configuration a SLURM job is handed (:func:`spec_sections`).

Every check raises :class:`SettingsError`: one line naming the key, the value and what is
allowed, so that a bad setting stops the ``luigi`` command before any task runs (the command-line
check is ``hipsluigi.pipeline.settings``).

This module reads no configuration and imports no Luigi: a spec is built by the pipeline and
handed to the code that needs it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from functools import cached_property

from hipsluigi.geometry.frames import HIPS_FRAMES
from hipsluigi.geometry.plates import PlateGrid, default_nplate, default_pad
from hipsluigi.geometry.region import Region, parse_region
from hipsluigi.stretch.stretch import level_texts, levels_inverted, read_level

SURVEYS = ("synthetic", "fits", "healpix", "wise")
BACKGROUNDS = ("global", "plate", "none")
BACKGROUND_FITS = ("levels", "slopes")
EXECUTORS = ("local", "slurm", "dryrun")
#: The HiPS standard's obs_regime words (HiPS 1.0, 4.4.1; Hipsgen's list), or empty.
OBS_REGIMES = ("", "Radio", "Millimeter", "Infrared", "Optical", "UV", "EUV", "X-ray",
               "Gamma-ray")
REPROJECTIONS = ("interp", "reproject_interp", "reproject_exact", "reproject_adaptive")
STRETCHES = ("gaussian-log", "gaussian", "linear", "log", "sqrt", "asinh")
MAP_FRAMES = tuple(HIPS_FRAMES)

#: A map name: one folder name (``<unit>/<name>``), a part of every Luigi task id and the tail
#: of ``ivo://hipsluigi/P/<name>``, so ASCII letters, digits, ``.``, ``_`` and ``-`` only, and
#: no leading dot or dash (``..``, hidden folders, names read as options).
MAP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAP_NAME_RULE = ("1 to 64 characters among A-Z a-z 0-9 . _ -, the first a letter or digit "
                 "(it names the map's folder, its task ids and ivo://hipsluigi/P/<name>)")

#: Tile widths allowed: powers of 2 in this range. 64 is what the test suite builds, 512 the
#: default; a 4096-pixel float32 tile is already 64 MiB.
TILE_WIDTH_RANGE = (64, 4096)

#: HEALPix pixel indices stop at order 29 (nside 2**29): a map's pixels are at order
#: ``order + log2(tile_width)``.
MAX_PIXEL_ORDER = 29

#: FITS block size: headers and data are padded to whole blocks.
FITS_BLOCK = 2880


class SettingsError(ValueError):
    """A setting that is not allowed; the message is one line naming the key, the value and
    what is allowed."""


def check_map_name(name: object, key: str = "[hips] name") -> str:
    """``name`` if it is a valid map name (:data:`MAP_NAME`).

    Parameters
    ----------
    name : str
        The map name.
    key : str, optional
        Where the name came from, for the message (``[hips] name``, ``--maps``, a section).

    Returns
    -------
    str

    Raises
    ------
    SettingsError
        Naming ``key`` and the name, for anything else (a path, blanks, a newline, non-ASCII
        letters, an empty name).
    """
    if not isinstance(name, str) or MAP_NAME.fullmatch(name) is None:
        raise SettingsError(f"{key} = {name!r}: a map name is {MAP_NAME_RULE}")
    return name


def fits_tile_bytes(tile_width: int) -> int:
    """Bytes of one FITS tile: one header block and the float32 data, in whole 2880-byte
    blocks (a lower bound: a header of more than 36 cards takes another block)."""
    return FITS_BLOCK + -(-4 * tile_width * tile_width // FITS_BLOCK) * FITS_BLOCK


def setting(default, doc: str, choices: tuple[str, ...] | None = None):
    """A schema field: its default, one line of documentation and, for strings, the choices."""
    return field(default=default, metadata={"doc": doc, "choices": choices})


@dataclass(frozen=True)
class SyntheticSpec:
    """``[synthetic]``: the analytic survey (see ``hipsluigi.surveys.synthetic``)."""

    seed: int = setting(1, "random seed of the sky and of the images")
    frame_size: int = setting(512, "image side in pixels")
    overlap: float = setting(0.1, "fractional overlap of neighbouring images")
    frame_system: str = setting("icrs", "celestial frame of the images' WCS",
                                ("icrs", "galactic"))
    noise: float = setting(0.05, "per-pixel Gaussian noise sigma")
    backgrounds: float = setting(1.0, "sigma of each image's injected offset; 0: no planes")
    tilt: float = setting(0.05, "plane slope across an image, as a fraction of backgrounds")
    sources: int = setting(2000, "point sources on the whole sky")
    blobs: int = setting(150, "diffuse blobs on the whole sky")

    def __post_init__(self):
        _check_fields(self, "synthetic")
        # The same bounds as hipsluigi.surveys.synthetic, which would find them only in a task.
        ranges = {"seed": (0, None), "frame_size": (8, 16384), "noise": (0, None),
                  "backgrounds": (0, None), "tilt": (0, None), "sources": (0, None),
                  "blobs": (0, None)}
        for key, (low, high) in ranges.items():
            value = getattr(self, key)
            if value < low or (high is not None and value > high):
                allowed = f"{low}..{high}" if high is not None else f">= {low}"
                raise SettingsError(f"[synthetic] {key} = {value!r}: must be {allowed}")
        if not 0 <= self.overlap < 0.5:
            raise SettingsError(f"[synthetic] overlap = {self.overlap!r}: must be in [0, 0.5)")


@dataclass(frozen=True)
class MapSpec:
    """Everything that defines one map: the ``[hips]`` keys, resolved.

    ``nplate``, ``pad`` and ``histogram_order`` may be given as None, meaning their defaults
    (which depend on other keys); after construction they hold numbers. ``storage`` holds
    absolute folder paths, the first being the base unit.

    Raises
    ------
    SettingsError
        For the first key whose value is not allowed (its type, its range given the other
        keys, a map name that is not one safe folder name, stretch levels that do not parse or
        are inverted whatever the data), in one line naming the key, the value and what is
        allowed.
    """

    name: str = setting("demo", "map name (seed: W1); part of every task id; letters, digits, "
                                "'.', '_', '-', at most 64")
    order: int = setting(3, "deepest HiPS order, 0..29 - log2(tile_width)")
    tile_width: int = setting(512, "tile width in pixels, a power of 2 from 64 to 4096")
    nplate: int | None = setting(None, "plates a side, 5*2**m up to 5*2**order; empty: "
                                       "5*2**max(0, order-5), or plates no wider than a cone "
                                       "region")
    storage: tuple[str, ...] = setting(
        ("hips-work/unit0", "hips-work/unit1", "hips-work/unit2", "hips-work/unit3"),
        "comma-separated storage units; the first is the base")
    frame: str = setting("galactic", "the map's celestial frame", MAP_FRAMES)
    survey: str = setting("synthetic", "where the images come from", SURVEYS)
    survey_path: str = setting("", "folder of FITS images (fits) or HEALPix map file (healpix)")
    band: int = setting(1, "survey band (wise: 1..4)")
    wise_service: str = setting("https://irsa.ipac.caltech.edu/SIA",
                                "wise: the SIA v2 service of the AllWISE Atlas images")
    wise_collection: str = setting("wise_allwise", "wise: the SIA v2 collection")
    healpix_column: str = setting("", "healpix: the map's column, a name or a 0-based number; "
                                      "empty: the first")
    healpix_frame: str = setting("", "healpix: the map's frame when its header has no "
                                     "COORDSYS; empty: COORDSYS (G, C or E)",
                                 ("", "galactic", "equatorial", "ecliptic"))
    background: str = setting("global", "background matching between images and plates",
                              BACKGROUNDS)
    background_fit: str = setting("levels", "global model: one level or a plane per plate",
                                  BACKGROUND_FITS)
    executor: str = setting("local", "where pixel tasks run", EXECUTORS)
    region: str = setting("", "empty: whole sky; 'plates XMIN YMIN XMAX YMAX' or "
                              "'cone LON LAT RADIUS [FRAME]'")
    pad: int | None = setting(None, "plate padding in pixels, 0 up to the plate side; empty: "
                                    "automatic")
    reproject: str = setting("interp", "mosaic engine", REPROJECTIONS)
    stretch: str = setting("gaussian-log", "PNG stretch", STRETCHES)
    stretch_min: str = setting("", "PNG black level: e.g. -2s, 1%, min, or a value")
    stretch_max: str = setting("", "PNG white level: e.g. max, 99.5%, or a value")
    histogram_order: int | None = setting(None, "order whose pixels set the stretch, "
                                                "0..order; empty: min(3, order)")
    keep_intermediate: bool = setting(True, "keep the plate mosaics and plates (false: each "
                                            "is removed once every task reading it is done)")
    title: str = setting("", "obs_title; empty: the map name")
    creator_did: str = setting("", "creator_did; empty: ivo://hipsluigi/P/<name>")
    obs_description: str = setting("", "properties obs_description; empty: the survey's")
    prov_progenitor: str = setting("", "properties prov_progenitor, the original data; empty: "
                                       "the survey's")
    obs_regime: str = setting("", "properties obs_regime; empty: the survey's", OBS_REGIMES)
    em_min: float | None = setting(None, "properties em_min, shortest wavelength in metres; "
                                         "empty: the survey's")
    em_max: float | None = setting(None, "properties em_max, longest wavelength in metres; "
                                         "empty: the survey's")
    t_min: float | None = setting(None, "properties t_min, start of the observations, MJD; "
                                        "empty: the survey's (fits: DATE-OBS or MJD-OBS)")
    t_max: float | None = setting(None, "properties t_max, end of the observations, MJD; "
                                        "empty: the survey's")
    synthetic: SyntheticSpec = field(default_factory=SyntheticSpec,
                                     metadata={"doc": "the [synthetic] section"})

    def __post_init__(self):
        check_map_name(self.name)
        _check_fields(self, "hips")
        self._check_storage()
        if self.survey in ("fits", "healpix") and not self.survey_path:
            # Refused here, before a work tree records a survey that no task can read.
            what = "a folder of FITS images" if self.survey == "fits" else "a HEALPix map file"
            raise SettingsError(f"[hips] survey = {self.survey} needs survey_path: {what}")
        if not 1 <= self.band <= 4:
            raise SettingsError(f"[hips] band = {self.band}: must be 1..4")
        self._check_tile_width_and_order()
        try:
            region = self.region_spec
        except ValueError as err:
            raise SettingsError(str(err)) from None
        if self.nplate is None:  # a cone's plates are sized to the cone
            object.__setattr__(self, "nplate", default_nplate(self.order, region.cone_radius))
        self._check_nplate()
        plate_side = 5 * self.tile_width * 2**self.order // self.nplate
        if self.pad is None:  # padding is there for the overlaps that background matching fits
            pad = (default_pad(self.order, self.tile_width, self.nplate)
                   if self.background != "none" else 0)
            object.__setattr__(self, "pad", pad)
        if not 0 <= self.pad <= plate_side:
            raise SettingsError(f"[hips] pad = {self.pad}: must be 0..{plate_side} (at most "
                                f"the plate side at order {self.order}), or empty")
        if self.histogram_order is None:
            object.__setattr__(self, "histogram_order", min(3, self.order))
        if not 0 <= self.histogram_order <= self.order:
            raise SettingsError(f"[hips] histogram_order = {self.histogram_order}: must be "
                                f"0..{self.order} (0..order), or empty")
        self._check_region(region)
        self._check_stretch_levels()
        self._check_metadata()
        self.grid  # noqa: B018  (the geometry's own checks, all passed above)

    def _check_storage(self) -> None:
        if not self.storage or any(not unit.strip() for unit in self.storage):
            raise SettingsError(f"[hips] storage = {','.join(self.storage)!r}: needs one or "
                                f"more comma-separated folders (the first is the base unit)")
        seen = set()
        for unit in self.storage:
            key = unit.rstrip("/") or "/"
            if key in seen:
                raise SettingsError(f"[hips] storage lists {unit!r} twice: each storage unit "
                                    f"is a folder of its own")
            seen.add(key)

    def _check_tile_width_and_order(self) -> None:
        low, high = TILE_WIDTH_RANGE
        w = self.tile_width
        if not low <= w <= high or w & (w - 1):
            raise SettingsError(f"[hips] tile_width = {w}: must be a power of 2 from {low} to "
                                f"{high}")
        deepest = MAX_PIXEL_ORDER - (w.bit_length() - 1)
        if not 0 <= self.order <= deepest:
            raise SettingsError(f"[hips] order = {self.order}: must be 0..{deepest} with "
                                f"tile_width = {w} (HEALPix pixels stop at order "
                                f"{MAX_PIXEL_ORDER} = order + log2(tile_width))")

    def _check_nplate(self) -> None:
        n, most = self.nplate, 5 * 2**self.order
        m = n // 5
        if n < 5 or n % 5 or m & (m - 1) or n > most:
            raise SettingsError(f"[hips] nplate = {n}: must be 5 * 2**m from 5 to {most} "
                                f"(plates at least one tile wide at order {self.order}), "
                                f"or empty")

    def _check_region(self, region: Region) -> None:
        if region.kind == "plates" and _plates_in(region.plates, self.nplate, True) == 0:
            raise SettingsError(f"[hips] region = {self.region!r}: the region holds no on-sky "
                                f"plate (plates are 0..{self.nplate - 1} a side, on the 13 face "
                                f"cells with |I - J| <= 1 of the 5 x 5 plane)")

    def _check_stretch_levels(self) -> None:
        for key, text in (("stretch_min", self.stretch_min), ("stretch_max", self.stretch_max)):
            try:
                if text.strip():
                    read_level(text)
            except ValueError as err:
                raise SettingsError(f"[hips] {key} = {text!r}: {err}") from None
        lo_text, hi_text = level_texts(self.stretch, self.stretch_min, self.stretch_max)
        if levels_inverted(read_level(lo_text), read_level(hi_text)):
            def shown(key: str, text: str) -> str:
                given = getattr(self, key).strip()
                return f"{key} = {text!r}" if given else f"{key} (default {text!r})"

            raise SettingsError(f"[hips] {shown('stretch_min', lo_text)} is not below "
                                f"{shown('stretch_max', hi_text)}: the black level must be "
                                f"below the white level")

    def _check_metadata(self) -> None:
        for key in ("title", "obs_description", "prov_progenitor"):
            if "\n" in getattr(self, key) or "\r" in getattr(self, key):
                raise SettingsError(f"[hips] {key} = {getattr(self, key)!r}: must be one line")
        for low, high in (("em_min", "em_max"), ("t_min", "t_max")):
            a, b = getattr(self, low), getattr(self, high)
            if low == "em_min" and any(v is not None and v <= 0 for v in (a, b)):
                raise SettingsError(f"[hips] {low}, {high} = {a}, {b}: wavelengths in metres "
                                    "must be > 0")
            if a is not None and b is not None and a > b:
                raise SettingsError(f"[hips] {low} = {a} is above {high} = {b}")
        did = self.creator_did
        if did and (not did.startswith("ivo://") or len(did) <= len("ivo://")
                    or any(c.isspace() for c in did)):
            raise SettingsError(f"[hips] creator_did = {did!r}: must be an IVOID "
                                f"'ivo://authority/id' without blanks, or empty")

    @property
    def deepest_tiles(self) -> int:
        """Tiles of the deepest order in the region: whole plates for a ``plates`` region, the
        cone's share of the sky (rounded up) for a cone."""
        sky = 12 * 4**self.order
        region = self.region_spec
        if region.kind == "plates":
            per_plate = (5 * 2**self.order // self.nplate) ** 2
            return _plates_in(region.plates, self.nplate, False) * per_plate
        if region.kind == "cone":
            share = (1.0 - math.cos(math.radians(min(region.radius, 180.0)))) / 2.0
            return min(sky, math.ceil(sky * share))
        return sky

    @cached_property
    def grid(self) -> PlateGrid:
        """The deepest order's plate grid, padded."""
        return PlateGrid(self.order, self.tile_width, self.nplate, self.pad)

    @cached_property
    def region_spec(self) -> Region:
        return parse_region(self.region, self.frame)

    @property
    def obs_title(self) -> str:
        return self.title or self.name

    @property
    def metadata_settings(self) -> dict:
        """The settings that only describe the map (its ``properties``), not its pixels."""
        return {key: getattr(self, key) for key in METADATA_KEYS}

    def fingerprint(self) -> dict:
        """The keys that change pixels; a work tree built with other values is refused."""
        data = dataclasses.asdict(self)
        # A dry run's placeholders must never pass for pixels.
        data["dryrun"] = self.executor == "dryrun"
        # wise_service: a mirror serves the same images.
        # keep_intermediate: what is kept on disk, not what the pixels are.
        for key in ("executor", "stretch", "stretch_min", "stretch_max", "storage",
                    "wise_service", "keep_intermediate", *METADATA_KEYS):
            data.pop(key)
        return data

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)


#: MapSpec keys that go into ``properties`` only: changing them redoes the metadata only.
METADATA_KEYS = ("title", "creator_did", "obs_description", "prov_progenitor", "obs_regime",
                 "em_min", "em_max", "t_min", "t_max")


def _plates_in(bounds: tuple[int, int, int, int], nplate: int, duplicates: bool) -> int:
    """On-sky plates ``(i, j)`` of an ``nplate`` grid with ``xmin <= i <= xmax`` and
    ``ymin <= j <= ymax``; with ``duplicates``, also those of cell (4, 4) (face 6's copy),
    which ``platelist.tbl`` lists but which yield no tile. Counted per face cell, without
    listing plates (a deep grid has millions)."""
    xmin, ymin, xmax, ymax = bounds
    side = nplate // 5

    def overlap(cell: int, low: int, high: int) -> int:
        return max(0, min(high, (cell + 1) * side - 1) - max(low, cell * side) + 1)

    return sum(overlap(ci, xmin, xmax) * overlap(cj, ymin, ymax)
               for ci in range(5) for cj in range(5)
               if abs(ci - cj) <= 1 and (duplicates or (ci, cj) != (4, 4)))


def schema_fields(cls: type) -> list[tuple[dataclasses.Field, object]]:
    """``(field, type)`` of every configuration key of ``cls`` (MapSpec: not ``synthetic``)."""
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if f.name != "synthetic"]


def _check_fields(spec, section: str) -> None:
    for f, kind in schema_fields(type(spec)):
        value = getattr(spec, f.name)
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            raise SettingsError(f"[{section}] {f.name} = {value!r}: must be one of "
                                f"{', '.join(choices)}")
        optional = isinstance(kind, types.UnionType)
        if value is None:
            if not optional:
                raise SettingsError(f"[{section}] {f.name} must be set")
            continue
        base = next(t for t in typing.get_args(kind) if t is not type(None)) if optional else kind
        base = typing.get_origin(base) or base
        if base is float and isinstance(value, int) and not isinstance(value, bool):
            continue
        if not isinstance(value, base) or (base is int and isinstance(value, bool)):
            raise SettingsError(f"[{section}] {f.name} = {value!r}: expected {base.__name__}")
        if base is float and not math.isfinite(value):
            raise SettingsError(f"[{section}] {f.name} = {value!r}: must be a finite number")


def format_value(value) -> str:
    """A field value as written in a Luigi configuration file (None: empty)."""
    if value is None:
        return ""
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def spec_sections(spec: MapSpec) -> dict[str, dict[str, str]]:
    """``spec`` as configuration sections holding every key.

    Parameters
    ----------
    spec : MapSpec

    Returns
    -------
    dict
        ``{"hips.NAME": {key: text}, "synthetic.NAME": {key: text}}``, unescaped text values,
        which read back (through ``hipsluigi.pipeline.settings``) as ``spec``: what a SLURM job
        is handed.
    """
    hips = {f.name: format_value(getattr(spec, f.name)) for f, _ in schema_fields(MapSpec)}
    synthetic = {f.name: format_value(getattr(spec.synthetic, f.name))
                 for f, _ in schema_fields(SyntheticSpec)}
    return {f"hips.{spec.name}": hips, f"synthetic.{spec.name}": synthetic}
