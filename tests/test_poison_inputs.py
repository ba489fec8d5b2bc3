"""One bad input never stops the map, and never stays fatal.

A folder of good images (two of them with a non-ASCII name and a newline in their name) beside
bad ones (a singular WCS, an invalid CUNIT, a NaN CRVAL, and singular files named with non-ASCII
characters, a newline, a ``|`` and bytes that are not UTF-8), and a good input deleted right
after the survey was indexed. The map must complete from the good images, every bad file must
be named in ``survey/rejects.tbl`` exactly as on disk with its reason, the deleted one must be a
per-image skip with a warning, recorded in its plates' mosaics, and the next run must refresh
the index. Tile values are checked at healpy's pixel centres against scipy's bilinear
interpolation of each good image at astropy's ``world_to_pixel`` positions (nothing of
hipsluigi's geometry).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import luigi
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS
from scipy.ndimage import map_coordinates

from hipsluigi import AllSkyPNGs, SurveyIndex
from hipsluigi.storage import artifacts
from hipsluigi.surveys.fits_folder import listing_fingerprint
from hipsluigi.surveys.tests.test_fits_folder import M13, write_bad_inputs
from hipsluigi.testing import luigi_options, tile_pixel_lonlat

ORDER, WIDTH, NAME = 1, 64, "poison"

#: Good images: file name -> (RA, Dec) of the centre, degrees. Each is M13's pixels spread over
#: 15 x 15 degrees, far enough from the others that no two overlap.
GOOD = {
    "plain.fits": (250.0, 36.0),
    "m13_\u00e9\u00e8_\u96ea.fits": (30.0, -20.0),
    "new\nline.fits": (120.0, 10.0),
}
#: Deleted right after SurveyIndex succeeds: the mosaics find it gone.
GONE = "gone.fits", (200.0, -45.0)
#: Singular images under names no table or header format takes as they are.
HOSTILE = [
    "bad_\u00fc\u00df.fits",
    "bad\nnewline.fits",
    "bad|pipe  .fits",
    os.fsdecode(b"bad_\xff\xfe_not_utf8.fits"),
]
#: From write_bad_inputs: the header faults the index must catch before WCSLIB "fixes" them.
HEADER_FAULTS = ("singular_wcs.fits", "bad_cunit.fits", "nan_crval.fits")


def _wide_m13(lon: float, lat: float) -> tuple[np.ndarray, fits.Header]:
    with fits.open(M13) as hdul:
        data, header = hdul[0].data.astype(np.float32), hdul[0].header.copy()
    header["CDELT1"], header["CDELT2"] = -0.05, 0.05
    header["CRVAL1"], header["CRVAL2"] = lon, lat
    return data, header


def _write_corpus(folder: Path, scratch: Path) -> dict[str, tuple[str, ...]]:
    """The inputs; returns ``{bad file name: words its reason must hold}``."""
    for name, (lon, lat) in [*GOOD.items(), GONE]:
        fits.writeto(folder / name, *_wide_m13(lon, lat))
    expect = write_bad_inputs(scratch)
    for name in HEADER_FAULTS:
        shutil.move(scratch / name, folder / name)
    bad = {name: expect[name] for name in HEADER_FAULTS}
    data, header = _wide_m13(0.0, 0.0)
    header["CDELT2"] = 0.0
    for name in HOSTILE:
        fits.writeto(folder / name, data, header)
        bad[name] = ("HDU 0", "singular WCS", "CDELT2 = 0")
    return bad


def _build(options: dict) -> tuple[bool, list[str]]:
    """Build the map in this process (one worker, so that its log is captured); returns
    whether it succeeded and the families of the tasks that ran."""
    ran: list[str] = []

    def count(task):
        ran.append(task.task_family)

    luigi.Task.event_handler(luigi.Event.SUCCESS)(count)
    try:
        with luigi_options(options):
            ok = luigi.build([AllSkyPNGs()], local_scheduler=True, workers=1)
    finally:
        luigi.Task._event_callbacks[luigi.Task][luigi.Event.SUCCESS].discard(count)
    return ok, ran


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory):
    root = tmp_path_factory.mktemp("poison")
    folder, scratch = root / "inputs", root / "scratch"
    folder.mkdir()
    scratch.mkdir()
    bad = _write_corpus(folder, scratch)
    options = {"hips": {"name": NAME, "order": ORDER, "tile_width": WIDTH, "nplate": "",
                        "survey": "fits", "survey_path": str(folder), "frame": "equatorial",
                        # plate matching writes each mosaic's IMAGES table of image names
                        "background": "plate", "region": "", "executor": "local",
                        "storage": f"{root}/work"}}

    def delete_gone(task):
        if task.map == NAME:
            (folder / GONE[0]).unlink()

    SurveyIndex.event_handler(luigi.Event.SUCCESS)(delete_gone)
    handler = _Records()
    logging.getLogger("luigi-interface").addHandler(handler)
    try:
        first, ran_first = _build(options)
    finally:
        luigi.Task._event_callbacks[SurveyIndex][luigi.Event.SUCCESS].discard(delete_gone)
    base = root / "work" / NAME
    mosaics = sorted((base / "mosaics" / "subset1").glob("plate_*.fits"))
    state = {"skipped": {p.name: artifacts.read_skipped_images(p) for p in mosaics},
             "planes": {p.name: artifacts.read_image_planes(p) for p in mosaics},
             "history": {p.name: str(fits.getheader(p).get("HISTORY", "")) for p in mosaics},
             "mtime": {p.name: p.stat().st_mtime_ns for p in mosaics},
             "index": artifacts.read_survey_index(base / "survey" / "index.tbl"),
             "warnings": handler.messages[:]}
    handler.messages.clear()
    try:
        second, ran_second = _build(options)
    finally:
        logging.getLogger("luigi-interface").removeHandler(handler)
    return {"first": first, "ran_first": ran_first, "second": second,
            "ran_second": ran_second, "second_warnings": handler.messages, "bad": bad,
            "base": base, "folder": folder, "after_first": state}


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _gone_key(folder: Path) -> str:
    return f"{folder / GONE[0]}[0]"


def test_each_bad_file_is_named_exactly_in_the_rejects_with_its_reason(poisoned):
    assert poisoned["first"]
    rejects = artifacts.read_rejects(poisoned["base"] / "survey" / "rejects.tbl")
    reasons = {Path(str(p)).name: str(r) for p, r in zip(rejects["path"], rejects["reason"],
                                                          strict=True)}
    assert set(reasons) == set(poisoned["bad"]), set(reasons) ^ set(poisoned["bad"])
    for name, words in poisoned["bad"].items():
        for word in words:
            assert word in reasons[name], (name, word, reasons[name])
    # the stored table is plain ASCII, one row a line, whatever the names hold
    text = (poisoned["base"] / "survey" / "rejects.tbl").read_bytes()
    assert text.isascii() and text.count(b"\n") == 4 + len(poisoned["bad"])


def test_the_map_completes_from_the_good_images_whatever_their_names(poisoned):
    assert poisoned["first"] and poisoned["second"]
    base, folder = poisoned["base"], poisoned["folder"]
    assert (base / "HiPS" / "properties").is_file()
    index = poisoned["after_first"]["index"]
    usable = {Path(str(p)).name for p, s in zip(index["path"], index["status"], strict=True)
              if s == "ok"}
    assert usable == {*GOOD, GONE[0]}
    # every good image went into a mosaic under its own name (the IMAGES tables round-trip)
    used = {Path(key.rsplit("[", 1)[0]).name for planes in
            poisoned["after_first"]["planes"].values() for key in planes}
    assert used == set(GOOD)
    for name in GOOD:
        compared = _compare_tiles(base / "HiPS", folder / name)
        assert compared > 500, (name, compared)


def _compare_tiles(hips: Path, image: Path) -> int:
    """Tiles against bilinear interpolation of ``image`` at healpy's pixel centres (where the
    image's pixel centres surround them); returns the pixels compared."""
    with fits.open(image) as hdul:
        data, wcs = hdul[0].data.astype(np.float64), WCS(hdul[0].header)
    ny, nx = data.shape
    compared = 0
    for path in hips.glob(f"Norder{ORDER}/Dir*/Npix*.fits"):
        lon, lat = tile_pixel_lonlat(ORDER, int(path.stem[4:]), WIDTH)
        x, y = wcs.world_to_pixel(SkyCoord(lon, lat, unit="deg", frame="icrs"))
        inside = (x >= 0) & (x <= nx - 1) & (y >= 0) & (y <= ny - 1)
        if not inside.any():
            continue
        tile = fits.getdata(path).astype(np.float64)
        expected = map_coordinates(data, [y[inside], x[inside]], order=1)
        # an image alone on its plate has nothing to be matched to: its plane is zero
        np.testing.assert_allclose(tile[inside], expected, rtol=1e-6, atol=1e-3 * np.abs(
            data).max(), err_msg=f"{image.name} in {path.name}")
        compared += int(inside.sum())
    return compared


def test_an_input_deleted_after_indexing_is_a_per_image_skip_with_a_warning(poisoned):
    assert poisoned["first"]
    state, folder = poisoned["after_first"], poisoned["folder"]
    key = _gone_key(folder)
    hit = {plate: skipped[key] for plate, skipped in state["skipped"].items() if key in skipped}
    assert hit, "no mosaic recorded the deleted input"
    for plate, reason in hit.items():
        assert reason.startswith(key) and "gone since the survey was indexed" in reason
        # and in the header, whole (astropy wraps a long HISTORY over cards: spaces aside)
        words = "".join(f"skipped {artifacts.escape_text(reason)}".split())
        assert words in "".join(state["history"][plate].split()), plate
    # only the deleted input was skipped, and each plate that skipped it said so in the log
    assert {k for skipped in state["skipped"].values() for k in skipped} == {key}
    warned = [m for m in state["warnings"] if "skipped" in m and GONE[0] in m]
    assert len(warned) == len(hit), state["warnings"]


def test_the_next_run_refreshes_the_index_and_redoes_only_the_plates_that_changed(poisoned):
    assert poisoned["second"]
    base, folder, before = poisoned["base"], poisoned["folder"], poisoned["after_first"]
    index_path = base / "survey" / "index.tbl"
    index = artifacts.read_survey_index(index_path)
    assert GONE[0] not in {Path(str(p)).name for p in index["path"]}
    assert artifacts.read_survey_listing(index_path) == listing_fingerprint(folder)
    assert any("changed since" in m for m in poisoned["second_warnings"])
    assert poisoned["ran_second"].count("SurveyIndex") == 1
    # the plates that had skipped the deleted input were mosaicked again, and skip nothing now;
    # the others kept their mosaics
    touched = {plate for plate, skipped in before["skipped"].items() if skipped}
    for path in (base / "mosaics" / "subset1").glob("plate_*.fits"):
        redone = path.stat().st_mtime_ns != before["mtime"][path.name]
        assert redone == (path.name in touched), path.name
        assert artifacts.read_skipped_images(path) == {}
    assert poisoned["ran_second"].count("PlateMosaic") == len(before["mtime"])
    assert (base / "HiPS" / "properties").is_file()
