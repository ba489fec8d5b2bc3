""":class:`SlurmTask`: a Luigi task whose ``work()`` runs here, as a SLURM job, or not at all.

The shape of Luigi's ``luigi.contrib.sge.SGEJobTask`` (override ``work()``, not ``run()``),
without its pickles and its one ``qstat`` per waiting task. ``[execution] executor`` picks:

``local``
    ``work()`` in the Luigi worker (:meth:`SlurmTask.run_in_process`);
``slurm``
    ``work()`` in a SLURM job: a plain sh job script rebuilds the task from its family and
    string parameters in ``python -m <slurm_entry_point>`` (see :mod:`hipsluigi.execution.job`)
    under a snapshot of the driver's configuration, while the Luigi worker waits on a status
    cache shared with every other waiting task (:mod:`hipsluigi.execution.slurm_jobs`);
    tasks with ``slurm_job = False`` still run in the driver;
``dryrun``
    a one-line placeholder file at every output path, no work (except ``dryrun_work`` tasks).

A task that finds its previous job still queued or running (the driver died and was
restarted) waits for that job instead of submitting another.
"""

from __future__ import annotations

import configparser
import contextlib
import ctypes
import ctypes.util
import functools
import logging
import os
import shlex
import sys
import time
from pathlib import Path

import luigi
from luigi.cmdline_parser import CmdlineParser
from luigi.parameter import ParameterVisibility
from luigi.task_register import Register
from threadpoolctl import ThreadpoolController

from hipsluigi.execution.records import Recorder, write_record
from hipsluigi.execution.slurm_jobs import (
    JobFiles,
    JobOptions,
    QueueView,
    SlurmJobError,
    StatusCache,
    job_script,
    live_job,
    log_tail,
    sbatch_command,
    slurm,
    submit,
    wait_for_job,
    write_config_snapshot,
)
from hipsluigi.storage.atomic import write_text_atomic

EXECUTORS = ("local", "slurm", "dryrun")

logger = logging.getLogger("luigi-interface")


class execution(luigi.Config):  # noqa: N801  (the class name is the config section's name)
    """``[execution]``: where :class:`SlurmTask` work runs."""

    executor = luigi.ChoiceParameter(
        choices=EXECUTORS, default="local", var_type=str,
        description="local: in the Luigi worker; slurm: as SLURM jobs; dryrun: placeholders")
    job_dir = luigi.Parameter(
        default="slurm-jobs",
        description="job scripts and logs of tasks that do not choose their own folder "
                    "(relative: to the current directory)")


class DriverOption(luigi.Parameter):
    """A parameter that concerns only the driver (how a job is submitted), never the work.

    Private (out of the task id, of luigid, which would hold it for every task of a large
    graph, and of the job's parameters) and found in Luigi's own places: ``--Family-<name>``,
    then ``[Family] <name>``, then the default. Luigi's own lookup costs a raised and caught
    ``NoSectionError`` per miss, and a task of a large graph is instantiated several times
    while the graph is built, so a missing section or key is checked for first.
    """

    def __init__(self, default: str | None, description: str):
        super().__init__(default=default, significant=False, positional=False,
                         visibility=ParameterVisibility.PRIVATE, description=description)

    def _value_iterator(self, task_name, param_name):
        parser = CmdlineParser.get_instance()
        if parser:
            found = getattr(parser.known_args, self._parser_global_dest(param_name, task_name),
                            None)
            yield self._parse_or_no_value(found), None
        cfg = luigi.configuration.get_config()
        if cfg.has_option(task_name, param_name):
            yield self.parse(cfg.get(task_name, param_name)), None
        yield self._default, None


def _sbatch_option(key: str, meaning: str) -> DriverOption:
    return DriverOption(None, f"sbatch {meaning}; empty: [slurm] {key}")


@functools.cache
def thread_pools() -> ThreadpoolController:
    """The thread pools (BLAS, OpenMP) of the libraries loaded in this process, found once.

    Finding them inspects every loaded library, tens of milliseconds. ``import hipsluigi``
    finds them, so the task processes a Luigi worker forks inherit the answer instead of each
    searching again. A library loaded after that is not limited by :meth:`SlurmTask.run_in_process`.
    """
    return ThreadpoolController()


def one_blas_thread() -> contextlib.AbstractContextManager:
    """Hold the BLAS pools to one thread while a task works; nothing to do where they are
    already (a forked task process, :func:`ready_task_processes`).

    Tasks run in parallel, one process each (Luigi worker processes, SLURM jobs). A BLAS pool
    of one thread per core in each of them oversubscribes the cores, and spinning pools made
    whole runs several times slower; small matrix products gain nothing from BLAS threads.
    """
    if _one_thread_already():
        return contextlib.nullcontext()
    return thread_pools().limit(limits=1, user_api="blas")


def _one_thread_already() -> bool:
    return all(pool["num_threads"] <= 1 for pool in thread_pools().select(user_api="blas").info())


#: glibc's ``mallopt`` parameters, and what task processes get: blocks up to 32 MiB from the
#: heap, and up to 64 MiB of freed heap kept.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_TASK_MMAP_THRESHOLD, _TASK_TRIM_THRESHOLD = 32 << 20, 64 << 20

_fork_hooks_installed = False


def keep_freed_memory() -> bool:
    """Have glibc's allocator serve blocks up to 32 MiB from the heap and keep what is freed,
    in this process; False where the C library has no ``mallopt``.

    A long-lived process gets this from glibc by itself, which raises its thresholds as large
    blocks are freed; a process forked to run one task starts from the defaults (128 KiB), so
    each tile-sized temporary was mapped, zeroed page by page and unmapped again: twice the
    page faults and about 3 s more system time on the WMAP benchmark.
    """
    mallopt = _mallopt()
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _TASK_MMAP_THRESHOLD)
                and mallopt(_M_TRIM_THRESHOLD, _TASK_TRIM_THRESHOLD))


@functools.cache
def _mallopt():
    """The C library's ``mallopt``, or None; found once (``find_library`` runs ``ldconfig``),
    here by :func:`ready_task_processes`, so that forked task processes inherit it."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):
        return None


def ready_task_processes() -> None:
    """Ready every process forked from this one (Luigi's task processes) to work at once.

    * BLAS at one thread, set in this process before the first fork and kept: setting the
      limit in each forked process instead made OpenBLAS start its threads there again, in
      every task (about 0.1 s of wall time and 0.2 s of CPU a task), and restoring this
      process's pools after each fork started them here, where they spun for as much CPU.
      A process that forks task processes does no linear algebra of its own.
    * :func:`keep_freed_memory` in the forked process.

    Idempotent.
    """
    global _fork_hooks_installed
    if _fork_hooks_installed:
        return
    _fork_hooks_installed = True

    def before_fork() -> None:
        if not _one_thread_already():
            thread_pools().limit(limits=1, user_api="blas")

    _mallopt()
    os.register_at_fork(before=before_fork, after_in_child=keep_freed_memory)


class SlurmTask(luigi.Task):
    """A task whose :meth:`work` runs where ``[execution] executor`` says (module docstring).

    Subclasses override :meth:`work` (not :meth:`run`), and may override :attr:`executor`,
    :meth:`job_files_dir` and :meth:`job_config`. Class attributes:

    ``slurm_job``
        False: always run in the driver process, even under ``executor = slurm`` (cheap
        bookkeeping tasks).
    ``dryrun_work``
        True: do the real work even under ``executor = dryrun``.

    The ``slurm_*`` parameters are sbatch options, insignificant (not in the task id); each
    defaults to the ``[slurm]`` key of the same name, and a task family overrides it as any
    Luigi parameter, e.g. ``[PlateMosaic] slurm_mem = 8G`` or ``--PlateMosaic-slurm-mem 8G``.
    """

    slurm_partition = _sbatch_option("partition", "--partition")
    slurm_time = _sbatch_option("time", "--time, e.g. 2:00:00")
    slurm_cpus = _sbatch_option("cpus", "--cpus-per-task")
    slurm_mem = _sbatch_option("mem", "--mem, e.g. 4G")
    slurm_account = _sbatch_option("account", "--account")
    slurm_extra_args = _sbatch_option("extra_args", "arguments (shell words)")
    slurm_entry_point = DriverOption(
        "hipsluigi.execution.job",
        "module the job runs as python -m <module> --module M Family 'params'")

    slurm_job: bool = True
    dryrun_work: bool = False

    # -- what subclasses override ------------------------------------------------------------

    def work(self) -> None:
        """The task's work; runs wherever the executor says."""
        raise NotImplementedError(f"{type(self).__name__} must override work()")

    @property
    def executor(self) -> str:
        """``local``, ``slurm`` or ``dryrun``; by default ``[execution] executor``."""
        return execution().executor

    def job_files_dir(self) -> Path:
        """The folder of this task's ``jobs/`` (scripts, ``.jobid``, ``.exit``, configuration
        snapshots) and ``logs/``; by default ``[execution] job_dir`` from the current
        directory. Tasks sharing a folder share one squeue poll."""
        return Path(os.path.abspath(execution().job_dir))

    def record_dir(self) -> Path | None:
        """The folder this task's record of its work goes to
        (:mod:`hipsluigi.execution.records`), or None (the default) for no record."""
        return None

    def storage_units(self) -> list[str]:
        """The storage units' folders the record attributes this task's bytes to
        (:class:`~hipsluigi.execution.records.Recorder`); none by default."""
        return []

    def job_config(self) -> dict[str, dict[str, str]]:
        """The Luigi configuration the job process gets: ``{section: {key: value}}``.

        Values are final values, as ``get()`` returns them (``%`` unescaped, interpolation
        done); the snapshot escapes them. By default: every option of the driver's
        configuration (an option whose interpolation fails is passed as its literal text),
        plus the ``--Section-key`` values of the command line, which Luigi keeps outside its
        configuration. Subclasses add sections (``super().job_config() | {...}``), e.g. values
        their own code resolved in the driver.
        """
        sections = _configuration_values(luigi.configuration.get_config())
        for section, values in _command_line_values().items():
            sections.setdefault(section, {}).update(values)
        return sections

    # -- what Luigi calls --------------------------------------------------------------------

    def run(self) -> None:
        executor = self.executor
        if executor not in EXECUTORS:
            raise ValueError(f"{self.task_id}: executor {executor!r} is none of {EXECUTORS}")
        if executor == "dryrun" and not self.dryrun_work:
            self.dry_run()
        elif executor == "slurm" and self.slurm_job:
            self._run_as_slurm_job()
        else:
            self.run_in_process()

    def run_in_process(self) -> None:
        """:meth:`work` in this process, BLAS held to one thread (:func:`one_blas_thread`;
        what SLURM jobs run too)."""
        folder = self.record_dir()
        if folder is None:
            with one_blas_thread():
                self.work()
            return
        outputs = [getattr(t, "path", "") for t in luigi.task.flatten(self.output())]
        recorder = Recorder(self.get_task_family(), self.task_id, outputs,
                            units=self.storage_units())
        try:
            with recorder, one_blas_thread():
                self.work()
        finally:
            # Recorded here, where work() ran (the worker or the SLURM job), failed or not.
            try:
                write_record(folder, recorder.record())
            except OSError as err:  # a lost record must not fail the work it describes
                logger.warning("%s: could not write its task record: %s", self.task_id, err)

    def dry_run(self) -> None:
        """Write a one-line placeholder at every output path (atomically); compute nothing."""
        for target in luigi.task.flatten(self.output()):
            path = getattr(target, "path", None)
            if path is None:
                raise TypeError(f"{self.task_id}: a dry run writes placeholder files, but "
                                f"output {target!r} has no path")
            # a placeholder needs no flush to the disk (a large dry run writes tens of thousands)
            write_text_atomic(path, f"dryrun placeholder for {self.task_id}\n", fsync=False)

    # -- the SLURM job -----------------------------------------------------------------------

    def job_files(self) -> JobFiles:
        """This task's job script, job id, exit-status and log paths."""
        return JobFiles.in_folder(self.job_files_dir(), self.task_id)

    def job_options(self) -> JobOptions:
        """The sbatch options of this task's job: its ``slurm_<key>`` parameters, or where
        one is unset, ``[slurm] <key>``."""
        cfg = luigi.configuration.get_config()
        values = {}
        for key in ("partition", "time", "cpus", "mem", "account", "extra_args"):
            value = getattr(self, f"slurm_{key}")
            values[key] = cfg.get("slurm", key, "") if value is None else value
        try:
            cpus = int(values["cpus"] or 1)
        except ValueError as err:
            raise SlurmJobError(f"{self.task_id}: sbatch cpus {values['cpus']!r} is not a "
                                "whole number") from err
        return JobOptions(partition=values["partition"], time=values["time"], cpus=cpus,
                          mem=values["mem"], account=values["account"],
                          extra_args=tuple(shlex.split(values["extra_args"])))

    def sbatch_command(self) -> list[str]:
        """The sbatch argument list that submits this task's job script."""
        return sbatch_command(self.job_files(), self.task_id, self.job_options(), os.getcwd())

    def write_job_script(self) -> Path:
        """Write the configuration snapshot and the job script; return the script's path.

        The script runs ``python -m <slurm_entry_point> --module <task's module> <family>
        '<all parameters as JSON>'`` from the current directory, with the module's root
        folder on ``PYTHONPATH``. Raises :class:`SlurmJobError` for a task class defined in
        ``__main__``, which a job cannot import.
        """
        files = self.job_files()
        files.make_dirs()
        module, root = _importable_module(type(self))
        snapshot = write_config_snapshot(files.jobs_dir, self.job_config())
        text = job_script(files, self.slurm_entry_point, module, self.get_task_family(),
                          self.to_str_params(), snapshot, os.getcwd(), python_path=root)
        write_text_atomic(files.script, text)
        files.script.chmod(0o755)
        return files.script

    def _run_as_slurm_job(self) -> None:
        config = slurm()
        files = self.job_files()
        files.make_dirs()
        cache = StatusCache(files, config.poll_seconds)
        retry_states = {s.strip().upper() for s in config.retry_states.split(",") if s.strip()}
        reported: list[str] = []

        def report(job_id: str, state: str, view: QueueView) -> None:
            message = status_message(job_id, state, view)
            if reported[-1:] != [message]:
                reported.append(message)
                self._tell_scheduler("set_status_message", message)

        job_id = live_job(files, cache)
        submitted_at = 0.0
        attempts = 0
        while True:
            if job_id is None:
                files.exit_status.unlink(missing_ok=True)
                self.write_job_script()
                job_id = submit(self.sbatch_command())
                submitted_at = time.time()
                write_text_atomic(files.job_id_file, job_id)
                self._tell_scheduler("set_progress_percentage", 0)
            self._tell_scheduler("set_tracking_url", f"file://{files.log(job_id)}")
            state = wait_for_job(job_id, files, cache, config.poll_seconds, submitted_at,
                                 lambda s, view, j=job_id: report(j, s, view))
            report(job_id, state.state, cache.view())
            status = files.read_exit_status()
            if state.state == "COMPLETED" and status in (0, None):
                self._tell_scheduler("set_progress_percentage", 100)
                return
            if state.state in retry_states and attempts < config.retries:
                attempts += 1
                job_id = None
                continue
            log = files.log(job_id)
            raise SlurmJobError(
                f"SLURM job {job_id} for {self.task_id} ended {state.state}"
                f" (exit code {state.exit_code or status}, reason {state.reason or 'none'});"
                f" last {config.log_lines} lines of {log}:\n"
                + log_tail(log, config.log_lines))

    def _tell_scheduler(self, setter: str, value: object) -> None:
        # The worker sets these callbacks while it runs the task; a task run() outside a
        # worker has None there.
        callback = getattr(self, setter, None)
        if callable(callback):
            callback(value)


def status_message(job_id: str, state: str, view: QueueView) -> str:
    """The status message shown in luigid: the job's state and its job folder's counts."""
    return (f"SLURM job {job_id}: {state} (job folder: {view.finished} of {view.submitted} "
            f"jobs finished)")


def _importable_module(cls: type) -> tuple[str, str | None]:
    """``(module defining cls, folder it is importable from)``; the folder is None when the
    module has no file."""
    name = cls.__module__
    if name == "__main__":
        raise SlurmJobError(f"task class {cls.__name__} is defined in __main__, which a SLURM "
                            f"job cannot import; define it in an importable module")
    module = sys.modules[name]
    file = getattr(module, "__file__", None)
    if file is None:
        return name, None
    path = Path(file).resolve().parent
    # a.b.c lives in <root>/a/b/c.py or <root>/a/b/c/__init__.py
    for _ in range(name.count(".") + (1 if hasattr(module, "__path__") else 0)):
        path = path.parent
    return name, str(path)


def _configuration_values(cfg: object) -> dict[str, dict[str, str]]:
    """Every option of Luigi's configuration object, as ``get()`` returns it."""
    if not isinstance(cfg, configparser.ConfigParser):  # the TOML parser keeps a plain dict
        return {section: {key: str(value) for key, value in values.items()}
                for section, values in getattr(cfg, "data", {}).items()}
    sections: dict[str, dict[str, str]] = {}
    for section in cfg.sections():
        values = sections[section] = {}
        for key, raw in cfg.items(section, raw=True):
            try:
                # configparser's own get: Luigi's would rewrite dashes in key names
                values[key] = configparser.ConfigParser.get(cfg, section, key)
            except configparser.Error:
                values[key] = raw
    return sections


def _command_line_values() -> dict[str, dict[str, str]]:
    """``--Section-key value`` flags of the running ``luigi`` command: {section: {key: value}}.

    Root-task flags (``--key``) are left out: they are the task's own parameters, which
    the job receives anyway.
    """
    parser = CmdlineParser.get_instance()
    if parser is None:
        return {}
    sections: dict[str, dict[str, str]] = {}
    for task_name, _, param_name, _ in Register.get_all_params():
        # Luigi stores every --Section-key flag under this argparse destination.
        value = getattr(parser.known_args, f"{task_name}_{param_name}", None)
        if value is None or value is False:  # absent (False: an absent store_true flag)
            continue
        sections.setdefault(task_name, {})[param_name] = str(value)
    return sections
