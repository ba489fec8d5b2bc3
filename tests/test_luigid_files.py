"""luigid's state is private (issue 11): scripts/luigid-up.sh and luigid-down.sh.

luigid unpickles its state file when it starts and luigid-down.sh kills the pid its pid file
names, so any file in the state folder that another local user could write would let them run
code as luigid's user or kill any of its processes. The scripts run here with umask 0, the most
permissive caller, so nothing below depends on the caller's umask.
"""

import os
import pickle
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UP = REPO / "scripts" / "luigid-up.sh"
DOWN = REPO / "scripts" / "luigid-down.sh"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(*cmd: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120,
                          preexec_fn=lambda: os.umask(0))


def _listening(port: int) -> set[str]:
    """Local addresses (IPv4 and IPv6, as the kernel prints them) with a socket listening on
    ``port``, from /proc/net/tcp{,6}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: TCP_LISTEN
                found.add(address)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _writable_by_others(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` (and itself) that its group or others can write: mode."""
    entries = [folder, *folder.rglob("*")]
    return {str(p): oct(stat.S_IMODE(p.lstat().st_mode)) for p in entries
            if not p.is_symlink() and p.lstat().st_mode & 0o022}


@pytest.fixture
def luigids():
    """State folders started in a test; stopped (by their own pid files) when it ends."""
    started: list[Path] = []
    yield started
    for state in started:
        pidfile = state / "luigid.pid"
        if pidfile.exists() and _run(DOWN, state).returncode != 0:
            os.kill(int(pidfile.read_text()), 15)


@pytest.fixture
def sleeper():
    """A process that is not luigid."""
    proc = subprocess.Popen(["sleep", "120"])
    yield proc
    proc.kill()
    proc.wait()


def test_after_luigid_up_and_down_no_file_in_its_state_folder_is_writable_by_others(
        tmp_path, luigids):
    state = tmp_path / "new" / "luigid"  # absent: luigid-up.sh creates it
    port = _free_port()
    up = _run(UP, port, state)
    luigids.append(state)
    assert up.returncode == 0, up.stderr
    # State stays bound to 127.0.0.1 (0100007F in /proc/net/tcp), on no other address.
    assert _listening(port) == {"0100007F"}
    running = _writable_by_others(state)
    down = _run(DOWN, state)
    assert down.returncode == 0, down.stderr

    # luigid pickles its state on shutdown; the log folder holds its logs.
    assert (state / "luigi-state.pickle").is_file()
    assert {p.name for p in (state / "log").iterdir()} >= {"luigi-server.log"}
    assert running == {}
    assert _writable_by_others(state) == {}
    assert stat.S_IMODE(state.stat().st_mode) == 0o700


def test_luigid_down_refuses_a_pid_file_naming_another_process_which_survives(
        tmp_path, sleeper):
    state = tmp_path / "luigid"
    state.mkdir(mode=0o700)
    (state / "luigid.pid").write_text(f"{sleeper.pid}\n")
    down = _run(DOWN, state)
    assert down.returncode == 1
    assert f"names pid {sleeper.pid}" in down.stderr and "not killing it" in down.stderr
    assert len(down.stderr.strip().splitlines()) == 1
    time.sleep(0.2)
    assert sleeper.poll() is None


def test_luigid_down_refuses_the_luigid_of_another_state_folder(tmp_path, luigids):
    mine, other = tmp_path / "mine", tmp_path / "other"
    port = _free_port()
    assert _run(UP, port, mine).returncode == 0
    luigids.append(mine)
    pid = int((mine / "luigid.pid").read_text())
    other.mkdir(mode=0o700)
    (other / "luigid.pid").write_text(f"{pid}\n")

    down = _run(DOWN, other)
    assert down.returncode == 1
    assert f"names pid {pid}" in down.stderr and "not killing it" in down.stderr
    time.sleep(0.2)
    assert _alive(pid) and _listening(port) == {"0100007F"}
    assert _run(DOWN, mine).returncode == 0
    assert not _alive(pid)


class _Payload:
    """Unpickling it creates the file ``marker``: a stand-in for arbitrary code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _folder_others_can_write(tmp_path: Path) -> Path:
    folder = tmp_path / "luigid"
    folder.mkdir()
    folder.chmod(0o777)
    return folder


def _folder_group_can_write(tmp_path: Path) -> Path:
    folder = tmp_path / "luigid"
    folder.mkdir()
    folder.chmod(0o770)
    return folder


def _planted_pickle(tmp_path: Path) -> Path:
    """A private folder holding a world-writable state pickle, as the old scripts left it."""
    folder = tmp_path / "luigid"
    folder.mkdir(mode=0o700)
    pickled = folder / "luigi-state.pickle"
    pickled.write_bytes(pickle.dumps(_Payload(tmp_path / "pwned")))
    pickled.chmod(0o666)
    return folder


def _folder_of_another_user(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("only root can make a folder owned by another user")
    folder = tmp_path / "luigid"
    folder.mkdir(mode=0o700)
    os.chown(folder, 65534, 65534)  # nobody
    return folder


@pytest.mark.parametrize("make", [_folder_others_can_write, _folder_group_can_write,
                                  _planted_pickle, _folder_of_another_user],
                         ids=["world-writable", "group-writable", "planted-pickle",
                              "other-owner"])
def test_luigid_up_refuses_a_state_folder_others_could_have_written(tmp_path, make, luigids):
    state = make(tmp_path)
    before = {p.name: p.read_bytes() for p in state.iterdir()}
    port = _free_port()
    up = _run(UP, port, state)
    luigids.append(state)
    assert up.returncode == 1
    assert up.stderr.startswith(f"error: luigid state folder {state}")
    assert len(up.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "pwned").exists()  # the pickle was never loaded
    assert _listening(port) == set()
    assert {p.name: p.read_bytes() for p in state.iterdir()} == before


def test_hipsluigi_luigid_background_writes_private_files_whatever_the_umask(tmp_path):
    port = _free_port()
    pidfile = tmp_path / "luigid.pid"
    started = _run(sys.executable, "-m", "hipsluigi.luigid", "--background", "--port", port,
                   "--pidfile", pidfile, "--logdir", tmp_path / "log",
                   "--state-path", tmp_path / "luigi-state.pickle")
    assert started.returncode == 0, started.stderr
    for _ in range(300):
        if pidfile.exists() and _listening(port):
            break
        time.sleep(0.1)
    pid = int(pidfile.read_text())
    try:
        assert _listening(port) == {"0100007F"}
    finally:
        os.kill(pid, 15)
        for _ in range(100):
            if not _alive(pid):
                break
            time.sleep(0.1)
    assert (tmp_path / "luigi-state.pickle").is_file()
    assert _writable_by_others(tmp_path) == {}
