"""``python -m hipsluigi.execution.job [--module M] <TaskFamily> '<params as JSON>'``.

What a :class:`~hipsluigi.execution.SlurmTask` job script runs: import module ``M`` (which
defines the task class), rebuild the task with ``from_str_params`` under the configuration in
``LUIGI_CONFIG_PATH``, call its ``run_in_process()`` (``run()`` for a task without one) and
check that it is complete. Exit status 0 on success; on failure the traceback goes to stderr
(the job log) and the status is 1; 2 for a bad command line.

Any module with this command line can serve as a task's ``slurm_entry_point``.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
import traceback

from luigi.task_register import Register

from hipsluigi.execution.task import keep_freed_memory

USAGE = "usage: python -m hipsluigi.execution.job [--module M] <TaskFamily> '<params as JSON>'"


def main(argv: list[str]) -> int:
    """Run one task as described by ``argv``; return the process exit status."""
    modules = []
    while len(argv) >= 2 and argv[0] == "--module":
        modules.append(argv[1])
        argv = argv[2:]
    if len(argv) != 2:
        print(USAGE, file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    keep_freed_memory()  # a process for one task, as Luigi's forked ones
    family, params = argv
    try:
        for module in modules:
            importlib.import_module(module)
        task = Register.get_task_cls(family).from_str_params(json.loads(params))
        print(f"job: {task.task_id}", flush=True)
        getattr(task, "run_in_process", task.run)()
        if not task.complete():
            raise RuntimeError(f"{task.task_id}: the task ran but is not complete "
                               f"(missing outputs)")
    except Exception:
        traceback.print_exc()
        return 1
    print(f"job: {task.task_id} done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
