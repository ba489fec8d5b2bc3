"""hipsluigi side by side with the HiPS builders a user would pick instead, on one real image.

    .venv/bin/python benchmarks/bench_peers.py [--repeat 3] [--tools ...] [--keep DIR]

The input is the WMAP 7-year W band (Debian's ``healpy-data``: ``apt-get install healpy-data``)
resampled by healpy (bilinear) onto one 2880 x 1440 galactic CAR image, written as one FITS file
in a folder of its own. Each repeat runs, interleaved, every tool on it to order 3 with
512-pixel tiles, each in a fresh output folder:

* ``png``: ``luigi --module hipsluigi AllSkyPNGs --local-scheduler --workers 2`` with a
  ``luigi.cfg`` (survey = fits, background = none, galactic): FITS and PNG tiles, metadata,
  QA report. Its records give the CPU of the stage after the FITS tiles (histograms, PNG tiles,
  metadata, QA report). ``PlatePNGs`` cuts the FITS tiles too, from the same read of the
  plate: the CPU of the ``fits`` run's ``PlateTiles`` in the same repeat is taken off it.
* ``fits``: the same with ``AllSkyFITS`` (FITS tiles only).
* ``reproject``: ``reproject.hips.reproject_to_hips`` (bilinear, 2 threads).
* ``hipsgen``: CDS Hipsgen from ``/usr/share/java/aladin.jar`` (if present), ``INDEX TILES``
  then ``PNG`` as two commands, ``maxThread=2``.

Wall and CPU times (user + system of the tool's processes, ``getrusage``) are medians over the
repeats; ratios compare runs of the same repeat.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from astropy.io import fits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_stages import _median, car_grid, run_reproject_to_hips  # noqa: E402

ORDER = 3
TILE_WIDTH = 512
CAR_WIDTH = 2880
MAP_NAME = "wmap"
ALADIN_JAR = Path("/usr/share/java/aladin.jar")
WMAP_NAME = "wmap_band_iqumap_r9_7yr_W_v4"

#: hipsluigi's task families after the FITS tiles: the stage Hipsgen's PNG action matches.
PNG_STAGE = ("PlateHistogram", "Histogram", "PlatePNGs", "HiPSMetadata", "QAReport")

TOOLS = ("png", "fits", "reproject", "hipsgen")


def find_wmap_map() -> Path:
    """The WMAP W band map of Debian's healpy-data (the full-sky, unmasked one)."""
    listing = subprocess.run(["dpkg", "-L", "healpy-data"], capture_output=True, text=True)
    if listing.returncode != 0:
        sys.exit("bench_peers: the WMAP map comes from Debian's healpy-data: "
                 "apt-get install -y healpy-data")
    for line in listing.stdout.splitlines():
        name = os.path.basename(line)
        if (name.startswith(WMAP_NAME) and name.endswith(".fits")
                and "masked" not in name and "smoothed" not in name):
            return Path(line)
    sys.exit(f"bench_peers: no {WMAP_NAME}*.fits in healpy-data")


def write_wmap_car(healpix_file: Path, path: Path, width: int = CAR_WIDTH) -> None:
    """The map's Stokes I on a galactic CAR grid ``width x width/2`` (bilinear, healpy),
    longitude increasing to the left, as one float32 FITS image."""
    import healpy as hp

    sky = hp.read_map(str(healpix_file), field=0)
    wcs, lon, lat = car_grid(width)
    data = hp.get_interp_val(sky, lon, lat, lonlat=True).astype(np.float32)
    header = wcs.to_header()
    header["BUNIT"] = "mK"
    fits.writeto(path, data, header, overwrite=True)


def timed(func: Callable[[], object], who: int = resource.RUSAGE_CHILDREN
          ) -> tuple[float, float]:
    """Wall seconds of ``func()`` and the CPU seconds meanwhile of ``who``: the child processes
    it waited for (default), or ``resource.RUSAGE_SELF`` (this process, every thread)."""
    before = resource.getrusage(who)
    start = time.perf_counter()
    func()
    wall = time.perf_counter() - start
    after = resource.getrusage(who)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _run(cmd: list[str], cwd: Path, log: Path) -> None:
    with open(log, "ab") as out:
        done = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        sys.exit(f"bench_peers: {' '.join(cmd)} failed (exit {done.returncode}); see {log}")


def run_hipsluigi(target: str, folder: Path, work: Path) -> tuple[float, float]:
    """The user's command for ``target`` in a fresh ``work`` folder holding its luigi.cfg."""
    work.mkdir(parents=True)
    (work / "luigi.cfg").write_text(
        "[hips]\n"
        f"name = {MAP_NAME}\norder = {ORDER}\ntile_width = {TILE_WIDTH}\n"
        "storage = unit0\nsurvey = fits\n"
        f"survey_path = {folder}\nbackground = none\nframe = galactic\n")
    cmd = [str(Path(sys.executable).with_name("luigi")), "--module", "hipsluigi", target,
           "--local-scheduler", "--workers", "2"]
    return timed(lambda: _run(cmd, work, work / "luigi.log"))


def family_cpu(work: Path, families: tuple[str, ...]) -> dict[str, float]:
    """CPU seconds of each of ``families`` in a hipsluigi run, from its task records."""
    from hipsluigi.execution.records import read_records, summarise

    stages = summarise(read_records(work / "unit0" / MAP_NAME / "records"))
    return {s.family: s.cpu for s in stages if s.family in families}


def run_hipsgen(folder: Path, out: Path, actions: list[str]) -> tuple[float, float]:
    """Hipsgen's ``actions`` on the image folder, to order 3, 512-px tiles, 2 threads."""
    cmd = ["java", "-jar", str(ALADIN_JAR), "-hipsgen", f"in={folder}", f"out={out}",
           "creator_did=ivo://hipsluigi.bench/P/wmap", f"hips_order={ORDER}",
           f"hips_tile_width={TILE_WIDTH}", "hips_frame=galactic", "maxThread=2",
           *actions]
    out.parent.mkdir(parents=True, exist_ok=True)
    return timed(lambda: _run(cmd, out.parent, out.parent / "hipsgen.log"))


def count_tiles(hips: Path, ext: str) -> int:
    return sum(1 for _ in hips.rglob(f"Npix*.{ext}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tools", default=",".join(TOOLS),
                        help=f"comma-separated, any of {', '.join(TOOLS)} (default: all)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="work in this (new) folder and keep it, instead of a temporary one")
    args = parser.parse_args()
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = set(tools) - set(TOOLS)
    if unknown:
        parser.error(f"unknown tool(s) {sorted(unknown)}; choose from {list(TOOLS)}")
    if "hipsgen" in tools and not (ALADIN_JAR.exists() and shutil.which("java")):
        print(f"hipsgen: no {ALADIN_JAR} or no java; skipped")
        tools.remove("hipsgen")

    if args.keep:
        args.keep.mkdir(parents=True)
        tmp_ctx = None
        tmp = args.keep.resolve()
    else:
        tmp_ctx = tempfile.TemporaryDirectory(prefix="hipsluigi-peers-")
        tmp = Path(tmp_ctx.name)
    try:
        folder = tmp / "images"
        folder.mkdir()
        source = find_wmap_map()
        write_wmap_car(source, folder / "wmap_w.fits")
        print(f"machine: {os.cpu_count()} cores; input: {source.name} (Stokes I) on a "
              f"{CAR_WIDTH}x{CAR_WIDTH // 2} galactic CAR image; order {ORDER}, "
              f"{TILE_WIDTH}-px tiles; {args.repeat} interleaved repeats")
        wall: dict[str, list[float]] = {}
        cpu: dict[str, list[float]] = {}
        stage_cpu: list[dict[str, float]] = []
        fits_cpu: list[float] = []
        counts: dict[str, str] = {}

        def add(name: str, wc: tuple[float, float]) -> None:
            wall.setdefault(name, []).append(wc[0])
            cpu.setdefault(name, []).append(wc[1])

        for k in range(args.repeat):
            if "png" in tools:
                work = tmp / f"png{k}"
                add("hipsluigi PNG", run_hipsluigi("AllSkyPNGs", folder, work))
                stage_cpu.append(family_cpu(work, PNG_STAGE))
                hips = work / "unit0" / MAP_NAME / "HiPS"
                counts["hipsluigi PNG"] = (f"{count_tiles(hips, 'fits')} FITS + "
                                           f"{count_tiles(hips, 'png')} PNG tiles")
            if "fits" in tools:
                work = tmp / f"fits{k}"
                add("hipsluigi FITS", run_hipsluigi("AllSkyFITS", folder, work))
                fits_cpu.append(family_cpu(work, ("PlateTiles",)).get("PlateTiles", 0.0))
                counts["hipsluigi FITS"] = (
                    f"{count_tiles(work / 'unit0' / MAP_NAME / 'HiPS', 'fits')} FITS tiles")
            if "reproject" in tools:
                out = tmp / f"reproject{k}"
                add("reproject_to_hips", timed(
                    lambda out=out: run_reproject_to_hips(folder / "wmap_w.fits", out, ORDER,
                                                          TILE_WIDTH), resource.RUSAGE_SELF))
                counts["reproject_to_hips"] = f"{count_tiles(out, 'fits')} FITS tiles"
            if "hipsgen" in tools:
                out = tmp / f"hipsgen{k}" / "HiPS"
                add("Hipsgen INDEX TILES", run_hipsgen(folder, out, ["INDEX", "TILES"]))
                add("Hipsgen PNG", run_hipsgen(folder, out, ["PNG"]))
                counts["Hipsgen INDEX TILES"] = f"{count_tiles(out, 'fits')} FITS tiles"
                counts["Hipsgen PNG"] = f"{count_tiles(out, 'png')} PNG tiles"
            if not args.keep:
                for path in tmp.iterdir():
                    if path.name != "images":
                        shutil.rmtree(path)
        if "hipsgen" in tools:
            wall["Hipsgen with PNG"] = [a + b for a, b in zip(
                wall["Hipsgen INDEX TILES"], wall["Hipsgen PNG"], strict=True)]
            cpu["Hipsgen with PNG"] = [a + b for a, b in zip(
                cpu["Hipsgen INDEX TILES"], cpu["Hipsgen PNG"], strict=True)]
            counts["Hipsgen with PNG"] = ""

        print(f"{'tool':22s} {'wall s':>8s} {'CPU s':>8s}  output")
        for name in wall:
            print(f"{name:22s} {_median(wall[name]):8.1f} {_median(cpu[name]):8.1f}  "
                  f"{counts.get(name, '')}")
        if "png" in tools and "hipsgen" in tools:
            ratio = [a / b for a, b in zip(wall["hipsluigi PNG"], wall["Hipsgen with PNG"],
                                           strict=True)]
            print(f"wall ratio hipsluigi with PNG / Hipsgen with PNG: {_median(ratio):.2f} "
                  "(goal <= 0.35)")
        if stage_cpu:
            per_family = {f: _median([s.get(f, 0.0) for s in stage_cpu]) for f in PNG_STAGE}
            cut = fits_cpu if len(fits_cpu) == len(stage_cpu) else [0.0] * len(stage_cpu)
            total = _median([sum(s.values()) - c for s, c in zip(stage_cpu, cut, strict=True)])
            shown = ", ".join(f"{f} {v:.1f}" for f, v in per_family.items())
            shown += (f"; less the FITS tiles' {_median(fits_cpu):.1f}" if cut is fits_cpu
                      else "; PlatePNGs includes the FITS tiles (run the fits tool too)")
            goal = (f" vs Hipsgen's PNG action {_median(cpu['Hipsgen PNG']):.1f} s CPU "
                    "(goal: no more)" if "hipsgen" in tools else "")
            print(f"hipsluigi's stage after the FITS tiles, CPU s (task records): {total:.1f} "
                  f"({shown}){goal}")
    finally:
        if tmp_ctx is not None:
            tmp_ctx.cleanup()


if __name__ == "__main__":
    main()
