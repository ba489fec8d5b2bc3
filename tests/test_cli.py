"""``luigi --module hipsluigi AllSkyPNGs`` as a user runs it: luigi.cfg, flag overrides, errors."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LUIGI = Path(sys.executable).with_name("luigi")

SMALL = ["--hips-order", "1", "--hips-tile-width", "64", "--synthetic-frame-size", "64",
         "--synthetic-sources", "50"]


def _luigi(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(LUIGI), "--module", "hipsluigi", "AllSkyPNGs", "--local-scheduler",
                           *args], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.fixture
def workdir(tmp_path):
    shutil.copy(REPO / "luigi.cfg", tmp_path / "luigi.cfg")
    return tmp_path


def test_cli_builds_with_luigi_cfg_and_flag_overrides(workdir):
    run = _luigi(workdir, "--workers", "2", *SMALL, "--hips-name", "cli")
    assert run.returncode == 0, run.stderr[-3000:]
    hips = workdir / "hips-work" / "unit0" / "cli" / "HiPS"
    props = (hips / "properties").read_text()
    assert "hips_order           = 1" in props and "hips_tile_width      = 64" in props
    assert len(list((hips / "Norder1").glob("Dir*/Npix*.fits"))) == 48
    # the storage units of luigi.cfg's default list were all used
    assert all((workdir / "hips-work" / f"unit{k}" / "cli").is_dir() for k in range(4))
    where = subprocess.run([sys.executable, "-m", "hipsluigi.where", "--hips-name", "cli"],
                           cwd=workdir, capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()) == hips


def test_cli_bad_region_fails_with_a_clear_message_and_exit_code(workdir):
    run = _luigi(workdir, *SMALL, "--hips-region", "plates 99 99 120 120")
    assert run.returncode != 0
    assert "the region holds no on-sky plate" in run.stderr


def test_cli_unknown_survey_value_is_refused(workdir):
    run = _luigi(workdir, *SMALL, "--hips-survey", "nosuch")
    assert run.returncode != 0
    assert "nosuch" in run.stderr
