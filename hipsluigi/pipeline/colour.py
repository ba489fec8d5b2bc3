"""Colour composites: an RGB HiPS of PNG tiles from three maps (issue 12, "Colour").

``luigi --module hipsluigi ColourPNGs --red W4 --green W2 --blue W1`` builds whatever of the
three maps is missing (``AllSkyPNGs``), then the colour tiles, in one graph. Each map keeps
its own histogram and stretch: a colour tile's red, green and blue are the gray levels of the
red, green and blue maps' PNG tiles (:func:`hipsluigi.tiles.colour.compose_rgba`).

The composite lives on the red map's base storage unit, ``<unit0>/<name>/HiPS``
(:class:`~hipsluigi.storage.layout.ColourLayout`); ``name`` defaults to
``colour-<red>-<green>-<blue>``. Its tiles are made in groups, one task per order and per cell
of a low order (:func:`hipsluigi.tiles.colour.group_order`), each recording its tiles in a
manifest after they are written; the manifests and the metadata marker carry a key of the
three maps' pixel settings and stretches, so that a map rebuilt with another stretch redoes
the composite, and a rerun with nothing changed runs nothing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging

import luigi
import numpy as np

from hipsluigi.pipeline.settings import map_spec
from hipsluigi.pipeline.tasks import AllSkyPNGs, stretch_id
from hipsluigi.pipeline.worktree import layout_of
from hipsluigi.spec import MapSpec, SettingsError, check_map_name
from hipsluigi.storage import artifacts
from hipsluigi.storage.atomic import write_bytes_atomic, write_text_atomic
from hipsluigi.storage.layout import ColourLayout

log = logging.getLogger("luigi-interface")

CHANNELS = ("red", "green", "blue")

#: Settings the three maps must share: the colour tiles are made pixel by pixel.
SHARED_SETTINGS = ("order", "tile_width", "frame")


def default_colour_name(red: str, green: str, blue: str) -> str:
    """``colour-<red>-<green>-<blue>``."""
    return f"colour-{red}-{green}-{blue}"


def check_colour_maps(names: dict[str, str], specs: dict[str, MapSpec]) -> None:
    """Refuse three maps whose tiles do not match pixel for pixel.

    Parameters
    ----------
    names : dict of str to str
        Channel (``red``, ``green``, ``blue``) -> map name.
    specs : dict of str to MapSpec
        Channel -> that map's settings.

    Raises
    ------
    SettingsError
        One line naming every setting of :data:`SHARED_SETTINGS` that differs, with each
        map's value.
    """
    differ = []
    for key in SHARED_SETTINGS:
        values = {c: getattr(specs[c], key) for c in CHANNELS}
        if len(set(values.values())) > 1:
            shown = ", ".join(f"{names[c]} ({c}) {values[c]}" for c in CHANNELS)
            differ.append(f"[hips] {key} differs: {shown}")
    if differ:
        raise SettingsError(f"ColourPNGs: the three maps must share {', '.join(SHARED_SETTINGS)}"
                            f"; {'; '.join(differ)}")


def band_label(spec: MapSpec) -> str:
    """The map and what it shows, e.g. ``W4 (WISE W4)`` or ``sky1 (synthetic, seed 1)``."""
    if spec.survey == "wise":
        what = f"WISE W{spec.band}"
    elif spec.survey == "synthetic":
        what = f"synthetic, seed {spec.synthetic.seed}"
    else:
        what = spec.survey
    return f"{spec.obs_title} ({what})"


@functools.lru_cache(maxsize=64)
def _sources_key(specs: tuple[MapSpec, ...]) -> str:
    """Short id of what the colour tiles are made from: each map's name, base unit, pixel
    settings and stretch."""
    text = json.dumps([(s.name, s.storage[0], s.fingerprint(), stretch_id(s)) for s in specs],
                      sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


class ColourTask(luigi.Task):
    """Base of the colour tasks: the three maps and the composite's name."""

    red = luigi.Parameter(description="map of the red channel")
    green = luigi.Parameter(description="map of the green channel")
    blue = luigi.Parameter(description="map of the blue channel")
    name = luigi.Parameter(description="the composite's name (its folder)")

    @property
    def maps(self) -> dict[str, str]:
        return {"red": self.red, "green": self.green, "blue": self.blue}

    @property
    def specs(self) -> dict[str, MapSpec]:
        return {c: map_spec(m) for c, m in self.maps.items()}

    @property
    def spec(self) -> MapSpec:
        """The red map's settings (order, tile width and frame are the three maps')."""
        return map_spec(self.red)

    @property
    def layout(self) -> ColourLayout:
        return ColourLayout(self.spec.storage[0], self.name)

    @property
    def key(self) -> str:
        specs = self.specs
        return _sources_key(tuple(specs[c] for c in CHANNELS))

    def map_tasks(self) -> list[AllSkyPNGs]:
        return [AllSkyPNGs(map=m) for m in dict.fromkeys(self.maps.values())]


class ColourTiles(ColourTask):
    """The colour tiles of ``order`` inside ``cell`` (of order ``group_order(order)``), and
    their manifest, written after every tile it lists was found whole on disk.

    A tile is made wherever at least one map has one; a map without it is blank there.
    """

    order = luigi.IntParameter()
    cell = luigi.IntParameter()

    def requires(self):
        return self.map_tasks()

    def output(self):
        from hipsluigi.tiles.colour import group_order

        return luigi.LocalTarget(str(self.layout.manifest(
            self.order, group_order(self.order), self.cell, self.key)))

    def complete(self) -> bool:
        # A deleted or emptied tile redoes its group (the maps' own groups heal the same way).
        from hipsluigi.metadata.build import tile_file_problem

        path = self.output().path
        try:
            tiles = artifacts.read_manifest(path)["tiles"]
        except FileNotFoundError:
            return False
        except (ValueError, KeyError, TypeError):
            return False  # an unreadable manifest: the group is redone
        return all(tile_file_problem(self.layout.tile(self.order, n), None) is None
                   for n in tiles)

    def run(self) -> None:
        from hipsluigi.storage.atomic import check_file_size
        from hipsluigi.tiles.colour import compose_rgba, encode_rgba_png, group_tiles
        specs = self.specs
        layouts = [layout_of(specs[c]) for c in CHANNELS]
        sizes = {}
        for npix in group_tiles(self.order, self.cell):
            paths = [lay.tile(self.order, npix, "png") for lay in layouts]
            found = [_read_png(p) if p.exists() else None for p in paths]
            if all(t is None for t in found):
                continue
            try:
                png = encode_rgba_png(compose_rgba(*found))
            except ValueError as err:
                raise ValueError(f"colour tile {npix} of order {self.order} from "
                                 f"{', '.join(map(str, paths))}: {err}") from None
            write_bytes_atomic(self.layout.tile(self.order, npix), png)
            sizes[npix] = len(png)
        for npix, size in sizes.items():
            check_file_size(self.layout.tile(self.order, npix), size)
        artifacts.write_manifest(self.output().path, self.order, f"cell{self.cell}",
                                 sorted(sizes), stretch=self.key)


def _read_png(path) -> np.ndarray:
    """A map's gray/alpha PNG tile; a damaged one fails naming the file."""
    from hipsluigi.tiles.png import decode_png

    try:
        return decode_png(path)
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ValueError(f"{path}: unreadable PNG tile ({type(err).__name__}: {err}); "
                         "delete it and rerun, its map's metadata check then rebuilds "
                         "it") from None


class ColourMetadata(ColourTask):
    """``properties`` (``dataproduct_subtype = color``), ``Norder{0..3}/Allsky.png`` (RGBA),
    ``Moc.fits`` and ``index.html`` of the composite. Complete when its outputs exist and
    every tile group is."""

    def requires(self):
        from hipsluigi.tiles.colour import group_cells

        params = {"red": self.red, "green": self.green, "blue": self.blue, "name": self.name}
        order = self.spec.order
        return [ColourTiles(**params, order=k, cell=c) for k in range(order + 1)
                for c in group_cells(k)]

    @property
    def title(self) -> str:
        specs = self.specs
        return "Colour composite: " + ", ".join(f"{c} {band_label(specs[c])}" for c in CHANNELS)

    def _marker_key(self) -> str:
        return hashlib.sha1(f"{self.key}|{self.title}".encode()).hexdigest()[:8]

    def output(self):
        return {"properties": luigi.LocalTarget(str(self.layout.hips_dir / "properties")),
                "marker": luigi.LocalTarget(str(self.layout.metadata_marker(
                    self._marker_key())))}

    def complete(self) -> bool:
        return super().complete() and all(t.complete() for t in self.requires())

    def run(self) -> None:
        from hipsluigi.metadata.colour import colour_provenance, write_colour_metadata
        from hipsluigi.metadata.properties import parse_properties

        spec = self.spec
        tiles: dict[int, list[int]] = {}
        for target in self.input():
            manifest = artifacts.read_manifest(target.path)
            tiles.setdefault(manifest["order"], []).extend(manifest["tiles"])
        specs = self.specs
        write_colour_metadata(
            self.layout.hips_dir, order=spec.order, tile_width=spec.tile_width,
            frame=spec.frame, tiles=tiles, title=self.title,
            creator_did=f"ivo://hipsluigi/P/{self.name}",
            channels={c: band_label(specs[c]) for c in CHANNELS},
            provenance=colour_provenance({c: parse_properties(
                (layout_of(specs[c]).hips_dir / "properties").read_text(encoding="utf-8"))
                for c in CHANNELS}))
        write_text_atomic(self.output()["marker"].path, self._marker_key())


class ColourPNGs(luigi.WrapperTask):
    """An RGB HiPS of PNG tiles from three maps, each with its own stretch:
    ``--red W4 --green W2 --blue W1 [--name NAME]``. Builds whatever of the maps is missing.

    The three maps must share order, tile width and frame: constructing the task otherwise
    raises a one-line :class:`~hipsluigi.spec.SettingsError` (the ``luigi`` command prints it
    and exits 1 before any task runs).
    """

    red = luigi.Parameter(description="map of the red channel")
    green = luigi.Parameter(description="map of the green channel")
    blue = luigi.Parameter(description="map of the blue channel")
    name = luigi.Parameter(default="", description="the composite's name (its folder on the red "
                                                   "map's first storage unit); empty: "
                                                   "colour-<red>-<green>-<blue>")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        maps = {"red": self.red, "green": self.green, "blue": self.blue}
        for channel, name in maps.items():
            check_map_name(name, f"--{channel}")
        check_map_name(self.colour_name, "--name" if self.name else
                       "ColourPNGs' default name colour-<red>-<green>-<blue> (give --name)")
        if self.colour_name in maps.values():
            raise SettingsError(f"--name = {self.colour_name!r}: the composite's folder would "
                                "be that map's own; choose another name")
        check_colour_maps(maps, {c: map_spec(m) for c, m in maps.items()})

    @property
    def colour_name(self) -> str:
        return self.name or default_colour_name(self.red, self.green, self.blue)

    def requires(self):
        return ColourMetadata(red=self.red, green=self.green, blue=self.blue,
                              name=self.colour_name)

    def run(self) -> None:
        hips_dir = ColourLayout(map_spec(self.red).storage[0], self.colour_name).hips_dir
        log.info("colour HiPS %s complete: %s", self.colour_name, hips_dir)


__all__ = ["ColourMetadata", "ColourPNGs", "ColourTiles", "check_colour_maps",
           "default_colour_name"]
