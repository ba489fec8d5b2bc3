"""``survey = fits``: real images shipped with astropy, and bad inputs that must not stop the sky.

The tiles are compared with reproject_interp of the input image onto each tile's own WCS header
(reproject is independent of hipsluigi's resampling; the tile header is checked against healpy
in hipsluigi/geometry/tests).
"""

import shutil
import warnings
from pathlib import Path

import astropy
import luigi
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from reproject import reproject_interp

from hipsluigi import AllSkyPNGs
from hipsluigi.testing import luigi_options

DATA = Path(astropy.__file__).parent
M13 = DATA / "io/fits/hdu/compressed/tests/data/m13_rice.fits"    # tile-compressed, TAN
M13_PLAIN = DATA / "io/fits/hdu/compressed/tests/data/m13.fits"
AZP = DATA / "modeling/tests/data/1904-66_AZP.fits"               # zenithal (AZP) at the pole
SIP = DATA / "nddata/tests/data/sip-wcs.fits"                     # TAN-SIP distortion


@pytest.fixture(scope="module")
def survey_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("survey")
    for path in (M13, AZP):
        shutil.copy(path, folder / path.name)
    # One map holds one unit (AZP's JY/BEAM): the SIP image's 'adu' would be rejected for it.
    with fits.open(SIP) as hdul:
        del hdul[0].header["BUNIT"]
        hdul.writeto(folder / SIP.name)
    raw = M13_PLAIN.read_bytes()
    (folder / "truncated.fits").write_bytes(raw[:5000])
    header = fits.getheader(M13_PLAIN)
    header["CTYPE1"], header["CTYPE2"] = "LINEAR", "LINEAR"
    fits.writeto(folder / "not_celestial.fits", fits.getdata(M13_PLAIN), header)
    azp = fits.open(AZP)
    azp[0].data[:] = np.nan
    azp.writeto(folder / "all_blank.fits")
    fits.BinTableHDU.from_columns([fits.Column("x", "E", array=[1.0])]).writeto(
        folder / "table_only.fits")
    (folder / "notes.fits").write_text("not a FITS file\n")
    return folder


def _build(root, name, order, region, folder, frame="equatorial"):
    options = {"hips": {"name": name, "order": order, "tile_width": 64, "nplate": "",
                        "survey": "fits", "survey_path": str(folder), "frame": frame,
                        "background": "none", "region": region, "executor": "local",
                        "storage": f"{root}/{name}"}}
    with luigi_options(options):
        ok = luigi.build([AllSkyPNGs()], local_scheduler=True, workers=2)
    return ok, root / name / name


def _compare_tiles(hips: Path, order: int, image: Path, hdu: int) -> tuple[int, float]:
    """Tiles against reproject_interp of ``image``; returns (pixels compared, max rel error)."""
    with fits.open(image) as hdul:
        data = hdul[hdu].data.astype(float)
        wcs = WCS(hdul[hdu].header).celestial
    compared, worst = 0, 0.0
    for path in hips.glob(f"Norder{order}/Dir*/Npix*.fits"):
        tile = fits.getdata(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected, footprint = reproject_interp((data, wcs), WCS(fits.getheader(path)),
                                                   shape_out=tile.shape)
        both = np.isfinite(tile) & (footprint > 0) & np.isfinite(expected)
        if both.any():
            rel = np.abs(tile[both] - expected[both]) / np.abs(expected[both]).max()
            compared += int(both.sum())
            worst = max(worst, float(rel.max()))
    return compared, worst


def test_compressed_tan_image_tiles_match_reproject(survey_folder, tmp_path):
    ok, base = _build(tmp_path, "m13", 11, "cone 250.4226 36.4602 0.05 icrs", survey_folder)
    assert ok
    compared, worst = _compare_tiles(base / "HiPS", 11, M13, 1)
    print(f"M13 (Rice-compressed, TAN): {compared} pixels, max relative difference {worst:.1e}")
    # the whole image: 300 x 300 pixels of 1", over HiPS pixels of 4 pi / (12 N^2) sr
    hips_pixel_arcsec2 = 4 * np.pi / (12 * (64 << 11) ** 2) * (180 / np.pi * 3600) ** 2
    assert compared > 0.9 * 300**2 / hips_pixel_arcsec2
    assert worst < 1e-4


def test_zenithal_image_at_the_pole_and_bad_files_reported(survey_folder, tmp_path):
    ok, base = _build(tmp_path, "sky", 2, "", survey_folder)
    assert ok  # bad inputs never stop the rest of the sky
    compared, worst = _compare_tiles(base / "HiPS", 2, AZP, 0)
    print(f"1904-66 (AZP at the pole): {compared} pixels, max relative difference {worst:.1e}")
    assert compared > 1000 and worst < 1e-4
    index = Table.read(str(base / "survey" / "index.tbl"), format="ascii.ipac")
    reasons = ["" if np.ma.is_masked(r) else str(r) for r in index["reason"]]  # '' reads masked
    status = {Path(p).name: (s, r) for p, s, r in zip(index["path"], index["status"], reasons,
                                                       strict=True)}
    for name in ("m13_rice.fits", "1904-66_AZP.fits", "sip-wcs.fits"):
        assert status[name][0] == "ok", status[name]
    bad = (("truncated.fits", "truncated file"), ("not_celestial.fits", "not celestial"),
           ("table_only.fits", "no image HDU"), ("notes.fits", "not a FITS file"),
           ("all_blank.fits", "every pixel is blank"))
    for name, why in bad:
        assert status[name][0] == "skipped" and why in status[name][1], (name, status[name])
    # the same files and reasons in the rejects table, the all-blank one found by the index
    rejects = Table.read(str(base / "survey" / "rejects.tbl"), format="ascii.ipac")
    assert {Path(p).name: r for p, r in zip(rejects["path"], rejects["reason"], strict=True)} \
        == {name: status[name][1] for name, _ in bad}
    # the images' unit reaches every tile and the properties; the images state no MAGZP
    tiles = (base / "HiPS").glob("Norder*/Dir*/*.fits")
    units = {fits.getheader(path).get("BUNIT") for path in tiles}
    assert units == {fits.getheader(AZP)["BUNIT"]}
    assert f"hips_bunit           = {fits.getheader(AZP)['BUNIT']}" in \
        (base / "HiPS" / "properties").read_text()
