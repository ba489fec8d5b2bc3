"""Runs at the same time: different maps build side by side, the same map never twice.

The real ``luigi --module hipsluigi AllSkyPNGs`` command, several at once, on small synthetic
maps. A task run is a worker's ``done`` line in a command's log: across all the commands of a
test, no task may run twice.
"""

from __future__ import annotations

import fcntl
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

from hipsluigi.pipeline.worktree import LOCK_NAME

REPO = Path(__file__).resolve().parents[1]
LUIGI = Path(sys.executable).with_name("luigi")

SMALL = ["--hips-order", "1", "--hips-tile-width", "64", "--synthetic-frame-size", "64",
         "--synthetic-sources", "50", "--synthetic-blobs", "10", "--hips-background", "none"]
#: Luigi's worker logs one line per task it ran: "[pid N] Worker Worker(...) done   Task(...)".
DONE = re.compile(r"Worker Worker\(.*\) done\s+(\S.*)$", re.MULTILINE)
#: The tiles of a whole order-1 map.
TILES = 48


def _start(cwd: Path, *args: str) -> subprocess.Popen:
    """The command, its output to a file (a pipe nobody reads while we wait for another
    command would block it, and a luigid client waiting for it)."""
    log = tempfile.TemporaryFile("w+")  # noqa: SIM115  (closed by _finish)
    proc = subprocess.Popen([str(LUIGI), "--module", "hipsluigi", "AllSkyPNGs", *args],
                            cwd=cwd, text=True, stdout=log, stderr=subprocess.STDOUT)
    proc.log = log
    return proc


def _finish(*procs: subprocess.Popen) -> list[tuple[int, str]]:
    """``(exit code, output)`` of each command, once all have ended."""
    results = []
    for proc in procs:
        proc.wait(timeout=600)
        proc.log.seek(0)
        results.append((proc.returncode, proc.log.read()))
        proc.log.close()
    return results


def _runs(*logs: str) -> Counter:
    """Task id -> how many times a worker ran it, over the given logs."""
    return Counter(task for log in logs for task in DONE.findall(log))


def _map_is_whole(base: Path) -> bool:
    hips = base / "HiPS"
    return ((hips / "properties").is_file()
            and len(list((hips / "Norder1").glob("Dir*/Npix*.fits"))) == TILES
            and len(list((hips / "Norder1").glob("Dir*/Npix*.png"))) == TILES)


@pytest.fixture
def workdir(tmp_path):
    shutil.copy(REPO / "luigi.cfg", tmp_path / "luigi.cfg")
    return tmp_path


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory):
    """Four ``--local-scheduler`` commands started together: maps A and B from one folder
    with the README's command; map A again from there with other flags; and, from another
    folder (another luigi.cfg, hence other storage), a command line identical to the first,
    character for character (Luigi's command-line lock refused it with exit code 10)."""
    here, other = tmp_path_factory.mktemp("here"), tmp_path_factory.mktemp("other")
    for folder in (here, other):
        shutil.copy(REPO / "luigi.cfg", folder / "luigi.cfg")
    command = ["--local-scheduler", "--workers", "1", *SMALL]
    procs = {"A": _start(here, *command, "--hips-name", "A"),
             "B": _start(here, *command, "--hips-name", "B"),
             "A again": _start(here, "--local-scheduler", "--workers", "2", *SMALL,
                               "--hips-name", "A"),
             "A elsewhere": _start(other, *command, "--hips-name", "A")}
    results = dict(zip(procs, _finish(*procs.values()), strict=True))
    return {"here": here, "other": other, "procs": procs, "results": results}


def test_different_maps_build_at_once_even_from_the_same_command_line(local_runs):
    here, other, results = local_runs["here"], local_runs["other"], local_runs["results"]
    for key in ("B", "A elsewhere"):
        code, log = results[key]
        assert code == 0, (key, log[-3000:])
    assert sorted(results[k][0] for k in ("A", "A again")) == [0, 10]
    for base in (here / "hips-work/unit0/A", here / "hips-work/unit0/B",
                 other / "hips-work/unit0/A"):
        assert _map_is_whole(base), base
    # the three maps ran the same tasks, each once (map A's task ids in both folders)
    per_map = _runs(results["B"][1])
    assert per_map and max(per_map.values()) == 1
    runs = _runs(*(log for _, log in results.values()))
    assert sum(runs.values()) == 3 * len(per_map) and max(runs.values()) == 2


def test_the_same_map_twice_at_once_refuses_the_second_run_and_runs_no_task_twice(local_runs):
    # Two commands for map A in one folder, with different flags: Luigi's lock let both run
    # every task. The one that got the work tree's lock first builds the map; the other stops
    # at once, naming it, with Luigi's exit code already_running (10).
    here, procs, results = local_runs["here"], local_runs["procs"], local_runs["results"]
    (won, log_won), = [(procs[k], results[k][1]) for k in ("A", "A again")
                       if results[k][0] == 0]
    refused = next(results[k][1] for k in ("A", "A again") if results[k][0] == 10)
    lock = here / "hips-work/unit0/A" / LOCK_NAME
    message = [line for line in refused.splitlines() if "is being built by another run" in line]
    assert len(message) == 1, refused[-2000:]
    assert "map 'A'" in message[0] and f"process {won.pid}: " in message[0]
    assert str(lock) in message[0]
    assert not _runs(refused)
    runs = _runs(log_won)
    assert runs and max(runs.values()) == 1
    assert _map_is_whole(here / "hips-work/unit0/A")


def test_two_clients_of_one_luigid_build_one_map_together_and_both_exit_0(workdir, luigid):
    central = ["--scheduler-host", "127.0.0.1", "--scheduler-port", str(luigid.port)]
    procs = [_start(workdir, *central, "--workers", "2", *SMALL, "--hips-name", "concurrencyL"),
             _start(workdir, *central, "--workers", "1", *SMALL, "--hips-name", "concurrencyL")]
    results = _finish(*procs)
    for code, log in results:
        assert code == 0, log[-3000:]
    assert _map_is_whole(workdir / "hips-work/unit0/concurrencyL")
    runs = _runs(*(log for _, log in results))
    assert max(runs.values()) == 1, [t for t, n in runs.items() if n > 1]
    tasks = luigid.tasks_of_map("concurrencyL")
    assert tasks and {info["status"] for info in tasks.values()} == {"DONE"}
    # every task luigid holds for the map ran once, in one of the two clients (the plate list
    # is written while the graph is built: it is found complete)
    families = Counter(info["name"] for info in tasks.values() if info["name"] != "PlateList")
    assert Counter(task.split("(")[0] for task in runs) == families
    assert any("completed by other clients" in log for _, log in results)


@pytest.mark.parametrize("held, central", [(fcntl.LOCK_SH, False), (fcntl.LOCK_EX, True)])
def test_a_local_run_and_luigid_clients_never_share_a_map(workdir, luigid, held, central):
    """A lock held as luigid clients hold it refuses a local run, and one held as a local run
    holds it refuses a luigid client, at once."""
    lock = workdir / "hips-work/unit0/H" / LOCK_NAME
    lock.parent.mkdir(parents=True)
    with open(lock, "w") as holder:
        fcntl.flock(holder, held | fcntl.LOCK_NB)
        scheduler = (["--scheduler-host", "127.0.0.1", "--scheduler-port", str(luigid.port)]
                     if central else ["--local-scheduler"])
        start = time.monotonic()
        (code, log), = _finish(_start(workdir, *scheduler, *SMALL, "--hips-name", "H"))
        elapsed = time.monotonic() - start
    assert code == 10, log[-2000:]
    assert "map 'H' is being built by another run" in log and str(lock) in log
    assert not _runs(log) and not (workdir / "hips-work/unit0/H/HiPS").exists()
    print(f"refused after {elapsed:.1f} s")
    assert elapsed < 60


def test_task_processes_leave_the_lock_to_the_driver(tmp_path):
    """Luigi's task processes are forks of the driver: they must not keep its lock, or a
    driver killed while they finish their tasks leaves the map locked for the command run
    again (which would resume it: SLURM tasks wait for their jobs)."""
    import multiprocessing

    import luigi.scheduler

    from hipsluigi.pipeline.settings import map_spec
    from hipsluigi.pipeline.worktree import MapRunWorker, lock_work_tree
    from hipsluigi.testing import luigi_options

    with luigi_options({"hips": {"name": "forked", "storage": str(tmp_path / "u0"),
                                 "order": 1, "tile_width": 64, "nplate": "", "region": ""}}):
        spec = map_spec("forked")
    lock = tmp_path / "u0" / "forked" / LOCK_NAME

    def try_lock() -> bool:
        with open(lock, "rb") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

    fork = multiprocessing.get_context("fork")
    running = fork.Event()

    def task():
        running.set()
        time.sleep(60)

    task_process = fork.Process(target=task)
    with MapRunWorker(scheduler=luigi.scheduler.Scheduler()):
        lock_work_tree(spec)
        task_process.start()
        assert running.wait(30)
        held_during_the_run = not try_lock()
    try:
        assert held_during_the_run
        assert task_process.is_alive() and try_lock()  # the run is over, its task lives on
    finally:
        task_process.terminate()
        task_process.join()
