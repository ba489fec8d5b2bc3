"""The synthetic survey: truth, images, injected planes, noise, coverage."""

import healpy as hp
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from hipsluigi.geometry.frames import lonlat_to_vec
from hipsluigi.spec import MapSpec, SyntheticSpec
from hipsluigi.surveys.synthetic import SyntheticSurvey


def _spec(**kw):
    syn = {"frame_size": 48, "noise": 0.0, "backgrounds": 0.0, "sources": 100, "blobs": 40}
    syn.update(kw)
    return MapSpec(order=1, tile_width=64, nplate=5, pad=8, synthetic=SyntheticSpec(**syn))


def test_truth_is_deterministic_for_a_seed_and_differs_between_seeds():
    lon = np.linspace(0, 360, 500)
    lat = np.linspace(-80, 80, 500)
    a = SyntheticSurvey(_spec(seed=3)).sky(lonlat_to_vec(lon, lat))
    b = SyntheticSurvey(_spec(seed=3)).sky(lonlat_to_vec(lon, lat))
    c = SyntheticSurvey(_spec(seed=4)).sky(lonlat_to_vec(lon, lat))
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_image_pixels_are_truth_plus_injected_plane_at_wcslib_positions():
    """Image pixel -> sky through WCSLIB and SkyCoord (ICRS -> Galactic), not our own code."""
    survey = SyntheticSurvey(_spec(backgrounds=2.0))
    table = survey.planes_table
    for iid in (0, 7, survey.nimages // 2, survey.nimages - 1):
        wcs = survey.image_wcs(iid)
        data = survey.render(iid)
        ys, xs = np.mgrid[0:48, 0:48]
        ra, dec = wcs.wcs_pix2world(xs, ys, 0)
        gal = SkyCoord(ra, dec, unit="deg", frame="icrs").galactic
        truth = survey.sky(lonlat_to_vec(gal.l.deg, gal.b.deg))
        row = table[iid]
        plane = row["c"] + row["a"] * (xs - row["x0"]) + row["b"] * (ys - row["y0"])
        assert np.allclose(data - truth, plane, atol=1e-8)
        assert row["c"] != 0


def test_injected_offsets_have_the_configured_spread_and_noise_its_sigma():
    survey = SyntheticSurvey(_spec(backgrounds=1.5, noise=0.2))
    offsets = survey.planes_table["c"]
    assert np.std(offsets) == pytest.approx(1.5, rel=0.15)
    iid = 11
    wcs = survey.image_wcs(iid)
    ys, xs = np.mgrid[0:48, 0:48]
    ra, dec = wcs.wcs_pix2world(xs, ys, 0)
    gal = SkyCoord(ra, dec, unit="deg", frame="icrs").galactic
    c, a, b = survey.planes(iid)
    residual = survey.render(iid) - survey.sky(lonlat_to_vec(gal.l.deg, gal.b.deg)) - (
        c + a * (xs - 23.5) + b * (ys - 23.5))
    assert np.std(residual) == pytest.approx(0.2, rel=0.1)
    assert abs(np.mean(residual)) < 0.05


def test_images_cover_every_point_of_the_sky():
    survey = SyntheticSurvey(_spec())
    nside = 32
    lon, lat = hp.pix2ang(nside, np.arange(12 * nside**2), lonlat=True)
    icrs = SkyCoord(lon, lat, unit="deg", frame="galactic").icrs
    covered = np.zeros(len(lon), dtype=bool)
    for iid in range(survey.nimages):
        x, y = survey.image_wcs(iid).wcs_world2pix(icrs.ra.deg, icrs.dec.deg, 0)
        covered |= (x >= -0.5) & (x <= 47.5) & (y >= -0.5) & (y <= 47.5)
    assert covered.all()


def test_images_touching_returns_exactly_the_images_within_reach():
    survey = SyntheticSurvey(_spec())
    rng = np.random.default_rng(2)
    lon, lat = survey.image_lonlat(np.arange(survey.nimages))
    centres = lonlat_to_vec(lon, lat) @ survey.to_map.T
    for _ in range(20):
        v = rng.normal(size=3)
        v /= np.linalg.norm(v)
        radius = rng.uniform(0.01, 0.8)
        got = set(survey.image_ids_touching(v, radius).tolist())
        angle = np.arccos(np.clip(centres @ v, -1, 1))
        assert got == set(np.flatnonzero(angle <= radius + survey.image_radius).tolist())


def test_point_sources_have_the_configured_width():
    survey = SyntheticSurvey(_spec(sources=5, blobs=0))
    sky = survey.sky
    centre = sky.centres[0]
    sigma = sky.sigmas[0]
    assert np.degrees(sigma) * 2.3548 == pytest.approx(2.5 * survey.pixel_scale, rel=1e-6)
    # the value one sigma away is exp(-1/2) of the peak above the background
    east = np.cross([0, 0, 1.0], centre)
    east /= np.linalg.norm(east)
    off = np.cos(sigma) * centre + np.sin(sigma) * east
    far = np.cos(20 * sigma) * centre + np.sin(20 * sigma) * east
    base = sky(far[None])[0]
    ratio = (sky(off[None])[0] - base) / (sky(centre[None])[0] - base)
    assert ratio == pytest.approx(np.exp(-0.5), rel=0.01)
