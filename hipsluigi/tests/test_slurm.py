"""SLURM submission pieces that need no SLURM: scripts, options, parsing, config snapshot."""

import json
import shlex
import subprocess
import sys

from luigi.cmdline_parser import CmdlineParser

from hipsluigi.slurm import (
    JobFiles,
    JobOptions,
    config_snapshot,
    job_script,
    parse_sacct,
    parse_scontrol,
    parse_squeue,
    sbatch_command,
)


def _files(tmp_path, task_id="T_1"):
    files = JobFiles(tmp_path / "jobs", tmp_path / "logs", task_id)
    files.jobs_dir.mkdir()
    files.logs_dir.mkdir()
    return files


def _small(tmp_path):
    return {"hips": {"name": "job", "order": 0, "tile_width": 16,
                     "storage": str(tmp_path / "u0"), "executor": "local"}}


def test_job_script_runs_with_plain_sh_and_records_its_exit_status(tmp_path, luigi_config):
    with luigi_config(_small(tmp_path)):
        files = _files(tmp_path, "Setup_job")
        snapshot = config_snapshot(files.jobs_dir)
        files.script.write_text(job_script(files, "Setup", {"map": "job"}, snapshot,
                                           str(tmp_path), sys.executable))
        run = subprocess.run(["sh", str(files.script)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert files.exit_status.read_text().strip() == "0"
    assert (tmp_path / "u0" / "job" / "hips.json").exists()


def test_failing_job_exits_non_zero_with_the_traceback(tmp_path, luigi_config):
    with luigi_config(_small(tmp_path)):
        files = _files(tmp_path)
        snapshot = config_snapshot(files.jobs_dir)
        # plate (0, 4) is off the sky: the task cannot find its storage bin
        files.script.write_text(job_script(files, "PlateMosaic",
                                           {"map": "job", "order": "0", "i": "0", "j": "4"},
                                           snapshot, str(tmp_path), sys.executable))
        run = subprocess.run(["sh", str(files.script)], capture_output=True, text=True)
    assert run.returncode == 1
    assert files.exit_status.read_text().strip() == "1"
    assert "Traceback" in run.stderr


def test_job_script_passes_hostile_parameters_as_one_argument(tmp_path):
    files = _files(tmp_path)
    params = {"map": "x'; touch pwned; echo '", "note": "a b $HOME `id`"}
    text = job_script(files, "Fam", params, tmp_path / "c.cfg", "/work dir", "/py thon")
    command = next(line for line in text.splitlines() if "hipsluigi.job" in line)
    words = shlex.split(command)
    assert words[:4] == ["/py thon", "-m", "hipsluigi.job", "Fam"]
    assert json.loads(words[4]) == params and len(words) == 5
    assert "cd '/work dir'" in text


def test_sbatch_command_is_an_argument_list_with_family_overrides(tmp_path, luigi_config):
    options = {"slurm": {"partition": "debug", "mem": "2G", "time": "1:00:00",
                         "extra_args": "--qos=low --hold"},
               "slurm.PlateMosaic": {"mem": "8G", "cpus": "4"}}
    with luigi_config(options):
        mosaic = JobOptions.for_family("PlateMosaic")
        shrink = JobOptions.for_family("ShrinkPlate")
    assert (mosaic.mem, mosaic.cpus, mosaic.partition) == ("8G", 4, "debug")
    assert (shrink.mem, shrink.cpus) == ("2G", 1)
    files = _files(tmp_path)
    cmd = sbatch_command(files, "T_1", mosaic, "/here")
    assert cmd[:2] == ["sbatch", "--parsable"] and cmd[-1] == str(files.script)
    for arg in ("--mem=8G", "--cpus-per-task=4", "--partition=debug", "--time=1:00:00",
                "--qos=low", "--hold", "--chdir=/here", "--job-name=T_1"):
        assert arg in cmd
    assert f"--output={tmp_path}/logs/T_1-%j.out" in cmd


def test_config_snapshot_carries_command_line_overrides(tmp_path):
    with CmdlineParser.global_instance(["AllSkyPNGs", "--hips-order", "2",
                                        "--synthetic-noise", "0.25", "--hips-stretch-max",
                                        "99.5%"]):
        path = config_snapshot(tmp_path)
    from configparser import ConfigParser

    parsed = ConfigParser()
    parsed.read(path)
    assert parsed.get("hips", "order") == "2"
    assert parsed.get("synthetic", "noise") == "0.25"
    assert parsed.get("hips", "stretch_max") == "99.5%"


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
