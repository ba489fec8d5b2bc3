"""SlurmTask on the real local SLURM (scripts/slurm-up.sh): a job, a failing job, a local run,
a restarted driver finding its job still queued, a cancelled job, a resubmitted one."""

import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
import uuid

import luigi
import pytest

from hipsluigi.execution import SlurmJobError, SlurmTask
from hipsluigi.execution.slurm_jobs import submit
from hipsluigi.testing import luigi_options


class SlurmProbe(SlurmTask):
    """Writes where its work ran (SLURM job id, pid) to ``out``; raises ``boom`` if set."""

    out = luigi.Parameter()
    boom = luigi.Parameter(default="")

    def output(self):
        return luigi.LocalTarget(self.out)

    def work(self) -> None:
        if self.boom:
            raise RuntimeError(self.boom)
        with self.output().open("w") as f:
            json.dump({"job": os.environ.get("SLURM_JOB_ID"), "pid": os.getpid()}, f)


def _options(tmp_path, executor: str) -> dict:
    return {"execution": {"executor": executor, "job_dir": str(tmp_path / "jobs")},
            "slurm": {"poll_seconds": 0.5, "retries": 0}}


def _build(task):
    result = luigi.build([task], local_scheduler=True, workers=1, detailed_summary=True,
                         log_level="WARNING")
    return result, result.worker._scheduler


def _ran(task) -> dict:
    with open(task.output().path) as f:
        return json.load(f)


def test_task_runs_as_a_real_slurm_job_and_reports_it(tmp_path, slurm_cluster):
    with luigi_options(_options(tmp_path, "slurm")):
        task = SlurmProbe(out=str(tmp_path / "out.json"))
        result, scheduler = _build(task)
        files = task.job_files()
    assert result.status == luigi.LuigiStatusCode.SUCCESS
    ran = _ran(task)
    job_id = files.job_id_file.read_text().strip()
    assert ran["job"] == job_id and job_id.isdigit()
    assert ran["pid"] != os.getpid()
    assert files.read_exit_status() == 0
    message = scheduler.get_task_status_message(task.task_id)["statusMessage"]
    assert message == f"SLURM job {job_id}: COMPLETED (job folder: 1 of 1 jobs finished)"
    assert scheduler.get_task_progress_percentage(task.task_id)["progressPercentage"] == 100


def test_failing_work_fails_the_build_with_job_id_and_log_tail(tmp_path, slurm_cluster):
    boom = f"boom-{uuid.uuid4().hex[:12]}"
    with luigi_options(_options(tmp_path, "slurm")):
        task = SlurmProbe(out=str(tmp_path / "out.json"), boom=boom)
        result, scheduler = _build(task)
        files = task.job_files()
    assert result.status == luigi.LuigiStatusCode.FAILED
    assert not os.path.exists(task.output().path)
    job_id = files.job_id_file.read_text().strip()
    error = json.loads(scheduler.fetch_error(task.task_id)["error"])  # as the worker sent it
    assert f"SlurmJobError: SLURM job {job_id} for {task.task_id} ended FAILED" in error
    assert f"RuntimeError: {boom}" in error.splitlines()
    assert f"last 30 lines of {files.log(job_id)}" in error


def test_local_executor_runs_work_in_the_driver_process(tmp_path):
    with luigi_options(_options(tmp_path, "local")):
        task = SlurmProbe(out=str(tmp_path / "out.json"))
        result, _ = _build(task)
    assert result.status == luigi.LuigiStatusCode.SUCCESS
    assert _ran(task) == {"job": None, "pid": os.getpid()}
    assert not (tmp_path / "jobs").exists()


def test_restarted_driver_waits_for_its_queued_job_instead_of_resubmitting(tmp_path,
                                                                           slurm_cluster):
    with luigi_options(_options(tmp_path, "slurm")):
        task = SlurmProbe(out=str(tmp_path / "out.json"))
        # What a driver that died after submitting leaves: a held job and its .jobid.
        task.write_job_script()
        command = task.sbatch_command()
        job_id = submit([*command[:-1], "--hold", command[-1]])
        files = task.job_files()
        files.job_id_file.write_text(job_id)
        release = threading.Timer(2.0, subprocess.run, [["scontrol", "release", job_id]])
        release.start()
        try:
            task.run()  # the restarted driver
        finally:
            release.join()
    assert files.job_id_file.read_text().strip() == job_id
    assert _ran(task)["job"] == job_id
    assert [p.name for p in files.logs_dir.glob("*.out")] == [f"{task.task_id}-{job_id}.out"]


def _next_job_id(files, previous: str | None = None) -> str:
    deadline = time.time() + 60
    while time.time() < deadline:
        job_id = files.job_id_file.read_text().strip() if files.job_id_file.exists() else ""
        if job_id and job_id != previous:
            return job_id
        time.sleep(0.1)
    raise AssertionError("no (new) job was submitted")


@contextlib.contextmanager
def _held_run(tmp_path, retry_states: str, retries: int):
    """task.run() of a task whose jobs are held, in a thread: yields (task, files, errors)
    and waits for the thread at the end (errors: what run() raised)."""
    options = _options(tmp_path, "slurm")
    options["slurm"].update(retry_states=retry_states, retries=retries)
    with luigi_options(options):
        task = SlurmProbe(out=str(tmp_path / "out.json"), slurm_extra_args="--hold")
        errors: list[Exception] = []

        def run():
            try:
                task.run()
            except Exception as err:  # handed to the test
                errors.append(err)

        thread = threading.Thread(target=run)
        thread.start()
        try:
            yield task, task.job_files(), errors
        finally:
            thread.join(timeout=120)


def test_cancelled_job_fails_the_task_as_cancelled(tmp_path, slurm_cluster):
    with _held_run(tmp_path, "NODE_FAIL", 0) as (task, files, errors):
        job_id = _next_job_id(files)
        subprocess.run(["scancel", job_id], check=True)
    assert len(errors) == 1 and isinstance(errors[0], SlurmJobError)
    assert f"SLURM job {job_id} for {task.task_id} ended CANCELLED" in str(errors[0])


def test_job_ending_in_a_retry_state_is_resubmitted(tmp_path, slurm_cluster):
    with _held_run(tmp_path, "CANCELLED", 1) as (task, files, errors):
        first = _next_job_id(files)
        subprocess.run(["scancel", first], check=True)
        second = _next_job_id(files, previous=first)
        subprocess.run(["scontrol", "release", second], check=True)
    assert errors == []
    assert _ran(task)["job"] == second != first


@pytest.fixture(autouse=True)
def _no_jobs_left_behind():
    """Cancel this test's jobs if it failed while one was queued."""
    before = set(_my_jobs())
    yield
    left = set(_my_jobs()) - before
    if left:
        subprocess.run(["scancel", *sorted(left)], check=False)


def _my_jobs() -> list[str]:
    if not shutil.which("squeue"):
        return []
    done = subprocess.run(["squeue", "--me", "-h", "-o", "%i"], capture_output=True, text=True)
    return done.stdout.split() if done.returncode == 0 else []
