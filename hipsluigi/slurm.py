"""Running pixel tasks as SLURM jobs: job scripts, sbatch, one shared status poll, final states.

Under ``[hips] executor = slurm`` a pixel task's ``run()`` calls :func:`run_on_slurm`, which

1. writes ``scripts/jobs/<task_id>.sh``: plain sh (runnable without SLURM, as the seed's job
   scripts) that ``cd``s to the submitting directory, points ``LUIGI_CONFIG_PATH`` at a snapshot
   of the effective configuration (command-line overrides included) and runs
   ``python -m hipsluigi.job <Family> '<params as JSON>'``, then records its exit status in
   ``scripts/jobs/<task_id>.exit``;
2. submits it with ``sbatch --parsable`` and the ``[slurm]`` options (``[slurm.<Family>]``
   overrides them per task family); every command is an argument list, never a shell string;
3. polls. All tasks of a machine share one status cache (``scripts/logs/.squeue.json``, behind
   a file lock): at most one ``squeue`` per ``poll_seconds`` however many tasks are waiting
   (Luigi runs each task in its own process, so an in-memory cache would not be shared);
   jobs gone from ``squeue`` are looked up with ``scontrol``, then ``sacct`` when accounting
   is on, then the exit-status file;
4. reports to luigid: status message ``SLURM job <id>: <STATE>``, progress, tracking URL (the
   job log);
5. fails, with the job id, its state, exit code and the last 30 lines of its log, when the job
   fails, is cancelled, times out, runs out of memory or loses its node; states listed in
   ``retry_states`` are resubmitted up to ``retries`` times.

A task that finds its previous job still queued or running (the driver died and was restarted)
waits for that job instead of submitting another.
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
from dataclasses import dataclass, field
from pathlib import Path

import luigi

#: SLURM job states after which a job will not run again.
FAILED_STATES = frozenset({"FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                           "BOOT_FAIL", "DEADLINE", "PREEMPTED", "REVOKED", "SPECIAL_EXIT"})
DONE_STATES = FAILED_STATES | {"COMPLETED"}
ACTIVE_STATES = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED",
                           "REQUEUED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED",
                           "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"})


class slurm(luigi.Config):  # noqa: N801  (the class name is the config section's name)
    """``[slurm]``: how pixel tasks are submitted under ``[hips] executor = slurm``.

    A section ``[slurm.<TaskFamily>]`` (e.g. ``[slurm.PlateMosaic]``) overrides any of
    ``partition, time, cpus, mem, account, extra_args`` for that family.
    """

    partition = luigi.Parameter(default="", description="-p; empty: the default partition")
    time = luigi.Parameter(default="", description="-t, e.g. 2:00:00; empty: partition default")
    cpus = luigi.IntParameter(default=1, description="-c, CPUs per job")
    mem = luigi.Parameter(default="", description="--mem, e.g. 4G; empty: partition default")
    account = luigi.Parameter(default="", description="-A")
    extra_args = luigi.Parameter(default="", description="more sbatch arguments (shell words)")
    poll_seconds = luigi.FloatParameter(default=2.0, description="seconds between squeue polls")
    retries = luigi.IntParameter(default=1, description="resubmissions for retry_states")
    retry_states = luigi.Parameter(default="NODE_FAIL,PREEMPTED,BOOT_FAIL",
                                   description="final states that are resubmitted")
    log_lines = luigi.IntParameter(default=30, description="log lines quoted on failure")


class SlurmJobError(RuntimeError):
    """A SLURM job ended without success."""


@dataclass(frozen=True)
class JobOptions:
    """sbatch options for one task family."""

    partition: str = ""
    time: str = ""
    cpus: int = 1
    mem: str = ""
    account: str = ""
    extra_args: tuple[str, ...] = ()

    @classmethod
    def for_family(cls, family: str) -> JobOptions:
        base = slurm()
        values = {"partition": base.partition, "time": base.time, "cpus": base.cpus,
                  "mem": base.mem, "account": base.account, "extra_args": base.extra_args}
        cfg = luigi.configuration.get_config()
        section = f"slurm.{family}"
        if cfg.has_section(section):
            for key in values:
                if cfg.has_option(section, key):
                    values[key] = cfg.get(section, key)
        values["cpus"] = int(values["cpus"])
        values["extra_args"] = tuple(shlex.split(values["extra_args"]))
        return cls(**values)

    def sbatch_args(self) -> list[str]:
        args = []
        for flag, value in (("--partition", self.partition), ("--time", self.time),
                            ("--mem", self.mem), ("--account", self.account)):
            if value:
                args.append(f"{flag}={value}")
        args.append(f"--cpus-per-task={self.cpus}")
        return args + list(self.extra_args)


@dataclass
class JobFiles:
    """Where a task's job script, logs and exit status live."""

    jobs_dir: Path
    logs_dir: Path
    task_id: str

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
        return str(self.logs_dir / f"{self.task_id}-%j.out")


# -- job scripts -----------------------------------------------------------------------------

def config_snapshot(jobs_dir: Path) -> Path:
    """Write the effective Luigi configuration (files and command-line overrides) for jobs.

    Returns the snapshot's path, named by a hash of its content.
    """
    from hipsluigi.config import hips, synthetic

    cfg = luigi.configuration.get_config()
    sections: dict[str, dict[str, str]] = {}
    for section in cfg.sections():
        sections[section] = {k: v for k, v in cfg.items(section, raw=True)}
    for section_obj in (hips(), synthetic()):
        name = type(section_obj).__name__
        values = sections.setdefault(name, {})
        for key, value in section_obj.param_kwargs.items():
            # Parsed values: escape '%' for Luigi's interpolating parser.
            values[key] = "" if value is None else str(value).replace("%", "%%")
    # Relative storage paths resolve from the submitting directory, where jobs cd.
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {str(value).replace(chr(10), chr(10) + chr(9))}"
                     for key, value in values.items())
        lines.append("")
    text = "\n".join(lines)
    path = jobs_dir / f"config-{hashlib.sha1(text.encode()).hexdigest()[:10]}.cfg"
    if not path.exists():
        from hipsluigi.storage import write_text_atomic

        write_text_atomic(path, text)
    return path


def task_module(module: str) -> tuple[str, str] | None:
    """``(module, folder to put on PYTHONPATH)`` for a task class defined outside hipsluigi."""
    if module.split(".")[0] == "hipsluigi":
        return None
    if module == "__main__":
        raise SlurmJobError("a task class defined in a script's __main__ cannot be rebuilt in a "
                            "SLURM job; define it in an importable module")
    path = Path(sys.modules[module].__file__).resolve().parent
    for _ in range(module.count(".")):
        path = path.parent
    return module, str(path)


def job_script(files: JobFiles, family: str, params: dict, config_path: Path,
               cwd: str, python: str = sys.executable,
               module: tuple[str, str] | None = None) -> str:
    """The text of a job script: plain sh, runnable with or without SLURM.

    ``module`` is ``(module name, its root folder)`` for task classes outside hipsluigi.
    """
    q = shlex.quote
    extra = []
    job_args = [q(family), q(json.dumps(params, sort_keys=True))]
    if module is not None:
        extra.append(f'export PYTHONPATH={q(module[1])}"${{PYTHONPATH:+:$PYTHONPATH}}"')
        job_args = ["--module", q(module[0]), *job_args]
    return "\n".join([
        "#!/bin/sh",
        f"# hipsluigi job: {family} {json.dumps(params, sort_keys=True)}",
        "# Runs anywhere: sh this-file (SLURM adds nothing but scheduling).",
        f"cd {q(cwd)} || exit 97",
        f"export LUIGI_CONFIG_PATH={q(str(config_path))}",
        *extra,
        f"{q(python)} -m hipsluigi.job {' '.join(job_args)}",
        "status=$?",
        f'echo "$status" > {q(str(files.exit_status))}',
        'exit "$status"',
        "",
    ])


def sbatch_command(files: JobFiles, job_name: str, options: JobOptions, cwd: str) -> list[str]:
    return ["sbatch", "--parsable", f"--job-name={job_name}", f"--output={files.log_pattern}",
            f"--chdir={cwd}", "--kill-on-invalid-dep=yes", *options.sbatch_args(),
            str(files.script)]


def submit(command: list[str]) -> str:
    """Run sbatch; return the job id. Raises :class:`SlurmJobError` with sbatch's message."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except FileNotFoundError as err:
        raise SlurmJobError("sbatch not found: is SLURM installed on this machine? "
                            "(scripts/slurm-up.sh starts a single-node SLURM)") from err
    if done.returncode != 0:
        raise SlurmJobError(f"sbatch failed ({done.returncode}): {done.stderr.strip()}")
    job_id = done.stdout.strip().split(";")[0]
    if not job_id.isdigit():
        raise SlurmJobError(f"sbatch printed no job id: {done.stdout!r}")
    return job_id


# -- status ----------------------------------------------------------------------------------

@dataclass
class JobState:
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


class StatusCache:
    """One ``squeue`` per ``max_age`` seconds for every process of this machine.

    The cache is a JSON file beside a lock file; whoever finds it stale under the lock
    refreshes it. ``queries`` counts the squeue calls ever made through it.
    """

    def __init__(self, folder: Path, max_age: float):
        self.path = folder / ".squeue.json"
        self.lock = folder / ".squeue.lock"
        self.max_age = max_age
        folder.mkdir(parents=True, exist_ok=True)

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {"time": 0.0, "queries": 0, "jobs": {}}

    def states(self) -> dict[str, JobState]:
        with open(self.lock, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self._read()
            if time.time() - data["time"] >= self.max_age:
                done = subprocess.run(["squeue", "--me", "-h", "-t", "all", "-o", "%i|%T|%r"],
                                      capture_output=True, text=True, timeout=120)
                if done.returncode == 0:
                    jobs = {k: [v.state, v.reason] for k, v in parse_squeue(done.stdout).items()}
                    data = {"time": time.time(), "queries": data["queries"] + 1, "jobs": jobs}
                    tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
                    tmp.write_text(json.dumps(data))
                    os.replace(tmp, self.path)
        return {k: JobState(*v) for k, v in data["jobs"].items()}

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
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


# -- the task side ---------------------------------------------------------------------------

@dataclass
class _Progress:
    task: luigi.Task
    last: tuple = field(default=())

    def report(self, job_id: str, state: str, log: Path) -> None:
        if self.last == (job_id, state):
            return
        self.last = (job_id, state)
        self.task.set_status_message(f"SLURM job {job_id}: {state}")
        self.task.set_progress_percentage(
            {"PENDING": 0, "CONFIGURING": 5, "RUNNING": 50, "COMPLETING": 90,
             "COMPLETED": 100}.get(state, 0))
        self.task.set_tracking_url(f"file://{log}")


def run_on_slurm(task: luigi.Task, scripts_dir: Path) -> None:
    """Run ``task.work()`` as a SLURM job and wait for it (see the module docstring)."""
    config = slurm()
    family = task.get_task_family()
    params = task.to_str_params()
    files = JobFiles(scripts_dir / "jobs", scripts_dir / "logs", task.task_id)
    files.jobs_dir.mkdir(parents=True, exist_ok=True)
    files.logs_dir.mkdir(parents=True, exist_ok=True)
    cache = StatusCache(files.logs_dir, config.poll_seconds)
    progress = _Progress(task)
    retry_states = {s.strip().upper() for s in config.retry_states.split(",") if s.strip()}
    cwd = os.getcwd()
    module = task_module(type(task).__module__)

    job_id = _live_previous_job(files, cache)
    attempts = 0
    while True:
        if job_id is None:
            files.exit_status.unlink(missing_ok=True)
            snapshot = config_snapshot(files.jobs_dir)
            from hipsluigi.storage import write_text_atomic

            write_text_atomic(files.script, job_script(files, family, params, snapshot, cwd,
                                                       module=module))
            files.script.chmod(0o755)
            job_id = submit(sbatch_command(files, task.task_id,
                                           JobOptions.for_family(family), cwd))
            files.job_id_file.write_text(job_id)
        state = _wait(job_id, files, cache, progress, config.poll_seconds)
        if state.state == "COMPLETED" and _exit_status(files) in (0, None):
            progress.report(job_id, "COMPLETED", files.log(job_id))
            return
        if state.state in retry_states and attempts < config.retries:
            attempts += 1
            job_id = None
            continue
        status = _exit_status(files)
        raise SlurmJobError(
            f"SLURM job {job_id} for {task.task_id} ended {state.state}"
            f" (exit code {state.exit_code or status}, reason {state.reason or 'none'});"
            f" last {config.log_lines} lines of {files.log(job_id)}:\n"
            + log_tail(files.log(job_id), config.log_lines))


def _exit_status(files: JobFiles) -> int | None:
    try:
        return int(files.exit_status.read_text().strip())
    except (OSError, ValueError):
        return None


def _live_previous_job(files: JobFiles, cache: StatusCache) -> str | None:
    """The job id of this task's earlier job if it is still queued or running."""
    try:
        job_id = files.job_id_file.read_text().strip()
    except OSError:
        return None
    state = cache.states().get(job_id)
    return job_id if state is not None and state.state in ACTIVE_STATES else None


def _wait(job_id: str, files: JobFiles, cache: StatusCache, progress: _Progress,
          poll: float) -> JobState:
    missing_since = None
    while True:
        state = cache.states().get(job_id)
        if state is None:
            # Not (or no longer) in squeue: just submitted, or purged after MinJobAge.
            state = final_state(job_id)
            if state is None:
                status = _exit_status(files)
                if status is not None:
                    return JobState("COMPLETED" if status == 0 else "FAILED", "",
                                    f"{status}:0")
                missing_since = missing_since or time.time()
                if time.time() - missing_since > max(60.0, 10 * poll):
                    return JobState("UNKNOWN", "the job vanished from squeue, scontrol and "
                                               "sacct without an exit status")
        if state is not None:
            progress.report(job_id, state.state, files.log(job_id))
            if state.done:
                detail = final_state(job_id)  # squeue gives no exit code
                return detail if detail is not None and detail.done else state
        time.sleep(poll)
