""":class:`QAReport`: the map's QA page, ``HiPS/qa/report.html`` with its plots.

The page shows the Allsky preview, the histogram with the stretch and its levels, the
background correction per plate and the overlap differences before and after it, the
coverage, the rejected inputs with their reasons, and the time per stage from the tasks'
records (:mod:`hipsluigi.execution.records`). The plots and the page are pure
(:mod:`hipsluigi.report`); :func:`write_qa_report` reads the map's files for them.
"""

from __future__ import annotations

import datetime
import logging
import os

import numpy as np

from hipsluigi.execution.records import format_bytes, read_records, summarise
from hipsluigi.metadata.allsky import ALLSKY_MAX_ORDER, allsky_arrays
from hipsluigi.pipeline import plan
from hipsluigi.pipeline.tasks import (
    BackgroundModel,
    HiPSMetadata,
    HipsTask,
    Histogram,
    PlatePNGs,
    group_allsky_parts,
    stretch_id,
)
from hipsluigi.spec import MapSpec
from hipsluigi.storage import artifacts
from hipsluigi.storage.atomic import write_bytes_atomic, write_text_atomic
from hipsluigi.storage.layout import StorageLayout

log = logging.getLogger("luigi-interface")


class QAReport(HipsTask):
    """``HiPS/qa/report.html`` and its PNG plots, beside the HiPS (``index.html`` links it).

    Made from the PNG groups (their manifests and Allsky parts), the stretch and the
    background model, not from the metadata's files, so that it runs beside
    :class:`HiPSMetadata` at the end of a map; done again when the metadata's key changes (a
    new stretch, title or description); a map that heals itself keeps its report."""

    def requires(self):
        spec = self.spec

        def groups(order: int) -> list[PlatePNGs]:
            return [PlatePNGs(map=self.map, order=order, i=i, j=j)
                    for i, j in plan.plates_at_order(spec, order)]

        # the PNG groups list the FITS groups' tiles (they are made together)
        reqs = {"stretch": Histogram(map=self.map), "tiles": groups(spec.order),
                "allsky": groups(allsky_order(spec))}
        if spec.background == "global":
            reqs["model"] = BackgroundModel(map=self.map)
        return reqs

    def output(self):
        key = HiPSMetadata(map=self.map).metadata_key()
        return {"page": self.target(self.layout.qa_dir / "report.html"),
                "marker": self.target(self.layout.metadata_marker(f"qa-{key}"))}

    def work(self) -> None:
        order = allsky_order(self.spec)
        part = group_allsky_parts(self, self.requires()["allsky"])[order]
        write_qa_report(self.spec, self.layout, self.input(), allsky_arrays(part, order)[1])
        write_text_atomic(self.output()["marker"].path, self.output()["page"].path)


def allsky_order(spec: MapSpec) -> int:
    """The order the report's Allsky preview shows: the deepest with an ``Allsky`` file."""
    return min(ALLSKY_MAX_ORDER, spec.order)


#: Task families left out of the report's timing: the report, and the metadata it runs beside.
UNTIMED = ("QAReport", "HiPSMetadata")


def write_qa_report(spec: MapSpec, layout: StorageLayout, inputs: dict,
                    allsky: np.ndarray) -> None:
    """Read the map's files (``inputs``: :meth:`QAReport.input`), draw the plots into
    ``HiPS/qa/`` and write ``report.html`` last.

    ``allsky`` is the pixels ``[row, col, 2]`` (uint8 grey and alpha, as every tile of a
    map, PNG row order) of ``Norder{allsky_order(spec)}/Allsky.png``. The timing leaves out
    the families in :data:`UNTIMED`."""
    from hipsluigi.report import plots
    from hipsluigi.report.page import Section, render_page

    qa = layout.qa_dir
    sections = []

    def save(name: str, fig) -> str:
        write_bytes_atomic(qa / name, plots.png_bytes(fig))
        return name

    # Allsky preview, the deepest order it exists at (orders 0..3)
    order = allsky_order(spec)
    sections.append(Section(
        f"Allsky preview (order {order})",
        save("allsky.png", plots.allsky_figure(allsky, order,
                                               f"Norder{order}/Allsky.png", spec.frame)),
        [f"The PNG tiles of order {order} as Allsky.png holds them, on the sky; "
         "white where there is no data."]))

    # histogram, stretch and levels
    stretch = artifacts.read_stretch(inputs["stretch"].path)
    hist = artifacts.read_histogram(layout.merged_histogram(stretch_id(spec)))
    sections.append(Section(
        "Histogram and stretch",
        save("histogram.png", plots.histogram_figure(hist, stretch)),
        [f"Pixels of order {spec.histogram_order}, {hist.npix:,} in all, from "
         f"{hist.lo:.6g} to {hist.hi:.6g}. Stretch {stretch.kind}, black level "
         f"{stretch.lo:.6g} ([hips] stretch_min = {spec.stretch_min or 'default'}), white "
         f"level {stretch.hi:.6g} ([hips] stretch_max = {spec.stretch_max or 'default'})."]))

    # background: correction per plate and overlap differences
    sections += _background_sections(spec, layout, inputs, save)

    # coverage from the tile groups' manifests
    npix = []
    for target in inputs["tiles"]:
        npix += artifacts.read_manifest(target.path)["tiles"]
    sections.append(Section(
        "Coverage", save("coverage.png", plots.coverage_figure(spec.order, npix, spec.frame)),
        [f"{len(npix)} tiles at order {spec.order} (Moc.fits holds this coverage in ICRS)."]))

    # rejected inputs
    if os.path.exists(layout.rejects):
        rejects = artifacts.read_rejects(layout.rejects)
        rows = [(_shown(r["path"]), int(r["hdu"]) if int(r["hdu"]) >= 0 else "",
                 _shown(r["reason"])) for r in rejects]
        notes = [f"{len(rows)} input file(s) rejected (survey/rejects.tbl)." if rows
                 else "None: every input was usable."]
        sections.append(Section("Rejected inputs", None, notes,
                                (("file", "HDU", "reason"), rows) if rows else None))
    else:
        sections.append(Section("Rejected inputs", None, [
            f"None: the {spec.survey} survey has no input files to reject."]))

    # time per stage
    stages = summarise(r for r in read_records(layout.records) if r.family not in UNTIMED)
    if stages:
        image_name = save("timing.png", plots.timing_figure(
            [s.family for s in stages], [s.span for s in stages], [s.wall for s in stages],
            [s.cpu for s in stages]))
        rows = [(s.family, s.tasks, s.failed, round(s.span, 2), round(s.wall, 2),
                 round(s.cpu, 2), format_bytes(s.bytes_written)) for s in stages]
        sections.append(Section(
            "Time per stage", image_name,
            ["From each task's record of its last run (records/ in the map's work tree); the "
             "report itself and the metadata, made beside it, are not included (the run's "
             "summary in the log has them). Elapsed: the stage's first start to its last "
             "end; wall and CPU: sums over its tasks."],
            (("stage (task family)", "tasks", "failed", "elapsed s", "wall s", "CPU s",
              "written"), rows)))
    else:
        sections.append(Section("Time per stage", None, [
            "No task records: the map was built before tasks recorded their work, or under "
            "executor = dryrun."]))

    facts = {"map": spec.name, "title": spec.obs_title, "frame": spec.frame,
             "order": spec.order, "tile width": spec.tile_width, "survey": spec.survey,
             "background": spec.background, "stretch": stretch.kind,
             "made": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")}
    page = render_page(f"QA report: {spec.obs_title}", facts, sections)
    write_bytes_atomic(qa / "report.html", page.encode("utf-8"))  # its meta charset


def _background_sections(spec: MapSpec, layout: StorageLayout, inputs: dict, save) -> list:
    from hipsluigi.geometry.frames import vec_to_lonlat
    from hipsluigi.geometry.hpx import plane_crpix
    from hipsluigi.geometry.sky import plate_cap
    from hipsluigi.report import plots
    from hipsluigi.report.page import Section
    from hipsluigi.report.residuals import overlap_residuals

    if spec.background != "global":
        why = ("background = none: no correction was made." if spec.background == "none" else
               "background = plate: the images were matched within each plate; there is no "
               "global model across plates.")
        return [Section("Background correction per plate", None, [why]),
                Section("Overlap differences", None, [why])]
    model = inputs["model"]
    planes = artifacts.read_corrections(model["corrections"].path)
    grid = spec.grid
    crpix = plane_crpix(grid.face_side)
    lon, lat, values = [], [], []
    for (i, j), pid in plan.plate_ids(spec).items():
        if pid not in planes:
            continue
        a, b, c = planes[pid]
        p1, p2 = grid.origin(i, j)
        half = (grid.plate_side - 1) / 2
        lo, la = vec_to_lonlat(plate_cap(grid, i, j)[0])
        lon.append(float(lo))
        lat.append(float(la))
        values.append(a * (p1 + half - crpix) + b * (p2 + half - crpix) + c)
    values = np.array(values)
    fits = artifacts.read_fitcombo(model["fitcombo"].path)
    before, after = overlap_residuals(fits, planes)
    return [
        Section("Background correction per plate",
                save("background.png", plots.plate_values_figure(
                    np.array(lon), np.array(lat), values, spec.frame,
                    "Background subtracted from each plate, at its centre",
                    "correction (data units)")),
                [f"{len(values)} plates; corrections from {values.min():.4g} to "
                 f"{values.max():.4g} (mosaics/corrections.tbl, [hips] background_fit = "
                 f"{spec.background_fit})."]),
        Section("Overlap differences", save("overlaps.png", plots.residuals_figure(before,
                                                                                   after)),
                [f"{len(fits)} overlap fits (mosaics/fitcombo.tbl): the difference of two "
                 "plates at their overlap's centre, as fitted and after each plate's "
                 "correction was subtracted."]),
    ]


__all__ = ["QAReport", "write_qa_report"]


def _shown(text: object) -> str:
    """A file name or reason as a page can hold it: a name's bytes that are not UTF-8 (held
    as surrogates) shown as ``\\xNN``, the rest as it is."""
    return str(text).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
