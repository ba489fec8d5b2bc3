"""The whole pipeline on one machine: a small all-sky map, checked against the truth via healpy.

The map: order 3, 64-pixel tiles, synthetic survey with noise and backgrounds off. Every check
of pixel positions uses healpy and the HiPS convention (row r, column c of a FITS tile of width w
holds ix = w-1-r, iy = c), never hipsluigi's own geometry.
"""

import json
import warnings
from pathlib import Path

import luigi
import numpy as np
import pytest
from astropy.io import fits
from PIL import Image
from scipy.stats import spearmanr

from hipsluigi import AllSkyPNGs
from hipsluigi.pipeline.settings import map_spec
from hipsluigi.surveys import synthetic
from hipsluigi.testing import luigi_options, tile_pixel_lonlat

ORDER = 3
WIDTH = 64

CONFIG = {
    "hips": {"name": "pipe", "order": ORDER, "tile_width": WIDTH, "nplate": "",
             "background": "none", "region": "", "executor": "local", "frame": "galactic"},
    "synthetic": {"seed": 7, "frame_size": 128, "noise": 0, "backgrounds": 0, "sources": 150,
                  "blobs": 150},
}


def _run(workers=2):
    """Build the map; return Luigi's result and the ids of the tasks that ran (any outcome)."""
    from luigi.execution_summary import _summary_dict

    result = luigi.build([AllSkyPNGs()], local_scheduler=True, workers=workers,
                         detailed_summary=True)
    summary = _summary_dict(result.worker)
    ran = summary["completed"] | summary["failed"]
    return result, sorted(task.task_id for task in ran)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipe")
    options = {k: dict(v) for k, v in CONFIG.items()}
    options["hips"]["storage"] = f"{root}/u0,{root}/u1"
    with luigi_options(options):
        result, started = _run()
        yield {"root": root, "hips": root / "u0" / "pipe" / "HiPS", "result": result,
               "started": started}


def _tiles(hips: Path, order: int, ext: str) -> dict[int, Path]:
    return {int(p.stem[4:]): p for p in (hips / f"Norder{order}").glob(f"Dir*/Npix*.{ext}")}


def test_build_succeeds(built):
    assert built["result"].status == luigi.LuigiStatusCode.SUCCESS
    assert built["started"], "the first build ran no task"


@pytest.mark.parametrize("order", range(ORDER + 1))
def test_tiles_match_truth_at_healpy_pixel_centres_and_other_conventions_do_not(built, order):
    tiles = _tiles(built["hips"], order, "fits")
    rng = np.random.default_rng(order)
    sample = rng.choice(sorted(tiles), size=min(12, len(tiles)), replace=False)
    errors = {"standard": [], "transposed": [], "flipped": []}
    truths = []
    with luigi_options(CONFIG):
        spec = map_spec("pipe")
        for npix in sample:
            data = fits.getdata(tiles[npix])
            assert data.shape == (WIDTH, WIDTH) and data.dtype.kind == "f"
            for convention, errs in errors.items():
                lon, lat = tile_pixel_lonlat(order, int(npix), WIDTH, convention)
                truth = synthetic.truth(spec, lon, lat)
                errs.append(np.abs(data - truth).ravel())
                if convention == "standard":
                    truths.append(truth.ravel())
    rms = np.sqrt(np.mean(np.concatenate(truths) ** 2))
    p95 = {c: np.nanpercentile(np.concatenate(e), 95) for c, e in errors.items()}
    print(f"order {order}: truth RMS {rms:.3f}, p95 |tile - truth| " +
          ", ".join(f"{c} {v:.4f}" for c, v in p95.items()))
    assert p95["standard"] <= 0.05 * rms
    assert p95["transposed"] > 0.05 * rms and p95["transposed"] > 3 * p95["standard"]
    assert p95["flipped"] > 0.05 * rms and p95["flipped"] > 3 * p95["standard"]


def test_every_order_has_every_tile_of_the_sky(built):
    for order in range(ORDER + 1):
        assert sorted(_tiles(built["hips"], order, "fits")) == list(range(12 * 4**order))
        assert sorted(_tiles(built["hips"], order, "png")) == list(range(12 * 4**order))


def _parents_checked(hips: Path, deepest: int) -> int:
    """Assert that every tile of orders below ``deepest`` is the NaN-mean of its four
    children (child k at rows/cols in numpy FITS order as in reproject and LSST); returns how
    many parents were checked."""
    half = WIDTH  # four children make a 2w x 2w canvas, shrunk by 2 into the parent
    place = {0: (slice(half, None), slice(None, half)), 1: (slice(None, half), slice(None, half)),
             2: (slice(half, None), slice(half, None)), 3: (slice(None, half), slice(half, None))}
    checked = 0
    for order in range(deepest):
        parents = _tiles(hips, order, "fits")
        kids = _tiles(hips, order + 1, "fits")
        for npix, path in parents.items():
            full = np.full((2 * WIDTH, 2 * WIDTH), np.nan)
            for k in range(4):
                if 4 * npix + k in kids:
                    full[place[k]] = fits.getdata(kids[4 * npix + k])
            blocks = full.reshape(WIDTH, 2, WIDTH, 2)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks
                expected = np.nanmean(blocks, axis=(1, 3))
            parent = fits.getdata(path)
            assert np.array_equal(np.isnan(parent), np.isnan(expected))
            assert np.allclose(parent, expected, rtol=2e-6, atol=1e-5, equal_nan=True)
            checked += 1
    return checked


def test_every_parent_tile_is_the_nan_mean_of_its_four_children(built):
    assert _parents_checked(built["hips"], ORDER) == sum(12 * 4**k for k in range(ORDER))


def test_a_plate_shrunk_from_four_deepest_halves_is_the_nan_mean_of_its_children(tmp_path):
    """With 10 x 10 plates at order 1 and 5 x 5 at order 0, each order-0 plate is made from
    the half plates of four deepest plates, which their mosaic tasks wrote; a half's WCS puts
    its pixels where its parent plate's WCS puts the same pixels of the parent."""
    options = {k: dict(v) for k, v in CONFIG.items()}
    options["hips"].update(name="quad", order=1, nplate=10,
                           storage=f"{tmp_path}/u0,{tmp_path}/u1")
    with luigi_options(options):
        result, _ = _run()
    assert result.status == luigi.LuigiStatusCode.SUCCESS
    halves = list(tmp_path.glob("u*/quad/plates/order1/*.half.fits"))
    assert len(halves) == 12 * 4  # every plate of order 1: 12 face cells of 2 x 2 plates
    assert _parents_checked(tmp_path / "u0" / "quad" / "HiPS", 1) == 12
    from astropy.wcs import WCS

    for half in halves[:8]:
        i, j = (int(n) for n in half.name.split(".")[0].split("_")[1:])
        parent = next(tmp_path.glob(f"u*/quad/plates/order0/plate_{i // 2:02d}_{j // 2:02d}.fits"))
        header = fits.getheader(half)
        side = header["NAXIS1"]
        x, y = np.meshgrid([0.0, 5.0, side - 1.0], [0.0, 7.0, side - 1.0])  # 0-based, x columns
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # HPX headers' informational FITSFixedWarning
            there = WCS(fits.getheader(parent)).pixel_to_world_values(
                x + (i % 2) * side, y + (j % 2) * side)
            here = WCS(header).pixel_to_world_values(x, y)
        np.testing.assert_allclose(here, there, atol=1e-9)


@pytest.mark.parametrize("order", [0, ORDER])
def test_png_tiles_rise_with_fits_values_and_are_flipped_vertically(built, order):
    fits_tiles = _tiles(built["hips"], order, "fits")
    png_tiles = _tiles(built["hips"], order, "png")
    rng = np.random.default_rng(11)
    pooled = {"gray_flipped": [], "gray_as_is": [], "data": []}
    for npix in rng.choice(sorted(fits_tiles), size=12, replace=False):
        data = fits.getdata(fits_tiles[npix])
        image = np.asarray(Image.open(png_tiles[npix]).convert("LA"))
        gray, alpha = image[..., 0], image[..., 1]
        assert np.array_equal(alpha[::-1] == 0, np.isnan(data))
        finite = np.isfinite(data)
        # Monotone: sorted by FITS value, the (flipped) PNG gray never goes down.
        order_by_value = np.argsort(data[finite], kind="stable")
        assert np.all(np.diff(gray[::-1][finite][order_by_value].astype(int)) >= 0)
        pooled["gray_flipped"].append(gray[::-1][finite])
        pooled["gray_as_is"].append(gray[finite])
        pooled["data"].append(data[finite])
    data = np.concatenate(pooled["data"])
    rho_flipped = spearmanr(np.concatenate(pooled["gray_flipped"]), data).statistic
    rho_as_is = spearmanr(np.concatenate(pooled["gray_as_is"]), data).statistic
    print(f"order {order}: rank correlation PNG vs FITS {rho_flipped:.4f} "
          f"(unflipped {rho_as_is:.4f})")
    assert rho_flipped > 0.99
    assert rho_as_is < rho_flipped - 0.01


def test_hips_root_has_properties_allsky_moc_and_index(built):
    hips = built["hips"]
    props = dict(line.split("=", 1) for line in (hips / "properties").read_text().splitlines()
                 if "=" in line and not line.startswith("#"))
    props = {k.strip(): v.strip() for k, v in props.items()}
    for key in ("creator_did", "obs_title", "dataproduct_type", "hips_version",
                "hips_release_date", "hips_status", "hips_tile_format", "hips_order",
                "hips_frame", "hips_tile_width", "hips_order_min", "hips_pixel_cut",
                "hips_data_range", "hips_initial_ra", "hips_initial_dec", "hips_initial_fov"):
        assert key in props, key
    assert props["hips_order"] == str(ORDER) and props["hips_tile_width"] == str(WIDTH)
    assert props["hips_tile_format"] == "png fits" and props["hips_frame"] == "galactic"
    lo, hi = (float(x) for x in props["hips_pixel_cut"].split())
    dmin, dmax = (float(x) for x in props["hips_data_range"].split())
    assert dmin < dmax and lo < hi and lo < dmax and hi > dmin
    for order in range(ORDER + 1):
        assert (hips / f"Norder{order}" / "Allsky.fits").exists()
        assert (hips / f"Norder{order}" / "Allsky.png").exists()
    with fits.open(hips / "Moc.fits") as hdul:
        assert hdul[1].header["COORDSYS"] == "C"  # MOC 2.0: ICRS, whatever the HiPS frame
    assert float(props["moc_sky_fraction"]) == pytest.approx(1.0)
    assert "aladin" in (hips / "index.html").read_text().lower()


def test_platelist_and_work_tree_on_every_storage_unit(built):
    root = built["root"]
    assert (root / "u0" / "pipe" / "platelist.tbl").exists()
    link = root / "u0" / "pipe" / "mosaics" / "subset2"
    assert link.is_symlink() and link.resolve() == (root / "u1" / "pipe" / "mosaics").resolve()
    # the deepest plates: their corrections, applied to the mosaics as they are read
    folders = [root / u / "pipe" / "plates" / f"order{ORDER}" for u in ("u0", "u1")]
    plates = {p.name for folder in folders for p in folder.glob("*.correction.npz")}
    assert len(plates) == 12  # 13 on-sky plates less the face-6 copy in cell (4, 4)
    # no corrected copy; their halves, which the shrink to the next order reads
    assert {p.name for folder in folders for p in folder.glob("*.fits")} == {
        p.replace(".correction.npz", ".half.fits") for p in plates}
    manifest = next((root / "u1" / "pipe" / "manifests" / f"order{ORDER}").glob("*.fits.json"))
    assert json.loads(manifest.read_text())["tiles"]


def test_running_again_after_success_runs_no_task(built):
    options = {k: dict(v) for k, v in CONFIG.items()}
    options["hips"]["storage"] = f"{built['root']}/u0,{built['root']}/u1"
    stamps = {p: p.stat().st_mtime_ns for p in built["hips"].rglob("*") if p.is_file()}
    with luigi_options(options):
        result, started = _run()
    assert result.status == luigi.LuigiStatusCode.SUCCESS
    assert started == []
    assert {p: p.stat().st_mtime_ns for p in built["hips"].rglob("*") if p.is_file()} == stamps


def test_changing_pixel_settings_on_an_existing_work_tree_is_refused(built):
    options = {k: dict(v) for k, v in CONFIG.items()}
    options["hips"]["storage"] = f"{built['root']}/u0,{built['root']}/u1"
    options["hips"]["tile_width"] = 32
    with luigi_options(options):
        result, started = _run(workers=1)
    assert result.status != luigi.LuigiStatusCode.SUCCESS
    assert started == []
    assert "hips.json" in result.summary_text or result.scheduling_succeeded is False
