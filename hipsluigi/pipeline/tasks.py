"""The Luigi task graph (docs/design.md, "Pipeline").

One task per plate (mosaic, correction), per overlap pair (difference fit), per (plate, order)
(shrink, tiles, PNGs, histogram) and per map (setup, survey index, plate list, plate table,
background model, histogram merge, metadata). Every task carries the map it belongs to
(``map``) and takes that map's settings from :func:`~hipsluigi.pipeline.settings.map_spec`.

Task classes are thin: parameters, ``requires``, ``output`` paths from the storage layout, and a
``work()`` that loads its inputs (``hipsluigi.storage.artifacts``), calls one pure kernel and
saves the result. Where the work runs (in the worker, as a SLURM job, or not at all under
``dryrun``) is :class:`~hipsluigi.execution.SlurmTask`'s business.

The kernels of the per-plate tasks are imported here, at the top: the Luigi worker imports
them once, and every task process it forks shares them (imported in ``work()``, each process
would import them again). The one-off tasks import theirs in ``work()``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from typing import TYPE_CHECKING

import luigi
import numpy as np

from hipsluigi.background.overlap import (
    fit_overlap,
    overlap_pixels,
    pages_touched,
    ring_stride,
)
from hipsluigi.background.seams import block_mean_correction, correct_plate
from hipsluigi.execution import SlurmTask
from hipsluigi.geometry.hpx import DIR_SIZE, plane_crpix
from hipsluigi.geometry.platelist import plate_name
from hipsluigi.geometry.plates import children
from hipsluigi.geometry.sky import plate_cap
from hipsluigi.metadata.allsky import (
    ALLSKY_MAX_ORDER,
    AllskyPart,
    allsky_part,
    part_preview_block,
)
from hipsluigi.mosaic.coadd import mosaic_plate
from hipsluigi.pipeline import plan
from hipsluigi.pipeline.settings import default_map_name, map_spec
from hipsluigi.pipeline.worktree import (
    check_work_tree,
    current_run,
    layout_of,
    prepare_work_tree,
)
from hipsluigi.pyramid.shrink import (
    HalfPlate,
    assemble_quad,
    crop_padding,
    crop_read_bytes,
    shrink2,
    shrink2_with_members,
)
from hipsluigi.spec import MapSpec, spec_sections
from hipsluigi.storage import artifacts
from hipsluigi.storage.atomic import (
    check_file_size,
    write_atomic,
    write_bytes_atomic,
    write_text_atomic,
)
from hipsluigi.storage.iometer import count_read
from hipsluigi.storage.layout import StorageLayout
from hipsluigi.storage.tile_links import link_dir, link_file, real_dir
from hipsluigi.stretch.histogram import histogram_of
from hipsluigi.surveys import open_survey
from hipsluigi.surveys.fits_folder import FitsFolderSurvey, listing_fingerprint
from hipsluigi.tiles.cut import plate_tiles, tile_file_size, write_plate_tiles
from hipsluigi.tiles.png import png_bytes, png_pixels

if TYPE_CHECKING:
    from astropy.io import fits

log = logging.getLogger("luigi-interface")


def stretch_id(spec: MapSpec) -> str:
    """Short id of the stretch settings; PNGs are redone when it changes."""
    key = f"{spec.stretch}|{spec.stretch_min}|{spec.stretch_max}|{spec.histogram_order}"
    return hashlib.sha1(key.encode()).hexdigest()[:8]


class MapName(luigi.Parameter):
    """The map a task belongs to; by default ``--hips-name`` or ``[hips] name``.

    Part of every task id, so that several maps (W1 ... W4) share one graph and one luigid.
    """

    def _value_iterator(self, task_name, param_name):
        # Luigi's own sources (command line, [TaskFamily] map) first, then [hips] name.
        yield from super()._value_iterator(task_name, param_name)
        yield default_map_name(), None


class HipsTask(SlurmTask):
    """Base of every hipsluigi task: its map's spec and work tree, and the map's executor.

    Map-level bookkeeping runs in the driver even under ``executor = slurm``
    (``slurm_job = False``); :class:`PlateTask` sends pixel work to the cluster.
    """

    map = MapName(description="map name; default [hips] name")
    slurm_job = False

    @property
    def spec(self) -> MapSpec:
        return map_spec(self.map)

    @property
    def layout(self) -> StorageLayout:
        return layout_of(self.spec)

    @property
    def executor(self) -> str:
        return self.spec.executor

    def job_files_dir(self):
        return self.layout.scripts

    def record_dir(self):
        return self.layout.records

    def storage_units(self) -> list[str]:
        return list(self.spec.storage)

    def job_config(self) -> dict[str, dict[str, str]]:
        # The job rebuilds this map's spec from its own sections, command-line overrides
        # included, whatever the driver's configuration files said.
        sections = super().job_config()
        sections.update(spec_sections(self.spec))
        return sections

    def complete(self) -> bool:
        check_work_tree(self.spec)
        return super().complete() and not _survey_outdated(self)

    def intermediate_inputs(self) -> list[tuple[str, list[HipsTask]]]:
        """The intermediate files (plate mosaics, plates) this task reads, each with every
        task that reads it; none by default."""
        return []

    def run(self) -> None:
        super().run()
        spec = self.spec
        if not spec.keep_intermediate and spec.executor != "dryrun":
            _remove_intermediates(self.map, self.intermediate_inputs())

    def target(self, path) -> luigi.LocalTarget:
        return luigi.LocalTarget(str(path))


class PlateTask(HipsTask):
    """A task on plate ``(i, j)`` of order ``order`` (0-based plate indices, i along x)."""

    order = luigi.IntParameter()
    i = luigi.IntParameter()
    j = luigi.IntParameter()
    slurm_job = True

    @property
    def unit(self) -> int:
        """The storage unit holding this plate's files."""
        return plan.unit_of(self.spec, self.order, self.i, self.j)

    @property
    def priority(self) -> int:
        # Earlier rows of platelist.tbl first, and deeper orders before shallower ones.
        spec = self.spec
        return (len(plan.plate_plan(spec).plates) - plan.rank_of(spec, self.order, self.i,
                                                                  self.j)) * 16 + self.order

    @property
    def resources(self) -> dict[str, int]:
        name = f"storage_unit_{self.unit}"
        configured = luigi.configuration.get_config().has_option("resources", name)
        return {name: 1} if configured else {}

    @property
    def plate_label(self) -> str:
        return f"{self.map} {plate_name(self.i, self.j)} order {self.order}"

    def same_plate(self, family: type[PlateTask], order: int | None = None) -> PlateTask:
        return family(map=self.map, order=self.order if order is None else order, i=self.i,
                      j=self.j)


def plate_task(map_name: str, spec: MapSpec, order: int, i: int, j: int) -> PlateTask:
    """The task that completes plate ``(i, j)`` at ``order`` (corrected, unpadded); its
    output is read with :func:`_read_plate`."""
    family = CorrectPlate if order == spec.order else ShrinkPlate
    return family(map=map_name, order=order, i=i, j=j)


def _read_plate(task: PlateTask, order: int, i: int, j: int, target) -> np.ndarray:
    """The pixels ``[row, col]`` of plate ``(i, j)`` at ``order``, from ``target``, the output
    of its :func:`plate_task`.

    Below the deepest order, the plate file. At the deepest order, the plate mosaic with its
    padding cropped and the background correction ``target`` holds subtracted as it is read:
    the same float32 pixels a corrected copy would hold, without writing and reading one."""
    spec = task.spec
    if order != spec.order:
        return artifacts.read_plate(target.path)

    grid = spec.grid
    mosaic = task.layout.mosaic(i, j, plan.unit_of(spec, order, i, j))
    artifacts.check_plate(mosaic, grid.shape(padded=True))
    padded = artifacts.read_plate(mosaic, count=False)
    # the padding rows are never touched: counted as the memory map's pages are read
    count_read(mosaic, crop_read_bytes(padded.shape, grid.pad, padded.itemsize))
    plate = crop_padding(padded, grid.pad)
    plane, edges = artifacts.read_plate_correction(target.path)
    if plane is None:
        return plate
    return correct_plate(plate, grid.origin(i, j), plane, edges, plane_crpix(grid.face_side))


def _plate_file(spec: MapSpec, layout: StorageLayout, order: int, i: int, j: int) -> str:
    """The file plate ``(i, j)`` at ``order`` is read from: its mosaic at the deepest order
    (see :func:`_read_plate`), else the plate."""
    unit = plan.unit_of(spec, order, i, j)
    if order == spec.order:
        return str(layout.mosaic(i, j, unit))
    return str(layout.plate(order, i, j, unit))


def _mosaic_readers(map_name: str, spec: MapSpec, i: int, j: int) -> list[HipsTask]:
    """Every task that reads plate ``(i, j)``'s mosaic: the background fits, and the readers
    of the deepest-order plate it is (:func:`_read_plate`)."""
    readers: list[HipsTask] = []
    if spec.background == "global":
        readers.append(PlateTable(map=map_name))
        readers += [OverlapFit(map=map_name, order=spec.order, i=p[0], j=p[1], mi=m[0], mj=m[1])
                    for p, m in plan.pairs_of(spec).get((i, j), ())]
    return readers + _plate_readers(map_name, spec, spec.order, i, j)


def _plate_readers(map_name: str, spec: MapSpec, order: int, i: int, j: int
                   ) -> list[HipsTask]:
    """Every task that reads plate ``(i, j)`` of ``order``: its tile groups, its histogram,
    and the plate it shrinks into."""
    readers: list[HipsTask] = [PlateTiles(map=map_name, order=order, i=i, j=j),
                               PlatePNGs(map=map_name, order=order, i=i, j=j)]
    if order == spec.histogram_order:
        readers.append(PlateHistogram(map=map_name, order=order, i=i, j=j))
    parent = _parent_plate(spec, order, i, j)
    if parent is not None:
        readers.append(ShrinkPlate(map=map_name, order=order - 1, i=parent[0], j=parent[1]))
    return readers


def _parent_plate(spec: MapSpec, order: int, i: int, j: int) -> tuple[int, int] | None:
    """The plate at ``order - 1`` that plate ``(i, j)`` of ``order`` shrinks into, or None
    (order 0, or a parent outside the map's region)."""
    if order == 0:
        return None
    f = plan.grid(spec, order).nplate // plan.grid(spec, order - 1).nplate
    parent = (i // f, j // f)
    return parent if parent in plan.plates_at_order(spec, order - 1) else None


def _half_plate_file(spec: MapSpec, layout: StorageLayout, i: int, j: int) -> str | None:
    """The half plate of deepest plate ``(i, j)`` (:meth:`StorageLayout.half_plate`), or None
    if it shrinks into no plate."""
    if _parent_plate(spec, spec.order, i, j) is None:
        return None
    return str(layout.half_plate(spec.order, i, j, plan.unit_of(spec, spec.order, i, j)))


def _half_header(spec: MapSpec, i: int, j: int) -> fits.Header:
    """The WCS of deepest plate ``(i, j)`` shrunk by 2: its parent's, moved to the part of the
    parent it fills."""
    order = spec.order
    pi, pj = _parent_plate(spec, order, i, j)
    header = plan.grid(spec, order - 1).plate_header(pi, pj, spec.frame, padded=False)
    if len(children(spec.grid, order - 1, pi, pj)) > 1:
        side = plan.grid(spec, order).plate_side // 2
        header["CRPIX1"] -= (i - 2 * pi) * side  # child (a, b) fills columns a*side ..
        header["CRPIX2"] -= (j - 2 * pj) * side  # and rows b*side ..
    return header


def _uncorrected_half(spec: MapSpec, padded: np.ndarray) -> HalfPlate:
    """The half plate of a deepest plate from its padded mosaic (uncorrected)."""
    return shrink2_with_members(crop_padding(padded, spec.grid.pad))


def _intermediate(map_name: str, spec: MapSpec, layout: StorageLayout, order: int, i: int,
                  j: int) -> tuple[str, list[HipsTask]]:
    """The file plate ``(i, j)`` at ``order`` is read from, with every task that reads it."""
    readers = (_mosaic_readers(map_name, spec, i, j) if order == spec.order
               else _plate_readers(map_name, spec, order, i, j))
    return _plate_file(spec, layout, order, i, j), readers


def _plate_input(task: PlateTask, order: int, i: int, j: int) -> tuple[str, list[HipsTask]]:
    return _intermediate(task.map, task.spec, task.layout, order, i, j)


def _read_already(reader: HipsTask) -> bool:
    """Whether ``reader`` needs its inputs no more: complete, or (a shrink) its plate made
    and removed in turn (after a tile group was healed, its plate is made again, but the
    lower order's plate need not be)."""
    if isinstance(reader, ShrinkPlate):
        path = reader.output().path
        if os.path.exists(_removed_marker(path)) and not os.path.exists(path):
            return True
    return reader.complete()


def _removed_marker(path: str) -> str:
    """The empty file that says plate or mosaic ``path`` was removed on purpose
    (``keep_intermediate = false``), so that its tile groups stay complete without it."""
    return path + ".removed"


def _remove_intermediates(map_name: str, inputs: list[tuple[str, list[HipsTask]]]) -> None:
    """Remove each intermediate file whose readers are all complete (so no task of this run
    or a later one asks for it again), leaving its :func:`_removed_marker`."""
    from pathlib import Path


    for path, readers in inputs:
        if not os.path.exists(path) or not all(_read_already(r) for r in readers):
            continue
        write_text_atomic(_removed_marker(path), "", fsync=False)
        Path(path).unlink(missing_ok=True)
        log.info("map %s: removed %s: every task reading it is done (keep_intermediate = "
                 "false)", map_name, path)


class Setup(HipsTask):
    """The work tree on every storage unit and the ``subsetK`` links (mHiPSSetup)."""

    dryrun_work = True

    def output(self):
        return self.target(self.layout.fingerprint)

    def work(self) -> None:
        prepare_work_tree(self.spec)


class PlateList(HipsTask):
    """``platelist.tbl``: on-sky plates, storage units, round-robin order (mHPXPlateList).

    The graph itself reads the plate list (``hipsluigi.pipeline.plan``), which writes it when
    missing; this task makes it an explicit node of the graph, after the work tree.
    """

    dryrun_work = True

    def requires(self):
        return Setup(map=self.map)

    def output(self):
        return self.target(self.layout.platelist)

    def work(self) -> None:
        plan.ensure_plate_list(self.spec)


def _tracks_folder(spec: MapSpec) -> bool:
    """Whether the map's inputs are a folder whose changes redo the index and the mosaics."""
    return spec.survey == "fits" and spec.executor != "dryrun"


def _survey_outdated(task: HipsTask) -> bool:
    """Whether ``task`` depends on a survey index that no longer matches its folder (a file
    added, removed or rewritten since the index was made), in the run this process drives.

    Then every task from the index down is incomplete: the index is redone, the mosaics whose
    inputs changed are made again (:meth:`PlateMosaic.run` keeps the others) and the rest of
    the map is remade from them. The folder is compared once per run and index file; an index
    made during the run is kept for the rest of it (a file that changes meanwhile is the next
    run's business: a vanished one is skipped by the mosaics). Outside a driven run (a SLURM
    job checking its outputs) nothing is compared.
    """
    spec = task.spec
    run = current_run()
    if run is None or not _tracks_folder(spec) or isinstance(task, (Setup, PlateList)):
        return False
    index = task.layout.survey_index
    try:
        info = os.stat(index)
    except FileNotFoundError:
        return False  # not made yet: SurveyIndex is incomplete anyway
    key = ("survey outdated", str(index), info.st_ino, info.st_size, info.st_mtime_ns)
    if key not in run.memo:

        run.memo[key] = outdated = (
            info.st_mtime < run.started
            and artifacts.read_survey_listing(index) != listing_fingerprint(spec.survey_path))
        if outdated:
            log.warning("map %s: survey_path %s changed since %s was made (a file added, "
                        "removed or rewritten): the index is redone, then the mosaics whose "
                        "inputs changed, and the map from them", task.map,
                        artifacts.escape_text(spec.survey_path), index)
    return run.memo[key]


class SurveyIndex(HipsTask):
    """The inputs of a ``fits``, ``wise`` or ``healpix`` survey: ``survey/index.tbl`` (usable
    images with their footprint, the rest with why), ``survey/rejects.tbl`` (the unusable ones
    and why) and ``survey/units.json`` (the pixel unit). Fails at once, saying why, if no pixel
    can be made (or the HEALPix map cannot be read).

    For ``fits``, the index records the folder's listing fingerprint (names, sizes,
    modification times); once the folder differs, the next run redoes the index and the map
    from it (:func:`_survey_outdated`)."""

    def requires(self):
        return PlateList(map=self.map)

    def output(self):
        return self.target(self.layout.survey_index)

    def work(self) -> None:
        from hipsluigi.surveys.coverage import check_coverage
        from hipsluigi.surveys.units import map_units

        spec, layout = self.spec, self.layout
        if spec.survey == "healpix":
            self._healpix_index()
            return
        caps = [plate_cap(spec.grid, i, j) for i, j in plan.plates_at_order(spec, spec.order)]
        listing = None
        if spec.survey == "fits":
            from hipsluigi.surveys.fits_folder import listing_fingerprint, scan_folder

            # Listed before the scan: a file that changes during the scan changes the listing
            # after it, and the next run indexes the folder again.
            listing = listing_fingerprint(spec.survey_path)
            index = scan_folder(spec.survey_path, spec.frame)
            source = f"[hips] survey_path {spec.survey_path!r}"
        else:
            from hipsluigi.surveys.wise import atlas_index

            index = atlas_index(spec.wise_service, spec.wise_collection, spec.band,
                                plan.cones_icrs(spec, caps), spec.frame)
            source = f"[hips] wise_service {spec.wise_service} ({spec.wise_collection}, " \
                     f"band W{spec.band})"
        units = map_units(index)
        for row in index[index["status"] != "ok"]:
            log.warning("survey: rejected %s: %s", artifacts.escape_text(str(row["path"])),
                        artifacts.escape_text(str(row["reason"])))
        artifacts.write_rejects(layout.rejects, index)
        check_coverage(index, caps, spec.grid.face_side, spec.region, source)
        artifacts.write_survey_units(layout.survey_units, units)
        artifacts.write_survey_index(self.output().path, index, listing)

    def _healpix_index(self) -> None:
        from astropy.table import Table

        from hipsluigi.surveys import open_survey

        survey = open_survey(self.spec)  # a map that cannot be read fails here, once
        index = Table({"path": [survey.path], "column": [survey.column], "nside": [survey.nside],
                       "frame": [survey.frame], "status": ["ok"], "reason": [""]})
        artifacts.write_rejects(self.layout.rejects, index)
        artifacts.write_survey_units(self.layout.survey_units,
                                     {"BUNIT": survey.unit} if survey.unit else {})
        artifacts.write_survey_index(self.output().path, index)


def _indexed_survey(spec: MapSpec, layout: StorageLayout):
    """The map's :class:`~hipsluigi.surveys.fits_folder.FitsFolderSurvey` from its current
    ``survey/index.tbl``, read once per version of the file (completion checks of every plate
    share it)."""
    info = os.stat(layout.survey_index)
    return _read_indexed_survey(str(layout.survey_index), info.st_ino, info.st_size,
                                info.st_mtime_ns, spec.frame)


@functools.lru_cache(maxsize=8)
def _read_indexed_survey(path: str, inode: int, size: int, mtime_ns: int, frame: str):

    return FitsFolderSurvey(artifacts.read_survey_index(path), frame)


def _plate_inputs_id(spec: MapSpec, layout: StorageLayout, survey, i: int, j: int) -> str:
    """What plate ``(i, j)``'s mosaic is made from: the index rows of the images touching it
    and the survey's units (which the tiles carry)."""
    import json

    centre, radius = plate_cap(spec.grid, i, j)
    units = json.dumps(artifacts.read_survey_units(layout.survey_units), sort_keys=True)
    return survey.inputs_id(centre, radius, extra=units)


class PlateMosaic(PlateTask):
    """The padded plate mosaic of the survey's images at the deepest order (mExec).

    For a ``fits`` survey the mosaic records the id of its inputs (``INPUTS``: the index rows
    of the images touching the plate); it is incomplete when the index holds other inputs
    for the plate, and a refreshed index that leaves them as they were keeps it."""

    def requires(self):
        if self.spec.survey == "synthetic":
            return [PlateList(map=self.map)]
        return [PlateList(map=self.map), SurveyIndex(map=self.map)]

    def output(self):
        return self.target(self.layout.mosaic(self.i, self.j, self.unit))

    def complete(self) -> bool:
        return super().complete() and (not _tracks_folder(self.spec)
                                       or self._made_from_current_inputs())

    def _made_from_current_inputs(self) -> bool:
        spec, layout = self.spec, self.layout
        try:
            recorded = artifacts.read_mosaic_inputs(self.output().path)
            survey = _indexed_survey(spec, layout)
        except (OSError, ValueError):
            return False  # an unreadable mosaic or index is redone
        return recorded == _plate_inputs_id(spec, layout, survey, self.i, self.j)

    def run(self) -> None:
        if (_tracks_folder(self.spec) and self.output().exists()
                and self._made_from_current_inputs()):
            log.info("%s: the refreshed survey index holds the same inputs for this plate: "
                     "its mosaic is kept", self.plate_label)
            return
        super().run()
        _unmark_removed(self)

    def work(self) -> None:

        spec, layout = self.spec, self.layout
        grid = spec.grid
        index = None
        if spec.survey in ("fits", "wise"):
            index = artifacts.read_survey_index(layout.survey_index)
        downloads = [layout.download_dir(u) / spec.wise_collection
                     for u in range(layout.nunits)]
        survey = open_survey(spec, index, downloads)
        inputs = None
        if spec.survey == "healpix":
            result = survey.plate_mosaic(grid, self.i, self.j, spec.frame)
        else:
            centre, radius = plate_cap(grid, self.i, self.j)
            if spec.survey == "fits":
                inputs = _plate_inputs_id(spec, layout, survey, self.i, self.j)
            images = survey.images_touching(centre, radius)
            result = mosaic_plate(grid, self.i, self.j, images, spec.frame, spec.reproject,
                                  match_images=spec.background != "none",
                                  progress=self._frames_done)
            # Images the survey could not even open (fits: gone since indexed; wise: not
            # fetched) are skipped like unreadable ones.
            result.skipped_images.update(getattr(survey, "skipped", {}))
        for reason in result.skipped_images.values():
            log.warning("%s: skipped %s", self.plate_label, artifacts.escape_text(reason))
        half = _half_plate_file(spec, layout, self.i, self.j)
        if half is not None:
            # Shrunk from the pixels in memory, the shrink to the next order reads a quarter
            # of the plate instead of the plate (see ShrinkPlate); before the mosaic, whose
            # presence says the task is done.
            artifacts.write_half_plate(half, _uncorrected_half(spec, result.data),
                                       _half_header(spec, self.i, self.j))
        artifacts.write_plate_mosaic(
            self.output().path, result.data, grid.plate_header(self.i, self.j, spec.frame,
                                                               padded=True),
            result.used_images, result.skipped_images, result.image_planes, inputs)

    def _frames_done(self, done: int, total: int) -> None:
        # To luigid through the worker; in a SLURM job there is no worker and this says
        # nothing (the driver shows the job's state instead).
        self._tell_scheduler("set_status_message",
                             f"{self.plate_label}: {done} of {total} frames done")
        self._tell_scheduler("set_progress_percentage", 100 * done // max(total, 1))


def _mosaic_tasks(map_name: str, spec: MapSpec) -> dict:
    return {(i, j): PlateMosaic(map=map_name, order=spec.order, i=i, j=j)
            for i, j in plan.plates_at_order(spec, spec.order)}


class PlateTable(HipsTask):
    """``images.tbl`` of the plate mosaics (mImgtbl), in Montage's columns."""

    def requires(self):
        return _mosaic_tasks(self.map, self.spec)

    def output(self):
        return self.target(self.layout.images_table)

    def intermediate_inputs(self):
        spec = self.spec
        return [(t.path, _mosaic_readers(self.map, spec, *p)) for p, t in self.input().items()]

    def work(self) -> None:
        from hipsluigi.background.tables import images_table

        ids = plan.plate_ids(self.spec)
        plates = sorted(ids, key=ids.__getitem__)
        targets = self.input()
        headers = [artifacts.read_plate_header(targets[p].path) for p in plates]
        paths = [os.path.relpath(targets[p].path, self.layout.base / "mosaics") for p in plates]
        artifacts.write_ipac_table(self.output().path, images_table(plates, headers, paths))


class OverlapFit(PlateTask):
    """The plane fitted to the difference of plate ``(i, j)`` (plus) and ``(mi, mj)``
    (minus) over their overlap (mDiffFit)."""

    mi = luigi.IntParameter()
    mj = luigi.IntParameter()

    def requires(self):
        return {"plus": self.same_plate(PlateMosaic),
                "minus": PlateMosaic(map=self.map, order=self.order, i=self.mi, j=self.mj)}

    def output(self):
        return self.target(self.layout.difference_fit((self.i, self.j), (self.mi, self.mj),
                                                      self.unit))

    def intermediate_inputs(self):
        spec = self.spec
        return [(self.input()[k].path, _mosaic_readers(self.map, spec, *p))
                for k, p in (("plus", (self.i, self.j)), ("minus", (self.mi, self.mj)))]

    def work(self) -> None:

        spec = self.spec
        ids = plan.plate_ids(spec)
        stride = ring_stride(spec.grid)
        paths = self.input()["plus"].path, self.input()["minus"].path
        plus, minus = (artifacts.read_plate(p, count=False) for p in paths)
        pixels = overlap_pixels(spec.grid, (self.i, self.j), (self.mi, self.mj), stride)
        fit = fit_overlap(spec.grid, (self.i, self.j), (self.mi, self.mj), plus, minus,
                          ids[(self.i, self.j)], ids[(self.mi, self.mj)], stride, pixels)
        # The fit reads only the overlap of the memory-mapped mosaics: count those pages.
        rp, cp, rm, cm, _ = pixels
        count_read(paths[0], pages_touched(rp, cp, plus.shape[1]))
        count_read(paths[1], pages_touched(rm, cm, minus.shape[1]))
        artifacts.write_difference_fit(self.output().path, fit)


class BackgroundModel(HipsTask):
    """The global background solution (mBgModel): ``fitcombo.tbl``, ``corrections.tbl`` and
    the seam fields."""

    def requires(self):
        return {"images": PlateTable(map=self.map),
                "diffs": [OverlapFit(map=self.map, order=self.spec.order, i=p[0], j=p[1],
                                     mi=m[0], mj=m[1])
                          for p, m, _ in plan.overlap_pairs(self.spec)]}

    def output(self):
        return {"fitcombo": self.target(self.layout.fitcombo_table),
                "corrections": self.target(self.layout.corrections_table),
                "seams": self.target(self.layout.seams)}

    def work(self) -> None:
        from hipsluigi.background.model import solve_background
        from hipsluigi.background.seams import edge_fields
        from hipsluigi.background.tables import corrections_table, fitcombo_table

        spec = self.spec
        records = [r for r in (artifacts.read_difference_fit(t.path)
                               for t in self.input()["diffs"]) if r is not None]
        ids = plan.plate_ids(spec)
        solution = solve_background(records, list(ids.values()), spec.grid.face_side,
                                    slopes=spec.background_fit == "slopes")
        for k in solution.rejected:
            log.warning("background model: rejected difference fit %s - %s as an outlier",
                        records[k].plus, records[k].minus)
        names = {v: plate_name(*p) for p, v in ids.items()}
        fields = edge_fields(records, solution.planes, plane_crpix(spec.grid.face_side))
        out = self.output()
        artifacts.write_ipac_table(out["fitcombo"].path, fitcombo_table(records))
        artifacts.write_ipac_table(out["corrections"].path,
                                   corrections_table(solution.planes, names))
        artifacts.write_seam_fields(out["seams"].path, fields)


class CorrectPlate(PlateTask):
    """The deepest-order plate: its background correction (the plane and edge corrections
    of :class:`BackgroundModel`; nothing to subtract without global matching), which the
    plate's readers apply to its mosaic as they read it (:func:`_read_plate`).

    No corrected copy is written: that saves a write and a read of every deepest plate, the
    largest files of the map. Complete while the mosaic is on disk; a mosaic removed with
    ``keep_intermediate = false`` is made again when a reader needs the plate again."""

    def requires(self):
        reqs = {"mosaic": self.same_plate(PlateMosaic)}
        if self.spec.background == "global":
            reqs["model"] = BackgroundModel(map=self.map)
        return reqs

    def output(self):
        return self.target(self.layout.plate_correction(self.order, self.i, self.j, self.unit))

    def complete(self) -> bool:
        return super().complete() and os.path.exists(self.layout.mosaic(self.i, self.j,
                                                                       self.unit))

    def work(self) -> None:
        spec = self.spec
        # A broken mosaic fails here, naming itself, rather than in each of its readers.
        artifacts.check_plate(self.input()["mosaic"].path, spec.grid.shape(padded=True))
        plane = edges = None
        if spec.background == "global":
            model = self.input()["model"]
            pid = plan.plate_ids(spec)[(self.i, self.j)]
            plane = artifacts.read_corrections(model["corrections"].path)[pid]
            edges = artifacts.read_seam_field(model["seams"].path, pid)
        artifacts.write_plate_correction(self.output().path, plane, edges)


class ShrinkPlate(PlateTask):
    """Plate ``(i, j)`` at ``order`` from its children at ``order + 1`` (mShrink by 2).

    Each child is shrunk by 2 on its own and the halves placed side by side: the same bits as
    shrinking the assembled children (each pixel is the mean of one 2 x 2 block), without
    holding them. A child of the deepest order comes already shrunk: its mosaic task wrote
    its half plate (:meth:`StorageLayout.half_plate`) from the pixels in memory, before the
    background model was known, and its correction is subtracted here as the mean of the
    correction over each block's pixels (:func:`~hipsluigi.background.seams.
    block_mean_correction`). A half that is gone is made again from the mosaic, to the same
    bits."""

    def _children(self) -> list[tuple[int, int, int, int]]:
        """``(a, b, ci, cj)`` of the children that exist at ``order + 1``."""
        spec = self.spec
        existing = set(plan.plates_at_order(spec, self.order + 1))
        kids = children(spec.grid, self.order, self.i, self.j)
        if len(kids) == 1:
            return [(0, 0, *kids[0])] if kids[0] in existing else []
        return [(ci - 2 * self.i, cj - 2 * self.j, ci, cj) for ci, cj in kids
                if (ci, cj) in existing]

    def _from_halves(self) -> bool:
        return self.order + 1 == self.spec.order

    def requires(self):
        spec = self.spec
        return [plate_task(self.map, spec, self.order + 1, ci, cj)
                for _, _, ci, cj in self._children()]

    def output(self):
        return self.target(self.layout.plate(self.order, self.i, self.j, self.unit))

    def intermediate_inputs(self):
        inputs = []
        for _, _, ci, cj in self._children():
            if self._from_halves():
                inputs.append((_half_plate_file(self.spec, self.layout, ci, cj), [self]))
            inputs.append(_plate_input(self, self.order + 1, ci, cj))
        return inputs

    def run(self) -> None:
        super().run()
        _unmark_removed(self)

    def work(self) -> None:

        spec = self.spec
        kids = self._children()
        halves = {(a, b): self._shrunk_child(ci, cj, t)
                  for (a, b, ci, cj), t in zip(kids, self.input(), strict=True)}
        if len(children(spec.grid, self.order, self.i, self.j)) == 1:
            parent = halves[(0, 0)]
        else:
            parent = assemble_quad(halves, plan.grid(spec, self.order + 1).plate_side // 2)
        header = plan.grid(spec, self.order).plate_header(self.i, self.j, spec.frame,
                                                          padded=False)
        artifacts.write_plate(self.output().path, parent, header)

    def _shrunk_child(self, ci: int, cj: int, target) -> np.ndarray:
        """Child ``(ci, cj)`` (read from ``target``, its :func:`plate_task`'s output) shrunk by
        2, float32."""
        spec = self.spec
        if not self._from_halves():
            return shrink2(_read_plate(self, self.order + 1, ci, cj, target))
        half = self._read_half(ci, cj)
        plane, edges = artifacts.read_plate_correction(target.path)
        if plane is None:
            return half.data
        correction = block_mean_correction(spec.grid.plate_side, spec.grid.origin(ci, cj),
                                           plane, edges, plane_crpix(spec.grid.face_side),
                                           half.partial, half.members)
        return (half.data - correction).astype(np.float32)

    def _read_half(self, ci: int, cj: int) -> HalfPlate:
        """Deepest child ``(ci, cj)``'s half plate; made again from its mosaic, to the same
        bits, when it is gone (removed, or the mosaic is an older release's) or cannot be
        read (named in the log)."""
        spec = self.spec
        side = spec.grid.plate_side // 2
        path = _half_plate_file(spec, self.layout, ci, cj)
        if os.path.exists(path):
            try:
                half = artifacts.read_half_plate(path)
                if half.data.shape == (side, side):
                    return half
                log.warning("%s: %s holds %s pixels, not %s: made again from the mosaic",
                            self.plate_label, path, half.data.shape, (side, side))
            except OSError as err:
                log.warning("%s: %s: made again from the mosaic", self.plate_label, err)
        mosaic = self.layout.mosaic(ci, cj, plan.unit_of(spec, spec.order, ci, cj))
        artifacts.check_plate(mosaic, spec.grid.shape(padded=True))
        padded = artifacts.read_plate(mosaic, count=False)
        count_read(mosaic, crop_read_bytes(padded.shape, spec.grid.pad, padded.itemsize))
        return _uncorrected_half(spec, padded)


class PlateTiles(PlateTask):
    """The FITS tiles of plate ``(i, j)`` at ``order`` (mHiPSTiles), and their manifest.

    The manifest is the group's completion record, trusted as such: it is written only after
    every tile it lists was found on disk at its full size. A group whose plate vanished is
    not complete: the plate is rebuilt and the tiles cut again from it.
    """

    def requires(self):
        return plate_task(self.map, self.spec, self.order, self.i, self.j)

    def output(self):
        return self.target(self.layout.manifest(self.order, self.i, self.j, self.unit, "fits"))

    def complete(self) -> bool:
        return super().complete() and _plate_exists(self)

    def intermediate_inputs(self):
        return [_plate_input(self, self.order, self.i, self.j)]

    def work(self) -> None:
        _write_fits_group(self, _read_plate(self, self.order, self.i, self.j, self.input()))


def _write_fits_group(task: PlateTask, plate: np.ndarray) -> list[int]:
    """Cut ``task``'s plate into its FITS tiles on the plate's unit, publish them, check each
    one's size and then write the group's manifest; returns the tiles (NPIX) written."""

    spec, layout, order = task.spec, task.layout, task.order
    cards = _unit_cards(spec, layout)
    written = write_plate_tiles(
        plate, plan.grid(spec, order), task.i, task.j, spec.frame,
        lambda npix: layout.unit_tile(order, npix, "fits", task.unit),
        write_file=write_atomic, cards=cards)
    _publish_tiles(task, "fits", written)
    size = tile_file_size(order, spec.tile_width, spec.frame, cards)
    for npix in written:
        check_file_size(layout.tile(order, npix, "fits"), size)
    artifacts.write_manifest(layout.manifest(order, task.i, task.j, task.unit, "fits"), order,
                             plate_name(task.i, task.j), written)
    return written


def _publish_tiles(task: PlateTask, ext: str, npix: list[int]) -> None:
    """Make the tiles ``task`` wrote on its unit part of the published HiPS (links on the base
    unit, :mod:`hipsluigi.storage.tile_links`); unit 0's tiles already are."""

    u, order, layout = task.unit, task.order, task.layout
    if u == 0:
        return
    shared = plan.shared_dirs(task.spec, order)
    by_dir: dict[int, list[int]] = {}
    for n in npix:
        by_dir.setdefault(n // DIR_SIZE, []).append(n)
    for d, tiles in by_dir.items():
        public = layout.tile(order, tiles[0], ext).parent
        if d not in shared and link_dir(public, layout.unit_tile(order, tiles[0], ext,
                                                                 u).parent):
            continue
        real_dir(public)
        for n in tiles:
            link_file(layout.tile(order, n, ext), layout.unit_tile(order, n, ext, u))


def _plate_exists(task: PlateTask) -> bool:
    """Whether the file a tile group's plate is read from (:func:`_plate_file`) is on disk,
    or was removed on purpose (``keep_intermediate = false``), without making its
    :func:`plate_task` (a check made for every group)."""
    path = _plate_file(task.spec, task.layout, task.order, task.i, task.j)
    return os.path.exists(path) or os.path.exists(_removed_marker(path))


def _unmark_removed(task: PlateTask) -> None:
    """A plate made again is no longer a removed one."""
    from pathlib import Path

    Path(_removed_marker(task.output().path)).unlink(missing_ok=True)


_UNIT_COMMENTS = {"BUNIT": "pixel unit, as in the survey images",
                  "MAGZP": "magnitude zero point of the survey images"}


def _unit_cards(spec: MapSpec, layout: StorageLayout) -> list[tuple]:
    """The survey's unit cards for tiles (``SurveyIndex`` recorded them); none for synthetic."""
    if spec.survey == "synthetic":
        return []
    units = artifacts.read_survey_units(layout.survey_units)
    return [(key, value, _UNIT_COMMENTS.get(key, "")) for key, value in sorted(units.items())]


class PlateHistogram(PlateTask):
    """Histogram of one plate's pixels at ``order``, merged by :class:`Histogram`."""

    def requires(self):
        return plate_task(self.map, self.spec, self.order, self.i, self.j)

    def output(self):
        return self.target(self.layout.plate_histogram(self.order, self.i, self.j, self.unit))

    def intermediate_inputs(self):
        return [_plate_input(self, self.order, self.i, self.j)]

    def work(self) -> None:
        plate = _read_plate(self, self.order, self.i, self.j, self.input())
        artifacts.write_histogram(self.output().path, histogram_of(plate))


class Histogram(HipsTask):
    """The all-sky histogram at ``[hips] histogram_order`` and the stretch the PNGs use."""

    def requires(self):
        spec = self.spec
        order = spec.histogram_order
        return [PlateHistogram(map=self.map, order=order, i=i, j=j)
                for i, j in plan.plates_at_order(spec, order)]

    def output(self):
        return self.target(self.layout.stretch(stretch_id(self.spec)))

    def work(self) -> None:
        from hipsluigi.stretch.histogram import merge_histograms
        from hipsluigi.stretch.stretch import make_stretch

        spec = self.spec
        hists = [artifacts.read_histogram(t.path) for t in self.input()]
        if not any(h.npix for h in hists):
            raise ValueError(
                f"map {self.map}: no plate holds a finite pixel at order {spec.histogram_order}"
                f" ({len(hists)} plates): every input image missed the plates' pixel centres "
                "or was skipped; see survey/rejects.tbl and the warnings of PlateMosaic")
        merged = merge_histograms(hists)
        stretch = make_stretch(merged, spec.stretch, spec.stretch_min, spec.stretch_max)
        artifacts.write_histogram(self.layout.merged_histogram(stretch_id(spec)), merged)
        artifacts.write_stretch(self.output().path, stretch)


class PlatePNGs(PlateTask):
    """The FITS tiles (mHiPSTiles) and the 8-bit PNG tiles (mViewer) of plate ``(i, j)`` at
    ``order``, both from one read of the plate, and their two manifests; at orders 0 to 3
    also the group's Allsky part (its tiles reduced for the Allsky files and the preview,
    :class:`~hipsluigi.metadata.allsky.AllskyPart`), so that :class:`HiPSMetadata` need not
    read the tiles back.

    The FITS tiles are cut unless their group is already complete (a map whose FITS tiles
    were made by :class:`PlateTiles`, for ``AllSkyFITS``); they come first and their
    manifest is written before any PNG. As for :class:`PlateTiles`, each manifest follows a
    size check of every tile it lists, and a group whose plate vanished is redone. The PNG
    manifest comes last.
    """

    def requires(self):
        return {"plate": plate_task(self.map, self.spec, self.order, self.i, self.j),
                "stretch": Histogram(map=self.map)}

    def output(self):
        return self.target(self.layout.manifest(self.order, self.i, self.j, self.unit,
                                                f"png-{stretch_id(self.spec)}"))

    def fits_group(self) -> PlateTiles:
        """The FITS tile group this task completes too."""
        return self.same_plate(PlateTiles)

    def allsky_part(self) -> str | None:
        """The file of the group's Allsky part (orders 0 to 3), or None."""
        if self.order > ALLSKY_MAX_ORDER:
            return None
        return str(self.layout.allsky_part(self.order, self.i, self.j, self.unit,
                                           stretch_id(self.spec)))

    def complete(self) -> bool:
        part = self.allsky_part()
        return (super().complete() and os.path.exists(self.fits_group().output().path)
                and (part is None or os.path.exists(part)) and _plate_exists(self))

    def dry_run(self) -> None:
        self.fits_group().dry_run()
        part = self.allsky_part()
        if part is not None:
            write_text_atomic(part, f"dryrun placeholder for {self.task_id}\n", fsync=False)
        super().dry_run()

    def intermediate_inputs(self):
        return [_plate_input(self, self.order, self.i, self.j)]

    def work(self) -> None:

        spec = self.spec
        plate = _read_plate(self, self.order, self.i, self.j, self.input()["plate"])
        fits_manifest = self.fits_group().output().path
        if os.path.exists(fits_manifest):
            wanted = set(artifacts.read_manifest(fits_manifest)["tiles"])
        else:
            wanted = set(_write_fits_group(self, plate))
        part = self.allsky_part()
        if os.path.exists(self.output().path) and (part is None or os.path.exists(part)):
            return  # only the FITS tiles were missing
        stretch = artifacts.read_stretch(self.input()["stretch"].path)
        sizes = {}
        kept: tuple[list, list] = ([], [])  # the FITS and PNG tiles, for the Allsky part
        for npix, tile in plate_tiles(plate, plan.grid(spec, self.order), self.i, self.j,
                                      npix=wanted):
            pixels = png_pixels(tile, stretch)
            png = png_bytes(pixels)
            write_bytes_atomic(self.layout.unit_tile(self.order, npix, "png", self.unit), png)
            sizes[npix] = len(png)
            if part is not None:
                kept[0].append(tile)
                kept[1].append(pixels)
        _publish_tiles(self, "png", list(sizes))
        for npix, size in sizes.items():
            check_file_size(self.layout.tile(self.order, npix, "png"), size)
        if part is not None:
            block = part_preview_block(self.order, spec.order, spec.tile_width)
            artifacts.write_allsky_part(part, allsky_part(*kept, list(sizes), spec.tile_width,
                                                          block))
        artifacts.write_manifest(self.output().path, self.order, plate_name(self.i, self.j),
                                 list(sizes), stretch=stretch_id(spec))


def _all_plate_tasks(map_name: str, spec: MapSpec, family) -> list[PlateTask]:
    return [family(map=map_name, order=k, i=i, j=j) for k in range(spec.order, -1, -1)
            for i, j in plan.plates_at_order(spec, k)]


class HiPSMetadata(HipsTask):
    """``properties``, ``Norder{0..3}/Allsky.{fits,png}``, ``Moc.fits``, ``preview.jpg``,
    ``index.html`` with its copy of Aladin Lite, and ``HpxFinder/`` (the progenitor index of
    ``fits`` and ``wise`` surveys); and the keeper of the tile groups' records.

    A group's manifest says its tiles are whole. ``complete()`` holds every manifest to that
    (one ``stat`` a tile): a tile that is missing or of the wrong size is deleted with its
    group's manifest and named in the log, so that Luigi finds the group incomplete and redoes
    it in this same run. With that, and groups that need their plate, a map heals itself from
    a deleted tile, ``Dir``, ``HiPS`` folder or plate. Complete only when its outputs exist
    and its groups and the stretch are complete.

    The Allsky files and ``preview.jpg`` are made from the Allsky parts the PNG groups of
    orders 0 to 3 wrote, not from the tiles read back; a part that cannot be read fails the
    task naming it, after deleting it with its group's manifest for the next run to redo.
    """

    def requires(self):
        # PlatePNGs completes the FITS group too, from the same read of the plate.
        return {"pngs": _all_plate_tasks(self.map, self.spec, PlatePNGs),
                "stretch": Histogram(map=self.map)}

    def metadata_key(self) -> str:
        """What the metadata is made from: the stretch and the metadata settings."""
        spec = self.spec
        text = f"{stretch_id(spec)}|{sorted(spec.metadata_settings.items())}|{METADATA_VERSION}"
        return hashlib.sha1(text.encode()).hexdigest()[:8]

    def output(self):
        return {"properties": self.target(self.layout.hips_dir / "properties"),
                "marker": self.target(self.layout.metadata_marker(self.metadata_key()))}

    def complete(self) -> bool:
        # Checked before the outputs: with the HiPS folder gone, every group must be redone.
        # (Luigi's dynamic dependencies cannot do it from run(): the scheduler ignores a task
        # set back to PENDING within stable_done_cooldown_secs of being found DONE.)
        needed = self.requires()
        if self.executor != "dryrun":  # dry-run manifests are placeholders
            _discard_groups(self, _damaged_tiles(self, _tile_groups(needed["pngs"])))
        return super().complete() and all(task.complete()
                                          for task in luigi.task.flatten(needed))

    def work(self) -> None:
        from hipsluigi.metadata.build import write_hips_metadata
        from hipsluigi.stretch.stretch import display_cut

        needed = self.requires()
        tiles: dict[int, list[int]] = {}
        for group in _tile_groups(needed["pngs"])["tiles"]:
            manifest = artifacts.read_manifest(group.output().path)
            tiles.setdefault(manifest["order"], []).extend(manifest["tiles"])
        stretch = artifacts.read_stretch(needed["stretch"].output().path)
        hist = artifacts.read_histogram(self.layout.merged_histogram(stretch_id(self.spec)))
        provenance, images = _survey_description(self.map, self.spec, self.layout)
        write_hips_metadata(self.spec, self.layout.hips_dir, tiles, stretch,
                            units={key: value for key, value, _ in
                                   _unit_cards(self.spec, self.layout)},
                            pixel_cut=display_cut(hist, stretch), provenance=provenance,
                            allsky=group_allsky_parts(self, needed["pngs"]))
        if images:
            self._write_progenitor_index(images, tiles.get(self.spec.order, []))
        write_text_atomic(self.output()["marker"].path, self.metadata_key())

    def _write_progenitor_index(self, images: list, deepest: list[int]) -> None:
        from datetime import UTC, datetime

        from hipsluigi.metadata.progenitors import finder_properties, write_progenitor_index
        from hipsluigi.metadata.properties import hips_date

        spec = self.spec
        props = finder_properties(spec.creator_did or f"ivo://hipsluigi/P/{spec.name}",
                                  spec.obs_title, spec.order, spec.frame, spec.tile_width,
                                  hips_date(datetime.now(UTC)))
        count = write_progenitor_index(self.layout.hips_dir, spec.order, spec.frame,
                                       spec.tile_width, images, deepest, props)
        log.info("map %s: progenitor index HpxFinder/ lists the images of %d tiles", self.map,
                 count)


def group_allsky_parts(task: HipsTask, pngs: list[PlatePNGs]) -> dict[int, AllskyPart]:
    """Each order's Allsky part, merged from those of ``pngs`` (PNG groups of orders 0 to 3;
    other groups have none), for ``task``: the metadata, the QA report.

    Raises
    ------
    ValueError
        A part cannot be read: it is named, and deleted with its group's PNG manifest, so that
        the next run redoes the group.
    """
    from hipsluigi.metadata.allsky import merge_allsky_parts

    parts: dict[int, list[AllskyPart]] = {}
    damaged, reasons = {}, []
    for group in pngs:
        path = group.allsky_part()
        if path is None:
            continue
        try:
            parts.setdefault(group.order, []).append(artifacts.read_allsky_part(path))
        except (OSError, ValueError) as err:
            damaged[path] = (group, "unreadable Allsky part")
            reasons.append(str(err))
    if damaged:
        _discard_groups(task, damaged)
        raise ValueError(f"map {task.map}: {len(damaged)} unreadable Allsky part(s) ("
                         + "; ".join(reasons) + "); deleted with their groups' manifests: "
                         "the next run rebuilds them")
    return {order: merge_allsky_parts(found) for order, found in parts.items()}


#: Changed when the files HiPSMetadata writes change, so that a finished map gets them.
METADATA_VERSION = 2


def _tile_groups(pngs: list[PlatePNGs]) -> dict[str, list[PlateTask]]:
    """The tile groups whose manifests list a map's tiles, from its PNG groups: ``{"tiles":
    FITS groups, "pngs": PNG groups}``."""
    return {"tiles": [task.fits_group() for task in pngs], "pngs": pngs}


def _survey_description(map_name: str, spec: MapSpec, layout: StorageLayout
                        ) -> tuple[dict, list]:
    """The map's recommended properties keys (:mod:`hipsluigi.surveys.provenance`: the
    survey's, overridden by the settings; a key still unknown is named in a warning), and its
    survey images for the progenitor index (none for synthetic and HEALPix surveys)."""
    from hipsluigi.metadata.progenitors import Progenitor
    from hipsluigi.surveys import provenance as prov

    images = []
    if spec.survey == "synthetic":
        from hipsluigi.surveys.synthetic import pixel_scale_deg

        says = prov.synthetic_provenance(spec, pixel_scale_deg(spec.order, spec.tile_width))
    else:
        index = artifacts.read_survey_index(layout.survey_index)
        ok = index[index["status"] == "ok"]
        if spec.survey == "healpix":
            row = ok[0]
            says = prov.healpix_provenance(str(row["path"]), str(row["column"]),
                                           int(row["nside"]))
        elif spec.survey == "wise":
            says = prov.wise_provenance(spec.band, spec.wise_collection)
            images = _cap_progenitors(spec, ok)
        else:
            records = prov.read_image_records([(str(r["path"]), int(r["hdu"])) for r in ok])
            says = prov.fits_folder_provenance(spec.survey_path, records)
            images = [Progenitor(name=_image_name(r.path, r.hdu), path=r.path,
                                 corners=r.corners, date_obs=r.date_obs) for r in records]
    keys, missing = prov.map_provenance(spec, says)
    if missing:
        log.warning("map %s: the survey does not say %s; set them in [hips] (or [hips.%s]) "
                    "for the HiPS properties", map_name, ", ".join(missing), map_name)
    return keys, images


def _image_name(path: str, hdu: int) -> str:
    """An image's name in the progenitor index: its file name without the FITS suffix the
    survey folder is scanned for (and ``[hdu]`` for an extension)."""
    from hipsluigi.surveys.fits_folder import PATTERNS

    name = os.path.basename(path)
    for ext in sorted((pattern[1:] for pattern in PATTERNS), key=len, reverse=True):
        if name.lower().endswith(ext):
            name = name[:-len(ext)]
            break
    return f"{name}[{hdu}]" if hdu > 0 else name


def _cap_progenitors(spec: MapSpec, rows) -> list:
    """Archive images known by their cap (the index's centre in the map frame, radius in
    radians): Progenitors with ICRS caps."""
    import numpy as np
    from astropy.coordinates import ICRS

    from hipsluigi.geometry.frames import (
        astropy_frame,
        lonlat_to_vec,
        rotation_matrix,
        vec_to_lonlat,
    )
    from hipsluigi.metadata.progenitors import Progenitor

    if not len(rows):
        return []
    to_icrs = rotation_matrix(astropy_frame(spec.frame), ICRS())
    ra, dec = vec_to_lonlat(lonlat_to_vec(np.asarray(rows["lon"], float),
                                          np.asarray(rows["lat"], float)) @ to_icrs.T)
    return [Progenitor(name=str(r["name"]), path=str(r["url"]),
                       cap=(float(a), float(d), float(np.degrees(r["radius"]))))
            for r, a, d in zip(rows, np.atleast_1d(ra), np.atleast_1d(dec), strict=True)]


def _listed_tiles(meta: HiPSMetadata, groups: dict) -> dict:
    """Every tile the finished ones among ``meta``'s ``groups`` list: ``{path: (group,
    size)}``, paths as strings; the size in bytes of a FITS tile, None for a PNG tile (and a
    FITS tile while the survey's units are unknown). A manifest that cannot be read lists
    itself, with size -1, so that its group is redone."""
    from hipsluigi.geometry.hpx import tile_relpath

    spec, layout = meta.spec, meta.layout
    hips_dir = str(layout.hips_dir)
    sizes: dict[int, int | None] = {}
    listed = {}
    for ext, family in (("fits", groups["tiles"]), ("png", groups["pngs"])):
        for group in family:
            try:
                tiles = artifacts.read_manifest(group.output().path)["tiles"]
            except FileNotFoundError:
                continue  # not done yet: Luigi runs it
            except (ValueError, KeyError, TypeError):
                listed[group.output().path] = (group, -1)
                continue
            size = None
            if ext == "fits":
                if group.order not in sizes:
                    try:
                        cards = _unit_cards(spec, layout)
                    except FileNotFoundError:  # the survey's units are being redone: any size
                        sizes[group.order] = None
                    else:
                        sizes[group.order] = tile_file_size(group.order, spec.tile_width,
                                                            spec.frame, cards)
                size = sizes[group.order]
            for npix in tiles:  # strings: a Path a tile costs more than its stat
                listed[os.path.join(hips_dir, tile_relpath(group.order, npix, ext))] = \
                    (group, size)
    return listed


def _damaged_tiles(meta: HiPSMetadata, groups: dict) -> dict:
    """``{path: (group, why)}`` of every listed tile that is missing or of the wrong size."""
    from hipsluigi.metadata.build import tile_file_problem

    damaged = {}
    for path, (group, size) in _listed_tiles(meta, groups).items():
        why = "manifest unreadable" if size == -1 else tile_file_problem(path, size)
        if why:
            damaged[path] = (group, why)
    return damaged


def _discard_groups(meta: HipsTask, damaged: dict) -> None:
    """Delete each damaged tile and its group's manifest, and log them, one line a group."""
    groups: dict[str, tuple[PlateTask, list[str]]] = {}
    for path, (group, why) in sorted(damaged.items()):
        _unlink(path)
        groups.setdefault(group.task_id, (group, []))[1].append(f"{path}: {why}")
    for k, (group, problems) in enumerate(groups.values()):
        _unlink(group.output().path)
        if k < _GROUPS_LOGGED:
            shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more"
                                               if len(problems) > 3 else "")
            log.warning("map %s: %d damaged tile(s) of %s (%s): deleted with the manifest %s, "
                        "so that the group is redone", meta.map, len(problems), group.task_id,
                        shown, group.output().path)
    if len(groups) > _GROUPS_LOGGED:
        log.warning("map %s: %d damaged tiles in %d groups in all (a deleted folder?), each "
                    "deleted with its group's manifest, so that the groups are redone",
                    meta.map, len(damaged), len(groups))


#: Groups named one by one in the log when damaged tiles are found; then a summary.
_GROUPS_LOGGED = 5


def _unlink(path: str) -> None:
    from pathlib import Path

    Path(path).unlink(missing_ok=True)


def _all_intermediates(map_name: str, spec: MapSpec) -> list[tuple[str, list[HipsTask]]]:
    """Every plate mosaic and plate file of the map, with the tasks that read it."""
    layout = layout_of(spec)
    return [_intermediate(map_name, spec, layout, k, i, j) for k in range(spec.order, -1, -1)
            for i, j in plan.plates_at_order(spec, k)]


class AllSkyFITS(luigi.WrapperTask):
    """Every FITS tile of every order of one map (no PNG, no metadata): the data part."""

    map = MapName(description="map name; default [hips] name")

    def requires(self):
        return _all_plate_tasks(self.map, map_spec(self.map), PlateTiles)


class AllSkyPNGs(luigi.WrapperTask):
    """One whole map: every FITS and PNG tile of every order, the HiPS metadata and the QA
    report; ends with a one-line-per-stage summary of the run (from the tasks' records)."""

    map = MapName(description="map name; default [hips] name")

    def requires(self):
        from hipsluigi.pipeline.report import QAReport  # it imports this module

        return [HiPSMetadata(map=self.map), QAReport(map=self.map)]

    def run(self) -> None:
        from hipsluigi.execution.records import (
            read_records,
            summarise,
            summary_lines,
            unit_lines,
        )

        spec = map_spec(self.map)
        layout = layout_of(spec)
        hips_dir = layout.hips_dir
        if not spec.keep_intermediate and spec.executor != "dryrun":
            # what a run stopped between a reader's end and its clean-up left behind
            _remove_intermediates(self.map, _all_intermediates(self.map, spec))
        run = current_run()
        # this run's tasks (all recorded ones outside a driven run)
        records = read_records(layout.records, since=run.started if run else None)
        for line in summary_lines(summarise(records)) + unit_lines(records):
            log.info("map %s: %s", self.map, line)
        log.info("QA report of map %s: %s", self.map, layout.qa_dir / "report.html")
        log.info("HiPS map %s complete: %s (look at it with `hipsluigi serve %s` and open the "
                 "address it prints)", self.map, hips_dir, self.map)


class AllMaps(luigi.WrapperTask):
    """Several whole maps in one graph: ``--maps W1,W2,W3,W4``; each map's settings are
    ``[hips]`` overlaid by its ``[hips.NAME]`` section."""

    maps = luigi.Parameter(description="comma-separated map names")

    @property
    def names(self) -> list[str]:
        names = [m.strip() for m in self.maps.split(",") if m.strip()]
        if not names:
            raise ValueError("AllMaps: --maps names no map")
        return list(dict.fromkeys(names))

    def requires(self):
        return [AllSkyPNGs(map=name) for name in self.names]


__all__ = [
    "AllMaps", "AllSkyFITS", "AllSkyPNGs", "BackgroundModel", "CorrectPlate", "HiPSMetadata",
    "HipsTask", "Histogram", "OverlapFit", "PlateHistogram", "PlateList", "PlateMosaic",
    "PlatePNGs", "PlateTable", "PlateTask", "PlateTiles", "Setup", "ShrinkPlate", "SurveyIndex",
    "stretch_id",
]
