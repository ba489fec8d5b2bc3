"""Luigi's scheduler against hipsluigi's indexed scheduler on the same dry-run graph.

Local scheduler, one worker, ``executor = dryrun`` (placeholder outputs, no pixels), the map of
``--order`` (order 7: 4,025 tasks; 8: 16,121; 9: 62,201). Prints, for each scheduler, the time
to add the graph and to run it, and the ratio of the run times.

    .venv/bin/python benchmarks/bench_scheduler.py [--order 7] [--skip-stock]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time

from luigi import scheduler as luigi_scheduler
from luigi import worker as luigi_worker

import hipsluigi
from hipsluigi.execution import IndexedScheduler
from hipsluigi.testing import luigi_options


def run(make_scheduler, order: int) -> tuple[int, float, float]:
    with tempfile.TemporaryDirectory(prefix="hipsluigi-sched-") as root:
        storage = ",".join(f"{root}/unit{k}" for k in range(4))
        with luigi_options({"hips": {"order": order, "executor": "dryrun", "storage": storage}}):
            sch = make_scheduler()
            with luigi_worker.Worker(scheduler=sch, worker_processes=1) as worker:
                t0 = time.perf_counter()
                if not worker.add(hipsluigi.AllSkyPNGs()):
                    raise SystemExit("the graph could not be scheduled")
                t1 = time.perf_counter()
                if not worker.run():
                    raise SystemExit("the dry run failed")
                t2 = time.perf_counter()
    return len(sch._state.get_active_tasks()), t1 - t0, t2 - t1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--order", type=int, default=7)
    parser.add_argument("--skip-stock", action="store_true")
    args = parser.parse_args()
    logging.getLogger("luigi-interface").setLevel(logging.WARNING)
    ours = run(lambda: IndexedScheduler(prune_on_get_work=True, record_task_history=False),
               args.order)
    print(f"indexed scheduler: {ours[0]} tasks, add {ours[1]:.1f} s, run {ours[2]:.1f} s")
    if not args.skip_stock:
        stock = run(lambda: luigi_scheduler.Scheduler(prune_on_get_work=True,
                                                      record_task_history=False), args.order)
        print(f"Luigi's scheduler: {stock[0]} tasks, add {stock[1]:.1f} s, run {stock[2]:.1f} s")
        print(f"run time ratio Luigi / indexed: {stock[2] / ours[2]:.1f}")


if __name__ == "__main__":
    main()
