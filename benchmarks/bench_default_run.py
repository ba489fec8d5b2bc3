"""Wall time of the default map (README command 1), from scratch, on this machine.

Runs ``luigi --module hipsluigi AllSkyPNGs --local-scheduler --workers W`` with the repository's
``luigi.cfg`` in a fresh temporary folder, ``--repeat`` times, and prints each time and the
median, plus the tiles written and the time of a second run (which must run no task).

    .venv/bin/python benchmarks/bench_default_run.py [--repeat 3] [--workers 2] [luigi flags]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_once(workdir: Path, workers: int, extra: list[str]) -> float:
    luigi = Path(sys.executable).with_name("luigi")
    start = time.perf_counter()
    subprocess.run([str(luigi), "--module", "hipsluigi", "AllSkyPNGs", "--local-scheduler",
                    "--workers", str(workers), *extra], cwd=workdir, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args, extra = parser.parse_known_args()
    print(f"machine: {os.cpu_count()} cores; workers {args.workers}; flags {extra or 'none'}")
    times = []
    for k in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="hipsluigi-bench-") as tmp:
            workdir = Path(tmp)
            shutil.copy(REPO / "luigi.cfg", workdir / "luigi.cfg")
            elapsed = run_once(workdir, args.workers, extra)
            times.append(elapsed)
            # the published tree (tiles of units 1-3 are links in it)
            tiles = list((workdir / "hips-work" / "unit0" / "demo" / "HiPS").glob(
                "Norder*/Dir*/Npix*.fits"))
            again = run_once(workdir, args.workers, extra)
            print(f"run {k + 1}: {elapsed:7.1f} s, {len(tiles)} FITS tiles; "
                  f"second run (nothing to do) {again:5.1f} s", flush=True)
    print(f"median of {len(times)}: {statistics.median(times):.1f} s "
          f"(min {min(times):.1f}, max {max(times):.1f})")


if __name__ == "__main__":
    main()
