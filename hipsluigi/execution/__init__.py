"""Running Luigi tasks locally, as SLURM jobs or as a dry run; an indexed Luigi scheduler.

Generic: nothing here knows what the tasks compute.

* :class:`SlurmTask` (:mod:`~hipsluigi.execution.task`): subclasses override ``work()``;
  ``[execution] executor`` (:class:`execution`) runs it in the Luigi worker, as a SLURM job
  (``[slurm]``, :class:`slurm`; :mod:`~hipsluigi.execution.slurm_jobs`) or not at all;
* :mod:`~hipsluigi.execution.job`: the job side, ``python -m hipsluigi.execution.job``;
* :class:`IndexedScheduler` (:mod:`~hipsluigi.execution.scheduler`) and
  :func:`install_indexed_scheduler`, which makes local-scheduler runs use it.
"""

from hipsluigi.execution.scheduler import (
    TESTED_LUIGI,
    IndexedScheduler,
    IndexedSchedulerFactory,
    install_indexed_scheduler,
)
from hipsluigi.execution.slurm_jobs import SlurmJobError, slurm
from hipsluigi.execution.task import (
    SlurmTask,
    execution,
    ready_task_processes,
    thread_pools,
)

__all__ = [
    "TESTED_LUIGI", "IndexedScheduler", "IndexedSchedulerFactory", "SlurmJobError", "SlurmTask",
    "execution", "install_indexed_scheduler", "ready_task_processes", "slurm",
    "thread_pools",
]
