"""``python -m hipsluigi.job [--module M] <TaskFamily> '<params as JSON>'``: run one task here.

What a SLURM job script runs: it rebuilds the task from its family and parameters (under the
configuration in ``LUIGI_CONFIG_PATH``; ``--module`` imports a module defining task classes
outside hipsluigi) and calls its ``work()``. Exit status 0 on success; on
failure the traceback goes to the job log and the status is 1.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
import traceback

from luigi.task_register import Register

import hipsluigi  # noqa: F401  (registers the task families)


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "--module":
        importlib.import_module(argv[1])
        argv = argv[2:]
    if len(argv) != 2:
        print("usage: python -m hipsluigi.job [--module M] <TaskFamily> '<params as JSON>'",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    family, params = argv[0], json.loads(argv[1])
    try:
        cls = Register.get_task_cls(family)
        task = cls.from_str_params(params)
        print(f"hipsluigi job: {task.task_id}", flush=True)
        task.work_one_thread()
        if not task.complete():
            raise RuntimeError(f"{task.task_id}: work() ended but the outputs are missing")
    except Exception:
        traceback.print_exc()
        return 1
    print(f"hipsluigi job: {task.task_id} done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
