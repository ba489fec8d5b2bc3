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


@pytest.fixture(scope="session")
def hipsgen():
    """The command that runs CDS Hipsgen from Debian's ``aladin`` package (Java)."""
    jar = Path("/usr/share/java/aladin.jar")
    if not jar.exists() or shutil.which("java") is None:
        _unavailable("Debian's aladin package (Hipsgen) is not installed: apt-get install aladin")
    return ["java", "-Djava.awt.headless=true", "-jar", str(jar), "-hipsgen"]


@pytest.fixture(scope="session")
def hipsgen_lint(hipsgen):
    """``hipsgen_lint(hips_folder) -> report``: Hipsgen's LINT of a HiPS, failing the test on
    any warning, error or abort, or unless LINT calls it fully compatible."""
    import re

    def lint(hips: Path) -> str:
        done = subprocess.run([*hipsgen, f"out={hips}", "LINT"], capture_output=True,
                              text=True, timeout=600)
        report = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)  # colour codes
        print(report)
        problems = [line for line in report.splitlines()
                    if line.startswith(("*WARN*", "*ERROR", "ABORT")) or "Exception" in line]
        assert not problems, "\n".join(problems)
        assert "is fully IVOA HiPS 1.0 compatible" in report
        return report

    return lint
