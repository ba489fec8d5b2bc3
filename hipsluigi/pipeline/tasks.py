"""The Luigi task graph (DESIGN section 1).

One task per plate (mosaic, correction), per overlap pair (difference fit), per (plate, order)
(shrink, tiles, PNGs, histogram) and per map (setup, survey index, plate list, plate table,
background model, histogram merge, metadata). Task classes are thin: parameters,
``requires``, ``output`` paths from the storage layout, and one call into the pure code. The
map itself is described by the ``[hips]``/``[synthetic]`` configuration (:func:`current_spec`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os

import luigi
import numpy as np
from astropy.io import fits
from threadpoolctl import threadpool_limits

from hipsluigi.config import MapSpec, current_spec
from hipsluigi.geometry.hpx import plane_crpix
from hipsluigi.geometry.platelist import plate_list, plate_name, write_plate_list
from hipsluigi.geometry.plates import children
from hipsluigi.geometry.sky import plate_cap
from hipsluigi.mosaic.coadd import mosaic_plate
from hipsluigi.pipeline import plan
from hipsluigi.pipeline.worktree import check_work_tree, prepare_work_tree
from hipsluigi.pyramid.shrink import assemble_quad, crop_padding, shrink2
from hipsluigi.storage import (
    check_fits_image,
    link_or_copy_atomic,
    read_fits_image,
    write_atomic,
    write_bytes_atomic,
    write_fits_atomic,
    write_text_atomic,
)
from hipsluigi.surveys import open_survey
from hipsluigi.tiles.cut import plate_tiles, write_plate_tiles

log = logging.getLogger("luigi-interface")


def stretch_id(spec: MapSpec) -> str:
    """Short id of the stretch settings; PNGs are redone when it changes."""
    key = f"{spec.stretch}|{spec.stretch_min}|{spec.stretch_max}|{spec.histogram_order}"
    return hashlib.sha1(key.encode()).hexdigest()[:8]


class MapName(luigi.Parameter):
    """The map a task belongs to; by default ``[hips] name`` (config or ``--hips-name``).

    Part of every task id, so that several maps (W1 ... W4) can share one luigid.
    """

    def _value_iterator(self, task_name, param_name):
        # Luigi's own sources (command line, [TaskFamily] map) first, then [hips] name.
        yield from super()._value_iterator(task_name, param_name)
        yield current_spec().name, None


class HipsTask(luigi.Task):
    """Base of every hipsluigi task: the map's spec, its work tree and the executor."""

    map = MapName(description="map name; default [hips] name")

    #: Pixel tasks go to the cluster under ``executor = slurm``; map-level bookkeeping does not.
    cluster_task = False
    #: Tasks that do their (cheap) work even under ``executor = dryrun``.
    dryrun_real = False

    @property
    def spec(self) -> MapSpec:
        spec = current_spec()
        if spec.name != self.map:
            raise ValueError(f"{self.task_id} belongs to map {self.map!r} but the configuration "
                             f"describes map {spec.name!r} ([hips] name)")
        return spec

    @property
    def layout(self):
        return self.spec.layout

    def complete(self) -> bool:
        check_work_tree(self.spec)
        return super().complete()

    def run(self) -> None:
        executor = self.spec.executor
        if executor == "dryrun" and not self.dryrun_real:
            self.dry_run()
        elif executor == "slurm" and self.cluster_task:
            from hipsluigi.slurm import run_on_slurm

            run_on_slurm(self, self.layout.scripts)
        else:
            self.work_one_thread()

    def work_one_thread(self) -> None:
        """:meth:`work` with BLAS held to one thread.

        Our only matrix products are ``(N, 3) @ (3, 3)`` rotations, which BLAS threads do not
        speed up; but each Luigi worker process (or SLURM job) starting a pool of one BLAS
        thread per core oversubscribes the cores, and spinning pools made the default map
        three times slower on two cores.
        """
        with threadpool_limits(limits=1, user_api="blas"):
            self.work()

    def dry_run(self) -> None:
        """``executor = dryrun``: write a placeholder for every output, compute no pixel."""
        for target in luigi.task.flatten(self.output()):
            write_text_atomic(target.path, f"hipsluigi dryrun placeholder for {self.task_id}\n")

    def work(self) -> None:
        raise NotImplementedError


class PlateTask(HipsTask):
    """A task on plate ``(i, j)`` of order ``order`` (0-based plate indices, i along x)."""

    order = luigi.IntParameter()
    i = luigi.IntParameter()
    j = luigi.IntParameter()
    cluster_task = True

    @property
    def bin(self) -> int:
        return plan.bin_of(self.spec, self.order, self.i, self.j)

    @property
    def priority(self) -> int:
        # Earlier rows of platelist.tbl first, and deeper orders before shallower ones.
        spec = self.spec
        return (len(plan.plate_plan(spec).plates) - plan.rank_of(spec, self.order, self.i,
                                                                  self.j)) * 16 + self.order

    @property
    def resources(self) -> dict[str, int]:
        name = f"storage_unit_{self.bin}"
        configured = luigi.configuration.get_config().has_option("resources", name)
        return {name: 1} if configured else {}

    @property
    def plate_label(self) -> str:
        return f"{plate_name(self.i, self.j)} order {self.order}"


def plate_task(spec: MapSpec, order: int, i: int, j: int) -> PlateTask:
    """The task whose output is plate ``(i, j)`` at ``order`` (corrected, unpadded)."""
    if order == spec.order:
        return CorrectPlate(order=order, i=i, j=j)
    return ShrinkPlate(order=order, i=i, j=j)


def read_plate(target: luigi.LocalTarget) -> np.ndarray:
    """A plate's pixels, memory-mapped: readers take slices or strided quarters, and a plate
    read whole into fresh memory costs more in page faults than the work on it."""
    return read_fits_image(target.path, memmap=True)[0]


def _save_npz(path, arrays: dict) -> None:
    with open(path, "wb") as f:  # an open file: numpy adds no ".npz" to the name
        np.savez(f, **arrays)


def read_manifest(target: luigi.LocalTarget) -> dict:
    """A tile group's manifest: ``{"order", "plate", "tiles": [npix, ...]}``."""
    with target.open("r") as f:
        return json.load(f)


class Setup(HipsTask):
    """The work tree on every storage unit and the ``subsetK`` links (mHiPSSetup)."""

    dryrun_real = True

    def output(self):
        return luigi.LocalTarget(str(self.layout.fingerprint))

    def work(self) -> None:
        prepare_work_tree(self.spec)


class PlateList(HipsTask):
    """``platelist.tbl``: on-sky plates, storage bins, round-robin order (mHPXPlateList)."""

    dryrun_real = True

    def requires(self):
        return Setup()

    def output(self):
        return luigi.LocalTarget(str(self.layout.platelist))

    def work(self) -> None:
        spec = self.spec
        table = plate_list(spec.grid, spec.layout.nunits, spec.region_spec)
        write_atomic(self.layout.platelist, lambda tmp: write_plate_list(table, tmp))


class SurveyIndex(HipsTask):
    """The images of a ``fits`` survey: usable ones with their footprint, the rest with why."""

    def requires(self):
        return Setup()

    def output(self):
        return luigi.LocalTarget(str(self.layout.survey_index))

    def work(self) -> None:
        from hipsluigi.background.tables import write_table
        from hipsluigi.surveys.fits_folder import scan_folder

        spec = self.spec
        index = scan_folder(spec.survey_path, spec.frame)
        for row in index[index["status"] != "ok"]:
            log.warning("survey: skipping %s: %s", row["path"], row["reason"])
        if not (index["status"] == "ok").any():
            raise ValueError(f"[hips] survey_path {spec.survey_path!r}: no usable image among "
                             f"{len(index)} files")
        write_table(index, self.output().path)


class PlateMosaic(PlateTask):
    """The padded plate mosaic of the survey's frames at the deepest order (mExec)."""

    def requires(self):
        if self.spec.survey == "fits":
            return [PlateList(), SurveyIndex()]
        return PlateList()

    def output(self):
        return luigi.LocalTarget(str(self.layout.mosaic(self.i, self.j, self.bin)))

    def work(self) -> None:
        spec = self.spec
        grid = spec.grid
        centre, radius = plate_cap(grid, self.i, self.j)
        frames = open_survey(spec).frames_touching(centre, radius)
        result = mosaic_plate(grid, self.i, self.j, frames, spec.frame, spec.reproject,
                              match_frames=spec.background != "none")
        header = fits.Header()
        header.update(grid.plate_header(self.i, self.j, spec.frame, padded=True))
        header["NFRAMES"] = (len(result.used), "frames coadded")
        header["NSKIPPED"] = (len(result.skipped), "frames skipped as unusable")
        for reason in result.skipped.values():
            header.add_history(f"skipped {reason}"[:72])
        for reason in result.skipped.values():
            log.warning("%s: skipped %s", self.plate_label, reason)
        hdus = [fits.PrimaryHDU(result.image, header)]
        if result.planes:
            keys = list(result.planes)
            planes = np.array([result.planes[k] for k in keys]).reshape(-1, 3)
            hdus.append(fits.BinTableHDU.from_columns([
                fits.Column("frame", "64A", array=keys),
                fits.Column("c", "D", array=planes[:, 0]),
                fits.Column("a", "D", array=planes[:, 1]),
                fits.Column("b", "D", array=planes[:, 2]),
            ], name="FRAMES", header=fits.Header([("COMMENT", "background planes subtracted: "
                                                   "c + a u + b v, u = (x - x0)/size")])))
        write_fits_atomic(self.output().path, fits.HDUList(hdus))


def _mosaic_tasks(spec: MapSpec) -> dict:
    return {(i, j): PlateMosaic(order=spec.order, i=i, j=j)
            for i, j in plan.plates_at_order(spec, spec.order)}


class PlateTable(HipsTask):
    """``images.tbl`` of the plate mosaics (mImgtbl), in Montage's columns."""

    def requires(self):
        return _mosaic_tasks(self.spec)

    def output(self):
        return luigi.LocalTarget(str(self.layout.images_table))

    def work(self) -> None:
        from hipsluigi.background.tables import images_table, write_table

        spec = self.spec
        ids = plan.plate_ids(spec)
        plates = sorted(ids, key=ids.__getitem__)
        targets = self.input()
        headers = [fits.getheader(targets[p].path) for p in plates]
        paths = [os.path.relpath(targets[p].path, self.layout.base / "mosaics") for p in plates]
        write_table(images_table(plates, headers, paths), self.output().path)


class OverlapFit(PlateTask):
    """The plane fitted to the difference of plate ``(i, j)`` (plus) and ``(mi, mj)``
    (minus) over their overlap (mDiffFit)."""

    mi = luigi.IntParameter()
    mj = luigi.IntParameter()

    def requires(self):
        return {"plus": PlateMosaic(order=self.order, i=self.i, j=self.j),
                "minus": PlateMosaic(order=self.order, i=self.mi, j=self.mj)}

    def output(self):
        return luigi.LocalTarget(str(self.layout.overlap_fit((self.i, self.j),
                                                             (self.mi, self.mj), self.bin)))

    def work(self) -> None:
        from hipsluigi.background.overlap import fit_overlap, ring_stride

        spec = self.spec
        ids = plan.plate_ids(spec)
        grid = spec.grid
        stride = ring_stride(grid)
        with fits.open(self.input()["plus"].path, memmap=True) as plus, \
                fits.open(self.input()["minus"].path, memmap=True) as minus:
            fit = fit_overlap(grid, (self.i, self.j), (self.mi, self.mj), plus[0].data,
                              minus[0].data, ids[(self.i, self.j)], ids[(self.mi, self.mj)],
                              stride)
        write_text_atomic(self.output().path, json.dumps(None if fit is None else fit.row()))


class BackgroundModel(HipsTask):
    """The global background solution (mBgModel): ``fitcombo.tbl`` and ``corrections.tbl``."""

    def requires(self):
        spec = self.spec
        return {"images": PlateTable(),
                "fits": [OverlapFit(order=spec.order, i=p[0], j=p[1], mi=m[0], mj=m[1])
                         for p, m, _ in plan.overlap_pairs(spec)]}

    def output(self):
        return {"fits": luigi.LocalTarget(str(self.layout.fits_table)),
                "corrections": luigi.LocalTarget(str(self.layout.corrections_table)),
                "seams": luigi.LocalTarget(str(self.layout.seams))}

    def work(self) -> None:
        from hipsluigi.background.model import solve_background
        from hipsluigi.background.overlap import OverlapFit as Fit
        from hipsluigi.background.seams import edge_fields
        from hipsluigi.background.tables import corrections_table, fits_table, write_table

        spec = self.spec
        records = []
        for target in self.input()["fits"]:
            with target.open("r") as f:
                row = json.load(f)
            if row is not None:
                records.append(Fit(**row))
        ids = plan.plate_ids(spec)
        solution = solve_background(records, list(ids.values()), spec.grid.face_side,
                                    slopes=spec.background_fit == "slopes")
        for k in solution.rejected:
            log.warning("background model: rejected overlap fit %s - %s as an outlier",
                        records[k].plus, records[k].minus)
        names = {v: plate_name(*p) for p, v in ids.items()}
        fields = edge_fields(records, solution.planes, plane_crpix(spec.grid.face_side))
        write_table(fits_table(records), self.output()["fits"].path)
        write_table(corrections_table(solution.planes, names),
                    self.output()["corrections"].path)
        write_atomic(self.output()["seams"].path, lambda tmp: _save_npz(
            tmp, {str(k): v for k, v in fields.items()}))


class CorrectPlate(PlateTask):
    """The deepest-order plate: the mosaic, background-corrected, padding removed."""

    def requires(self):
        reqs = {"mosaic": PlateMosaic(order=self.order, i=self.i, j=self.j)}
        if self.spec.background == "global":
            reqs["model"] = BackgroundModel()
        return reqs

    def output(self):
        return luigi.LocalTarget(str(self.layout.plate(self.order, self.i, self.j, self.bin)))

    def work(self) -> None:
        from hipsluigi.background.seams import correct_plate
        from hipsluigi.background.tables import read_corrections

        spec = self.spec
        grid = spec.grid
        if spec.background != "global" and grid.pad == 0:
            # Nothing to subtract or crop: the mosaic is the plate, and a link saves a copy.
            check_fits_image(self.input()["mosaic"].path, grid.shape())
            link_or_copy_atomic(self.input()["mosaic"].path, self.output().path)
            return
        plate = crop_padding(read_plate(self.input()["mosaic"]), grid.pad)
        if spec.background == "global":
            pid = plan.plate_ids(spec)[(self.i, self.j)]
            plane = read_corrections(self.input()["model"]["corrections"].path)[pid]
            with np.load(self.input()["model"]["seams"].path) as seams:
                edges = seams[str(pid)] if str(pid) in seams.files else None
            plate = correct_plate(plate, grid.origin(self.i, self.j), plane, edges,
                                  plane_crpix(grid.face_side))
        header = grid.plate_header(self.i, self.j, spec.frame, padded=False)
        write_fits_atomic(self.output().path, fits.PrimaryHDU(plate, header))


class ShrinkPlate(PlateTask):
    """Plate ``(i, j)`` at ``order`` from its children at ``order + 1`` (mShrink by 2)."""

    def _children(self) -> list[tuple[int, int, int, int]]:
        """``(a, b, ci, cj)`` of the children that exist at ``order + 1``."""
        spec = self.spec
        existing = set(plan.plates_at_order(spec, self.order + 1))
        kids = children(spec.grid, self.order, self.i, self.j)
        if len(kids) == 1:
            return [(0, 0, *kids[0])] if kids[0] in existing else []
        return [(ci - 2 * self.i, cj - 2 * self.j, ci, cj) for ci, cj in kids
                if (ci, cj) in existing]

    def requires(self):
        spec = self.spec
        return [plate_task(spec, self.order + 1, ci, cj) for _, _, ci, cj in self._children()]

    def output(self):
        return luigi.LocalTarget(str(self.layout.plate(self.order, self.i, self.j, self.bin)))

    def work(self) -> None:
        spec = self.spec
        kids = self._children()
        upper = plan.grid(spec, self.order + 1)
        data = [read_plate(t) for t in self.input()]
        if len(children(spec.grid, self.order, self.i, self.j)) == 1:
            parent = shrink2(data[0])
        else:
            quad = {(a, b): d for (a, b, _, _), d in zip(kids, data, strict=True)}
            parent = shrink2(assemble_quad(quad, upper.plate_side))
        header = plan.grid(spec, self.order).plate_header(self.i, self.j, spec.frame,
                                                          padded=False)
        write_fits_atomic(self.output().path, fits.PrimaryHDU(parent, header))


class PlateTiles(PlateTask):
    """The FITS tiles of plate ``(i, j)`` at ``order`` (mHiPSTiles), and their manifest."""

    def requires(self):
        return plate_task(self.spec, self.order, self.i, self.j)

    def output(self):
        return luigi.LocalTarget(str(self.layout.manifest(self.order, self.i, self.j, self.bin,
                                                          "fits")))

    def work(self) -> None:
        spec = self.spec
        plate = read_plate(self.input())
        written = write_plate_tiles(plate, plan.grid(spec, self.order), self.i, self.j,
                                    spec.frame, lambda npix: self.layout.tile(self.order, npix,
                                                                              "fits"))
        manifest = {"order": self.order, "plate": plate_name(self.i, self.j), "tiles": written}
        write_text_atomic(self.output().path, json.dumps(manifest))


class PlateHistogram(PlateTask):
    """Histogram of one plate's pixels at ``order``, merged by :class:`Histogram`."""

    def requires(self):
        return plate_task(self.spec, self.order, self.i, self.j)

    def output(self):
        return luigi.LocalTarget(str(self.layout.plate_histogram(self.order, self.i, self.j,
                                                                 self.bin)))

    def work(self) -> None:
        from hipsluigi.stretch.histogram import histogram_of, save_histogram

        plate = read_plate(self.input())
        write_atomic(self.output().path, lambda tmp: save_histogram(histogram_of(plate), tmp))


class Histogram(HipsTask):
    """The all-sky histogram at ``[hips] histogram_order`` and the stretch the PNGs use."""

    def requires(self):
        spec = self.spec
        order = spec.histogram_order
        return [PlateHistogram(order=order, i=i, j=j)
                for i, j in plan.plates_at_order(spec, order)]

    def output(self):
        return luigi.LocalTarget(str(self.layout.stretch(stretch_id(self.spec))))

    def work(self) -> None:
        from hipsluigi.stretch.histogram import load_histogram, merge_histograms, save_histogram
        from hipsluigi.stretch.stretch import make_stretch

        spec = self.spec
        merged = merge_histograms([load_histogram(t.path) for t in self.input()])
        stretch = make_stretch(merged, spec.stretch, spec.stretch_min, spec.stretch_max)
        hist_path = self.layout.stretch(stretch_id(spec)).with_suffix(".hist.npz")
        write_atomic(hist_path, lambda tmp: save_histogram(merged, tmp))
        write_text_atomic(self.output().path, stretch.to_json())


class PlatePNGs(PlateTask):
    """8-bit PNG tiles beside the FITS tiles of plate ``(i, j)`` at ``order`` (mViewer)."""

    def requires(self):
        return {"tiles": PlateTiles(order=self.order, i=self.i, j=self.j),
                "plate": plate_task(self.spec, self.order, self.i, self.j),
                "stretch": Histogram()}

    def output(self):
        return luigi.LocalTarget(str(self.layout.manifest(
            self.order, self.i, self.j, self.bin, f"png-{stretch_id(self.spec)}")))

    def work(self) -> None:
        from hipsluigi.stretch.stretch import Stretch
        from hipsluigi.tiles.png import encode_png

        spec = self.spec
        stretch = Stretch.load(self.input()["stretch"].path)
        wanted = set(read_manifest(self.input()["tiles"])["tiles"])
        plate = read_plate(self.input()["plate"])
        written = []
        for npix, tile in plate_tiles(plate, plan.grid(spec, self.order), self.i, self.j):
            if npix in wanted:
                write_bytes_atomic(self.layout.tile(self.order, npix, "png"),
                                   encode_png(tile, stretch))
                written.append(npix)
        manifest = {"order": self.order, "plate": plate_name(self.i, self.j), "tiles": written,
                    "stretch": stretch_id(spec)}
        write_text_atomic(self.output().path, json.dumps(manifest))


def _all_plate_tasks(spec: MapSpec, family) -> list[PlateTask]:
    return [family(order=k, i=i, j=j) for k in range(spec.order, -1, -1)
            for i, j in plan.plates_at_order(spec, k)]


class HiPSMetadata(HipsTask):
    """``properties``, ``Norder{0..3}/Allsky.{fits,png}``, ``Moc.fits`` and ``index.html``."""

    def requires(self):
        spec = self.spec
        return {"tiles": _all_plate_tasks(spec, PlateTiles),
                "pngs": _all_plate_tasks(spec, PlatePNGs),
                "stretch": Histogram()}

    def _key(self) -> str:
        spec = self.spec
        text = f"{stretch_id(spec)}|{spec.obs_title}|{spec.creator_did}"
        return hashlib.sha1(text.encode()).hexdigest()[:8]

    def output(self):
        return {"properties": luigi.LocalTarget(str(self.layout.hips_dir / "properties")),
                "marker": luigi.LocalTarget(str(self.layout.metadata_marker(self._key())))}

    def work(self) -> None:
        from hipsluigi.metadata.build import write_hips_metadata

        spec = self.spec
        tiles: dict[int, list[int]] = {}
        for target in self.input()["tiles"]:
            manifest = read_manifest(target)
            tiles.setdefault(manifest["order"], []).extend(manifest["tiles"])
        write_hips_metadata(spec, tiles, self.input()["stretch"].path)
        write_text_atomic(self.output()["marker"].path, self._key())


class AllSkyFITS(luigi.WrapperTask):
    """Every FITS tile of every order (no PNG, no metadata): the data part of the map."""

    map = MapName(description="map name; default [hips] name")

    def requires(self):
        return _all_plate_tasks(current_spec(), PlateTiles)


class AllSkyPNGs(luigi.WrapperTask):
    """The whole map: every FITS and PNG tile of every order, and the HiPS metadata."""

    map = MapName(description="map name; default [hips] name")

    def requires(self):
        return HiPSMetadata()

    def run(self) -> None:
        hips_dir = current_spec().layout.hips_dir
        log.info("HiPS map complete: %s (serve it with `python -m http.server -d %s` and open "
                 "http://localhost:8000/index.html)", hips_dir, hips_dir)


__all__ = [
    "AllSkyFITS", "AllSkyPNGs", "BackgroundModel", "CorrectPlate", "HiPSMetadata", "Histogram",
    "OverlapFit", "PlateHistogram", "PlateList", "PlateMosaic", "PlatePNGs", "PlateTable",
    "PlateTiles", "Setup", "ShrinkPlate", "SurveyIndex",
]
