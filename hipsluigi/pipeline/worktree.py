"""A map's work tree: its fingerprint, and the lock that keeps two runs from building it at once.

A second run with the same ``[hips] name`` and storage but, say, another order would otherwise
find old plates at the same paths and take them as done. ``hips.json`` records the settings
that change pixels; a run whose settings differ stops with an error naming the file and the
keys, before any task runs.

Luigi's own lock is keyed on the command line: two different maps built with the same command
(each with its own ``luigi.cfg``) refuse each other, and the same map built with two different
command lines runs twice. hipsluigi turns it off (``[core] no_lock``) and locks the map's work
tree instead: ``run.lock`` in the base unit's map folder, an ``flock`` the driver process holds
from the map's first completion check to the end of the run (the kernel drops it if the driver
dies; task processes do not keep it). A ``--local-scheduler`` run holds it exclusively: the
same map a second time, from any command line, stops at once (Luigi's exit code
``already_running``) with a message naming the other run. Runs through a central scheduler
(luigid) hold it shared: several clients build one map together, luigid giving each task to
one of them, while a local run of that map is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from dataclasses import dataclass, field
from functools import lru_cache

import luigi
import luigi.interface
import luigi.rpc
import luigi.worker

from hipsluigi.spec import MapSpec
from hipsluigi.storage.atomic import write_text_atomic
from hipsluigi.storage.layout import StorageLayout

log = logging.getLogger("luigi-interface")

_checked: set[MapSpec] = set()

#: The lock file, in the base unit's map folder.
LOCK_NAME = "run.lock"


class WorkTreeMismatch(RuntimeError):
    """The work tree was built with other pixel settings."""


class WorkTreeBusy(luigi.interface.PidLockAlreadyTakenExit):
    """Another run holds the map's work tree. A ``SystemExit`` (as Luigi's own lock): it stops
    the scheduling at once, and the ``luigi`` command exits with ``[retcode]
    already_running``."""


@lru_cache(maxsize=64)
def layout_of(spec: MapSpec) -> StorageLayout:
    """Where map ``spec``'s files live."""
    return StorageLayout(spec.storage, spec.name)


def fingerprint_text(spec: MapSpec) -> str:
    return json.dumps(spec.fingerprint(), indent=1, sort_keys=True, default=str)


def check_work_tree(spec: MapSpec) -> None:
    """Lock the work tree for the current run (:func:`lock_work_tree`), then raise
    :class:`WorkTreeMismatch` if ``hips.json`` exists and records other settings."""
    lock_work_tree(spec)
    if spec in _checked:
        return
    path = layout_of(spec).fingerprint
    if not path.exists():
        return
    recorded = json.loads(path.read_text())
    wanted = json.loads(fingerprint_text(spec))
    if recorded != wanted:
        diff = sorted(k for k in set(recorded) | set(wanted) if recorded.get(k) != wanted.get(k))
        details = ", ".join(f"{k}: {recorded.get(k)!r} -> {wanted.get(k)!r}" for k in diff)
        raise WorkTreeMismatch(
            f"{path}: the work tree of map {spec.name!r} was built with other settings "
            f"({details}). Use another [hips] name or storage, or delete "
            f"{layout_of(spec).base}."
        )
    _checked.add(spec)


def prepare_work_tree(spec: MapSpec) -> None:
    """Create the work tree on every storage unit and record the fingerprint."""
    check_work_tree(spec)
    layout_of(spec).setup()
    write_text_atomic(layout_of(spec).fingerprint, fingerprint_text(spec))


# -- the run and its lock --------------------------------------------------------------------


@dataclass
class Run:
    """The Luigi run this process drives (its worker is between ``__enter__`` and
    ``__exit__``); forked task processes inherit it.

    Attributes
    ----------
    central : bool
        Whether the scheduler is a central one (luigid) rather than ``--local-scheduler``.
    started : float
        When the run began (``time.time()``, seconds).
    memo : dict
        For completion checks to remember what they verified during this run.
    locks : dict of str to int
        Lock file -> open descriptor, for the work trees this run holds.
    """

    central: bool
    started: float = field(default_factory=time.time)
    memo: dict = field(default_factory=dict)
    locks: dict[str, int] = field(default_factory=dict)


_run: Run | None = None


def current_run() -> Run | None:
    """The run this process drives, or None (a SLURM job, a command such as
    ``hipsluigi.where``, or outside any ``luigi`` run)."""
    return _run


def _command_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return "?"


def _holders(fd: int) -> str:
    """Who holds the lock on ``fd``'s file, from the kernel's table of locks (Linux): each
    holder's pid and command line. Nothing is written into the lock file, so a run that finds
    its map complete changes nothing in the work tree."""
    info = os.fstat(fd)
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    pids = []
    with contextlib.suppress(OSError), open("/proc/locks") as f:
        for line in f:
            fields = line.split()
            if "->" not in fields and "FLOCK" in fields and device in fields:
                pids.append(int(fields[fields.index(device) - 1]))
    if not pids:
        return "a process not in this system's /proc/locks"
    return "; ".join(f"process {pid}: {_command_of(pid)}" for pid in sorted(set(pids)))


def lock_work_tree(spec: MapSpec) -> None:
    """Hold map ``spec``'s work-tree lock for the current run (no-op outside a run, or if
    held already).

    Raises
    ------
    WorkTreeBusy
        If another run holds it in a conflicting mode; the message names the map, the lock
        file and the other run.
    """
    run = _run
    if run is None:
        return
    path = layout_of(spec).base / LOCK_NAME
    if str(path) in run.locks:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if run.central else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        other = _holders(fd)
        os.close(fd)
        if run.central:
            advice = "wait for it to finish (a --local-scheduler run cannot share a map)"
        else:
            advice = ("wait for it to finish, or build the map from several clients through "
                      "one luigid (--scheduler-host/--scheduler-port) instead of "
                      "--local-scheduler")
        message = (f"map {spec.name!r} is being built by another run ({other}); {path} is "
                   f"locked: {advice}")
        log.error(message)
        raise WorkTreeBusy(message) from None
    run.locks[str(path)] = fd


def _leave_locks_to_the_parent() -> None:
    """In a forked task process: close its copies of the lock descriptors (the driver keeps
    the locks), so that a driver killed while tasks still run releases its maps at once, and
    the command run again resumes them (SLURM tasks wait for their jobs)."""
    if _run is not None:
        _release(_run)
        for path in _run.locks:
            _run.locks[path] = -1  # held by the driver: not to be taken again here


os.register_at_fork(after_in_child=_leave_locks_to_the_parent)


def _release(run: Run) -> None:
    for fd in run.locks.values():
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)  # the lock goes with the last descriptor of its open file


#: How long a client of luigid that has nothing to run, and sees none of its tasks running
#: anywhere, waits before it gives up (seconds): luigid's counts may be a few seconds old.
WAIT_FOR_OTHERS_SECONDS = 5.0


class MapRunWorker(luigi.worker.Worker):
    """Luigi's worker, marking the run it drives (:func:`current_run`) for the work-tree locks
    and releasing them when it exits.

    With a central scheduler it also builds a map together with the other clients: Luigi's
    worker quits as soon as luigid has nothing for it, while other clients still run the
    tasks it waits for, and its summary counts what they did as "not run" or "run by another
    worker" (exit codes 25 and 10 for a complete map). This one waits while another worker
    runs one of its tasks, and counts the tasks others completed as complete ones
    encountered, so that a client whose map is complete exits 0.
    """

    _waiting_since: float | None = None
    _outer_run: Run | None = None

    def __enter__(self):
        global _run
        # A run inside a task of another (luigi.build in run()) keeps the outer run's locks.
        self._outer_run = _run
        _run = Run(central=isinstance(self._scheduler, luigi.rpc.RemoteScheduler),
                   locks=dict.fromkeys(_run.locks, -1) if _run is not None else {})
        return super().__enter__()

    def __exit__(self, *exc):
        global _run
        try:
            return super().__exit__(*exc)
        finally:
            if _run is not None:
                _release(_run)
            _run = self._outer_run

    def _keep_alive(self, get_work_response) -> bool:
        if super()._keep_alive(get_work_response):
            return True
        if _run is None or not _run.central or get_work_response.n_pending_tasks == 0:
            return False
        now = time.monotonic()
        if get_work_response.running_tasks:
            self._waiting_since = None
            return True
        # Nothing of ours runs anywhere: blocked behind a failure, or between two tasks of
        # another client; only the first lasts.
        self._waiting_since = self._waiting_since or now
        return now - self._waiting_since < WAIT_FOR_OTHERS_SECONDS

    def run(self) -> bool:
        succeeded = super().run()
        if _run is not None and _run.central:
            self._count_work_of_others()
        return succeeded

    def _count_work_of_others(self) -> None:
        """Record the tasks still pending in this worker's history that are complete now (other
        clients ran them) as found complete, for Luigi's summary and exit code."""
        last = {}
        for task, status, _ in self._add_task_history:
            last[task] = status
        done = set()
        for task, status in last.items():
            if status == "PENDING":
                try:
                    if task.complete():
                        done.add(task)
                except Exception:  # noqa: BLE001  (left as Luigi saw it)
                    continue
        if not done:
            return
        history, seen = [], set()
        for task, status, runnable in self._add_task_history:
            if task in done:
                if task in seen:
                    continue
                seen.add(task)
                status = "DONE"
            history.append((task, status, runnable))
        self._add_task_history[:] = history
        ids = {task.task_id for task in done}
        for response in self._get_work_response_history:
            response["running_tasks"] = [r for r in response["running_tasks"]
                                         if r["task_id"] not in ids]
        log.info("%d tasks of this run were completed by other clients of the central "
                 "scheduler", len(done))


def _create_worker(self, scheduler, worker_processes, assistant=False):
    return MapRunWorker(scheduler=scheduler, worker_processes=worker_processes,
                        assistant=assistant)


def install_work_tree_locks() -> None:
    """Make every Luigi run (``luigi`` command or ``luigi.build``) lock the work trees of the
    maps it checks, and turn Luigi's command-line lock off unless ``[core] no_lock`` is set.

    The ``luigi`` command offers no hook: this replaces
    ``luigi.interface._WorkerSchedulerFactory.create_worker``, which makes Luigi's own worker.
    Idempotent.
    """
    luigi.interface._WorkerSchedulerFactory.create_worker = _create_worker
    cfg = luigi.configuration.get_config()
    if not cfg.has_option("core", "no_lock"):
        if not cfg.has_section("core"):
            cfg.add_section("core")
        cfg.set("core", "no_lock", "true")


install_work_tree_locks()
