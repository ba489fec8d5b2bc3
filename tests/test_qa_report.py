"""The QA report and the progress a person follows, on small maps built end to end.

A synthetic map (global background model) built with one in-process worker, so that the test
sees Luigi's own scheduler: the page and its plots, the timing table against the tasks Luigi
says it ran, the plate mosaics' status messages and progress in the scheduler, and the
end-of-run summary lines. Then a ``fits`` survey with bad files: the page lists each of them
with its reason.
"""

from __future__ import annotations

import html
import logging
import re
import shutil
import time
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import luigi
import numpy as np
import pytest
from PIL import Image

from hipsluigi import AllSkyPNGs, HiPSMetadata, QAReport
from hipsluigi.execution.records import read_records
from hipsluigi.surveys.tests.test_fits_folder import AZP, write_bad_inputs
from hipsluigi.testing import luigi_options

PLOTS = {"allsky.png", "histogram.png", "background.png", "overlaps.png", "coverage.png",
         "timing.png"}

CONFIG = {
    "hips": {"name": "qa", "order": 2, "tile_width": 64, "nplate": "", "background": "global",
             "region": "", "executor": "local", "frame": "galactic", "survey": "synthetic"},
    "synthetic": {"seed": 3, "frame_size": 128, "noise": 0.05, "backgrounds": 1.0,
                  "sources": 60, "blobs": 20},
}


class _Page(HTMLParser):
    """The report's images and table rows."""

    def __init__(self):
        super().__init__()
        self.images: list[str] = []
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        elif tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None


def _page(path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from luigi.execution_summary import _summary_dict

    root = tmp_path_factory.mktemp("qa")
    options = {k: dict(v) for k, v in CONFIG.items()}
    options["hips"]["storage"] = f"{root}/u0,{root}/u1"
    logs = _Collect()
    logger = logging.getLogger("luigi-interface")
    logger.addHandler(logs)
    # INFO whatever an earlier test or Luigi's own logging set-up left it at
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with luigi_options(options):
            start = time.time()
            # one worker: tasks run in this process and talk to this scheduler
            result = luigi.build([AllSkyPNGs()], local_scheduler=True, workers=1,
                                 detailed_summary=True)
            end = time.time()
            ran = _summary_dict(result.worker)["completed"]
            mosaics = {t.task_id: Path(t.output().path) for t in ran
                       if t.get_task_family() == "PlateMosaic"}
    finally:
        logger.removeHandler(logs)
        logger.setLevel(level)
    yield {"result": result, "ran": ran, "mosaics": mosaics, "start": start, "end": end,
           "logs": logs.lines, "base": root / "u0" / "qa", "options": options,
           "scheduler": result.worker._scheduler}


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_map_builds_with_its_report(built):
    assert built["result"].status == luigi.LuigiStatusCode.SUCCESS
    assert any(isinstance(t, QAReport) for t in built["ran"])


def test_report_links_every_plot_and_every_plot_is_a_valid_png(built):
    qa = built["base"] / "HiPS" / "qa"
    page = _page(qa / "report.html")
    assert set(page.images) == PLOTS
    assert {p.name for p in qa.glob("*.png")} == PLOTS
    for name in PLOTS:
        with Image.open(qa / name) as im:
            assert im.format == "PNG"
            im.verify()
        with Image.open(qa / name) as im:
            im.load()  # decodes every row: a truncated file fails here
            assert im.width == 800 and 150 < im.height < 1200, (name, im.size)


def test_timing_table_counts_the_tasks_luigi_ran_with_plausible_seconds(built):
    page = _page(built["base"] / "HiPS" / "qa" / "report.html")
    header = next(r for r in page.rows if r and r[0] == "stage (task family)")
    col = {name: k for k, name in enumerate(header)}
    table = {r[0]: r for r in page.rows[page.rows.index(header) + 1:]}
    # every task that did work, but the report (it writes the table), the metadata (made
    # beside it) and the wrappers
    expected = Counter(t.get_task_family() for t in built["ran"]
                       if not isinstance(t, (QAReport, HiPSMetadata, luigi.WrapperTask)))
    assert {f: int(r[col["tasks"]]) for f, r in table.items()} == dict(expected)
    run_seconds = built["end"] - built["start"]
    for family, row in table.items():
        elapsed, wall, cpu = (float(row[col[k]]) for k in ("elapsed s", "wall s", "CPU s"))
        assert 0 < wall <= run_seconds and 0 <= elapsed <= run_seconds, (family, row)
        assert cpu <= 1.5 * wall + 0.1, (family, row)  # one worker: no more CPU than time
        assert int(row[col["failed"]]) == 0
    assert float(table["PlateMosaic"][col["CPU s"]]) > 0
    records = read_records(built["base"] / "records")
    assert all(built["start"] <= r.start <= r.end <= built["end"] for r in records)
    # one worker: the tasks' wall times add up to no more than the run
    assert sum(r.wall for r in records) <= run_seconds


def test_the_report_does_not_wait_for_the_metadata_and_shows_the_allsky_png_it_makes(
        built, monkeypatch):
    from hipsluigi.report import plots

    with luigi_options(built["options"]):
        report = QAReport()
        closure, todo = set(), [report]
        while todo:  # every task the report needs, directly or not
            task = todo.pop()
            closure.add(task.get_task_family())
            todo += luigi.task.flatten(task.requires())
        assert "HiPSMetadata" not in closure and "PlatePNGs" in closure

        shown = []
        drawn = plots.allsky_figure
        monkeypatch.setattr(plots, "allsky_figure",
                            lambda image, *args: shown.append(image) or drawn(image, *args))
        for name in ("report.html", "allsky.png"):
            (built["base"] / "HiPS" / "qa" / name).unlink()
        for marker in built["base"].glob("stretch/metadata-qa-*.done"):
            marker.unlink()
        assert luigi.build([report], local_scheduler=True, workers=1)
    with Image.open(built["base"] / "HiPS" / "Norder2" / "Allsky.png") as im:
        expected = np.asarray(im.convert("LA"))
    (image,) = shown
    assert image.dtype == np.uint8 and np.array_equal(image, expected)
    assert (built["base"] / "HiPS" / "qa" / "allsky.png").is_file()
    page = html.unescape((built["base"] / "HiPS" / "qa" / "report.html").read_text("utf-8"))
    assert "Allsky preview (order 2)" in page
    assert "The PNG tiles of order 2 as Allsky.png holds them" in page


def test_tasks_record_at_least_the_bytes_of_their_outputs(built):
    records = {r.task_id: r for r in read_records(built["base"] / "records")}
    assert built["mosaics"]
    for task_id, path in built["mosaics"].items():
        assert records[task_id].bytes_written >= path.stat().st_size, task_id


def test_plate_mosaics_told_the_scheduler_frames_done_out_of_frames(built):
    scheduler = built["scheduler"]
    mosaics = [t for t in built["ran"] if t.get_task_family() == "PlateMosaic"]
    assert mosaics
    for task in mosaics:
        message = scheduler.get_task_status_message(task.task_id)["statusMessage"]
        match = re.fullmatch(r".* (\d+) of (\d+) frames done", message or "")
        assert match, (task.task_id, message)
        done, total = map(int, match.groups())
        assert done == total > 0
        assert scheduler.get_task_progress_percentage(task.task_id)[
            "progressPercentage"] == 100


def test_end_of_run_summary_has_a_line_per_stage_and_a_total(built):
    lines = [line for line in built["logs"] if line.startswith("map qa: ")]
    families = Counter(t.get_task_family() for t in built["ran"]
                       if not isinstance(t, luigi.WrapperTask))
    for family, n in families.items():
        if family == "QAReport":
            continue  # its record counts in the summary too, checked below
        (line,) = [x for x in lines if x.startswith(f"map qa: {family}: ")]
        assert re.fullmatch(rf"map qa: {family}: {n} tasks, [\d.]+ s elapsed, [\d.]+ s wall, "
                            r"[\d.]+ s CPU, [\d.]+ k?M?G?B written", line), line
    total = sum(families.values())
    assert any(re.match(rf"map qa: all stages: {total} tasks, ", x) for x in lines), lines


def test_background_none_says_so_and_draws_no_background_plot(tmp_path):
    options = {k: dict(v) for k, v in CONFIG.items()}
    options["hips"].update(name="flat", background="none", order=1,
                           storage=f"{tmp_path}/u0")
    with luigi_options(options):
        assert luigi.build([AllSkyPNGs()], local_scheduler=True, workers=2)
    qa = tmp_path / "u0" / "flat" / "HiPS" / "qa"
    text = html.unescape((qa / "report.html").read_text(encoding="utf-8"))
    assert "background = none: no correction was made." in text
    assert set(_page(qa / "report.html").images) == PLOTS - {"background.png", "overlaps.png"}
    assert not (qa / "background.png").exists()
    assert "None: the synthetic survey has no input files to reject." in text


def test_rejected_inputs_are_listed_with_their_reasons(tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    expect = write_bad_inputs(folder)
    shutil.copy(AZP, folder / "good_azp.fits")
    options = {"hips": {"name": "bad", "order": 2, "tile_width": 64, "nplate": "",
                        "survey": "fits", "survey_path": str(folder), "frame": "equatorial",
                        "background": "none", "region": "", "executor": "local",
                        "storage": f"{tmp_path}/u0"}}
    with luigi_options(options):
        assert luigi.build([AllSkyPNGs()], local_scheduler=True, workers=2)
    path = tmp_path / "u0" / "bad" / "HiPS" / "qa" / "report.html"
    raw = path.read_text(encoding="utf-8")
    assert "<!DOCTYPE html>" in raw and raw.count("<html") == 1  # the HTML page stayed text
    page = _page(path)
    header = next(r for r in page.rows if r and r[0] == "file")
    rows = page.rows[page.rows.index(header) + 1:]
    rows = rows[:next((k for k, r in enumerate(rows) if r and r[0] == "stage (task family)"),
                      len(rows))]
    listed = {r[0].rsplit("/", 1)[-1]: r[2] for r in rows}
    assert set(listed) == set(expect), set(listed) ^ set(expect)
    for name, words in expect.items():
        for word in words:
            assert word in listed[name], (name, word, listed[name])
