"""A map with no usable pixel fails at its survey index, saying why, before any plate runs."""

import shutil
import subprocess
import sys
from pathlib import Path

import astropy
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

REPO = Path(__file__).resolve().parents[1]
LUIGI = Path(sys.executable).with_name("luigi")
M13 = Path(astropy.__file__).parent / "io/fits/hdu/compressed/tests/data/m13.fits"


def _luigi(cwd: Path, folder: Path, *args: str) -> subprocess.CompletedProcess:
    shutil.copy(REPO / "luigi.cfg", cwd / "luigi.cfg")
    return subprocess.run(
        [str(LUIGI), "--module", "hipsluigi", "AllSkyPNGs", "--local-scheduler",
         "--hips-name", "empty", "--hips-survey", "fits", "--hips-survey-path", str(folder),
         "--hips-frame", "equatorial", "--hips-tile-width", "64", "--hips-background", "none",
         "--hips-storage", str(cwd / "work"), *args],
        cwd=cwd, capture_output=True, text=True, timeout=600)


def _no_plate_ran(cwd: Path) -> bool:
    return not list((cwd / "work").rglob("plate_*.fits"))


def test_images_outside_the_region_fail_at_the_index_naming_the_region(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(M13, folder / "m13.fits")
    ra, dec = WCS(fits.getheader(M13)).wcs.crval  # M13 is near RA 250, Dec +36
    run = _luigi(tmp_path, folder, "--hips-order", "2",
                 "--hips-region", f"cone {(ra + 180) % 360} {-dec} 3 icrs")
    assert run.returncode != 0
    assert "none of the 1 usable images touches any plate of the region 'cone" in run.stderr
    assert _no_plate_ran(tmp_path)


def test_images_smaller_than_a_hips_pixel_fail_at_the_index_saying_so(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [10.0, 20.0]
    wcs.wcs.crpix = [2.0, 2.0]
    wcs.wcs.cdelt = [-1e-4, 1e-4]  # 3 x 3 pixels of 0.36": about 1" across
    fits.writeto(folder / "speck.fits", np.ones((3, 3), np.float32), wcs.to_header())
    # Order 0 with 64-pixel tiles: HiPS pixels of about 55'.
    run = _luigi(tmp_path, folder, "--hips-order", "0")
    assert run.returncode != 0
    assert "are all smaller than one HiPS pixel" in run.stderr
    assert _no_plate_ran(tmp_path)


@pytest.mark.parametrize("bad", ["not a FITS file\n", ""])
def test_a_folder_of_unusable_files_fails_at_the_index_pointing_at_the_rejects(tmp_path, bad):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "bad.fits").write_text(bad)
    run = _luigi(tmp_path, folder, "--hips-order", "0")
    assert run.returncode != 0
    assert "no usable image among 1 inputs (each reason is in survey/rejects.tbl)" in run.stderr
    rejects = (tmp_path / "work" / "empty" / "survey" / "rejects.tbl").read_text()
    assert "bad.fits" in rejects
    assert _no_plate_ran(tmp_path)
