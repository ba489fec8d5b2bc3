"""Configuration: the ``[hips]`` and ``[synthetic]`` sections of ``luigi.cfg``.

Every key can be overridden on the command line, e.g. ``--hips-order 2`` or
``--synthetic-noise 0``. :func:`current_spec` turns the configuration into a :class:`MapSpec`,
the plain, picklable description of a map that the pure functions and the tasks share.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from functools import cached_property

import luigi

from hipsluigi.geometry.frames import check_frame
from hipsluigi.geometry.plates import PlateGrid, default_nplate, default_pad
from hipsluigi.geometry.region import Region, parse_region
from hipsluigi.storage import StorageLayout

SURVEYS = ("synthetic", "fits", "healpix", "wise")
BACKGROUNDS = ("global", "plate", "none")
EXECUTORS = ("local", "slurm", "dryrun")
REPROJECTIONS = ("interp", "reproject_interp", "reproject_exact", "reproject_adaptive")
STRETCHES = ("gaussian-log", "gaussian", "linear", "log", "sqrt", "asinh")


class hips(luigi.Config):  # noqa: N801  (the class name is the config section's name)
    """``[hips]``: the map to build. The first twelve keys are the documented interface."""

    name = luigi.Parameter(default="demo", description="map name (seed: W1)")
    order = luigi.IntParameter(default=3, description="deepest HiPS order")
    tile_width = luigi.IntParameter(default=512, description="tile width, a power of 2")
    nplate = luigi.OptionalIntParameter(default=None,
                                        description="plates a side; empty: 5*2**max(0, order-5)")
    storage = luigi.Parameter(
        default="hips-work/unit0,hips-work/unit1,hips-work/unit2,hips-work/unit3",
        description="comma-separated storage units; the first is the base")
    frame = luigi.ChoiceParameter(choices=["galactic", "equatorial"], default="galactic")
    survey = luigi.ChoiceParameter(choices=SURVEYS, default="synthetic")
    survey_path = luigi.Parameter(default="", description="folder of FITS images or HEALPix file")
    band = luigi.IntParameter(default=1)
    background = luigi.ChoiceParameter(choices=BACKGROUNDS, default="global")
    background_fit = luigi.ChoiceParameter(choices=["levels", "slopes"], default="levels",
                                           description="global model: planes or levels")
    executor = luigi.ChoiceParameter(choices=EXECUTORS, default="local")
    region = luigi.Parameter(default="", description="'plates XMIN YMIN XMAX YMAX' or "
                                                     "'cone LON LAT RADIUS [FRAME]'")
    pad = luigi.OptionalIntParameter(default=None, description="plate padding in pixels")
    reproject = luigi.ChoiceParameter(choices=REPROJECTIONS, default="interp")
    stretch = luigi.ChoiceParameter(choices=STRETCHES, default="gaussian-log")
    stretch_min = luigi.Parameter(default="", description="e.g. -2s, 1%, min, or a value")
    stretch_max = luigi.Parameter(default="", description="e.g. max, 99.5%, or a value")
    histogram_order = luigi.OptionalIntParameter(default=None,
                                                 description="order whose pixels set the "
                                                             "stretch; empty: min(3, order)")
    title = luigi.Parameter(default="", description="obs_title; empty: the map name")
    creator_did = luigi.Parameter(default="", description="empty: ivo://hipsluigi/P/<name>")


class synthetic(luigi.Config):  # noqa: N801
    """``[synthetic]``: the default, analytic survey (see ``hipsluigi.surveys.synthetic``)."""

    seed = luigi.IntParameter(default=1)
    frame_size = luigi.IntParameter(default=512, description="frame side in pixels")
    overlap = luigi.FloatParameter(default=0.1, description="fractional overlap of frames")
    frame_system = luigi.ChoiceParameter(choices=["icrs", "galactic"], default="icrs")
    noise = luigi.FloatParameter(default=0.05, description="per-pixel Gaussian noise sigma")
    backgrounds = luigi.FloatParameter(default=1.0,
                                       description="sigma of each frame's injected offset; "
                                                   "0 switches the planes off")
    tilt = luigi.FloatParameter(default=0.05,
                                description="plane slope: fraction of 'backgrounds' a frame "
                                            "tilts by across its width (sigma)")
    sources = luigi.IntParameter(default=2000, description="point sources on the whole sky")
    blobs = luigi.IntParameter(default=150, description="diffuse blobs on the whole sky")


@dataclass(frozen=True)
class SyntheticSpec:
    seed: int = 1
    frame_size: int = 512
    overlap: float = 0.1
    frame_system: str = "icrs"
    noise: float = 0.05
    backgrounds: float = 1.0
    tilt: float = 0.05
    sources: int = 2000
    blobs: int = 150


@dataclass(frozen=True)
class MapSpec:
    """Everything that defines a map; derived from the configuration by :func:`current_spec`."""

    name: str = "demo"
    order: int = 3
    tile_width: int = 512
    nplate: int = 5
    pad: int = 16
    storage: tuple[str, ...] = ("hips-work/unit0",)
    frame: str = "galactic"
    survey: str = "synthetic"
    survey_path: str = ""
    band: int = 1
    background: str = "global"
    background_fit: str = "levels"
    executor: str = "local"
    region: str = ""
    reproject: str = "interp"
    stretch: str = "gaussian-log"
    stretch_min: str = ""
    stretch_max: str = ""
    histogram_order: int | None = None  # None: min(3, order)
    title: str = ""
    creator_did: str = ""
    synthetic: SyntheticSpec = field(default_factory=SyntheticSpec)

    def __post_init__(self):
        check_frame(self.frame)
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

    @cached_property
    def layout(self) -> StorageLayout:
        return StorageLayout(self.storage, self.name)

    @property
    def obs_title(self) -> str:
        return self.title or self.name

    def fingerprint(self) -> dict:
        """The keys that change pixels; a work tree built with other values is refused."""
        data = asdict(self)
        # A dry run's placeholders must never pass for pixels.
        data["dryrun"] = self.executor == "dryrun"
        for key in ("executor", "stretch", "stretch_min", "stretch_max", "title", "creator_did",
                    "storage"):
            data.pop(key)
        return data

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)


def _split_storage(text: str, cwd: str) -> tuple[str, ...]:
    units = tuple(os.path.join(cwd, os.path.expanduser(u.strip()))
                  for u in text.split(",") if u.strip())
    if not units:
        raise ValueError("[hips] storage lists no storage unit")
    return units


def current_spec() -> MapSpec:
    """The :class:`MapSpec` the current Luigi configuration describes.

    Cached on the raw ``[hips]``/``[synthetic]`` options, the command-line overrides and the
    working directory: instantiating the Config classes costs ~60 interpolated option reads,
    and tasks ask for the spec tens of thousands of times while the graph is built.
    """
    key = _config_key()
    spec = _spec_cache.get(key)
    if spec is None:
        spec = _spec_for(hips(), synthetic(), os.getcwd())
        if len(_spec_cache) > 32:
            _spec_cache.clear()
        _spec_cache[key] = spec
    return spec


_spec_cache: dict = {}


def _config_key() -> tuple:
    from luigi.cmdline_parser import CmdlineParser

    cfg = luigi.configuration.get_config()
    sections = getattr(cfg, "_sections", None)  # ConfigParser's own storage: cheap to read
    if sections is None:  # another parser (TOML): fall back to the public, slower reads
        file_part = tuple((s, tuple(cfg.items(s))) for s in ("hips", "synthetic")
                          if cfg.has_section(s))
    else:
        file_part = tuple((s, tuple(sections.get(s, {}).items())) for s in ("hips", "synthetic"))
    parser = CmdlineParser.get_instance()
    cli_part = ()
    if parser is not None:
        cli_part = tuple(sorted((k, str(v)) for k, v in vars(parser.known_args).items()
                                if k.startswith(("hips_", "synthetic_")) and v is not None))
    return file_part, cli_part, os.getcwd()


def _spec_for(h: hips, s: synthetic, cwd: str) -> MapSpec:
    nplate = h.nplate if h.nplate is not None else default_nplate(h.order)
    if h.pad is not None:
        pad = h.pad
    else:  # padding is there for the overlaps that background matching fits
        pad = default_pad(h.order, h.tile_width, nplate) if h.background != "none" else 0
    return MapSpec(
        name=h.name, order=h.order, tile_width=h.tile_width, nplate=nplate, pad=pad,
        storage=_split_storage(h.storage, cwd), frame=h.frame, survey=h.survey,
        survey_path=h.survey_path, band=h.band, background=h.background,
        background_fit=h.background_fit, executor=h.executor,
        region=h.region, reproject=h.reproject, stretch=h.stretch, stretch_min=h.stretch_min,
        stretch_max=h.stretch_max,
        histogram_order=h.histogram_order,
        title=h.title, creator_did=h.creator_did,
        synthetic=SyntheticSpec(
            seed=s.seed, frame_size=s.frame_size, overlap=s.overlap,
            frame_system=s.frame_system, noise=s.noise, backgrounds=s.backgrounds, tilt=s.tilt,
            sources=s.sources, blobs=s.blobs,
        ),
    )
