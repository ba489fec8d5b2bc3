"""Hostile map names and settings stop the ``luigi`` command before any task runs.

Each case runs ``luigi --module hipsluigi AllSkyPNGs --local-scheduler`` (``AllMaps`` for
``--maps``) in a folder of its own holding only ``luigi.cfg``, with the bad value in the file or
as a flag. Each must exit non-zero with exactly one line on stderr that names the key (no
traceback, no Luigi log: nothing was scheduled), and leave the folder as it was: a map name that
escapes the storage units, or a setting refused, writes nothing anywhere.

``stretch_max = 99%`` (the documented syntax, which ConfigParser's interpolation refuses) must
instead build the map with the 99th percentile as its white level, writing only inside the
storage units.

A ``luigi`` process spends ~2 s importing hipsluigi, so the table runs in one process: this file
run as a script imports hipsluigi once and forks a child per case, which calls the ``luigi``
console script's own function (``luigi.cmdline.luigi_run``) with the case's arguments in the
case's folder. :data:`BY_THE_LUIGI_SCRIPT` cases and the build also run as real ``luigi``
processes.
"""

from __future__ import annotations

import configparser
import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

REPO = Path(__file__).resolve().parents[1]
LUIGI = Path(sys.executable).with_name("luigi")

#: A small map, in case a hostile value is let through: it would then build in seconds.
SMALL = {"hips": {"order": "1", "tile_width": "64", "background": "none",
                  "storage": "hips-work/u0,hips-work/u1"},
         "synthetic": {"frame_size": "64", "sources": "50", "blobs": "10"}}


@dataclass
class Case:
    """``args`` and ``config`` may hold ``{root}``, the case's own folder (the command runs in
    ``{root}/work``)."""

    id: str
    expected: str  # in the one line on stderr: the key, and the value as written
    args: list[str] = field(default_factory=list)
    config: dict[str, dict[str, str]] = field(default_factory=dict)
    task: str = "AllSkyPNGs"


NAME_RULE = "a map name is 1 to 64 characters among A-Z a-z 0-9 . _ -"

REFUSED = [
    # map names: paths, blanks, shell characters, control and non-ASCII characters
    Case("name-parent", f"[hips] name = '../../escape': {NAME_RULE}",
         ["--hips-name", "../../escape"]),
    Case("name-absolute", "[hips] name = '{root}/abs/path': a map name is",
         ["--hips-name", "{root}/abs/path"]),
    Case("name-blank-semicolon", "[hips] name = 'a b;x': a map name is",
         ["--hips-name", "a b;x"]),
    Case("name-empty-flag", "[hips] name = '': a map name is", ["--hips-name="]),
    Case("name-empty-file", "[hips] name = '': a map name is", config={"hips": {"name": ""}}),
    Case("name-newline-flag", "[hips] name = 'a\\nb': a map name is", ["--hips-name", "a\nb"]),
    Case("name-newline-file", "[hips] name = 'a\\nb': a map name is",
         config={"hips": {"name": "a\nb"}}),
    Case("name-non-ascii", "[hips] name = 'kärta': a map name is", ["--hips-name", "kärta"]),
    Case("map-parameter", "--map = '../x': a map name is", ["--map", "../x"]),
    Case("all-maps", "--maps = '../x': a map name is", ["--maps", "demo,../x"], task="AllMaps"),
    Case("map-section", "[hips.a b] section name = 'a b': a map name is",
         config={"hips.a b": {"order": "1"}}),
    # [hips] keys outside their ranges
    Case("order-negative", "[hips] order = -1: must be 0..23 with tile_width = 64",
         ["--hips-order", "-1"]),
    Case("order-30", "[hips] order = 30: must be 0..23 with tile_width = 64",
         ["--hips-order", "30"]),
    Case("order-28-width-4096", "[hips] order = 28: must be 0..17 with tile_width = 4096",
         ["--hips-order", "28", "--hips-tile-width", "4096"]),
    Case("order-not-a-number", "--hips-order 'three': ", ["--hips-order", "three"]),
    Case("width-100", "[hips] tile_width = 100: must be a power of 2 from 64 to 4096",
         ["--hips-tile-width", "100"]),
    Case("width-131072", "[hips] tile_width = 131072: must be a power of 2",
         ["--hips-tile-width", "131072"]),
    Case("nplate-7", "[hips] nplate = 7: must be 5 * 2**m from 5 to 10", ["--hips-nplate", "7"]),
    Case("pad-negative", "[hips] pad = -1: must be 0..", ["--hips-pad", "-1"]),
    Case("region-syntax", "[hips] region 'square 1 2': expected 'plates XMIN YMIN XMAX YMAX'",
         ["--hips-region", "square 1 2"]),
    Case("region-off-sky", "[hips] region = 'plates 99 99 120 120': the region holds no on-sky",
         config={"hips": {"region": "plates 99 99 120 120"}}),
    Case("stretch-garbage-file", "[hips] stretch_min = '-2x': invalid stretch level",
         config={"hips": {"stretch_min": "-2x"}}),
    Case("stretch-garbage-flag", "[hips] stretch_max = 'brightest': invalid stretch level",
         ["--hips-stretch-max", "brightest"]),
    Case("stretch-inverted-percentiles",
         "[hips] stretch_min = '99%' is not below stretch_max = '1%'",
         config={"hips": {"stretch_min": "99%", "stretch_max": "1%"}}),
    Case("stretch-inverted-values", "[hips] stretch_min = '5' is not below stretch_max = '2'",
         ["--hips-stretch-min", "5", "--hips-stretch-max", "2"]),
    Case("histogram-order-above-order", "[hips] histogram_order = 3: must be 0..1",
         ["--hips-histogram-order", "3"]),
    Case("storage-empty-flag", "[hips] storage = '': needs one or more", ["--hips-storage="]),
    Case("storage-empty-file", "[hips] storage = '': needs one or more",
         config={"hips": {"storage": " , "}}),
    Case("unknown-key", "[hips]: unknown keys ordre", config={"hips": {"ordre": "2"}}),
    Case("synthetic-frame-size", "[synthetic] frame_size = 4: must be 8..16384",
         ["--synthetic-frame-size", "4"]),
    # more than the disk holds: order 12 of 512-pixel tiles is 193 TiB of FITS tiles
    Case("tiles-beyond-the-disk", "[hips] order = 12, tile_width = 512: the deepest order's "
                                  "201,326,592 FITS tiles alone need 193.0 TiB, and ",
         ["--hips-order", "12", "--hips-tile-width", "512"]),
]

#: Cases also run as separate ``luigi`` processes, as a user runs them.
BY_THE_LUIGI_SCRIPT = ("name-parent", "order-30", "stretch-inverted-percentiles")

PERCENT = Case("percent-as-documented", "", ["--hips-order", "0", "--hips-name", "pct"],
               {"hips": {"stretch": "linear", "stretch_min": "1%", "stretch_max": "99%"}})


def _config_file(path: Path, overrides: dict[str, dict[str, str]]) -> None:
    """luigi.cfg with SMALL and ``overrides``, values written as they are ('%' and all)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(REPO / "luigi.cfg")
    for layer in (SMALL, overrides):
        for section, values in layer.items():
            if not parser.has_section(section):
                parser.add_section(section)
            for key, value in values.items():
                parser.set(section, key, value)
    with open(path, "w") as f:
        parser.write(f)


def _prepare(root: Path, case: Case) -> tuple[Path, list[str]]:
    """The case's folder ``root/work`` with its luigi.cfg, and the ``luigi`` arguments."""
    work = root / "work"
    work.mkdir(parents=True)
    config = {s: {k: v.format(root=root) for k, v in values.items()}
              for s, values in case.config.items()}
    _config_file(work / "luigi.cfg", config)
    args = [a.format(root=root) for a in case.args]
    return work, ["--module", "hipsluigi", case.task, "--local-scheduler", *args]


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "LUIGI_CONFIG_PATH"}


def _run_luigi(root: Path, case: Case) -> subprocess.CompletedProcess:
    work, argv = _prepare(root, case)
    return subprocess.run([str(LUIGI), *argv], cwd=work, env=_environment(),
                          capture_output=True, encoding="utf-8", errors="backslashreplace",
                          timeout=600)


def _run_forked(roots: dict[str, Path], capture: Path) -> dict[str, subprocess.CompletedProcess]:
    """Every case of :data:`REFUSED` through :func:`_fork_cases` in one process."""
    jobs = []
    for case in REFUSED:
        work, argv = _prepare(roots[case.id], case)
        jobs.append({"cwd": str(work), "argv": argv, "stdout": str(capture / f"{case.id}.out"),
                     "stderr": str(capture / f"{case.id}.err")})
    runner = subprocess.run([sys.executable, __file__], input=json.dumps(jobs), cwd=capture,
                            env=_environment(), capture_output=True, text=True, timeout=600)
    assert runner.returncode == 0, runner.stderr[-3000:]
    codes = json.loads(runner.stdout)
    return {case.id: subprocess.CompletedProcess(
                job["argv"], code,
                Path(job["stdout"]).read_text(encoding="utf-8", errors="backslashreplace"),
                Path(job["stderr"]).read_text(encoding="utf-8", errors="backslashreplace"))
            for case, job, code in zip(REFUSED, jobs, codes, strict=True)}


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir()} | {
        str(p.relative_to(root)) + "/" for p in root.rglob("*") if p.is_dir()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``{(case id, how): (case folder, completed process)}``: every refused case forked
    (``how = "forked"``), some also by the ``luigi`` script, and the build by the script."""
    base = tmp_path_factory.mktemp("hostile")
    capture = tmp_path_factory.mktemp("hostile-output")
    script = [PERCENT, *(c for c in REFUSED if c.id in BY_THE_LUIGI_SCRIPT)]
    forked_roots = {c.id: base / "forked" / c.id for c in REFUSED}
    with ThreadPoolExecutor(max_workers=len(script) + 1) as pool:
        by_script = {c.id: pool.submit(_run_luigi, base / "luigi" / c.id, c) for c in script}
        forked = pool.submit(_run_forked, forked_roots, capture)
        results = {(cid, "luigi"): (base / "luigi" / cid, f.result())
                   for cid, f in by_script.items()}
        results.update({(cid, "forked"): (forked_roots[cid], run)
                        for cid, run in forked.result().items()})
    return results


CHECKS = [(c, "forked") for c in REFUSED] + [(c, "luigi") for c in REFUSED
                                              if c.id in BY_THE_LUIGI_SCRIPT]


@pytest.mark.parametrize(("case", "how"), CHECKS, ids=[f"{c.id}-{how}" for c, how in CHECKS])
def test_a_hostile_name_or_setting_stops_the_command_before_any_task(case, how, runs):
    root, run = runs[case.id, how]
    output = run.stdout + run.stderr
    assert run.returncode != 0, output[-3000:]
    assert "Traceback" not in output
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr[-3000:]
    assert lines[0].startswith("hipsluigi: error: " + case.expected.format(root=root)), lines[0]
    # nothing was written: not in the storage units, not where an escaping name points
    assert _files(root) == {"work/", "work/luigi.cfg"}


def test_a_lone_percent_in_a_stretch_level_works_as_documented(runs):
    root, run = runs[PERCENT.id, "luigi"]
    assert run.returncode == 0, run.stderr[-3000:]
    base = root / "work" / "hips-work" / "u0" / "pct"
    written = _files(root) - {"work/", "work/luigi.cfg", "work/hips-work/"}
    assert written and all(p.startswith(("work/hips-work/u0/", "work/hips-work/u1/"))
                           for p in written)
    # The white and black levels are the 99th and 1st percentiles of the order-0 pixels (the
    # histogram order): the sorted pixels bracket them, to the histogram's 200,000 bins.
    (stretch_file,) = (base / "stretch").glob("stretch-*.json")
    stretch = json.loads(stretch_file.read_text())
    pixels = np.concatenate([fits.getdata(p).ravel()
                             for p in (base / "HiPS" / "Norder0").glob("Dir*/Npix*.fits")])
    pixels = np.sort(pixels[np.isfinite(pixels)]).astype(np.float64)
    bin_width = (pixels[-1] - pixels[0]) / 200_000
    for level, q in ((stretch["lo"], 1), (stretch["hi"], 99)):
        k = math.ceil(q / 100 * pixels.size) - 1
        assert pixels[k - 1] - 2 * bin_width <= level <= pixels[k] + 2 * bin_width, (q, level)
    assert stretch["hi"] < pixels[-1] - 100 * bin_width  # not the maximum


def _fork_cases() -> None:
    """Run the ``luigi`` command lines of the JSON list on stdin (``cwd``, ``argv``, ``stdout``
    and ``stderr`` files), each in a forked child, as many at once as there are cores; print
    their exit statuses as a JSON list."""
    import luigi.cmdline
    import luigi.configuration

    import hipsluigi  # noqa: F401  (what --module hipsluigi imports, once for every child)

    jobs = json.load(sys.stdin)
    codes: list[int | None] = [None] * len(jobs)
    pending, running = list(enumerate(jobs)), {}
    while pending or running:
        while pending and len(running) < (os.cpu_count() or 1):
            k, job = pending.pop(0)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(job, luigi.cmdline.luigi_run, luigi.configuration.LuigiConfigParser)
            running[pid] = k
        pid, status = os.wait()
        codes[running.pop(pid)] = os.waitstatus_to_exitcode(status)
    json.dump(codes, sys.stdout)


def _child(job: dict, luigi_run, parser_class) -> None:
    code = 70
    try:
        for fd, path in ((1, job["stdout"]), (2, job["stderr"])):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
        os.chdir(job["cwd"])
        parser_class._instance = None  # read the case's luigi.cfg, as a new process would
        try:
            luigi_run(job["argv"])
            code = 0
        except SystemExit as stop:
            # what the interpreter does with a SystemExit that reaches it
            code = stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
            if not isinstance(stop.code, int | None):
                print(stop.code, file=sys.stderr)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    _fork_cases()
