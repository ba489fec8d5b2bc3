"""``executor = slurm`` on the real local SLURM, watched by a real luigid on 127.0.0.1.

A small map (order 0, 64-pixel tiles) is built twice: locally and as SLURM jobs. SLURM's own
job-completion log (jobcomp/filetxt) is the independent record of which jobs ran.
"""

import re
import subprocess
import time
from pathlib import Path

import luigi
import numpy as np
import pytest
from astropy.io import fits

from hipsluigi import AllSkyPNGs, PlateMosaic
from hipsluigi.execution.slurm_jobs import config_text
from hipsluigi.pipeline.tasks import PlateTask
from hipsluigi.testing import luigi_options

JOBCOMP = Path("/var/log/slurm/jobcomp.log")
CLUSTER_FAMILIES = {"PlateMosaic", "CorrectPlate", "ShrinkPlate", "PlateHistogram", "PlatePNGs"}
assert all(issubclass(getattr(__import__("hipsluigi"), f), PlateTask) for f in CLUSTER_FAMILIES)

BASE = {
    "hips": {"order": 0, "tile_width": 64, "nplate": "", "background": "none", "region": "",
             "frame": "galactic", "executor": "local"},
    "synthetic": {"seed": 3, "frame_size": 64, "noise": 0.05, "backgrounds": 0, "sources": 40,
                  "blobs": 60},
    "slurm": {"poll_seconds": 0.5, "extra_args": ""},
}


def _options(root: Path, name: str, **hips) -> dict:
    options = {k: dict(v) for k, v in BASE.items()}
    options["hips"].update(name=name, storage=f"{root}/{name}/u0,{root}/{name}/u1", **hips)
    return options


def _build(task, luigid=None, workers=8):
    from luigi.execution_summary import _summary_dict

    kwargs = ({"local_scheduler": True} if luigid is None else
              {"scheduler_host": "127.0.0.1", "scheduler_port": luigid.port})
    result = luigi.build([task], workers=workers, detailed_summary=True, **kwargs)
    summary = _summary_dict(result.worker)
    return result, {t.task_id for t in summary["completed"] | summary["failed"]}


def _jobcomp() -> dict[str, dict[str, str]]:
    """SLURM's job-completion records: job id -> fields."""
    records = {}
    for line in JOBCOMP.read_text().splitlines():
        fields = dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
        records[fields["JobId"]] = fields
    return records


@pytest.fixture(scope="module")
def runs(tmp_path_factory, slurm_cluster, luigid):
    root = tmp_path_factory.mktemp("slurm")
    with luigi_options(_options(root, "loc")):
        local, _ = _build(AllSkyPNGs(), workers=2)
    with luigi_options(_options(root, "slu", executor="slurm")):
        start = time.time()
        remote, ran = _build(AllSkyPNGs(), luigid)
        elapsed = time.time() - start
    return {"root": root, "local": local, "slurm": remote, "ran": ran, "elapsed": elapsed}


def test_small_map_completes_on_slurm_with_every_pixel_task_a_slurm_job(runs):
    assert runs["local"].status == luigi.LuigiStatusCode.SUCCESS
    assert runs["slurm"].status == luigi.LuigiStatusCode.SUCCESS
    jobs_dir = runs["root"] / "slu" / "u0" / "slu" / "scripts" / "jobs"
    pixel_tasks = {t for t in runs["ran"] if t.split("_")[0] in CLUSTER_FAMILIES}
    # mosaic, correction, histogram, and FITS + PNG tiles of 12 plates
    assert len(pixel_tasks) == 12 * 4
    records = _jobcomp()
    for task_id in pixel_tasks:
        job_id = (jobs_dir / f"{task_id}.jobid").read_text().strip()
        record = records[job_id]
        assert record["Name"] == task_id
        assert record["JobState"] == "COMPLETED" and record["ExitCode"] == "0:0"
    # map-level bookkeeping (Setup, PlateList, Histogram, HiPSMetadata) stays in the driver
    assert not {t for t in runs["ran"] if t.split("_")[0] not in CLUSTER_FAMILIES} & {
        r["Name"] for r in records.values()}
    print(f"slurm run: {len(pixel_tasks)} SLURM jobs, {runs['elapsed']:.1f} s")


def test_slurm_tiles_are_identical_to_local_tiles(runs):
    local = runs["root"] / "loc" / "u0" / "loc" / "HiPS"
    remote = runs["root"] / "slu" / "u0" / "slu" / "HiPS"
    names = sorted(p.relative_to(local) for p in local.glob("Norder*/Dir*/Npix*"))
    assert names == sorted(p.relative_to(remote) for p in remote.glob("Norder*/Dir*/Npix*"))
    assert len(names) == 2 * 12
    for rel in names:
        if rel.suffix == ".png":
            assert (local / rel).read_bytes() == (remote / rel).read_bytes()
        else:
            assert np.array_equal(fits.getdata(local / rel), fits.getdata(remote / rel),
                                  equal_nan=True)


def test_luigid_lists_every_task_done_with_job_ids_and_job_counts_in_status_messages(runs,
                                                                                    luigid):
    tasks = luigid.tasks_of_map("slu")
    assert runs["ran"] <= set(tasks)
    # the plate list was written while the graph was built (the graph reads it): found complete
    assert {tasks[t]["name"] for t in set(tasks) - runs["ran"]} == {"PlateList"}
    assert {info["status"] for info in tasks.values()} == {"DONE"}
    jobs_dir = runs["root"] / "slu" / "u0" / "slu" / "scripts" / "jobs"
    for task_id, info in tasks.items():
        if info["name"] in CLUSTER_FAMILIES:
            job_id = (jobs_dir / f"{task_id}.jobid").read_text().strip()
            assert info["status_message"].startswith(f"SLURM job {job_id}: COMPLETED (")
            assert info["progress_percentage"] == 100
            assert info["tracking_url"].endswith(f"-{job_id}.out")
            # storage-unit resources as configured in luigi.cfg
            assert set(info["resources"]) <= {"storage_unit_0", "storage_unit_1"}


def test_one_squeue_per_poll_cycle_shared_by_all_tasks(runs):
    import json

    cache = runs["root"] / "slu" / "u0" / "slu" / "scripts" / "logs" / ".squeue.json"
    queries = json.loads(cache.read_text())["queries"]
    cycles = runs["elapsed"] / BASE["slurm"]["poll_seconds"]
    print(f"{queries} squeue calls in {runs['elapsed']:.1f} s ({cycles:.0f} poll cycles), "
          f"for 60 jobs")
    assert queries <= cycles + 2


def test_visualiser_in_headless_chromium_shows_the_run(runs, luigid, chromium, tmp_path):
    done = sum(1 for info in luigid.api("task_list", status="DONE").values())
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path}", "--virtual-time-budget=8000",
         "--dump-dom", f"{luigid.url}/static/visualiser/index.html"],
        capture_output=True, text=True, timeout=120).stdout
    tiles = dict(re.findall(r'info-box-text">([^<]+)</span>\s*<span class="info-box-number">'
                            r"(\d+)<", dom))
    assert int(tiles["Done Tasks"]) == done
    families = {task_id.split("_")[0] for task_id in runs["ran"]}
    assert {"PlateMosaic", "AllSkyPNGs", "HiPSMetadata"} <= families
    for family in families:
        assert f'data-task="{family}"' in dom or f'{family}">' in dom, family


def test_failed_job_is_reported_with_its_log_tail_and_a_rerun_runs_only_what_is_missing(
        tmp_path, slurm_cluster, luigid):
    options = _options(tmp_path, "boom", executor="slurm")
    with luigi_options(options):
        broken = PlateMosaic(order=0, i=2, j=2)
        path = Path(broken.output().path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("this is not a FITS file\n")  # a corrupt mosaic: CorrectPlate fails
        first, ran_first = _build(AllSkyPNGs(), luigid)
        assert first.status != luigi.LuigiStatusCode.SUCCESS
        failed = {tid: info for tid, info in luigid.tasks_of_map("boom").items()
                  if info["status"] == "FAILED"}
        assert [info["name"] for info in failed.values()] == ["CorrectPlate"]
        (task_id, info), = failed.items()
        assert info["params"] == {"map": "boom", "order": "0", "i": "2", "j": "2"}
        error = luigid.api("fetch_error", task_id=task_id)["error"]
        job_id = re.search(r"SLURM job (\d+) for", error).group(1)
        assert f"SLURM job {job_id} for {task_id} ended FAILED" in error
        assert "last 30 lines of" in error and "Traceback" in error
        assert str(path) in error or "not a FITS" in error or "OSError" in error
        # the rest of the sky went on as far as it could: the other 11 plates are made and
        # their histograms taken (their tiles wait for the stretch, which needs every plate)
        assert sum(1 for t in ran_first if t.startswith("PlateHistogram")) == 11

        path.unlink()  # remove the cause
        second, ran_second = _build(AllSkyPNGs(), luigid)
    assert second.status == luigi.LuigiStatusCode.SUCCESS
    families = sorted(t.split("_")[0] for t in ran_second)
    assert families == sorted(["PlateMosaic", "CorrectPlate", "PlateHistogram", "Histogram",
                               "HiPSMetadata", "QAReport", "AllSkyPNGs"]
                              + ["PlatePNGs"] * 12)
    assert all(("_2_2_" in t) for t in ran_second if t.startswith(("PlateMosaic", "Correct")))


def _start_held_plate_mosaic(tmp_path, luigid, name, **slurm_options):
    """Run PlateMosaic(0, 1, 1) with executor = slurm and held jobs, in a luigi subprocess."""
    import os
    import sys

    options = _options(tmp_path, name, executor="slurm")
    options["slurm"].update(extra_args="--hold", **slurm_options)  # jobs wait to be released
    cfg = tmp_path / f"{name}.cfg"
    cfg.write_text(config_text(options))
    env = dict(os.environ, LUIGI_CONFIG_PATH=str(cfg))
    luigi_bin = Path(sys.executable).with_name("luigi")
    proc = subprocess.Popen([str(luigi_bin), "--module", "hipsluigi", "PlateMosaic", "--order",
                             "0", "--i", "1", "--j", "1", "--scheduler-host", "127.0.0.1",
                             "--scheduler-port", str(luigid.port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, tmp_path / name / "u0" / name / "scripts" / "jobs"


def _next_job_id(jobs_dir: Path, previous: str | None = None) -> str:
    deadline = time.time() + 120
    while time.time() < deadline:
        found = list(jobs_dir.glob("PlateMosaic_*.jobid")) if jobs_dir.exists() else []
        if found:
            job_id = found[0].read_text().strip()
            if job_id and job_id != previous:
                return job_id
        time.sleep(0.2)
    raise AssertionError("no (new) job was submitted")


def test_cancelled_job_is_reported_cancelled(tmp_path, slurm_cluster, luigid):
    proc, jobs_dir = _start_held_plate_mosaic(tmp_path, luigid, "cancel", retries=0)
    job_id = _next_job_id(jobs_dir)
    subprocess.run(["scancel", job_id], check=True)
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    (task_id, info), = ((t, i) for t, i in luigid.tasks_of_map("cancel").items()
                        if i["name"] == "PlateMosaic")
    assert info["status"] == "FAILED"
    error = luigid.api("fetch_error", task_id=task_id)["error"]
    assert f"SLURM job {job_id} for {task_id} ended CANCELLED" in error


def test_retry_policy_resubmits_jobs_ending_in_a_listed_state(tmp_path, slurm_cluster, luigid):
    proc, jobs_dir = _start_held_plate_mosaic(tmp_path, luigid, "retry",
                                              retry_states="CANCELLED", retries=1)
    first = _next_job_id(jobs_dir)
    subprocess.run(["scancel", first], check=True)
    second = _next_job_id(jobs_dir, previous=first)
    subprocess.run(["scontrol", "release", second], check=True)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out[-3000:]
    records = _jobcomp()
    assert records[first]["JobState"] == "CANCELLED"
    assert records[second]["JobState"] == "COMPLETED"
    (info,) = (i for i in luigid.tasks_of_map("retry").values() if i["name"] == "PlateMosaic")
    assert info["status"] == "DONE"
    assert info["status_message"].startswith(f"SLURM job {second}: COMPLETED (")
