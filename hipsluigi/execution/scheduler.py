"""A Luigi scheduler whose ``get_work`` does not scan every task: graphs of many tasks.

Luigi's scheduler answers each ``get_work`` by pruning every task (local scheduler), sorting all
PENDING and RUNNING tasks and counting the worker's pending tasks with an upstream walk, so a run
of N tasks costs O(N^2) in the scheduler alone. :class:`IndexedScheduler` keeps the same task
state, web view and API and changes only the bookkeeping:

* ready tasks (PENDING, every dependency DONE) sit in a priority heap per worker, keyed as
  Luigi ranks them (priority, then age); a task enters the heap when it becomes PENDING or when
  its last dependency becomes DONE (a reverse-dependency index), and is checked again when
  popped, so stale entries cost nothing but a pop;
* ``count_pending`` (which workers use only to decide whether to stay alive and what to log)
  counts the worker's PENDING and FAILED tasks without Luigi's upstream walk (so tasks behind a
  disabled task still count as pending), and is cached per worker for ``pending_ttl`` seconds
  or ten times what it took, whichever is longer;
* the local scheduler prunes every ``prune_seconds`` instead of on every ``get_work``.

Assistant workers, batched task families and a paused scheduler use Luigi's own ``get_work``.
Not reproduced: Luigi's "greedy" resource reservation across workers, which keeps a worker with
many low-priority tasks from starving another's higher-priority ones on shared resources.

How runs get it: ``luigi.build(..., worker_scheduler_factory=IndexedSchedulerFactory())``
(Luigi's documented hook); ``luigi --local-scheduler``, which has no hook, after
:func:`install_indexed_scheduler`; ``python -m hipsluigi.luigid`` serves it as a central
scheduler with Luigi's visualiser. The scheduler and the ``luigi`` hook use Luigi's private
members, so both check the installed Luigi against :data:`TESTED_LUIGI` and fall back to
Luigi's own scheduler (with one warning) outside it.
"""

from __future__ import annotations

import heapq
import importlib.metadata
import itertools
import operator
import re
import time
import warnings
from collections import defaultdict

import luigi.interface
from luigi.scheduler import DONE, FAILED, PENDING, RUNNING, Scheduler, SimpleTaskState

#: Luigi versions whose private scheduler members :class:`IndexedScheduler` and
#: :func:`install_indexed_scheduler` were tested against (setup.cfg pins the same range).
TESTED_LUIGI = (">=3.5", "<3.9")


class IndexedTaskState(SimpleTaskState):
    """Luigi's task state plus the index of ready tasks."""

    def __init__(self, state_path):
        super().__init__(state_path)
        self._reset_index()

    def _reset_index(self) -> None:
        self.dependents: dict[str, set[str]] = defaultdict(set)
        self.heaps: dict[str, list] = defaultdict(list)
        self.pushed: dict[tuple[str, str], float] = {}
        self.sequence = itertools.count()

    def load(self):
        super().load()
        self._reset_index()
        for task in self.get_active_tasks():
            self.index_deps(task)
        for task in self.get_active_tasks():
            self.consider(task)

    def set_status(self, task, new_status, config=None):
        super().set_status(task, new_status, config)
        if task.status == PENDING:
            self.consider(task)
        elif task.status == DONE:
            for dependent_id in self.dependents.get(task.id, ()):
                dependent = self._tasks.get(dependent_id)
                if dependent is not None:
                    self.consider(dependent)

    def index_deps(self, task) -> None:
        for dep in task.deps or ():
            self.dependents[dep].add(task.id)

    def is_ready(self, task) -> bool:
        if task.status != PENDING:
            return False
        for dep in task.deps or ():
            dep_task = self._tasks.get(dep)
            if dep_task is None or dep_task.status != DONE:
                return False
        return True

    def consider(self, task) -> None:
        """Put ``task`` in its workers' heaps if it is ready and not there at this priority."""
        if not self.is_ready(task):
            return
        for worker_id in task.workers:
            key = (worker_id, task.id)
            if self.pushed.get(key) == task.priority:
                continue
            self.pushed[key] = task.priority
            heapq.heappush(self.heaps[worker_id],
                           (-task.priority, task.time, next(self.sequence), task.id))

    def pop(self, worker_id: str):
        """The next entry of a worker's heap, or None."""
        heap = self.heaps.get(worker_id)
        if not heap:
            return None
        entry = heapq.heappop(heap)
        self.pushed.pop((worker_id, entry[3]), None)
        return entry

    def push_back(self, worker_id: str, entry) -> None:
        self.pushed[(worker_id, entry[3])] = -entry[0]
        heapq.heappush(self.heaps[worker_id], entry)


class IndexedScheduler(Scheduler):
    """Luigi's :class:`~luigi.scheduler.Scheduler` with indexed ``get_work``."""

    prune_seconds = 10.0
    pending_ttl = 2.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        collector = self._state._metrics_collector
        self._state = IndexedTaskState(self._config.state_path)
        self._state._metrics_collector = collector
        self._last_prune = 0.0
        self._pending_cache: dict[str, tuple[float, dict]] = {}  # worker -> (valid until, reply)

    def add_task(self, **kwargs):
        result = super().add_task(**kwargs)
        task = self._state.get_task(kwargs.get("task_id"))
        if task is not None:
            self._state.index_deps(task)
            self._state.consider(task)
        return result

    add_task.__doc__ = Scheduler.add_task.__doc__

    def _update_priority(self, task, prio, worker):
        super()._update_priority(task, prio, worker)
        self._state.consider(task)

    def count_pending(self, worker):
        cached = self._pending_cache.get(worker)
        now = time.time()
        if cached is not None and now < cached[0]:
            return dict(cached[1])
        reply = self._count_pending(worker)
        took = time.time() - now
        self._pending_cache[worker] = (now + max(self.pending_ttl, 10 * took), reply)
        return dict(reply)

    def _count_pending(self, worker_id):
        """Luigi's count, without its upstream walk (which leaves out tasks behind a disabled
        one): the walk visits the whole graph, and luigid answers nothing else meanwhile."""
        worker = self._state.get_worker(worker_id)
        pending = unique = last = 0
        for task in worker.get_tasks(self._state, PENDING, FAILED):
            pending += 1
            unique += int(len(task.workers) == 1)
            last += int(task.workers.peek(last=True) == worker_id)
        running = []
        for task in worker.get_tasks(self._state, RUNNING):
            other = self._state.get_worker(task.worker_running)
            if other is not None:
                info = {"task_id": task.id, "worker": str(other)}
                info.update(other.info)
                running.append(info)
        return {"n_pending_tasks": pending, "n_unique_pending": unique,
                "n_pending_last_scheduled": last, "worker_state": worker.state,
                "running_tasks": running}

    def get_work(self, host=None, assistant=False, current_tasks=None, worker=None, **kwargs):
        if assistant or self._paused or self._state._task_batchers.get(worker):
            return super().get_work(host=host, assistant=assistant, current_tasks=current_tasks,
                                    worker=worker, **kwargs)
        if self._config.prune_on_get_work and time.time() - self._last_prune > self.prune_seconds:
            self.prune()
            self._last_prune = time.time()

        assert worker is not None
        worker_id = worker
        worker = self._update_worker(worker_id, worker_reference={"host": host}, get_work=True)
        if not worker.enabled:
            return {"n_pending_tasks": 0, "running_tasks": [], "task_id": None,
                    "n_unique_pending": 0, "worker_state": worker.state}

        best_task = None
        if current_tasks is not None:
            # A task this worker runs but no longer reports (e.g. its process died): hand it back.
            ct_set = set(current_tasks)
            for task in sorted(self._state.get_active_tasks_by_status(RUNNING), key=self._rank):
                if task.worker_running == worker_id and task.id not in ct_set:
                    best_task = task
            self._reset_orphaned_batch_running_tasks(worker_id)

        if best_task is None:
            best_task = self._pop_best(worker_id)

        reply = self.count_pending(worker_id)
        if best_task is None:
            reply["task_id"] = None
            return reply
        self.update_metrics_task_started(best_task)
        self._state.set_status(best_task, RUNNING, self._config)
        best_task.worker_running = worker_id
        best_task.resources_running = best_task.resources.copy()
        best_task.time_running = time.time()
        self._update_task_history(best_task, RUNNING, host=host)
        reply["task_id"] = best_task.id
        reply["task_family"] = best_task.family
        reply["task_module"] = getattr(best_task, "module", None)
        reply["task_params"] = best_task.params
        return reply

    def _pop_best(self, worker_id: str):
        """Highest-ranked ready task of this worker whose resources are free, or None."""
        used = self._used_resources()
        blocked = []
        best = None
        while best is None:
            entry = self._state.pop(worker_id)
            if entry is None:
                break
            task = self._state.get_task(entry[3])
            if task is None or worker_id not in task.workers or not self._state.is_ready(task):
                continue  # stale: it comes back when it is ready again
            if -entry[0] != task.priority:
                self._state.consider(task)  # re-queue at its current priority
                continue
            if self._has_resources(task.resources, used):
                best = task
            else:
                blocked.append(entry)
        for entry in blocked:
            self._state.push_back(worker_id, entry)
        return best


_COMPARE = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt,
            "==": operator.eq}


def _version_tuple(text: str) -> tuple[int, ...]:
    # "3.8.1" -> (3, 8, 1); a suffix ("3.9.0rc1") ends the numbers
    numbers = []
    for part in text.split("."):
        match = re.match(r"\d+", part)
        if match is None:
            break
        numbers.append(int(match.group()))
        if match.end() < len(part):
            break
    return tuple(numbers)


def luigi_is_tested(version: str | None = None) -> bool:
    """Whether Luigi ``version`` (default: the installed one) is inside :data:`TESTED_LUIGI`."""
    if version is None:
        version = importlib.metadata.version("luigi")
    have = _version_tuple(version)
    for spec in TESTED_LUIGI:
        op, bound = re.fullmatch(r"(>=|<=|==|<|>)\s*([\d.]+)", spec.strip()).groups()
        want = _version_tuple(bound)
        width = max(len(have), len(want))
        if not _COMPARE[op](have + (0,) * (width - len(have)), want + (0,) * (width - len(want))):
            return False
    return True


_warned = False


def _tested_or_warn() -> bool:
    global _warned
    if luigi_is_tested():
        return True
    if not _warned:
        _warned = True
        warnings.warn(f"luigi {importlib.metadata.version('luigi')} is outside the range "
                      f"{', '.join(TESTED_LUIGI)} that hipsluigi's indexed scheduler was tested "
                      f"against: using Luigi's own scheduler", RuntimeWarning, stacklevel=3)
    return False


def indexed_or_luigi_scheduler(**kwargs) -> Scheduler:
    """An :class:`IndexedScheduler`, or Luigi's :class:`~luigi.scheduler.Scheduler` (with a
    warning, once) when the installed Luigi is outside :data:`TESTED_LUIGI`."""
    return IndexedScheduler(**kwargs) if _tested_or_warn() else Scheduler(**kwargs)


class IndexedSchedulerFactory(luigi.interface._WorkerSchedulerFactory):
    """For ``luigi.build(tasks, worker_scheduler_factory=IndexedSchedulerFactory(),
    local_scheduler=True)``: local runs get an :class:`IndexedScheduler`."""

    def create_local_scheduler(self) -> Scheduler:
        # Luigi's own arguments for a local scheduler
        return indexed_or_luigi_scheduler(prune_on_get_work=True, record_task_history=False)


def install_indexed_scheduler() -> bool:
    """Make every local-scheduler run (``luigi --local-scheduler``, ``luigi.build(...,
    local_scheduler=True)``) use :class:`IndexedScheduler`.

    The ``luigi`` command offers no hook, so this replaces only
    ``luigi.interface._WorkerSchedulerFactory.create_local_scheduler``, and only for a Luigi
    inside :data:`TESTED_LUIGI`; otherwise it warns once and leaves Luigi's scheduler.
    Idempotent. Returns whether the indexed scheduler is installed.
    """
    if not _tested_or_warn():
        return False
    luigi.interface._WorkerSchedulerFactory.create_local_scheduler = (
        IndexedSchedulerFactory.create_local_scheduler)
    return True
