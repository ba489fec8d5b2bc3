"""Background matching, end to end: the synthetic survey's injected frame planes are removed.

Three maps of the same survey (order 3, 64-pixel tiles, 12 face plates; offsets sigma 1.0,
tilts 5% of that across a frame, noise 0.05) with ``background = none``, ``plate`` and
``global``. Every figure compares the deepest tiles with the truth evaluated at the HEALPix
pixel centres (healpy; row r, column c of a tile of width w holds ix = w-1-r, iy = c).
"""

import warnings

import luigi
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from hipsluigi import AllSkyPNGs
from hipsluigi.geometry.plates import PlateGrid
from hipsluigi.pipeline.settings import map_spec
from hipsluigi.surveys import synthetic
from hipsluigi.testing import luigi_options, tile_pixel_lonlat

ORDER, WIDTH, NOISE = 3, 64, 0.05
SURVEY = {"seed": 5, "frame_size": 64, "noise": NOISE, "backgrounds": 1.0, "tilt": 0.05,
          "sources": 150, "blobs": 150}


def _options(root, mode):
    return {"hips": {"name": f"bg{mode}", "order": ORDER, "tile_width": WIDTH, "nplate": "",
                     "background": mode, "background_fit": "levels", "region": "",
                     "executor": "local", "storage": f"{root}/{mode}/u0,{root}/{mode}/u1"},
            "synthetic": dict(SURVEY)}


def _tile_errors(hips, spec):
    """{npix: tile - truth} for every deepest tile."""
    out = {}
    for path in hips.glob(f"Norder{ORDER}/Dir*/Npix*.fits"):
        npix = int(path.stem[4:])
        lon, lat = tile_pixel_lonlat(ORDER, npix, WIDTH)
        out[npix] = fits.getdata(path) - synthetic.truth(spec, lon, lat)
    return out


def _background_error(errors) -> float:
    """RMS of the background error: 8 x 8 block medians of tile - truth (which keep the
    background and drop noise and point-source residuals), less one global constant."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        blocks = np.array([np.nanmedian(e.reshape(WIDTH // 8, 8, WIDTH // 8, 8), axis=(1, 3))
                           for e in errors.values()])
    blocks -= np.nanmedian(blocks)
    return float(np.sqrt(np.nanmean(blocks**2)))


def _seam_steps(errors, rows=4) -> np.ndarray:
    """|step| of tile - truth across every plate boundary of the deepest order: the mean over
    ``rows`` pixels on each side, per tile-wide segment of the boundary."""
    grid = PlateGrid(ORDER, WIDTH, 5, 0)
    plates = {}
    for i, j in grid.sky_plates:
        npix, r0, c0 = grid.tiles(i, j)
        if len(npix) == 0:
            continue
        plate = np.full(grid.shape(), np.nan)
        for n, r, c in zip(npix, r0, c0, strict=True):
            if int(n) in errors:
                plate[r:r + WIDTH, c:c + WIDTH] = errors[int(n)]
        plates[(i, j)] = plate
    steps = []
    for (i, j), a in plates.items():
        for di, dj in ((1, 0), (0, 1)):
            b = plates.get((i + di, j + dj))
            if b is None:
                continue
            if di:
                diff = a[:, -rows:].mean(axis=1) - b[:, :rows].mean(axis=1)
            else:
                diff = a[-rows:, :].mean(axis=0) - b[:rows, :].mean(axis=0)
            steps.extend(np.abs(diff.reshape(-1, WIDTH).mean(axis=1)))
    return np.array(steps)


@pytest.fixture(scope="module")
def maps(tmp_path_factory):
    root = tmp_path_factory.mktemp("background")
    out = {}
    for mode in ("none", "plate", "global"):
        with luigi_options(_options(root, mode)):
            assert luigi.build([AllSkyPNGs()], local_scheduler=True, workers=2)
            spec = map_spec()
            errors = _tile_errors(root / mode / "u0" / f"bg{mode}" / "HiPS", spec)
            offsets = np.asarray(synthetic.injected_planes(spec)["c"])
        out[mode] = {"errors": errors, "offsets": offsets,
                     "base": root / mode / "u0" / f"bg{mode}"}
    return out


def test_injected_offsets_are_at_least_ten_times_the_noise(maps):
    assert np.std(maps["global"]["offsets"]) >= 10 * NOISE


def test_global_matching_removes_the_frame_backgrounds(maps):
    offsets_rms = float(np.sqrt(np.mean(maps["global"]["offsets"] ** 2)))
    figures = {mode: _background_error(maps[mode]["errors"]) for mode in maps}
    print(f"background error RMS (offsets RMS {offsets_rms:.3f}, noise {NOISE}): "
          + ", ".join(f"{mode} {value:.4f}" for mode, value in figures.items()))
    assert figures["global"] <= 0.05 * offsets_rms
    assert figures["global"] <= NOISE
    assert figures["global"] < figures["plate"] < figures["none"]


def test_no_seam_across_plate_boundaries(maps):
    figures = {mode: float(np.median(_seam_steps(maps[mode]["errors"]))) for mode in maps}
    print("median |step| across plate boundaries: "
          + ", ".join(f"{mode} {value:.4f}" for mode, value in figures.items())
          + f" (0.1 x noise = {0.1 * NOISE})")
    assert figures["global"] <= 0.1 * NOISE
    assert figures["plate"] > 0.1 * NOISE  # the figure does see seams


def test_montage_mbgmodel_reads_our_tables_and_agrees(maps, tmp_path):
    main = _montagepy()
    base = maps["global"]["base"]
    images, fitcombo = base / "mosaics" / "images.tbl", base / "mosaics" / "fitcombo.tbl"
    out = tmp_path / "corrections.tbl"
    status = main.mBgModel(str(images), str(fitcombo), str(out), noslope=True, useall=True)
    assert str(status["status"]) == "0", status
    theirs = Table.read(str(out), format="ascii.ipac")
    from hipsluigi.background.model import solve_background
    from hipsluigi.storage.artifacts import read_fitcombo

    ids = list(Table.read(str(images), format="ascii.ipac")["cntr"])
    ours = solve_background(read_fitcombo(fitcombo), ids, WIDTH << ORDER, slopes=False,
                            reject=np.inf).planes
    a = np.array([ours[k][2] for k in ids])
    b = np.array([float(theirs[theirs["id"] == k]["c"][0]) for k in ids])
    offsets_rms = float(np.sqrt(np.mean(maps["global"]["offsets"] ** 2)))
    difference = np.abs((a - a.mean()) - (b - b.mean())).max()
    print(f"mBgModel against hipsluigi (levels, {len(ids)} plates): max difference "
          f"{difference:.2e} ({difference / offsets_rms:.2%} of the offsets' RMS)")
    assert difference <= 0.01 * offsets_rms


def _montagepy():
    import os

    try:
        from MontagePy import main
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("MontagePy is not installed (pip install -e .[test])")
        pytest.skip("MontagePy is not installed")
    return main
