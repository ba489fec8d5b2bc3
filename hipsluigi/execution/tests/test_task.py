"""SlurmTask without SLURM: sbatch options per family, job scripts, snapshots, executors."""

import json
import os
import shlex
import subprocess
from pathlib import Path

import luigi
import pytest
from luigi.cmdline_parser import CmdlineParser
from luigi.configuration import LuigiConfigParser

from hipsluigi.execution import SlurmJobError, SlurmTask, execution
from hipsluigi.execution.slurm_jobs import write_config_snapshot
from hipsluigi.testing import luigi_options


class ExecWritePid(SlurmTask):
    """Writes ``pid <pid> job <SLURM_JOB_ID>`` to ``out``; raises ``fail`` if it is set."""

    out = luigi.Parameter()
    fail = luigi.Parameter(default="")

    def output(self):
        return luigi.LocalTarget(self.out)

    def work(self) -> None:
        if self.fail:
            raise RuntimeError(self.fail)
        with self.output().open("w") as f:
            f.write(f"pid {os.getpid()} job {os.environ.get('SLURM_JOB_ID')}\n")


class ExecOtherFamily(ExecWritePid):
    """The same work under another family name (other [Family] section)."""


class ExecTwoOutputs(SlurmTask):
    """Two outputs; its work must never run in these tests."""

    folder = luigi.Parameter()

    def output(self):
        return {"a": luigi.LocalTarget(f"{self.folder}/a.fits"),
                "b": [luigi.LocalTarget(f"{self.folder}/sub/b.png")]}

    def work(self) -> None:
        raise AssertionError("work() ran under dryrun")


class ExecBookkeeping(ExecWritePid):
    slurm_job = False
    dryrun_work = True


class ExecWithResolvedSection(ExecWritePid):
    """Adds a section of values resolved in the driver, as the pipeline does."""

    def job_config(self):
        return super().job_config() | {"resolved": {"stretch_max": "99.5%",
                                                    "lines": "first\nsecond\n\nfourth"}}


def _executor(name: str, tmp_path: Path) -> dict:
    return {"execution": {"executor": name, "job_dir": str(tmp_path / "jobs-here")}}


def test_family_section_sets_sbatch_options_while_other_families_keep_slurm_defaults(
        tmp_path):
    options = {"slurm": {"mem": "2G", "partition": "debug", "time": "1:00:00",
                         "extra_args": "--qos=low --hold"},
               "ExecWritePid": {"slurm_mem": "8G", "slurm_cpus": "4",
                                "slurm_extra_args": "--comment 'two words'"},
               **_executor("slurm", tmp_path)}
    with luigi_options(options):
        heavy = ExecWritePid(out=str(tmp_path / "a"))
        light = ExecOtherFamily(out=str(tmp_path / "b"))
        heavy_cmd, light_cmd = heavy.sbatch_command(), light.sbatch_command()
        scripts = [str(task.job_files().script) for task in (heavy, light)]
    assert "--mem=8G" in heavy_cmd and "--cpus-per-task=4" in heavy_cmd
    assert heavy_cmd[-3:-1] == ["--comment", "two words"]
    assert "--mem=2G" in light_cmd and "--cpus-per-task=1" in light_cmd
    assert "--qos=low" in light_cmd and "--hold" in light_cmd
    for cmd, task, script in ((heavy_cmd, heavy, scripts[0]), (light_cmd, light, scripts[1])):
        assert cmd[:2] == ["sbatch", "--parsable"] and cmd[-1] == script
        assert "--partition=debug" in cmd and "--time=1:00:00" in cmd
        assert f"--job-name={task.task_id}" in cmd and f"--chdir={os.getcwd()}" in cmd
        assert f"--output={tmp_path}/jobs-here/logs/{task.task_id}-%j.out" in cmd
    # sbatch options are not part of the task's identity
    assert heavy.task_id == ExecWritePid(out=str(tmp_path / "a")).task_id


def test_luigi_command_line_accepts_a_slurm_task_as_root_with_its_sbatch_flags(tmp_path):
    args = ["ExecWritePid", "--out", str(tmp_path / "x"), "--slurm-mem", "5G",
            "--ExecOtherFamily-slurm-time", "0:10:00"]
    with CmdlineParser.global_instance(args) as parser:
        root = parser.get_task_obj()
        other = ExecOtherFamily(out="y")
    assert root.slurm_mem == "5G" and other.slurm_time == "0:10:00"


def test_job_script_runs_the_entry_point_with_the_task_module_and_its_parameters(tmp_path):
    with luigi_options(_executor("slurm", tmp_path)):
        task = ExecWritePid(out=str(tmp_path / "o"), slurm_mem="3G",
                            slurm_entry_point="some.other.entry")
        script = task.write_job_script()
    text = script.read_text()
    command = shlex.split(next(line for line in text.splitlines() if " -m " in line))
    assert command[1:6] == ["-m", "some.other.entry", "--module", __name__, "ExecWritePid"]
    params = json.loads(command[6])
    assert params == task.to_str_params() == {"out": str(tmp_path / "o"), "fail": ""}
    assert len(command) == 7  # sbatch options are private: the job has no use for them
    root = Path(__file__).resolve().parents[3]  # where hipsluigi/ is importable from
    assert f"export PYTHONPATH={shlex.quote(str(root))}" in text
    assert f"cd {shlex.quote(os.getcwd())} || exit 97" in text
    assert text.startswith("#!/bin/sh\n") and os.access(script, os.X_OK)


def test_job_script_runs_with_plain_sh_and_records_its_exit_status(tmp_path):
    with luigi_options(_executor("slurm", tmp_path)):
        task = ExecWritePid(out=str(tmp_path / "o"))
        script = task.write_job_script()
        files = task.job_files()
    run = subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert files.read_exit_status() == 0
    pid = int((tmp_path / "o").read_text().split()[1])
    assert pid != os.getpid()  # it ran in the job's process


def test_failing_job_exits_non_zero_with_the_traceback(tmp_path):
    with luigi_options(_executor("slurm", tmp_path)):
        task = ExecWritePid(out=str(tmp_path / "o"), fail="kaput-7781")
        script = task.write_job_script()
        files = task.job_files()
    run = subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert files.read_exit_status() == 1
    assert "Traceback" in run.stderr and "RuntimeError: kaput-7781" in run.stderr


def test_job_script_passes_hostile_parameters_as_one_argument(tmp_path):
    hostile = "x'; touch pwned; echo ' $HOME `id`"
    with luigi_options(_executor("slurm", tmp_path)):
        task = ExecWritePid(out=hostile)
        script = task.write_job_script()
    line = next(line for line in script.read_text().splitlines() if " -m " in line)
    words = shlex.split(line)
    assert json.loads(words[-1])["out"] == hostile and len(words) == 7


def test_task_class_defined_in_main_is_refused_with_a_clear_error(tmp_path):
    cls = type("ExecInMain", (ExecWritePid,), {"__module__": "__main__"})
    with luigi_options(_executor("slurm", tmp_path)), pytest.raises(SlurmJobError,
                                                                    match="__main__"):
        cls(out=str(tmp_path / "o")).write_job_script()


def test_config_snapshot_round_trips_percent_signs_newlines_and_interpolations(tmp_path):
    options = {"exec_test": {"percent": "99.5%%", "base": "/data", "path": "%(base)s/x",
                             "text": "one\ntwo"}}
    with luigi_options(options):
        sections = ExecWithResolvedSection(out="o").job_config()
    path = write_config_snapshot(tmp_path, sections)
    parser = LuigiConfigParser()
    parser.read([str(path)])
    assert parser.get("exec_test", "percent") == "99.5%"
    assert parser.get("exec_test", "path") == "/data/x"
    assert parser.get("exec_test", "text") == "one\ntwo"
    assert parser.get("resolved", "stretch_max") == "99.5%"
    assert parser.get("resolved", "lines") == "first\nsecond\n\nfourth"
    for section, values in sections.items():
        for key, value in values.items():
            assert parser.get(section, key) == value, (section, key)


def test_config_snapshot_carries_command_line_section_flags(tmp_path):
    args = ["ExecWritePid", "--out", "o", "--execution-job-dir", "from-cli",
            "--ExecOtherFamily-slurm-mem", "7G", "--slurm-poll-seconds", "0.25"]
    with CmdlineParser.global_instance(args) as parser:
        sections = parser.get_task_obj().job_config()
    assert sections["execution"]["job_dir"] == "from-cli"
    assert sections["ExecOtherFamily"]["slurm_mem"] == "7G"
    assert sections["slurm"]["poll_seconds"] == "0.25"
    assert "out" not in sections.get("ExecWritePid", {})  # the task's own parameters


def test_dry_run_writes_a_placeholder_at_every_output_and_does_no_work(tmp_path):
    with luigi_options(_executor("dryrun", tmp_path)):
        task = ExecTwoOutputs(folder=str(tmp_path / "out"))
        task.run()
        assert task.complete()
    for path in (tmp_path / "out" / "a.fits", tmp_path / "out" / "sub" / "b.png"):
        assert path.read_text() == f"dryrun placeholder for {task.task_id}\n"
    assert not [p for p in (tmp_path / "out").rglob(".*")]  # no temporaries left


def test_dryrun_work_tasks_work_under_dryrun_and_bookkeeping_stays_in_the_driver(tmp_path):
    with luigi_options(_executor("dryrun", tmp_path)):
        ExecBookkeeping(out=str(tmp_path / "dry")).run()
    with luigi_options(_executor("slurm", tmp_path)):
        ExecBookkeeping(out=str(tmp_path / "slurm")).run()  # no sbatch: slurm_job = False
    for name in ("dry", "slurm"):
        assert (tmp_path / name).read_text() == f"pid {os.getpid()} job None\n"
    assert not (tmp_path / "jobs-here").exists()


def test_local_executor_runs_work_in_this_process(tmp_path):
    with luigi_options(_executor("local", tmp_path)):
        assert execution().executor == "local"
        ExecWritePid(out=str(tmp_path / "o")).run()
    assert (tmp_path / "o").read_text() == f"pid {os.getpid()} job None\n"


def test_an_executor_override_outside_the_three_fails_loudly(tmp_path):
    cls = type("ExecTypo", (ExecWritePid,), {"executor": property(lambda self: "slrum")})
    with pytest.raises(ValueError, match="slrum"):
        cls(out=str(tmp_path / "o")).run()


def test_job_files_dir_defaults_to_the_job_dir_from_the_current_directory(tmp_path,
                                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    with luigi_options({"execution": {"job_dir": "rel/jobs"}}):
        files = ExecWritePid(out="o").job_files()
    assert files.jobs_dir == tmp_path / "rel" / "jobs" / "jobs"
    assert files.logs_dir == tmp_path / "rel" / "jobs" / "logs"


def test_task_processes_reuse_the_thread_pools_found_once(monkeypatch):
    """Searching the loaded libraries costs tens of milliseconds a task: ``import hipsluigi``
    does it once (as here), and running a task does not search again."""
    from hipsluigi.execution import task as task_module

    task_module.thread_pools()

    def search_again(*args, **kwargs):
        raise AssertionError("the loaded libraries were searched again")

    monkeypatch.setattr(task_module, "ThreadpoolController", search_again)

    class _Quick(SlurmTask):
        ran = False

        def work(self) -> None:
            type(self).ran = True

    _Quick().run_in_process()
    assert _Quick.ran


def test_a_forked_task_process_works_on_one_blas_thread_and_starts_none():
    """Luigi's task processes are forked from the driver: they work with BLAS on one thread,
    and neither they nor the driver start BLAS threads for each task (the threads spun for
    about 0.2 s of CPU a task)."""
    import subprocess
    import sys

    probe = """
import os, numpy as np
from threadpoolctl import threadpool_info, threadpool_limits
import hipsluigi
from hipsluigi.execution import SlurmTask

def blas(): return sorted({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"})
def threads(): return len(os.listdir("/proc/self/task"))

class Work(SlurmTask):
    def work(self):
        np.ones((64, 64)) @ np.ones((64, 64))
        print("work", blas(), flush=True)

threadpool_limits(limits=2, user_api="blas")  # as on any multi-core machine
np.ones((64, 64)) @ np.ones((64, 64))  # the driver's pools are running
print("driver", blas(), flush=True)
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        Work().run_in_process()
        print("task threads", threads(), flush=True)
        os._exit(0)
    os.waitpid(pid, 0)
print("driver after", blas(), flush=True)
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == ["driver [2]", "work [1]", "task threads 1", "work [1]", "task threads 1",
                   "driver after [1]"]


def test_a_forked_task_process_reuses_freed_memory_instead_of_faulting_it_in_again():
    """Tile-sized temporaries (a float32 tile, its float64 copy, ...) made and freed over and
    over in a task process touch the same pages: one round's page faults, not one round's
    each time."""
    import subprocess
    import sys

    probe = """
import os, resource, numpy as np
import hipsluigi

def faults(): return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

pid = os.fork()
if pid == 0:
    before = faults()
    for _ in range(50):
        tile = np.ones(1 << 18, dtype=np.float32)  # 1 MiB
        wide = tile.astype(np.float64)  # 2 MiB
        back = (wide * 2).astype(np.float32)
        del tile, wide, back
    print(faults() - before, flush=True)
    os._exit(0)
os.waitpid(pid, 0)
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    # one round maps 1 + 2 + 2 + 1 MiB: 1,536 pages of 4 KiB
    assert int(out) < 5000, f"{out.strip()} page faults for 50 rounds of 6 MiB"
