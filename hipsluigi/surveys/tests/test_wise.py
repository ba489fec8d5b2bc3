"""``survey = wise``: the Atlas index from an SIA v2 answer, and the survey serving it, against
the loopback archive server (tests/sia_server.py). Positions are checked with astropy."""

import healpy as hp
import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS

from hipsluigi.storage.artifacts import read_ipac_table, write_ipac_table
from hipsluigi.surveys.downloads import DownloadCache
from hipsluigi.surveys.wise import (
    ArchiveQueryError,
    WiseSurvey,
    atlas_index,
    query_circles,
    split_circle,
)
from tests.sia_server import Faults, SiaServer, make_atlas_image

# A 2 x 2 block of overlapping W1 tiles, and W2 tiles at the same places.
CENTRES = [(150.0 + dra, 2.0 + ddec) for dra in (-0.75, 0.75) for ddec in (-0.75, 0.75)]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("atlas")
    images = [make_atlas_image(folder, band, ra, dec) for band in (1, 2) for ra, dec in CENTRES]
    with SiaServer(images) as served:
        yield served


def _w1(server):
    return {f.path.name: f for f in server.fixtures if f.band == 1}


def _angle(lon1, lat1, lon2, lat2):
    """Angles between positions (degrees in, radians out), by astropy."""
    return SkyCoord(lon1, lat1, unit="deg").separation(SkyCoord(lon2, lat2, unit="deg")).rad


def test_query_circles_cover_every_cone_with_few_queries():
    rng = np.random.default_rng(3)
    # A whole sky of small plates: one query per coarse cell at most.
    ra, dec = hp.pix2ang(64, np.arange(hp.nside2npix(64)), lonlat=True)
    small = [(float(a), float(d), 0.6) for a, d in zip(ra, dec, strict=True)]
    assert len(query_circles(small)) <= hp.nside2npix(4)
    # Large cones are covered by coarse cells; a small lone cone stays one small query.
    big = [(float(a), float(d), 40.0) for a, d in zip(rng.uniform(0, 360, 12),
                                                      rng.uniform(-90, 90, 12), strict=True)]
    assert len(query_circles(big)) <= hp.nside2npix(4)
    assert query_circles([(150.0, 2.0, 1.5)]) == [pytest.approx((150.0, 2.0, 1.5))]
    for cones in (small[::97], big, small[:40] + big[:2]):
        circles = np.array(query_circles(cones))
        query_vecs = hp.ang2vec(circles[:, 0], circles[:, 1], lonlat=True)
        # Points on every cone's rim (astropy) and its centre lie in some query circle.
        ra, dec, radius = np.array(cones).T
        rim = SkyCoord(ra[:, None], dec[:, None], unit="deg").directional_offset_by(
            np.arange(0, 360, 15)[None, :] * u.deg, radius[:, None] * u.deg)
        points = hp.ang2vec(np.append(rim.ra.deg, ra), np.append(rim.dec.deg, dec),
                            lonlat=True)
        angles = np.arccos(np.clip(points @ query_vecs.T, -1, 1))
        assert (angles <= np.radians(circles[:, 2]) + 1e-9).any(axis=1).all()


def test_atlas_index_keeps_intensity_images_of_the_band_once_with_caps_holding_them(server):
    before = server.sia_requests()
    # A wide cone is queried as several overlapping circles: each answer repeats the images.
    index = atlas_index(server.sia_url, "wise_allwise", 1, [(150.0, 2.0, 20.0)], "galactic")
    assert server.sia_requests() - before > 1
    w1 = _w1(server)
    assert sorted(index["name"]) == sorted(w1)                  # W1 intensity images, once each
    assert list(index["status"]) == ["ok"] * len(w1)
    assert set(index["bunit"]) == {"DN"} and set(index["magzp"]) == {20.5}
    for row in index:
        fixture = w1[row["name"]]
        assert row["url"] == server.base + fixture.url_path
        assert (row["naxis1"], row["naxis2"]) == (fixture.header["NAXIS1"],
                                                  fixture.header["NAXIS2"])
        # The cap (galactic) holds the image's outer corners and edge midpoints (astropy).
        wcs = WCS(fixture.header)
        n = fixture.header["NAXIS1"]
        x = np.array([-0.5, n - 0.5, n - 0.5, -0.5, n / 2, n / 2, -0.5, n - 0.5])
        y = np.array([-0.5, -0.5, n - 0.5, n - 0.5, -0.5, n - 0.5, n / 2, n / 2])
        edge = wcs.pixel_to_world(x, y).galactic
        distance = _angle(edge.l.deg, edge.b.deg, row["lon"], row["lat"])
        assert distance.max() <= row["radius"]
        # ... and is not much larger than the image (1.92 degrees square).
        assert row["radius"] < np.radians(1.92 / np.sqrt(2) * 1.1)


def test_the_service_answers_other_files_and_bands_that_the_index_leaves_out(server):
    import pyvo

    answer = pyvo.dal.SIA2Service(server.sia_url, check_baseurl=False).search(
        pos=(150.0, 2.0, 3.0), band=3.4e-6, collection="wise_allwise").to_table()
    subtypes = set(answer["dataproduct_subtype"])
    assert subtypes == {"science", "uncertainty", "coverage", "mask"}
    index = atlas_index(server.sia_url, "wise_allwise", 1, [(150.0, 2.0, 3.0)], "equatorial")
    assert len(answer) == 4 * len(index) == 16
    assert all("-w1-int-" in name for name in index["name"])
    w2 = atlas_index(server.sia_url, "wise_allwise", 2, [(150.0, 2.0, 3.0)], "equatorial")
    assert all("-w2-int-" in name for name in w2["name"]) and len(w2) == 4
    assert set(w2["magzp"]) == {19.5}
    # Nothing near the pole: an empty index, not an error.
    assert len(atlas_index(server.sia_url, "wise_allwise", 1, [(0.0, 89.0, 1.0)],
                           "galactic")) == 0


def test_a_failing_service_is_retried_then_reported_naming_it_and_the_query(server):
    server.sia_failures = 1
    index = atlas_index(server.sia_url, "wise_allwise", 1, [(150.0, 2.0, 3.0)], "galactic",
                        backoff=0.01)
    assert len(index) == 4 and server.sia_failures == 0
    server.sia_failures = 100
    before = server.sia_requests()
    try:
        with pytest.raises(ArchiveQueryError) as err:
            atlas_index(server.sia_url, "wise_allwise", 1, [(150.0, 2.0, 3.0)], "galactic",
                        retries=2, backoff=0.01)
    finally:
        server.sia_failures = 0
    message = str(err.value)
    assert server.sia_url in message and "COLLECTION=wise_allwise" in message
    assert "POS=CIRCLE 150.000000 2.000000 3.000000" in message and "500" in message
    assert server.sia_requests() - before == 3


def test_split_circle_covers_the_circle_with_seven_halves():
    for radius in (0.3, 14.6, 90.0):
        for ra, dec in ((150.0, 2.0), (10.0, 89.9), (0.0, -60.0)):
            parts = np.array(split_circle((ra, dec, radius)))
            assert len(parts) == 7 and (parts[:, 2] <= 0.55 * radius).all()
            # A dense polar grid over the disc (astropy offsets), each point in some part.
            fraction = np.linspace(0, 1, 41)[:, None]
            angle = np.linspace(0, 360, 361)[None, :] * np.ones_like(fraction)
            points = SkyCoord(ra, dec, unit="deg").directional_offset_by(
                angle * u.deg, fraction * radius * u.deg)
            vecs = hp.ang2vec(points.ra.deg.ravel(), points.dec.deg.ravel(), lonlat=True)
            parts_vec = hp.ang2vec(parts[:, 0], parts[:, 1], lonlat=True)
            angles = np.degrees(np.arccos(np.clip(vecs @ parts_vec.T, -1, 1)))
            assert (angles <= parts[:, 2]).any(axis=1).all()


def test_an_answer_cut_short_is_asked_again_in_smaller_circles(tmp_path):
    # Three W1 tiles 4 degrees apart: an answer holds 4 files per tile.
    images = [make_atlas_image(tmp_path, 1, 150.0 + dra, 2.0) for dra in (-4.0, 0.0, 4.0)]
    with SiaServer(images) as server:
        server.max_rows = 8
        index = atlas_index(server.sia_url, "wise_allwise", 1, [(150.0, 2.0, 5.5)],
                            "equatorial")
        assert sorted(index["name"]) == sorted(path.name for path in images)
        assert server.sia_requests() > 1
        # An answer that no circle makes short enough: an error, not a silent loss.
        server.max_rows = 3
        with pytest.raises(ArchiveQueryError, match="OVERFLOW"):
            atlas_index(server.sia_url, "wise_allwise", 1, [(150.0, 2.0, 0.5)], "equatorial")


def test_an_unreachable_service_is_reported_naming_it():
    with pytest.raises(ArchiveQueryError, match="127.0.0.1:9/SIA"):
        atlas_index("http://127.0.0.1:9/SIA", "wise_allwise", 1, [(150.0, 2.0, 3.0)],
                    "galactic", retries=1, backoff=0.01, timeout=5)


def test_survey_downloads_the_images_a_cap_touches_and_reports_failed_ones(server, tmp_path):
    index = atlas_index(server.sia_url, "wise_allwise", 1, [(150.0, 2.0, 3.0)], "galactic")
    # As the pipeline does: the index goes through its IPAC table.
    write_ipac_table(tmp_path / "index.tbl", index)
    index = read_ipac_table(tmp_path / "index.tbl")
    w1 = _w1(server)
    broken = sorted(w1)[0]
    server.faults[broken] = Faults(status_500=100)
    try:
        cache = DownloadCache([tmp_path / "u0", tmp_path / "u1"], retries=1, backoff=0.01)
        survey = WiseSurvey(index, "galactic", cache)
        # A cap around the tile at (150.75, 2.75) only: 1 degree away from the others' centres.
        here = SkyCoord(150.75, 2.75, unit="deg").galactic
        centre = hp.ang2vec(here.l.deg, here.b.deg, lonlat=True)
        near = survey.images_touching(centre, np.radians(0.1))
        assert [image.key for image in near] == ["1508p028_ac51-w1-int-3.fits"]
        everything = survey.images_touching(centre, np.radians(5))
    finally:
        server.faults.pop(broken)
    assert sorted(image.key for image in everything) == sorted(set(w1) - {broken})
    assert list(survey.skipped) == [broken]
    assert survey.skipped[broken].startswith(broken) and "HTTP 500" in survey.skipped[broken]
    for image in everything:
        fixture = w1[image.key]
        np.testing.assert_array_equal(image.load(), fits.getdata(fixture.path))
        assert image.shape == fits.getdata(fixture.path).shape
    assert survey.units() == {"BUNIT": "DN", "MAGZP": 20.5}
    assert survey.image_units[everything[0].key] == {"BUNIT": "DN", "MAGZP": 20.5}


def test_survey_skips_an_image_whose_header_states_another_unit(tmp_path):
    folder = tmp_path / "atlas"
    folder.mkdir()
    good = make_atlas_image(folder, 1, 150.0, 2.0)
    odd = make_atlas_image(folder, 1, 151.0, 2.0)
    with fits.open(odd, mode="update") as hdul:
        hdul[0].header["BUNIT"] = "MJy/sr"
    with SiaServer([good, odd]) as server:
        index = atlas_index(server.sia_url, "wise_allwise", 1, [(150.5, 2.0, 2.0)],
                            "equatorial")
        survey = WiseSurvey(index, "equatorial", DownloadCache([tmp_path / "u0"]))
        images = survey.images_touching(hp.ang2vec(150.5, 2.0, lonlat=True), np.radians(2))
    assert [image.key for image in images] == [good.name]
    assert "MJy/sr" in survey.skipped[odd.name] and "DN" in survey.skipped[odd.name]
