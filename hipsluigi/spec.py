"""The map schema: every setting of a map, declared once, with its type, choices and meaning.

:class:`MapSpec` (``[hips]`` keys) and :class:`SyntheticSpec` (``[synthetic]`` keys) are plain,
frozen, hashable dataclasses. Everything else derives from their fields: validation
(:meth:`MapSpec.__post_init__`), the Luigi ``[hips]``/``[synthetic]`` sections and their
command-line flags (``hipsluigi.pipeline.settings``; ``luigi --help-all`` prints their
descriptions), the keys ``luigi.cfg`` documents (a test holds the file to this schema) and the
configuration a SLURM job is handed (:func:`spec_sections`).

This module reads no configuration and imports no Luigi: a spec is built by the pipeline and
handed to the code that needs it.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from functools import cached_property

from hipsluigi.geometry.frames import HIPS_FRAMES
from hipsluigi.geometry.plates import PlateGrid, default_nplate, default_pad
from hipsluigi.geometry.region import Region, parse_region

SURVEYS = ("synthetic", "fits", "healpix", "wise")
BACKGROUNDS = ("global", "plate", "none")
BACKGROUND_FITS = ("levels", "slopes")
EXECUTORS = ("local", "slurm", "dryrun")
REPROJECTIONS = ("interp", "reproject_interp", "reproject_exact", "reproject_adaptive")
STRETCHES = ("gaussian-log", "gaussian", "linear", "log", "sqrt", "asinh")
MAP_FRAMES = tuple(HIPS_FRAMES)


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


@dataclass(frozen=True)
class MapSpec:
    """Everything that defines one map: the ``[hips]`` keys, resolved.

    ``nplate``, ``pad`` and ``histogram_order`` may be given as None, meaning their defaults
    (which depend on other keys); after construction they hold numbers. ``storage`` holds
    absolute folder paths, the first being the base unit.
    """

    name: str = setting("demo", "map name (seed: W1); part of every task id")
    order: int = setting(3, "deepest HiPS order")
    tile_width: int = setting(512, "tile width in pixels, a power of 2")
    nplate: int | None = setting(None, "plates a side; empty: 5*2**max(0, order-5), or "
                                       "plates no wider than a cone region")
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
    pad: int | None = setting(None, "plate padding in pixels; empty: automatic")
    reproject: str = setting("interp", "mosaic engine", REPROJECTIONS)
    stretch: str = setting("gaussian-log", "PNG stretch", STRETCHES)
    stretch_min: str = setting("", "PNG black level: e.g. -2s, 1%, min, or a value")
    stretch_max: str = setting("", "PNG white level: e.g. max, 99.5%, or a value")
    histogram_order: int | None = setting(None, "order whose pixels set the stretch; "
                                                "empty: min(3, order)")
    title: str = setting("", "obs_title; empty: the map name")
    creator_did: str = setting("", "creator_did; empty: ivo://hipsluigi/P/<name>")
    synthetic: SyntheticSpec = field(default_factory=SyntheticSpec,
                                     metadata={"doc": "the [synthetic] section"})

    def __post_init__(self):
        _check_fields(self, "hips")
        if not self.storage:
            raise ValueError("[hips] storage lists no storage unit")
        if self.survey in ("fits", "healpix") and not self.survey_path:
            # Refused here, before a work tree records a survey that no task can read.
            what = "a folder of FITS images" if self.survey == "fits" else "a HEALPix map file"
            raise ValueError(f"[hips] survey = {self.survey} needs survey_path: {what}")
        if not 1 <= self.band <= 4:
            raise ValueError(f"[hips] band = {self.band}: must be 1..4")
        if self.nplate is None:  # a cone's plates are sized to the cone
            object.__setattr__(self, "nplate",
                               default_nplate(self.order, self.region_spec.cone_radius))
        if self.pad is None:  # padding is there for the overlaps that background matching fits
            pad = (default_pad(self.order, self.tile_width, self.nplate)
                   if self.background != "none" else 0)
            object.__setattr__(self, "pad", pad)
        if self.histogram_order is None:
            object.__setattr__(self, "histogram_order", min(3, self.order))
        if not 0 <= self.histogram_order <= self.order:
            raise ValueError(f"[hips] histogram_order {self.histogram_order} outside "
                             f"0..{self.order}")
        self.grid  # noqa: B018  (validates order, tile_width, nplate and pad)
        self.region_spec  # noqa: B018

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

    def fingerprint(self) -> dict:
        """The keys that change pixels; a work tree built with other values is refused."""
        data = dataclasses.asdict(self)
        # A dry run's placeholders must never pass for pixels.
        data["dryrun"] = self.executor == "dryrun"
        # wise_service: a mirror serves the same images.
        for key in ("executor", "stretch", "stretch_min", "stretch_max", "title", "creator_did",
                    "storage", "wise_service"):
            data.pop(key)
        return data

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)


def schema_fields(cls: type) -> list[tuple[dataclasses.Field, object]]:
    """``(field, type)`` of every configuration key of ``cls`` (MapSpec: not ``synthetic``)."""
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if f.name != "synthetic"]


def _check_fields(spec, section: str) -> None:
    for f, kind in schema_fields(type(spec)):
        value = getattr(spec, f.name)
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            raise ValueError(f"[{section}] {f.name} = {value!r}: must be one of "
                             f"{', '.join(choices)}")
        optional = isinstance(kind, types.UnionType)
        if value is None:
            if not optional:
                raise ValueError(f"[{section}] {f.name} must be set")
            continue
        base = next(t for t in typing.get_args(kind) if t is not type(None)) if optional else kind
        base = typing.get_origin(base) or base
        if base is float and isinstance(value, int) and not isinstance(value, bool):
            continue
        if not isinstance(value, base) or (base is int and isinstance(value, bool)):
            raise ValueError(f"[{section}] {f.name} = {value!r}: expected {base.__name__}")


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
