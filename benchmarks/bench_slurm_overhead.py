"""Overhead of SlurmTask: N trivial tasks against N trivial sbatch jobs.

Both on the SLURM this machine runs (scripts/slurm-up.sh), in the same run, alternating:
(a) SLURM alone: ``sbatch --wrap true`` N times, then wait until squeue shows none left;
(b) SlurmTask: N trivial tasks (one small file each) with ``[execution] executor = slurm``,
    local scheduler, ``--workers W``: each writes its job script, submits it, polls the shared
    status cache and finishes when the job has; the job itself starts Python and imports the
    task's module (and with it hipsluigi).
Prints each time and the median ratio (b)/(a).

    .venv/bin/python benchmarks/bench_slurm_overhead.py [--n 200] [--workers 32] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import luigi

sys.path.insert(0, str(Path(__file__).resolve().parent))

from slurm_trivial import TrivialJobs  # noqa: E402

from hipsluigi.testing import luigi_options  # noqa: E402


def wait_for_queue_empty() -> None:
    while subprocess.run(["squeue", "--me", "-h", "-t",
                          "PENDING,RUNNING,CONFIGURING,COMPLETING"],
                         capture_output=True, text=True).stdout.strip():
        time.sleep(0.2)


def slurm_alone(n: int, logdir: Path) -> float:
    start = time.perf_counter()
    for _ in range(n):
        subprocess.run(["sbatch", "--parsable", f"--output={logdir}/j%j.out", "--wrap", "true"],
                       check=True, capture_output=True)
    wait_for_queue_empty()
    return time.perf_counter() - start


def slurm_tasks(n: int, workers: int, root: Path, poll: float) -> float:
    options = {"execution": {"executor": "slurm", "job_dir": str(root / "jobs")},
               "slurm": {"poll_seconds": poll}}
    with luigi_options(options):
        start = time.perf_counter()
        ok = luigi.build([TrivialJobs(root=str(root), n=n)], local_scheduler=True,
                         workers=workers, log_level="WARNING")
        elapsed = time.perf_counter() - start
    if not ok:
        raise SystemExit("the SlurmTask run failed")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--poll", type=float, default=1.0)
    args = parser.parse_args()
    wait_for_queue_empty()
    ratios = []
    for k in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="hipsluigi-slurm-") as tmp:
            base = slurm_alone(args.n, Path(tmp))
            ours = slurm_tasks(args.n, args.workers, Path(tmp) / "work", args.poll)
        ratios.append(ours / base)
        print(f"run {k + 1}: SLURM alone {base:6.1f} s, SlurmTask {ours:6.1f} s, "
              f"ratio {ours / base:.2f}", flush=True)
    print(f"{args.n} jobs, {args.workers} workers, poll {args.poll} s: median ratio "
          f"{statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f})")


if __name__ == "__main__":
    main()
