"""Task records: what each task's work cost, written by the task where its work ran.

Every :class:`~hipsluigi.execution.SlurmTask` whose :meth:`record_dir` names a folder writes
one small JSON file there, ``<task_id>.json``, when its ``work()`` ends (in the Luigi worker
or in its SLURM job): family, task id, outcome, start and end (UTC epoch seconds), wall and
CPU seconds, and bytes written. A task run again replaces its record, so the folder describes
the latest run of every task. Each file is written atomically (a reader never sees half of
one); a reader still skips a file it cannot parse (a crash of the machine before the data
reached the disk), rather than failing the report that reads it.

Generic: nothing here knows what the tasks compute.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Iterable, Sequence
from dataclasses import MISSING, asdict, dataclass, field
from pathlib import Path

from hipsluigi.storage.atomic import write_text_atomic
from hipsluigi.storage.iometer import IOMeter, by_unit


@dataclass(frozen=True)
class TaskRecord:
    """One task's work, as the task recorded it.

    Attributes
    ----------
    family : str
        The Luigi task family (``PlateMosaic``); the report's "stage".
    task_id : str
        The Luigi task id.
    status : str
        ``done`` or ``failed`` (``work()`` raised).
    start, end : float
        When ``work()`` began and ended, UTC epoch seconds.
    wall : float
        ``end - start``, seconds.
    cpu : float
        CPU seconds of the process (user + system, every thread) during ``work()``.
    bytes_written : int
        Bytes the process wrote during ``work()`` (Linux ``/proc/self/io`` ``wchar``: every
        ``write``, to files or pipes); where that is unknown, the size of the task's output
        files. Approximate: a pool of tasks sharing one process would count each other's.
    host : str
        The machine the work ran on (a SLURM node, or the driver's).
    pid : int
        The process the work ran in.
    read_by_unit, written_by_unit : dict of str to int
        Bytes the work read and wrote, by storage unit (``unit0``, ``unit1``, ...; ``outside``
        for files outside every unit, such as the survey's images), as the artifact layer
        counted them (:mod:`hipsluigi.storage.iometer`: logical bytes, page cache or not).
    proc_io : dict of str to int
        The kernel's own counters for the process during ``work()`` (``/proc/self/io``:
        ``rchar``, ``wchar``, and ``read_bytes``, ``write_bytes`` that reached the storage
        layer); empty where the kernel does not say.
    """

    family: str
    task_id: str
    status: str
    start: float
    end: float
    wall: float
    cpu: float
    bytes_written: int
    host: str
    pid: int
    read_by_unit: dict = field(default_factory=dict)
    written_by_unit: dict = field(default_factory=dict)
    proc_io: dict = field(default_factory=dict)


def process_cpu_seconds() -> float:
    """CPU seconds (user + system) of this process so far, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_io() -> dict[str, int]:
    """This process's I/O counters so far (Linux ``/proc/self/io``: ``rchar``, ``wchar``,
    ``read_bytes``, ``write_bytes``, ...), or ``{}`` where the kernel does not say."""
    try:
        with open("/proc/self/io", encoding="ascii") as f:
            return {key: int(value) for key, _, value in
                    (line.partition(":") for line in f if ":" in line)}
    except (OSError, ValueError):
        return {}


def write_record(folder: str | os.PathLike, record: TaskRecord) -> Path:
    """Write ``record`` as ``<folder>/<task_id>.json`` (atomically, no flush to the disk: a
    record lost in a machine crash only leaves a task out of the report); return the path."""
    path = Path(folder) / f"{record.task_id}.json"
    write_text_atomic(path, json.dumps(asdict(record), sort_keys=True) + "\n", fsync=False)
    return path


def read_records(folder: str | os.PathLike, since: float | None = None) -> list[TaskRecord]:
    """The records in ``folder`` (none if it does not exist), oldest start first.

    Parameters
    ----------
    folder : path-like
        The records folder.
    since : float, optional
        Keep only records whose work started at or after this time (UTC epoch seconds), e.g.
        the start of the current run.

    Files that are not records (unparsable, or missing a field) are skipped.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    records = []
    fields = TaskRecord.__dataclass_fields__
    for path in folder.glob("*.json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            # fields with a default are newer than some records: those records lack them
            record = TaskRecord(**{k: data[k] for k, f in fields.items()
                                   if k in data or f.default_factory is MISSING})
        except (OSError, ValueError, KeyError, TypeError):
            continue  # torn or foreign: the report goes on without it
        if since is None or record.start >= since:
            records.append(record)
    return sorted(records, key=lambda r: (r.start, r.task_id))


@dataclass(frozen=True)
class StageSummary:
    """The records of one task family, added up.

    Attributes
    ----------
    family : str
        The task family.
    tasks : int
        Number of records.
    failed : int
        How many of them failed.
    wall : float
        Sum of the tasks' wall seconds (the work done, as if run one after the other).
    cpu : float
        Sum of the tasks' CPU seconds.
    span : float
        Elapsed seconds from the first task's start to the last one's end (the stage's share
        of the run, with tasks in parallel).
    bytes_written : int
        Sum of the tasks' bytes written.
    first_start : float
        The first task's start, UTC epoch seconds.
    """

    family: str
    tasks: int
    failed: int
    wall: float
    cpu: float
    span: float
    bytes_written: int
    first_start: float


def summarise(records: Iterable[TaskRecord]) -> list[StageSummary]:
    """One :class:`StageSummary` per task family, in the order the stages began."""
    groups: dict[str, list[TaskRecord]] = {}
    for record in records:
        groups.setdefault(record.family, []).append(record)
    stages = [StageSummary(
        family=family, tasks=len(rs), failed=sum(r.status != "done" for r in rs),
        wall=sum(r.wall for r in rs), cpu=sum(r.cpu for r in rs),
        span=max(r.end for r in rs) - min(r.start for r in rs),
        bytes_written=sum(r.bytes_written for r in rs),
        first_start=min(r.start for r in rs)) for family, rs in groups.items()]
    return sorted(stages, key=lambda s: (s.first_start, s.family))


def format_bytes(n: int) -> str:
    """``n`` bytes in a short human form (``512 B``, ``3.4 MB``; powers of 1000)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def summary_lines(stages: Sequence[StageSummary]) -> list[str]:
    """One line per stage, then a total line: tasks, elapsed, summed wall and CPU seconds,
    bytes written."""
    lines = []
    for s in stages:
        failed = f", {s.failed} failed" if s.failed else ""
        lines.append(f"{s.family}: {s.tasks} tasks{failed}, {s.span:.1f} s elapsed, "
                     f"{s.wall:.1f} s wall, {s.cpu:.1f} s CPU, "
                     f"{format_bytes(s.bytes_written)} written")
    if stages:
        span = (max(s.first_start + s.span for s in stages)
                - min(s.first_start for s in stages))
        lines.append(f"all stages: {sum(s.tasks for s in stages)} tasks, {span:.1f} s elapsed, "
                     f"{sum(s.wall for s in stages):.1f} s wall, "
                     f"{sum(s.cpu for s in stages):.1f} s CPU, "
                     f"{format_bytes(sum(s.bytes_written for s in stages))} written")
    return lines


class Recorder:
    """Measures one ``work()`` call: ``with Recorder(family, task_id, units=...) as r:
    work()``, then :meth:`record` (or None before the block ended). ``units`` are the storage
    units' folders the bytes are attributed to (:func:`hipsluigi.storage.iometer.by_unit`)."""

    def __init__(self, family: str, task_id: str, outputs: Sequence[str] = (),
                 units: Sequence[str] = ()):
        self.family, self.task_id, self.outputs = family, task_id, list(outputs)
        self.units = list(units)
        self._record: TaskRecord | None = None

    def __enter__(self) -> Recorder:
        self._start = time.time()
        self._cpu = process_cpu_seconds()
        self._io = process_io()
        self._meter = IOMeter().__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._meter.__exit__(exc_type, exc, tb)
        end = time.time()
        cpu = process_cpu_seconds() - self._cpu
        io = process_io()
        proc = {k: io[k] - self._io[k] for k in _PROC_IO_KEYS if k in io and k in self._io}
        written = proc.get("wchar")
        if written is None:
            written = sum(os.path.getsize(p) for p in self.outputs if os.path.isfile(p))
        self._record = TaskRecord(
            family=self.family, task_id=self.task_id,
            status="done" if exc_type is None else "failed", start=self._start, end=end,
            wall=end - self._start, cpu=cpu, bytes_written=int(written), host=os.uname().nodename,
            pid=os.getpid(), read_by_unit=by_unit(self._meter.read, self.units),
            written_by_unit=by_unit(self._meter.written, self.units), proc_io=proc)

    def record(self) -> TaskRecord | None:
        return self._record


_PROC_IO_KEYS = ("rchar", "wchar", "read_bytes", "write_bytes")


def unit_totals(records: Iterable[TaskRecord]) -> dict[str, dict[str, dict[str, int]]]:
    """Bytes read and written by task family and storage unit:
    ``{family: {unit: {"read": n, "written": m}}}``, families in the order given."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for r in records:
        family = out.setdefault(r.family, {})
        for kind, counts in (("read", r.read_by_unit), ("written", r.written_by_unit)):
            for unit, n in counts.items():
                family.setdefault(unit, {"read": 0, "written": 0})[kind] += int(n)
    return out


def unit_lines(records: Sequence[TaskRecord]) -> list[str]:
    """One line per storage unit (bytes read and written, and by which families the most),
    the busiest first, for the end-of-run summary."""
    per_unit: dict[str, dict[str, dict[str, int]]] = {}
    for family, units in unit_totals(records).items():
        for unit, rw in units.items():
            per_unit.setdefault(unit, {})[family] = rw
    lines = []
    for unit, families in sorted(per_unit.items(),
                                 key=lambda kv: -sum(rw["read"] + rw["written"]
                                                     for rw in kv[1].values())):
        read = sum(rw["read"] for rw in families.values())
        written = sum(rw["written"] for rw in families.values())
        top = sorted(((f, rw["read"] + rw["written"]) for f, rw in families.items()),
                     key=lambda kv: -kv[1])[:3]
        lines.append(f"{unit}: {format_bytes(read)} read, {format_bytes(written)} written "
                     f"(most by " + ", ".join(f"{f} {format_bytes(n)}" for f, n in top) + ")")
    return lines


__all__ = [
    "Recorder", "StageSummary", "TaskRecord", "format_bytes", "process_cpu_seconds",
    "process_io", "read_records", "summarise", "summary_lines", "unit_lines", "unit_totals",
    "write_record",
]
