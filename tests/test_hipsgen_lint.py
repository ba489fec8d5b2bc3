"""The reference validator: CDS Hipsgen's LINT (Debian's ``aladin`` package) passes the default
map and a ``fits``-survey map with no warning and no error; and what LINT does not check: the
MOC reads back in mocpy and covers every tile, the FITS tiles carry valid checksums, the
FITS view through ``hips_pixel_cut`` shows the sky, and ``preview.jpg`` is a picture of it.

The default map is the repository's ``luigi.cfg`` with CI-sized tiles and images (64-pixel
tiles, 256-pixel images, fewer sources); every other setting is the default.
"""

import json
import re
import subprocess
import warnings
from pathlib import Path

import healpy as hp
import luigi
import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS
from mocpy import MOC
from PIL import Image

from hipsluigi import AllSkyPNGs
from hipsluigi.metadata.properties import parse_properties
from hipsluigi.testing import luigi_options


def _build(root: Path, name: str, hips: dict, synthetic: dict | None = None) -> Path:
    options = {"hips": {"name": name, "storage": f"{root}/u0,{root}/u1", **hips}}
    if synthetic:
        options["synthetic"] = synthetic
    with luigi_options(options):
        assert luigi.build([AllSkyPNGs()], local_scheduler=True, workers=2)
    return root / "u0" / name / "HiPS"


@pytest.fixture(scope="module")
def default_map(tmp_path_factory):
    root = tmp_path_factory.mktemp("default")
    return _build(root, "demo", {"tile_width": 64},
                  {"frame_size": 256, "sources": 200})


def _fits_images(folder: Path) -> None:
    """Nine 128-pixel TAN images around (RA, Dec) = (150, 30), observed on three nights."""
    folder.mkdir()
    rng = np.random.default_rng(3)
    for k in range(9):
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        wcs.wcs.crval = [149.0 + (k % 3), 29.0 + (k // 3)]
        wcs.wcs.crpix = [64.5, 64.5]
        wcs.wcs.cdelt = [-0.01, 0.01]
        header = wcs.to_header()
        header["DATE-OBS"] = f"2012-03-{10 + k // 3:02d}T02:00:00"
        header["BUNIT"] = "adu"
        data = rng.normal(100.0, 5.0, (128, 128)).astype(np.float32)
        fits.writeto(folder / f"img{k}.fits", data, header)


@pytest.fixture(scope="module")
def fits_map(tmp_path_factory):
    root = tmp_path_factory.mktemp("fitsmap")
    _fits_images(root / "images")
    return _build(root, "fitsmap", {
        "survey": "fits", "survey_path": str(root / "images"), "frame": "equatorial",
        "order": 5, "tile_width": 64, "nplate": "", "region": "cone 150 30 2.5 icrs",
        "background": "none", "obs_regime": "Optical", "em_min": 4e-7, "em_max": 7e-7})


@pytest.mark.parametrize("which", ["default_map", "fits_map"])
def test_hipsgen_lint_passes_with_no_warning_and_no_error(which, request, hipsgen_lint):
    report = hipsgen_lint(request.getfixturevalue(which))
    # LINT's tile test ran, on PNG and FITS tiles (it silently skips when it finds no tile)
    assert re.search(r"tile test hierarchy \[.*\.png\] ok", report)
    assert re.search(r"tile test hierarchy \[.*\.fits\] ok", report)


def test_fits_map_properties_take_dates_from_the_headers_and_the_band_from_the_settings(
        fits_map):
    props = parse_properties((fits_map / "properties").read_text())
    assert float(props["t_min"]) == pytest.approx(55996.0833, abs=1e-3)  # 2012-03-10T02:00
    assert float(props["t_max"]) == pytest.approx(55998.0833, abs=1e-3)
    assert (props["obs_regime"], float(props["em_min"]), float(props["em_max"])) == \
        ("Optical", 4e-7, 7e-7)
    assert float(props["s_pixel_scale"]) == pytest.approx(0.01, rel=1e-6)
    assert props["data_pixel_bitpix"] == "-32"


def _deepest_tiles(hips: Path) -> tuple[int, list[int]]:
    order = int(parse_properties((hips / "properties").read_text())["hips_order"])
    npix = sorted(int(p.stem[4:]) for p in (hips / f"Norder{order}").glob("Dir*/Npix*.fits"))
    return order, npix


@pytest.mark.parametrize("which, frame", [("default_map", "galactic"),
                                          ("fits_map", "icrs")])
def test_moc_reads_back_in_mocpy_as_icrs_and_covers_every_tile_centre(which, frame, request):
    hips = request.getfixturevalue(which)
    assert fits.getheader(hips / "Moc.fits", 1)["COORDSYS"].strip() == "C"
    moc = MOC.load(str(hips / "Moc.fits"), "fits")
    order, npix = _deepest_tiles(hips)
    assert npix
    lon, lat = hp.pix2ang(1 << order, npix, nest=True, lonlat=True)
    icrs = SkyCoord(lon * u.deg, lat * u.deg, frame=frame).icrs
    assert moc.contains_lonlat(icrs.ra, icrs.dec).all()
    # and not much more than the tiles: the sky fraction of the tiles plus a ring of cells
    tiles = len(npix) / (12 * 4**order)
    assert tiles <= moc.sky_fraction <= tiles + 8 * np.sqrt(len(npix)) / (12 * 4**order)


def test_every_fits_tile_carries_a_datasum_and_checksum_astropy_verifies(default_map):
    paths = sorted(default_map.glob("Norder*/Dir*/Npix*.fits"))
    assert len(paths) == 12 + 48 + 192 + 768
    for path in paths:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # astropy warns on a checksum mismatch
            with fits.open(path, checksum=True) as hdul:
                assert hdul[0].verify_datasum() == 1, path
                assert hdul[0].verify_checksum() == 1, path


def _linear_gray(values: np.ndarray, cut: tuple[float, float]) -> np.ndarray:
    lo, hi = cut
    return np.clip((values - lo) / (hi - lo) * 255.0, 0, 255)


def test_the_fits_view_through_hips_pixel_cut_shows_the_sky_not_a_black_page(default_map):
    props = parse_properties((default_map / "properties").read_text())
    cut = tuple(float(v) for v in props["hips_pixel_cut"].split())
    values = np.concatenate([fits.getdata(p).ravel()
                             for p in default_map.glob("Norder3/Dir*/Npix*.fits")])
    values = values[np.isfinite(values)]
    gray = _linear_gray(values, cut)
    # as a viewer maps it linearly: a mid-gray sky, most of the 256 levels in use
    assert 20 <= np.median(gray) <= 160
    assert np.percentile(gray, 90) - np.percentile(gray, 10) >= 64
    assert np.unique(gray.astype(int)).size >= 200
    # the stretch's own levels (-2 sigma to the maximum) leave it nearly black: the check tells
    data_range = tuple(float(v) for v in props["hips_data_range"].split())
    assert np.median(_linear_gray(values, (cut[0], data_range[1]))) < 20


def test_preview_jpg_is_a_mollweide_picture_of_the_sky(default_map):
    with Image.open(default_map / "preview.jpg") as image:
        assert image.format == "JPEG"
        assert image.size == (512, 256)
        pixels = np.asarray(image.convert("L"), dtype=float)
    # the ellipse holds the sky (many gray levels), the corners are black
    assert pixels[:8, :8].max() < 16 and pixels[-8:, -8:].max() < 16
    centre = pixels[64:192, 128:384]
    assert np.unique(centre.astype(int)).size > 64
    assert centre.std() > 10


def _finder(folder: Path) -> dict[int, dict[str, dict]]:
    """``{tile: {image name: record}}`` of a ``HpxFinder`` folder's deepest order."""
    found = {}
    for path in folder.glob("Norder*/Dir*/Npix*"):
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        found[int(path.name[4:])] = {r["name"]: r for r in records}
    return found


def test_progenitor_index_lists_the_images_hipsgens_index_lists(fits_map, hipsgen,
                                                                tmp_path):
    images = fits_map.parents[2] / "images"
    order = int(parse_properties((fits_map / "properties").read_text())["hips_order"])
    done = subprocess.run([*hipsgen, f"in={images}", f"out={tmp_path / 'hg'}",
                           f"hips_order={order}", "creator_did=ivo://test/P/finder", "INDEX"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    theirs = _finder(tmp_path / "hg" / "HpxFinder")
    ours = _finder(fits_map / "HpxFinder")
    assert theirs and set(ours) == set(theirs)
    listed = extra = 0
    for npix, records in theirs.items():
        assert set(records) <= set(ours[npix]), npix  # every image Hipsgen finds in the tile
        listed += len(records)
        extra += len(set(ours[npix]) - set(records))
        for name, theirs_record in records.items():
            mine = ours[npix][name]
            assert set(mine) <= set(theirs_record)  # Hipsgen's keys, no others
            assert mine["path"] == theirs_record["path"]
            assert mine["DATE-OBS"] == theirs_record["DATE-OBS"]
            corners = [float(v) for v in mine["stc"].split()[2:]]
            expected = [float(v) for v in theirs_record["stc"].split()[2:]]
            assert mine["stc"].split()[:2] == theirs_record["stc"].split()[:2]
            # ours are the outer pixel corners; Hipsgen's lie within a pixel (0.01 deg) of them
            assert np.allclose(corners, expected, atol=0.012), (corners, expected)
    assert extra <= 0.1 * listed  # a few more where a tile grazes an image's corner
    props = parse_properties((fits_map / "HpxFinder" / "properties").read_text())
    assert props["dataproduct_type"] == "meta"
    assert props["hips_order"] == str(order)
