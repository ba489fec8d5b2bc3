"""Bad input: a folder of good images and one file of each bad kind, through the whole pipeline.

The map must complete, list every bad file in ``survey/rejects.tbl`` with its reason, and still
make the good images' tiles. The tiles are checked at healpy's pixel centres
(:func:`hipsluigi.testing.tile_pixel_lonlat`) against bilinear interpolation of each good image
by scipy, at image positions from astropy's ``world_to_pixel``: nothing of hipsluigi's geometry.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import luigi
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from scipy.ndimage import map_coordinates

from hipsluigi import AllSkyPNGs
from hipsluigi.surveys.tests.test_fits_folder import AZP, M13, write_bad_inputs
from hipsluigi.testing import luigi_options, tile_pixel_lonlat

ORDER, WIDTH = 2, 64


def _wide_m13() -> tuple[np.ndarray, fits.Header]:
    """M13's pixels spread over 15 x 15 degrees, so that they cover many order-2 pixels."""
    with fits.open(M13) as hdul:
        data, header = hdul[0].data.copy(), hdul[0].header.copy()
    header["CDELT1"], header["CDELT2"] = -0.05, 0.05
    return data, header


@pytest.fixture(scope="module")
def bad_input_map(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    expect = write_bad_inputs(folder)
    shutil.copy(AZP, folder / "good_azp.fits")
    # A good file with a bad HDU: its good HDU must still make tiles.
    data, header = _wide_m13()
    blank = np.full((40, 40), np.nan, dtype=np.float32)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, header), fits.ImageHDU(blank, header)]
                 ).writeto(folder / "good_mef.fits")
    expect["good_mef.fits"] = ("HDU 2", "every pixel is blank")

    root = tmp_path_factory.mktemp("maps")
    options = {"hips": {"name": "bad", "order": ORDER, "tile_width": WIDTH, "nplate": "",
                        "survey": "fits", "survey_path": str(folder), "frame": "equatorial",
                        "background": "none", "region": "", "executor": "local",
                        "storage": f"{root}/bad"}}
    with luigi_options(options):
        ok = luigi.build([AllSkyPNGs()], local_scheduler=True, workers=2)
    return ok, root / "bad" / "bad", expect, folder


def test_bad_inputs_are_rejected_with_their_reason_and_the_map_completes(bad_input_map):
    ok, base, expect, folder = bad_input_map
    assert ok
    assert (base / "HiPS" / "properties").is_file()
    rejects = Table.read(str(base / "survey" / "rejects.tbl"), format="ascii.ipac")
    reasons = {(Path(str(p)).name, int(k)): str(r)
               for p, k, r in zip(rejects["path"], rejects["hdu"], rejects["reason"], strict=True)}
    names = {name for name, _ in reasons}
    assert names == set(expect), names ^ set(expect)
    for name, words in expect.items():
        (reason,) = [r for (n, _), r in reasons.items() if n == name]
        for word in words:
            assert word in reason, (name, word, reason)
    # whole-file problems carry no HDU; the others name theirs
    assert reasons[("zero_bytes.fits", -1)] == "empty file (0 bytes)"
    assert ("good_mef.fits", 2) in reasons and ("good_mef.fits", 1) not in reasons
    index = Table.read(str(base / "survey" / "index.tbl"), format="ascii.ipac")
    usable = {(Path(str(p)).name, int(k)) for p, k, s in
              zip(index["path"], index["hdu"], index["status"], strict=True) if s == "ok"}
    assert usable == {("good_azp.fits", 0), ("good_mef.fits", 1)}


def _expected(lon: np.ndarray, lat: np.ndarray, data: np.ndarray, wcs: WCS
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear values of ``data`` at sky points (ICRS degrees), where the points fall between
    pixel centres; and which points are well outside the image (by more than a pixel)."""
    x, y = wcs.world_to_pixel(SkyCoord(lon, lat, unit="deg", frame="icrs"))
    ny, nx = data.shape
    inside = (x >= 0) & (x <= nx - 1) & (y >= 0) & (y <= ny - 1)
    values = np.full(lon.shape, np.nan)
    values[inside] = map_coordinates(data, [y[inside], x[inside]], order=1)
    outside = ~((x > -1.5) & (x < nx + 0.5) & (y > -1.5) & (y < ny + 0.5))
    return values, inside, outside


def test_good_images_still_make_their_tiles(bad_input_map):
    ok, base, _, folder = bad_input_map
    assert ok
    with fits.open(folder / "good_azp.fits") as hdul:
        azp = (hdul[0].data.astype(np.float64), WCS(hdul[0].header))
    with fits.open(folder / "good_mef.fits") as hdul:
        mef = (hdul[1].data.astype(np.float64), WCS(hdul[1].header))
    compared = {"azp": 0, "mef": 0}
    worst = {"azp": 0.0, "mef": 0.0}
    tiles = sorted((base / "HiPS" / f"Norder{ORDER}").glob("Dir*/Npix*.fits"))
    assert tiles
    for path in tiles:
        npix = int(path.stem[4:])
        tile = fits.getdata(path).astype(np.float64)
        lon, lat = tile_pixel_lonlat(ORDER, npix, WIDTH)
        nowhere = np.ones(tile.shape, bool)
        for name, (data, wcs) in (("azp", azp), ("mef", mef)):
            expected, inside, outside = _expected(lon, lat, data, wcs)
            nowhere &= outside
            good = inside & np.isfinite(expected)
            assert np.isfinite(tile[good]).all(), (path.name, name)
            if good.any():
                scale = np.nanmax(np.abs(data))
                worst[name] = max(worst[name],
                                  float(np.abs(tile[good] - expected[good]).max() / scale))
                compared[name] += int(good.sum())
        # outside the good images the sky stays empty
        assert np.isnan(tile[nowhere]).all(), path.name
    print(f"compared {compared}, max |tile - bilinear| / max|image| {worst}")
    # AZP is 12.8 degrees wide, the M13 copy 15: hundreds of order-2 pixels (0.23 degrees)
    assert compared["azp"] > 1000 and compared["mef"] > 2000
    assert max(worst.values()) < 1e-6        # float32 tiles
