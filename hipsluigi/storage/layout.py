"""The work tree: where every output of a map lives, per storage unit (docs/design.md,
"Storage layout").

For map NAME on units ``u0, u1, ...`` (``u0`` is the base)::

    u0/NAME/platelist.tbl, hips.json (the map's fingerprint)
    u0/NAME/mosaics/subset1/                 plates of unit 0 (a real folder)
    u0/NAME/mosaics/subsetK -> uK-1/NAME/mosaics   (links, as mHiPSSetup makes)
    uU/NAME/mosaics/plate_II_JJ.fits         padded plate mosaics of unit U > 0
    u0/NAME/mosaics/images.tbl, fitcombo.tbl, corrections.tbl   (global background model)
    uU/NAME/diffs/fit_II_JJ_KK_LL.json       difference fits, on the plus plate's unit U
    uU/NAME/plates/order{k}/plate_II_JJ.fits plates below the deepest order, on the plate's
                                             unit U
    uU/NAME/plates/order{D}/plate_II_JJ.correction.npz   the deepest order's plates: their
                                             background correction, applied to the mosaic
                                             as it is read
    uU/NAME/manifests/order{k}/plate_II_JJ.{fits,png}.json   tiles written by a tile group
    u0/NAME/survey/index.tbl, rejects.tbl, units.json   (fits and wise surveys)
    uU/_downloads/COLLECTION/...             archive files (wise), shared by the unit's maps
    u0/NAME/HiPS/...                         the HiPS itself (properties, Norder*/...),
                                             with unit 0's tiles
    uU/NAME/tiles/Norder{k}/Dir{d}/          tiles of unit U > 0's plates; the HiPS links
                                             them (hipsluigi.storage.tile_links)
    u0/NAME/stretch/                         histogram, stretch, metadata markers
    u0/NAME/scripts/jobs/*.sh, scripts/logs/ SLURM job scripts and logs
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hipsluigi.geometry.hpx import tile_relpath
from hipsluigi.geometry.platelist import plate_name


@dataclass(frozen=True)
class StorageLayout:
    """Paths of a map's work tree. ``units`` are absolute paths; ``name`` is the map name."""

    units: tuple[str, ...]
    name: str

    def unit(self, u: int) -> Path:
        """``<unit u>/NAME`` (units are numbered from 0, the base)."""
        if not 0 <= u < len(self.units):
            raise ValueError(f"storage unit {u} outside 0..{len(self.units) - 1}")
        return Path(self.units[u]) / self.name

    @property
    def base(self) -> Path:
        return self.unit(0)

    @property
    def nunits(self) -> int:
        return len(self.units)

    @property
    def fingerprint(self) -> Path:
        return self.base / "hips.json"

    @property
    def platelist(self) -> Path:
        return self.base / "platelist.tbl"

    def mosaics_dir(self, u: int) -> Path:
        """Physical folder of unit ``u``'s plate mosaics."""
        return self.base / "mosaics" / "subset1" if u == 0 else self.unit(u) / "mosaics"

    def subset_link(self, u: int) -> Path:
        """``u0/NAME/mosaics/subset{u+1}``: unit ``u``'s mosaics seen from the base."""
        return self.base / "mosaics" / f"subset{u + 1}"

    def mosaic(self, i: int, j: int, u: int) -> Path:
        return self.mosaics_dir(u) / f"{plate_name(i, j)}.fits"

    @property
    def survey_index(self) -> Path:
        """The input images of a ``fits`` or ``wise`` survey, usable or not (IPAC table)."""
        return self.base / "survey" / "index.tbl"

    @property
    def rejects(self) -> Path:
        """The survey's unusable inputs, each with its reason (IPAC table)."""
        return self.base / "survey" / "rejects.tbl"

    @property
    def survey_units(self) -> Path:
        """The survey's pixel unit (``BUNIT``) and photometric keys, for tiles and properties
        (JSON)."""
        return self.base / "survey" / "units.json"

    def download_dir(self, u: int) -> Path:
        """``<unit u>/_downloads``: survey files fetched from an archive, shared by every map
        on the unit."""
        return self.unit(u).parent / "_downloads"

    @property
    def images_table(self) -> Path:
        """``images.tbl`` of the plate mosaics (Montage's mImgtbl columns)."""
        return self.base / "mosaics" / "images.tbl"

    @property
    def fitcombo_table(self) -> Path:
        """``fitcombo.tbl``: every difference fit."""
        return self.base / "mosaics" / "fitcombo.tbl"

    @property
    def corrections_table(self) -> Path:
        return self.base / "mosaics" / "corrections.tbl"

    @property
    def seams(self) -> Path:
        """Edge corrections of every plate (see ``hipsluigi.background.seams``)."""
        return self.base / "mosaics" / "seams.npz"

    def difference_fit(self, plus: tuple[int, int], minus: tuple[int, int], u: int) -> Path:
        """The fit of ``plus - minus``, on the plus plate's unit ``u``."""
        return (self.unit(u) / "diffs"
                / f"fit_{plus[0]:02d}_{plus[1]:02d}_{minus[0]:02d}_{minus[1]:02d}.json")

    def plate(self, order: int, i: int, j: int, u: int) -> Path:
        return self.unit(u) / "plates" / f"order{order}" / f"{plate_name(i, j)}.fits"

    def plate_correction(self, order: int, i: int, j: int, u: int) -> Path:
        """The background correction of a deepest-order plate, applied as its mosaic is read
        (the plate itself is never written)."""
        return self.unit(u) / "plates" / f"order{order}" / f"{plate_name(i, j)}.correction.npz"

    def half_plate(self, order: int, i: int, j: int, u: int) -> Path:
        """A deepest-order plate shrunk by 2 before its background correction, written by its
        mosaic task from the pixels in memory, so that the shrink into its parent reads a
        quarter of the plate's bytes."""
        return self.unit(u) / "plates" / f"order{order}" / f"{plate_name(i, j)}.half.fits"

    def plate_histogram(self, order: int, i: int, j: int, u: int) -> Path:
        return self.unit(u) / "plates" / f"order{order}" / f"{plate_name(i, j)}.hist.npz"

    def manifest(self, order: int, i: int, j: int, u: int, ext: str) -> Path:
        return self.unit(u) / "manifests" / f"order{order}" / f"{plate_name(i, j)}.{ext}.json"

    def allsky_part(self, order: int, i: int, j: int, u: int, sid: str) -> Path:
        """What the Allsky files need of plate ``(i, j)``'s tiles of ``order`` (0 to 3),
        under stretch ``sid``: beside the tile group's manifest."""
        return (self.unit(u) / "manifests" / f"order{order}"
                / f"{plate_name(i, j)}.allsky-{sid}.npz")

    @property
    def hips_dir(self) -> Path:
        return self.base / "HiPS"

    def tile(self, order: int, npix: int, ext: str) -> Path:
        """Tile ``npix`` of ``order`` in the published HiPS (a file or a link to one)."""
        return self.hips_dir / tile_relpath(order, npix, ext)

    def tiles_dir(self, u: int) -> Path:
        """Where unit ``u`` holds its plates' tiles: the HiPS folder on the base unit,
        ``<unit u>/NAME/tiles`` (a HiPS tree's ``Norder*/Dir*`` part) on the others."""
        return self.hips_dir if u == 0 else self.unit(u) / "tiles"

    def unit_tile(self, order: int, npix: int, ext: str, u: int) -> Path:
        """The file of tile ``npix`` of ``order`` written by a plate on unit ``u``."""
        return self.tiles_dir(u) / tile_relpath(order, npix, ext)

    def stretch(self, sid: str) -> Path:
        """The stretch (JSON) of stretch settings ``sid``."""
        return self.base / "stretch" / f"stretch-{sid}.json"

    def merged_histogram(self, sid: str) -> Path:
        """The all-sky histogram the stretch ``sid`` was made from."""
        return self.base / "stretch" / f"stretch-{sid}.hist.npz"

    def metadata_marker(self, key: str) -> Path:
        """Marker that ``properties``, Allsky, MOC and index.html were written for ``key``."""
        return self.base / "stretch" / f"metadata-{key}.done"

    @property
    def scripts(self) -> Path:
        return self.base / "scripts"

    def setup(self) -> None:
        """Create the work tree on every unit and the ``subsetK`` links (idempotent, and safe
        when several clients set up the same map at once)."""
        for u in range(self.nunits):
            for sub in ("plates", "manifests", "diffs"):
                (self.unit(u) / sub).mkdir(parents=True, exist_ok=True)
            self.mosaics_dir(u).mkdir(parents=True, exist_ok=True)
        for u in range(1, self.nunits):
            link = self.subset_link(u)
            target = self.mosaics_dir(u)
            if link.is_symlink() and Path(os.readlink(link)) != target:
                link.unlink(missing_ok=True)
            try:
                link.symlink_to(target, target_is_directory=True)
            except FileExistsError:
                # made before, or at this moment by another client setting up the same map
                if not (link.is_symlink() and Path(os.readlink(link)) == target):
                    raise FileExistsError(
                        f"{link}: exists and is not a link to {target}") from None
        for sub in (self.hips_dir, self.base / "stretch", self.scripts / "jobs",
                    self.scripts / "logs"):
            sub.mkdir(parents=True, exist_ok=True)

    @property
    def records(self) -> Path:
        """``u0/NAME/records/``: one JSON record per task of what its work cost
        (:mod:`hipsluigi.execution.records`)."""
        return self.base / "records"

    @property
    def qa_dir(self) -> Path:
        """``HiPS/qa/``: the QA report (``report.html`` and its plots), beside the HiPS so
        that ``index.html`` links it as ``qa/report.html``."""
        return self.hips_dir / "qa"


@dataclass(frozen=True)
class ColourLayout:
    """Paths of a colour composite of three maps, on the red map's base unit::

        u0/NAME/HiPS/...                           the colour HiPS (properties, Norder*/...)
        u0/NAME/manifests/order{k}/cell{g}-{c}.{key}.json   tiles written by a tile group
        u0/NAME/metadata-{key}.done                properties, Allsky, MOC, index.html written

    ``base_unit`` is an absolute path (the red map's first storage unit); ``name`` the
    composite's name; ``key`` identifies the three maps' tiles the group was made from.
    """

    base_unit: str
    name: str

    @property
    def base(self) -> Path:
        return Path(self.base_unit) / self.name

    @property
    def hips_dir(self) -> Path:
        return self.base / "HiPS"

    def tile(self, order: int, npix: int) -> Path:
        """The PNG tile ``npix`` of ``order``."""
        return self.hips_dir / tile_relpath(order, npix, "png")

    def manifest(self, order: int, cell_order: int, cell: int, key: str) -> Path:
        """The record of the tiles of ``order`` inside ``cell`` of ``cell_order``."""
        return self.base / "manifests" / f"order{order}" / f"cell{cell_order}-{cell}.{key}.json"

    def metadata_marker(self, key: str) -> Path:
        return self.base / f"metadata-{key}.done"
