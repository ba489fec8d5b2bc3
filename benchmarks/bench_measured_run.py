"""A whole-sky run whose bytes are counted, per storage unit and per task family.

Writes the synthetic survey's images as a folder of FITS files (a ``fits`` survey, read as
real survey images are), then runs the user's command on it::

    luigi --module hipsluigi AllSkyPNGs --local-scheduler --workers 2

with 4 storage units, ``background = global``, 512-pixel tiles and ``keep_intermediate =
false``, sampling the bytes each unit holds every second (the peak disk). From the task
records (:mod:`hipsluigi.execution.records`) it prints, per task family and per unit, the
bytes read and written and the CPU seconds, and saves them with the map's pixel counts as JSON
for ``benchmarks/projection.py``.

    .venv/bin/python benchmarks/bench_measured_run.py [--order 3] [--keep]
        [--out benchmarks/results/measured_run.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

REPO = Path(__file__).resolve().parents[1]
UNITS = 4
TILE = 512


def write_survey(folder: Path, order: int) -> int:
    """The synthetic survey's images touching any plate of the map, as FITS files (float32);
    returns how many."""
    from hipsluigi.geometry.sky import plate_cap
    from hipsluigi.spec import MapSpec
    from hipsluigi.surveys.synthetic import SyntheticSurvey

    spec = MapSpec(order=order, tile_width=TILE, storage=(str(folder),))
    survey = SyntheticSurvey(spec)
    grid = spec.grid
    ids: set[int] = set()
    for i in range(grid.nplate):
        for j in range(grid.nplate):
            if grid.on_sky(i, j) and not grid.is_duplicate(i, j):
                ids.update(int(k) for k in survey.image_ids_touching(*plate_cap(grid, i, j)))
    folder.mkdir(parents=True, exist_ok=True)
    for k in sorted(ids):
        image = survey.image(k)
        fits.writeto(folder / f"image_{k:06d}.fits", image.load().astype(np.float32),
                     image.wcs.to_header())
    return len(ids)


def du(path: Path) -> int:
    """Bytes of the regular files under ``path`` (links not followed, each file once)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                info = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            if not os.path.islink(os.path.join(root, name)):
                total += info.st_size
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--order", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep_intermediate = true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" /
                        "measured_run.json")
    parser.add_argument("--survey", type=Path, default=None,
                        help="a folder holding the survey's FITS images (written there first "
                             "when empty), to reuse between runs; default a temporary one")
    args = parser.parse_args()
    from hipsluigi.execution.records import read_records, unit_totals
    from hipsluigi.execution.slurm_jobs import config_text

    with tempfile.TemporaryDirectory(prefix="hipsluigi-measured-") as tmp:
        root = Path(tmp)
        survey = args.survey or root / "survey"
        start = time.perf_counter()
        if args.survey and any(survey.glob("image_*.fits")):
            nimages = len(list(survey.glob("image_*.fits")))
            print(f"survey: {nimages} FITS images in {survey}", flush=True)
        else:
            nimages = write_survey(survey, args.order)
            print(f"survey: {nimages} FITS images written in {time.perf_counter() - start:.0f}"
                  " s", flush=True)
        units = [root / f"unit{u}" for u in range(UNITS)]
        options = {
            "core": {"autoload_range": "false", "no_lock": "true"},
            "hips": {"name": "measured", "order": args.order, "tile_width": TILE,
                     "storage": ",".join(map(str, units)), "survey": "fits",
                     "survey_path": str(survey), "background": "global",
                     "frame": "galactic", "executor": "local",
                     "keep_intermediate": "true" if args.keep else "false"},
            "resources": {f"storage_unit_{u}": 5 for u in range(UNITS)},
        }
        (root / "luigi.cfg").write_text(config_text(options))
        peak = [0] * UNITS
        done = threading.Event()

        def sample() -> None:
            while not done.wait(1.0):
                for u, unit in enumerate(units):
                    peak[u] = max(peak[u], du(unit))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        start = time.perf_counter()
        subprocess.run([str(Path(sys.executable).with_name("luigi")), "--module", "hipsluigi",
                        "AllSkyPNGs", "--local-scheduler", "--workers", str(args.workers)],
                       cwd=root, env={**os.environ, "LUIGI_CONFIG_PATH": str(root / "luigi.cfg")},
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        final = [du(unit) for unit in units]
        survey_bytes = du(survey)  # each image once: what a download cache fetches
        records = read_records(units[0] / "measured" / "records")
    cpu: dict[str, float] = {}
    for r in records:
        cpu[r.family] = cpu.get(r.family, 0.0) + r.cpu
    totals = unit_totals(records)
    deepest = 12 * 4**args.order * TILE**2
    result = {"order": args.order, "tile_width": TILE, "units": UNITS,
              "keep_intermediate": args.keep, "images": nimages, "survey_bytes": survey_bytes,
              "wall_seconds": wall,
              "deepest_pixels": deepest, "families": totals, "cpu_seconds": cpu,
              "peak_disk": {f"unit{u}": n for u, n in enumerate(peak)},
              "final_disk": {f"unit{u}": n for u, n in enumerate(final)}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"order {args.order}, {TILE}-pixel tiles, {UNITS} units, whole sky, fits survey "
          f"({nimages} images), background global, keep_intermediate {args.keep}: "
          f"{wall:.0f} s wall, {sum(cpu.values()):.0f} s CPU\n")
    labels = [f"unit{u}" for u in range(UNITS)] + ["outside"]
    print("| task family | CPU s | " + " | ".join(f"{u} read / written (MB)" for u in labels)
          + " |")
    print("|---|---:|" + "---:|" * len(labels))
    for family, per_unit in totals.items():
        cells = [f"{per_unit.get(u, {}).get('read', 0) / 1e6:.0f} / "
                 f"{per_unit.get(u, {}).get('written', 0) / 1e6:.0f}" for u in labels]
        print(f"| {family} | {cpu.get(family, 0):.1f} | " + " | ".join(cells) + " |")
    sums = [sum(per.get(u, {}).get(k, 0) for per in totals.values())
            for u in labels for k in ("read", "written")]
    print("| **all** | " + f"{sum(cpu.values()):.0f} | " + " | ".join(
        f"{sums[2 * k] / 1e6:.0f} / {sums[2 * k + 1] / 1e6:.0f}" for k in range(len(labels)))
        + " |")
    print("\npeak disk per unit (sampled each second): " + ", ".join(
        f"unit{u} {n / 1e6:.0f} MB" for u, n in enumerate(peak)))
    print("at the end: " + ", ".join(f"unit{u} {n / 1e6:.0f} MB" for u, n in enumerate(final)))
    print(f"saved: {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")


if __name__ == "__main__":
    main()
