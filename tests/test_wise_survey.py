"""``survey = wise`` end to end, against the loopback SIA v2 server and image server
(tests/sia_server.py): a small region's plates built from fixture Atlas-format images, checked
against reproject; a download cut half-way resumed; images answering HTTP 500 or an HTML page
retried, then reported by name without stopping the map; a second run downloading nothing.

The tiles are compared with ``reproject.reproject_to_healpix`` (bilinear) of each fixture image
at the healpy centres of the tiles' pixels, on the pixels only one usable image covers.
"""

import json
import warnings
from pathlib import Path

import healpy as hp
import luigi
import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from reproject import reproject_to_healpix

from hipsluigi import AllSkyPNGs
from hipsluigi.metadata.properties import parse_properties
from hipsluigi.pipeline.tasks import PlateMosaic
from hipsluigi.surveys import downloads
from hipsluigi.testing import luigi_options, tile_pixel_lonlat
from tests.sia_server import Faults, SiaServer, make_atlas_image

ORDER, WIDTH = 3, 64
NSIDE = WIDTH << ORDER
# Six overlapping W1 tiles, 1.92 degrees square, in a 3 x 2 block around (150, 2).
CENTRES = [(150.0 + dra, 2.0 + ddec) for dra in (-1.5, 0.0, 1.5) for ddec in (-0.75, 0.75)]
REGION = "cone 150.0 2.0 2.2 icrs"
# Which of them answer a cut body once, HTTP 500 or an HTML page.
CUT, FAILING, HTML = 0, 3, 4


@pytest.fixture(scope="module")
def atlas(tmp_path_factory):
    folder = tmp_path_factory.mktemp("atlas")
    return [make_atlas_image(folder, 1, ra, dec) for ra, dec in CENTRES]


@pytest.fixture(scope="module")
def usable(atlas):
    """The images that download (all but ``FAILING`` and ``HTML``) and their expectations."""
    good = [path for k, path in enumerate(atlas) if k not in (FAILING, HTML)]
    return good, _expected(good)


@pytest.fixture
def quick_retries(monkeypatch):
    # The pipeline's caches take the default backoff; seconds of waiting are not under test.
    monkeypatch.setattr(downloads, "DEFAULT_BACKOFF", 0.01)


def _build(units, name, server, background="none", task=None):
    options = {"hips": {"name": name, "order": ORDER, "tile_width": WIDTH, "nplate": "",
                        "survey": "wise", "band": 1, "wise_service": server.sia_url,
                        "frame": "equatorial", "background": background, "region": REGION,
                        "executor": "local", "storage": ",".join(str(u) for u in units)}}
    with luigi_options(options):
        ok = luigi.build([task or AllSkyPNGs()], local_scheduler=True, workers=2)
    return ok, Path(units[0]) / name


def _expected(images):
    """Per image, reproject_to_healpix (bilinear, ICRS, nested) at Nside ``NSIDE``."""
    values = []
    for path in images:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data, footprint = reproject_to_healpix((fits.getdata(path), WCS(fits.getheader(path))),
                                                   "icrs", nside=NSIDE, nested=True,
                                                   order="bilinear")
        values.append(np.where(footprint > 0, data, np.nan))
    return np.array(values)


def _compare(hips: Path, expected: np.ndarray) -> tuple[int, int, float, int]:
    """Tiles against the single-image expectations: (pixels one image covers, pixels compared,
    max |difference| over the peak, pixels one image covers that the tiles leave blank)."""
    covered = np.isfinite(expected).sum(axis=0)
    single = np.where(covered == 1, np.nanmax(np.where(covered == 1, expected, -np.inf),
                                              axis=0), np.nan)
    scale = np.nanmax(np.abs(expected))
    compared, worst, blank = 0, 0.0, 0
    for path in hips.glob(f"Norder{ORDER}/Dir*/Npix*.fits"):
        lon, lat = tile_pixel_lonlat(ORDER, int(path.stem[4:]), WIDTH)
        want = single[hp.ang2pix(NSIDE, lon, lat, nest=True, lonlat=True)]
        tile = fits.getdata(path).astype(float)
        both = np.isfinite(tile) & np.isfinite(want)
        compared += int(both.sum())
        blank += int((np.isfinite(want) & ~np.isfinite(tile)).sum())
        if both.any():
            worst = max(worst, float(np.abs(tile[both] - want[both]).max() / scale))
    return int((covered == 1).sum()), compared, worst, blank


def _histories(units, name) -> str:
    paths = [p for unit in units for p in (Path(unit) / name).rglob("mosaics/**/*.fits")]
    return " ".join(str(h) for path in paths for h in fits.getheader(path).get("HISTORY", []))


def test_wise_map_from_the_loopback_archive(atlas, usable, tmp_path, quick_retries):
    units = [tmp_path / "unit0", tmp_path / "unit1"]
    cut, failing, html = atlas[CUT], atlas[FAILING], atlas[HTML]
    good, expected = usable
    with SiaServer(atlas) as server:
        server.faults[cut.name] = Faults(cut_after=cut.stat().st_size // 2)
        server.faults[failing.name] = Faults(status_500=10**6)
        server.faults[html.name] = Faults(html=10**6)
        ok, base = _build(units, "w1", server)
        assert ok  # images that cannot be fetched never stop the rest of the sky

        # The tiles: reproject of the usable images, on the pixels one of them covers.
        single, compared, worst, blank = _compare(base / "HiPS", expected)
        print(f"wise: {compared} of {single} pixels covered by one image compared, max "
              f"|difference| {worst:.1e} of the peak, {blank} blank")
        assert compared == single > 500 and blank == 0 and worst < 1e-5

        # The cut download was resumed with a Range request, into the archive's bytes.
        ranges = [h.get("Range") for h in server.headers_for(cut.name)]
        assert ranges[0] is None and f"bytes={cut.stat().st_size // 2}-" in ranges[1:]
        cached = [p for u in units for p in (u / "_downloads" / "wise_allwise").glob("*.fits")]
        assert sorted(p.name for p in cached) == sorted(p.name for p in good)
        for path in cached:
            assert path.read_bytes() == next(g for g in good if g.name == path.name).read_bytes()

        # Retried, then reported by name with the reason in the plate mosaics.
        attempts = downloads.DEFAULT_RETRIES + 1
        assert server.file_requests(failing.name) % attempts == 0
        assert server.file_requests(html.name) % attempts == 0
        histories = _histories(units, "w1")
        assert f"{failing.name}: download failed (HTTP 500" in histories
        assert f"{html.name}: download failed (an HTML" in histories
        assert json.loads((base / "survey" / "units.json").read_text()) == {
            "BUNIT": "DN", "MAGZP": 20.5}

        # The properties say what W1 is; the progenitor index names the archive's images.
        props = parse_properties((base / "HiPS" / "properties").read_text())
        assert props["obs_regime"] == "Infrared" and "W1" in props["obs_description"]
        assert float(props["em_min"]) < 3.4e-6 < float(props["em_max"])
        assert float(props["s_pixel_scale"]) == pytest.approx(1.375 / 3600)
        named = set()
        for path in (base / "HiPS" / "HpxFinder").glob("Norder*/Dir*/Npix*"):
            for line in path.read_text().splitlines():
                record = json.loads(line)
                assert record["stc"].startswith("CIRCLE ICRS ")
                assert record["path"].startswith(server.base)
                named.add(record["name"])
        # every usable image and only those (the ones that failed are in the index too:
        # they were usable when indexed; the mosaics name them as skipped)
        assert {p.name for p in good} <= named <= {p.name for p in good} | {
            failing.name, html.name, cut.name}

        # A second run: nothing to do, nothing asked of the archive.
        before = dict(server.log.counts)
        ok, _ = _build(units, "w1", server)
        assert ok and dict(server.log.counts) == before

        # A plate mosaic made again (as another map on the same units would) takes the
        # usable images from the cache; the ones that failed are tried again.
        server.faults.clear()
        mosaics = sorted((base / "mosaics").rglob("plate_*.fits"))
        i, j = (int(k) for k in mosaics[0].stem.split("_")[1:])
        mosaics[0].unlink()
        ok, _ = _build(units, "w1", server, task=PlateMosaic(map="w1", order=ORDER, i=i, j=j))
        assert ok
        header = fits.getheader(mosaics[0])
        assert header["NSKIPPED"] == 0 and header["NIMAGES"] > 0
        for path in good:
            assert server.file_requests(path.name) == _requests(before, path.name)
        assert server.file_requests(failing.name) > _requests(before, failing.name)
        assert server.file_requests(html.name) > _requests(before, html.name)


def _requests(counts, name):
    return sum(n for path, n in counts.items() if path.rsplit("/", 1)[-1] == name)


def test_wise_map_with_global_background_matching(atlas, usable, tmp_path, quick_retries):
    good, expected = usable
    with SiaServer(atlas) as server:
        server.faults[atlas[FAILING].name] = Faults(status_500=10**6)
        server.faults[atlas[HTML].name] = Faults(html=10**6)
        ok, base = _build([tmp_path / "unit0"], "w1global", server, background="global")
    assert ok
    # The fixture tiles agree where they overlap: matching has nothing to correct.
    single, compared, worst, blank = _compare(base / "HiPS", expected)
    print(f"wise, global background: {compared} of {single} pixels compared, max "
          f"|difference| {worst:.1e} of the peak")
    assert compared == single and blank == 0 and worst < 1e-4
