"""SLURM pieces that need no SLURM: parsing, the shared status cache, status messages."""

import json
import sys

from hipsluigi.execution import slurm_jobs
from hipsluigi.execution.slurm_jobs import (
    JobFiles,
    JobOptions,
    QueueView,
    StatusCache,
    parse_sacct,
    parse_scontrol,
    parse_squeue,
    sbatch_command,
)
from hipsluigi.execution.task import status_message


def _fake_squeue(tmp_path, output: str) -> list[str]:
    """A squeue stand-in printing ``output`` and counting its calls in ``calls.txt``."""
    script = tmp_path / "squeue.py"
    script.write_text(f"import sys\nopen({str(tmp_path / 'calls.txt')!r}, 'a').write('x')\n"
                      f"sys.stdout.write({output!r})\n")
    return [sys.executable, str(script)]


def _touch(folder, *names):
    for name in names:
        (folder / name).write_text("1\n")


def test_parsers_read_slurm_output_formats():
    """Formats as printed by slurm 22.05 (squeue -o '%i|%T|%r', scontrol -o, sacct -P)."""
    states = parse_squeue("12|RUNNING|None\n13|PENDING|Priority\n")
    assert states["12"].state == "RUNNING" and states["13"].reason == "Priority"
    line = ("JobId=47 JobName=wrap UserId=root(0) JobState=FAILED Reason=NonZeroExitCode "
            "Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 ExitCode=7:0")
    failed = parse_scontrol(line)
    assert (failed.state, failed.reason, failed.exit_code) == ("FAILED", "NonZeroExitCode", "7:0")
    assert parse_scontrol("slurm_load_jobs error: Invalid job id specified") is None
    cancelled = parse_sacct("CANCELLED by 0|0:15|None\n")
    assert (cancelled.state, cancelled.exit_code) == ("CANCELLED", "0:15")
    assert cancelled.done and not parse_squeue("5|PENDING|None")["5"].done


def test_sbatch_command_is_an_argument_list_with_extra_args_last(tmp_path):
    files = JobFiles.in_folder(tmp_path, "T_1")
    options = JobOptions(partition="debug", mem="8G", cpus=4, extra_args=("--mem=9G",))
    cmd = sbatch_command(files, "T_1", options, "/a dir")
    assert cmd[:2] == ["sbatch", "--parsable"] and cmd[-1] == str(files.script)
    assert cmd[-2] == "--mem=9G"  # sbatch takes the last of repeated options
    for arg in ("--mem=8G", "--cpus-per-task=4", "--partition=debug", "--chdir=/a dir",
                "--job-name=T_1", f"--output={tmp_path}/logs/T_1-%j.out"):
        assert arg in cmd
    assert not any(arg.startswith(("--time", "--account")) for arg in cmd)  # empty: defaults


def test_status_cache_polls_squeue_and_counts_job_files_once_per_period(tmp_path, monkeypatch):
    # A clock the test moves, so that a loaded machine cannot stretch "within the period".
    clock = [1000.0]
    monkeypatch.setattr(slurm_jobs.time, "time", lambda: clock[0])
    files = JobFiles.in_folder(tmp_path, "T_1")
    cache = StatusCache(files, max_age=0.5,
                        command=_fake_squeue(tmp_path, "7|RUNNING|None\n8|PENDING|Priority\n"))
    _touch(files.jobs_dir, "A.jobid", "B.jobid", "C.jobid", "A.exit", "A.sh", "config-1.cfg")
    first = cache.view()
    assert (first.submitted, first.finished) == (3, 1)
    assert first.jobs["7"].state == "RUNNING" and first.jobs["8"].reason == "Priority"
    _touch(files.jobs_dir, "D.jobid", "B.exit")
    clock[0] += 0.4
    # another process (a second cache object on the same folder) within the period
    again = StatusCache(files, max_age=0.5, command=cache.command).view()
    assert (again.submitted, again.finished) == (3, 1) and again.time == first.time
    assert (tmp_path / "calls.txt").read_text() == "x"
    clock[0] += 0.2
    later = cache.view()
    assert (later.submitted, later.finished) == (4, 2)
    assert (tmp_path / "calls.txt").read_text() == "xx" and cache.queries == 2
    assert json.loads((files.logs_dir / ".squeue.json").read_text())["submitted"] == 4


def test_status_message_names_the_job_its_state_and_the_folder_counts():
    view = QueueView(jobs={}, time=0.0, submitted=60, finished=41)
    assert status_message("123", "RUNNING", view) == (
        "SLURM job 123: RUNNING (job folder: 41 of 60 jobs finished)")
