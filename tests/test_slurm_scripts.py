"""scripts/slurm-up.sh and slurm-down.sh never touch a real cluster (issue 11).

Every test points the scripts at temporary folders (HIPSLUIGI_SLURM_ETC for slurm.conf,
HIPSLUIGI_SLURM_RUN for their pid files), so the SLURM this machine runs is not touched. The
"daemons" are stand-ins: a ``sleep`` (a foreign process) and ``tail -f slurm.conf`` renamed
``/usr/sbin/slurmctld`` (the exact command line slurm-up.sh starts slurmctld with).
"""

import os
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UP = REPO / "scripts" / "slurm-up.sh"
DOWN = REPO / "scripts" / "slurm-down.sh"

REAL_CLUSTER_CONF = b"""\
# slurm.conf of the production cluster
ClusterName=production
SlurmctldHost=head01
NodeName=n[001-128] CPUs=64 State=UNKNOWN
PartitionName=batch Nodes=ALL Default=YES
"""
# What earlier versions of slurm-up.sh wrote: it carries no marker, so it counts as foreign.
UNMARKED_TEST_CONF = b"ClusterName=hipsluigi\nSlurmctldHost=localhost\n"


def _mark() -> str:
    """The first line slurm-up.sh gives the slurm.conf it writes."""
    out = subprocess.run(["bash", "-c", 'source "$0"; printf %s "$mark"',
                          str(REPO / "scripts" / "slurm-common.sh")],
                         capture_output=True, text=True, check=True)
    assert out.stdout.startswith("#")  # a comment, so SLURM ignores it
    return out.stdout


@pytest.fixture
def folders(tmp_path):
    """(etc, run, environment) for the scripts."""
    etc, run = tmp_path / "etc", tmp_path / "run"
    etc.mkdir()
    env = {**os.environ, "HIPSLUIGI_SLURM_ETC": str(etc), "HIPSLUIGI_SLURM_RUN": str(run)}
    return etc, run, env


def _script(path: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(path)], capture_output=True, text=True, env=env, timeout=60)


def _alive(proc: subprocess.Popen) -> bool:
    time.sleep(0.2)  # a kill signal, had one been sent, has been delivered by now
    return proc.poll() is None


@pytest.fixture
def sleeper():
    """A process that is not a SLURM daemon."""
    proc = subprocess.Popen(["sleep", "120"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def fake_slurmctld(folders):
    """A process whose command line is exactly ``/usr/sbin/slurmctld -f <etc>/slurm.conf``."""
    conf = folders[0] / "slurm.conf"
    conf.touch()
    proc = subprocess.Popen(["bash", "-c", 'exec -a /usr/sbin/slurmctld tail -f "$0"',
                             str(conf)], stdout=subprocess.DEVNULL)
    wanted = f"/usr/sbin/slurmctld\0-f\0{conf}\0".encode()
    for _ in range(100):
        if Path(f"/proc/{proc.pid}/cmdline").read_bytes() == wanted:
            break
        time.sleep(0.02)
    assert Path(f"/proc/{proc.pid}/cmdline").read_bytes() == wanted
    yield proc
    proc.kill()
    proc.wait()


def _pid_files(run: Path, pid: int, names=("slurmd.pid", "slurmctld.pid", "munge/munged.pid")):
    for name in names:
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text(f"{pid}\n")


@pytest.mark.parametrize("foreign", [REAL_CLUSTER_CONF, UNMARKED_TEST_CONF, b""],
                         ids=["real-cluster", "unmarked", "empty"])
def test_slurm_up_refuses_a_foreign_slurm_conf_and_leaves_it_byte_identical(folders, foreign):
    etc, run, env = folders
    conf = etc / "slurm.conf"
    conf.write_bytes(foreign)
    before = conf.stat()
    up = _script(UP, env)
    assert up.returncode == 1
    message = up.stderr.strip().splitlines()
    assert len(message) == 1
    assert message[0].startswith(f"error: {conf} exists and was not written by")
    assert conf.read_bytes() == foreign
    assert (conf.stat().st_mtime_ns, conf.stat().st_ino) == (before.st_mtime_ns, before.st_ino)
    assert sorted(etc.iterdir()) == [conf]  # no temporary file left beside it
    assert not run.exists()  # refused before preparing anything


def test_slurm_down_does_not_kill_a_process_named_by_a_foreign_pid_file(folders, sleeper):
    etc, run, env = folders
    (etc / "slurm.conf").write_text(_mark() + "\nClusterName=hipsluigi\n")
    _pid_files(run, sleeper.pid)
    down = _script(DOWN, env)
    assert down.returncode == 1
    for name in ("slurmd.pid", "slurmctld.pid", "munge/munged.pid"):
        assert f"error: {run / name} names pid {sleeper.pid}" in down.stderr
    assert len(down.stderr.strip().splitlines()) == 3
    assert _alive(sleeper)


def test_slurm_down_stops_the_daemon_slurm_up_started_and_nothing_else(
        folders, fake_slurmctld, sleeper):
    etc, run, env = folders
    (etc / "slurm.conf").write_text(_mark() + "\nClusterName=hipsluigi\n")
    _pid_files(run, fake_slurmctld.pid, names=("slurmctld.pid",))
    _pid_files(run, sleeper.pid, names=("slurmd.pid",))
    down = _script(DOWN, env)
    assert down.returncode == 1  # it reports the pid it would not kill
    assert fake_slurmctld.wait(timeout=10) == -15  # SIGTERM
    assert not (run / "slurmctld.pid").exists()
    assert f"{run / 'slurmd.pid'} names pid {sleeper.pid}" in down.stderr
    assert _alive(sleeper)


def test_slurm_down_stops_nothing_when_slurm_conf_is_foreign(folders, fake_slurmctld):
    etc, run, env = folders
    (etc / "slurm.conf").write_bytes(REAL_CLUSTER_CONF)
    _pid_files(run, fake_slurmctld.pid)
    down = _script(DOWN, env)
    assert down.returncode == 1
    assert down.stderr.startswith(f"error: {etc / 'slurm.conf'} exists and was not written by")
    assert _alive(fake_slurmctld)
    assert (etc / "slurm.conf").read_bytes() == REAL_CLUSTER_CONF


def test_slurm_down_distrusts_pid_files_in_a_folder_others_can_write(folders, fake_slurmctld):
    etc, run, env = folders
    (etc / "slurm.conf").write_text(_mark() + "\nClusterName=hipsluigi\n")
    _pid_files(run, fake_slurmctld.pid, names=("slurmctld.pid",))
    run.chmod(0o777)
    down = _script(DOWN, env)
    assert down.returncode == 1
    assert down.stderr.startswith(f"error: {run} (owner")
    assert _alive(fake_slurmctld)
