"""The SLURM side of :class:`~hipsluigi.execution.SlurmTask`: job scripts, sbatch, squeue.

Nothing here knows a task: these are the pieces the task's ``run()`` puts together.

* :func:`job_script`: plain sh (runnable without SLURM: ``sh script``) that ``cd``s to the
  submitting directory, points ``LUIGI_CONFIG_PATH`` at a configuration snapshot
  (:func:`write_config_snapshot`), runs ``python -m <entry point> --module M Family 'params'``
  and records its exit status in ``<task_id>.exit``;
* :func:`sbatch_command` and :func:`submit`: argument lists, never shell strings;
* :class:`StatusCache`: one ``squeue`` per ``poll_seconds`` for every waiting task that uses
  the same job folder, whichever process it runs in (Luigi runs each task in its own worker
  process, so an in-memory cache would not be shared); it also counts the folder's submitted
  and finished jobs, for the status messages;
* :func:`wait_for_job`: polls the cache; jobs gone from ``squeue`` are looked up with
  ``scontrol``, then ``sacct`` when accounting is on, then the exit-status file.

A job folder holds ``jobs/`` (``<task_id>.sh``, ``.jobid``, ``.exit``, ``config-<hash>.cfg``)
and ``logs/`` (``<task_id>-<job id>.out`` and the status cache).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import luigi

from hipsluigi.storage.atomic import write_text_atomic

#: SLURM job states after which a job will not run again.
FAILED_STATES = frozenset({"FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                           "BOOT_FAIL", "DEADLINE", "PREEMPTED", "REVOKED", "SPECIAL_EXIT"})
DONE_STATES = FAILED_STATES | {"COMPLETED"}
ACTIVE_STATES = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED",
                           "REQUEUED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED",
                           "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"})

#: What the status cache runs: this user's jobs in every state, as ``id|STATE|reason``.
SQUEUE_COMMAND = ("squeue", "--me", "-h", "-t", "all", "-o", "%i|%T|%r")


class slurm(luigi.Config):  # noqa: N801  (the class name is the config section's name)
    """``[slurm]``: how jobs are watched under ``executor = slurm``, and the sbatch defaults.

    The section's keys ``partition, time, cpus, mem, account, extra_args`` are the defaults
    of every :class:`~hipsluigi.execution.SlurmTask`'s ``slurm_<key>`` parameter, which reads
    them itself (a task family overrides them in its own section, e.g.
    ``[PlateMosaic] slurm_mem = 8G``). They are not parameters of this class: its command-line
    flags (``--slurm-mem``) would clash with the flags of a root task's ``slurm_mem``, and
    ``luigi SomeSlurmTask`` would not start.
    """

    # Luigi's way to say these keys of [slurm] are read elsewhere (no "not consumed" warning).
    ignore_unconsumed = {"partition", "time", "cpus", "mem", "account", "extra_args"}

    poll_seconds = luigi.FloatParameter(default=2.0, description="seconds between squeue polls")
    retries = luigi.IntParameter(default=1, description="resubmissions for retry_states")
    retry_states = luigi.Parameter(default="NODE_FAIL,PREEMPTED,BOOT_FAIL",
                                   description="final states that are resubmitted")
    log_lines = luigi.IntParameter(default=30, description="log lines quoted on failure")


class SlurmJobError(RuntimeError):
    """A SLURM job ended without success, or could not be submitted."""


@dataclass(frozen=True)
class JobOptions:
    """sbatch options of one job; empty strings leave SLURM's defaults."""

    partition: str = ""
    time: str = ""
    cpus: int = 1
    mem: str = ""
    account: str = ""
    extra_args: tuple[str, ...] = ()

    def sbatch_args(self) -> list[str]:
        """The options as sbatch arguments, ``extra_args`` last (so they win)."""
        args = []
        for flag, value in (("--partition", self.partition), ("--time", self.time),
                            ("--mem", self.mem), ("--account", self.account)):
            if value:
                args.append(f"{flag}={value}")
        args.append(f"--cpus-per-task={self.cpus}")
        return args + list(self.extra_args)


@dataclass(frozen=True)
class JobFiles:
    """Where one task's job script, job id, exit status and logs live."""

    jobs_dir: Path
    logs_dir: Path
    task_id: str

    @classmethod
    def in_folder(cls, folder: Path, task_id: str) -> JobFiles:
        """The files of ``task_id`` in job folder ``folder`` (``jobs/`` and ``logs/``)."""
        return cls(folder / "jobs", folder / "logs", task_id)

    @property
    def script(self) -> Path:
        return self.jobs_dir / f"{self.task_id}.sh"

    @property
    def exit_status(self) -> Path:
        return self.jobs_dir / f"{self.task_id}.exit"

    @property
    def job_id_file(self) -> Path:
        return self.jobs_dir / f"{self.task_id}.jobid"

    def log(self, job_id: str) -> Path:
        return self.logs_dir / f"{self.task_id}-{job_id}.out"

    @property
    def log_pattern(self) -> str:
        """``--output`` for sbatch (``%j``: the job id)."""
        return str(self.logs_dir / f"{self.task_id}-%j.out")

    def make_dirs(self) -> None:
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)

    def read_exit_status(self) -> int | None:
        """The job script's recorded exit status, or None if it has not finished."""
        try:
            return int(self.exit_status.read_text().strip())
        except (OSError, ValueError):
            return None


# -- job scripts -----------------------------------------------------------------------------

def config_text(sections: Mapping[str, Mapping[str, str]]) -> str:
    """``sections`` as a Luigi configuration file that reads back as the same values.

    Values are final values (what ``get()`` should return): ``%`` is doubled for Luigi's
    interpolating parser and continuation lines are indented. As in any configuration file,
    leading and trailing blanks of a value (and of its lines) are not kept.
    """
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            text = str(value).replace("%", "%%").replace("\n", "\n\t")
            lines.append(f"{key} = {text}")
        lines.append("")
    return "\n".join(lines)


def write_config_snapshot(jobs_dir: Path, sections: Mapping[str, Mapping[str, str]]) -> Path:
    """Write :func:`config_text` of ``sections`` into ``jobs_dir``; return its path.

    The file is named by a hash of its content, so tasks with the same configuration share
    one file and a changed configuration never rewrites a file a queued job will read.
    """
    text = config_text(sections)
    path = jobs_dir / f"config-{hashlib.sha1(text.encode()).hexdigest()[:10]}.cfg"
    if not path.exists():
        write_text_atomic(path, text)
    return path


def job_script(files: JobFiles, entry_point: str, module: str, family: str,
               params: Mapping[str, str], config_path: Path, cwd: str,
               python: str = sys.executable, python_path: str | None = None) -> str:
    """The text of a job script: plain sh, runnable with or without SLURM.

    Parameters
    ----------
    entry_point
        Module run as ``python -m <entry_point> --module <module> <family> '<params JSON>'``.
    module
        The module defining the task class, imported by the job before it rebuilds the task.
    params
        The task's parameters as strings (``Task.to_str_params()``).
    python_path
        A folder prepended to ``PYTHONPATH`` (where ``module`` is importable from), or None.
    """
    q = shlex.quote
    params_json = json.dumps(dict(params), sort_keys=True)
    exports = [f"export LUIGI_CONFIG_PATH={q(str(config_path))}",
               # the snapshot is in cfg syntax whatever parser the driver used
               "export LUIGI_CONFIG_PARSER=cfg"]
    if python_path:
        exports.append(f'export PYTHONPATH={q(python_path)}"${{PYTHONPATH:+:$PYTHONPATH}}"')
    command = [python, "-m", entry_point, "--module", module, family, params_json]
    return "\n".join([
        "#!/bin/sh",
        f"# SlurmTask job: {files.task_id}",
        "# Runs anywhere: sh this-file (SLURM adds nothing but scheduling).",
        f"cd {q(cwd)} || exit 97",
        *exports,
        " ".join(q(word) for word in command),
        "status=$?",
        f'echo "$status" > {q(str(files.exit_status))}',
        'exit "$status"',
        "",
    ])


def sbatch_command(files: JobFiles, job_name: str, options: JobOptions, cwd: str) -> list[str]:
    """The sbatch argument list submitting ``files.script``."""
    return ["sbatch", "--parsable", f"--job-name={job_name}", f"--output={files.log_pattern}",
            f"--chdir={cwd}", "--kill-on-invalid-dep=yes", *options.sbatch_args(),
            str(files.script)]


def submit(command: Sequence[str]) -> str:
    """Run sbatch; return the job id. Raises :class:`SlurmJobError` with sbatch's message."""
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=120)
    except FileNotFoundError as err:
        raise SlurmJobError("sbatch not found: is SLURM installed on this machine?") from err
    if done.returncode != 0:
        raise SlurmJobError(f"sbatch failed ({done.returncode}): {done.stderr.strip()}")
    job_id = done.stdout.strip().split(";")[0]  # --parsable: "id" or "id;cluster"
    if not job_id.isdigit():
        raise SlurmJobError(f"sbatch printed no job id: {done.stdout!r}")
    return job_id


# -- status ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class JobState:
    """A job's state as SLURM names it (``RUNNING``, ``COMPLETED``, ...)."""

    state: str
    reason: str = ""
    exit_code: str = ""  # "code:signal" as SLURM prints it

    @property
    def done(self) -> bool:
        return self.state in DONE_STATES


def parse_squeue(text: str) -> dict[str, JobState]:
    """``squeue -h -o '%i|%T|%r'`` output -> {job id: state}."""
    out = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and parts[0]:
            out[parts[0]] = JobState(parts[1], parts[2] if len(parts) > 2 else "")
    return out


def parse_scontrol(text: str) -> JobState | None:
    """``scontrol show job -o ID`` output -> state, or None if the job is unknown."""
    fields = dict(tok.split("=", 1) for tok in text.split() if "=" in tok)
    if "JobState" not in fields:
        return None
    return JobState(fields["JobState"], fields.get("Reason", ""), fields.get("ExitCode", ""))


def parse_sacct(text: str) -> JobState | None:
    """``sacct -X -n -P -o State,ExitCode,Reason`` output -> state, or None."""
    for line in text.splitlines():
        parts = line.strip().split("|")
        if parts and parts[0]:
            state = parts[0].split()[0]  # "CANCELLED by 0" -> CANCELLED
            return JobState(state, parts[2] if len(parts) > 2 else "",
                            parts[1] if len(parts) > 1 else "")
    return None


@dataclass(frozen=True)
class QueueView:
    """What the status cache knows, as of ``time`` (when its squeue call started).

    ``submitted`` counts the job folder's ``.jobid`` files (tasks that submitted a job),
    ``finished`` its ``.exit`` files (job scripts that ran to their end, successfully or not).
    """

    jobs: dict[str, JobState]
    time: float
    submitted: int
    finished: int


class StatusCache:
    """One ``squeue`` (and one count of the job folder) per ``max_age`` seconds, shared.

    The cache is ``logs/.squeue.json`` beside ``logs/.squeue.lock``; whichever process finds
    it stale under the lock refreshes it, so every task waiting on jobs of this folder, in any
    process, shares one poll. ``queries`` counts the squeue calls ever made through it.
    ``command`` replaces :data:`SQUEUE_COMMAND` (tests).
    """

    def __init__(self, files: JobFiles, max_age: float,
                 command: Sequence[str] = SQUEUE_COMMAND):
        self.jobs_dir = files.jobs_dir
        self.path = files.logs_dir / ".squeue.json"
        self.lock = files.logs_dir / ".squeue.lock"
        self.max_age = max_age
        self.command = list(command)
        files.make_dirs()

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {"time": 0.0, "queries": 0, "jobs": {}, "submitted": 0, "finished": 0}

    def view(self) -> QueueView:
        """The cached view, refreshed first if it is older than ``max_age``."""
        with open(self.lock, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self._read()
            if time.time() - data["time"] >= self.max_age:
                started = time.time()
                done = subprocess.run(self.command, capture_output=True, text=True,
                                      timeout=120)
                if done.returncode == 0:
                    jobs = {k: [v.state, v.reason] for k, v in parse_squeue(done.stdout).items()}
                    submitted, finished = self._count_files()
                    data = {"time": started, "queries": data["queries"] + 1, "jobs": jobs,
                            "submitted": submitted, "finished": finished}
                    write_text_atomic(self.path, json.dumps(data))
        return QueueView({k: JobState(*v) for k, v in data["jobs"].items()}, data["time"],
                         data.get("submitted", 0), data.get("finished", 0))

    def _count_files(self) -> tuple[int, int]:
        submitted = finished = 0
        with os.scandir(self.jobs_dir) as entries:
            for entry in entries:
                if entry.name.endswith(".jobid"):
                    submitted += 1
                elif entry.name.endswith(".exit"):
                    finished += 1
        return submitted, finished

    @property
    def queries(self) -> int:
        return self._read()["queries"]


def final_state(job_id: str) -> JobState | None:
    """State of a job squeue no longer lists: scontrol first, then sacct (accounting)."""
    done = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True,
                          text=True, timeout=60)
    if done.returncode == 0:
        state = parse_scontrol(done.stdout)
        if state is not None:
            return state
    if shutil.which("sacct"):
        done = subprocess.run(["sacct", "-j", job_id, "-X", "-n", "-P", "-o",
                               "State,ExitCode,Reason"], capture_output=True, text=True,
                              timeout=60)
        if done.returncode == 0:
            return parse_sacct(done.stdout)
    return None


def log_tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a job log (a note if there is none)."""
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def live_job(files: JobFiles, cache: StatusCache) -> str | None:
    """The id of the task's last job if it is still queued or running, else None.

    Lets a restarted driver wait for the job its predecessor submitted.
    """
    try:
        job_id = files.job_id_file.read_text().strip()
    except OSError:
        return None
    state = cache.view().jobs.get(job_id)
    return job_id if state is not None and state.state in ACTIVE_STATES else None


def wait_for_job(job_id: str, files: JobFiles, cache: StatusCache, poll: float,
                 submitted_at: float, report: Callable[[str, QueueView], None]) -> JobState:
    """Poll until job ``job_id`` is done; return its final state.

    ``report(state, view)`` is called after every poll that found the job. ``submitted_at``
    (``time.time()`` after sbatch returned) tells a job squeue has not listed yet from one
    it no longer lists.
    """
    missing_since = None
    while True:
        view = cache.view()
        state = view.jobs.get(job_id)
        # A job missing from a squeue that ran after sbatch (or from a stale cache, as when
        # squeue fails) is asked about directly; one just submitted waits for the next poll.
        unlisted = view.time > submitted_at or time.time() - submitted_at > max(10.0, 3 * poll)
        if state is None and unlisted:
            state = final_state(job_id)
            if state is None:
                status = files.read_exit_status()
                if status is not None:
                    return JobState("COMPLETED" if status == 0 else "FAILED", "",
                                    f"{status}:0")
                missing_since = missing_since or time.time()
                if time.time() - missing_since > max(60.0, 10 * poll):
                    return JobState("UNKNOWN", "the job vanished from squeue, scontrol and "
                                               "sacct without an exit status")
        if state is not None:
            report(state.state, view)
            if state.done:
                detail = final_state(job_id)  # squeue gives no exit code
                return detail if detail is not None and detail.done else state
        time.sleep(poll)
