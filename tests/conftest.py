"""Services for the integration tests: the local SLURM and a luigid on 127.0.0.1.

``scripts/run-tests.sh`` installs and starts SLURM (as root); a luigid is started here per test
session. Under ``CI=true`` a missing service fails the test instead of skipping it.
"""

import json
import os
import shutil
import socket
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _unavailable(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: every service must be up)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def slurm_cluster():
    """A SLURM whose node is up (scripts/slurm-up.sh)."""
    if not shutil.which("sbatch"):
        _unavailable("SLURM is not installed; run scripts/slurm-up.sh as root")
    state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if state.returncode != 0 or not {"idle", "mixed", "allocated"} & set(state.stdout.split()):
        _unavailable(f"SLURM is not up (sinfo: {state.stdout.strip() or state.stderr.strip()})")
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Luigid:
    """A running luigid and its /api/ calls."""

    def __init__(self, port: int, state: Path):
        self.port = port
        self.state = state
        self.url = f"http://127.0.0.1:{port}"

    def api(self, method: str, **data):
        query = urllib.parse.urlencode({"data": json.dumps(data)})
        with urllib.request.urlopen(f"{self.url}/api/{method}?{query}", timeout=30) as r:
            return json.loads(r.read())["response"]

    def tasks_of_map(self, name: str) -> dict:
        """Every task luigid holds for map ``name``: {task_id: info}."""
        return {tid: info for tid, info in self.api("task_list").items()
                if info["params"].get("map") == name}


@pytest.fixture(scope="session")
def luigid(tmp_path_factory):
    """luigid on a free loopback port, stopped at the end of the session."""
    state = tmp_path_factory.mktemp("luigid")
    port = _free_port()
    up = subprocess.run([str(REPO / "scripts" / "luigid-up.sh"), str(port), str(state)],
                        capture_output=True, text=True)
    if up.returncode != 0:
        _unavailable(f"luigid did not start: {up.stderr.strip()}")
    yield Luigid(port, state)
    subprocess.run([str(REPO / "scripts" / "luigid-down.sh"), str(state)], check=False)


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium, for headless browser tests."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        _unavailable("Debian's chromium is not installed (apt-get install chromium)")
    return path
