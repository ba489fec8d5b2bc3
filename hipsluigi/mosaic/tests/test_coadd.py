"""Plate mosaics: agreement with reproject, the +/-180 degree wrap, unusable frames."""

import numpy as np
import pytest
from astropy.wcs import WCS
from reproject import reproject_interp

from hipsluigi.config import MapSpec, SyntheticSpec
from hipsluigi.geometry.frames import lonlat_to_vec
from hipsluigi.geometry.plates import PlateGrid
from hipsluigi.geometry.sky import plate_cap, plate_pixel_vectors
from hipsluigi.mosaic.coadd import bilinear_sample, mosaic_plate
from hipsluigi.surveys.base import BadFrameError, Frame
from hipsluigi.surveys.synthetic import SyntheticSurvey


def _tan_frame(key, lon, lat, size, scale, data, frame="galactic"):
    w = WCS(naxis=2)
    w.wcs.ctype = ["GLON-TAN", "GLAT-TAN"] if frame == "galactic" else ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [lon, lat]
    w.wcs.crpix = [(size + 1) / 2, (size + 1) / 2]
    w.wcs.cdelt = [-scale, scale]
    centre = lonlat_to_vec(lon, lat)
    if frame != "galactic":
        from astropy.coordinates import SkyCoord
        g = SkyCoord(lon, lat, unit="deg", frame="icrs").galactic
        centre = lonlat_to_vec(g.l.deg, g.b.deg)
    radius = np.radians(scale * size)
    return Frame(key, w, (size, size), centre, radius, loader=lambda: data)


def test_interp_equals_reproject_interp_mean_of_frames():
    grid = PlateGrid(2, 16, 5, 4)  # plate (2, 2) is face 4, around l = 0, b = 0
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:40, 0:40]
    frames = [
        _tan_frame("a", 3.0, 2.0, 40, 0.6, np.sin(xx / 5.0) + yy / 10.0),
        _tan_frame("b", 355.0, -4.0, 40, 0.5, rng.normal(size=(40, 40))),
        _tan_frame("c", 266.4, -28.9, 40, 0.7, np.cos(yy / 3.0) * 2, frame="icrs"),
    ]
    result = mosaic_plate(grid, 2, 2, frames, "galactic")
    plate_wcs = WCS(grid.plate_header(2, 2, "galactic"))
    shape = grid.shape(padded=True)
    stack = np.array([reproject_interp((f.load(), f.wcs), plate_wcs, shape_out=shape)[0]
                      for f in frames])
    finite = np.isfinite(stack)
    expected = np.where(finite.any(0), np.nansum(stack, 0) / np.maximum(finite.sum(0), 1), np.nan)
    assert np.array_equal(np.isnan(result.image), np.isnan(expected))
    assert np.array_equal(result.count, finite.sum(0))
    assert np.allclose(result.image, expected, rtol=1e-5, atol=1e-5, equal_nan=True)
    assert sorted(result.used) == ["a", "b", "c"] and not result.skipped


@pytest.mark.parametrize("method", ["interp", "reproject_interp"])
def test_plate_in_cell_00_is_full_across_the_wrap(method):
    spec = MapSpec(order=1, tile_width=64, nplate=5, pad=8,
                   synthetic=SyntheticSpec(noise=0, backgrounds=0, frame_size=64, sources=0))
    survey = SyntheticSurvey(spec)
    grid = spec.grid
    rows, cols = grid.shape(padded=True)
    vec = plate_pixel_vectors(grid, 0, 0, slice(0, rows), slice(0, cols))
    sky = np.isfinite(vec[..., 0])
    frames = survey.frames_touching(*plate_cap(grid, 0, 0))
    result = mosaic_plate(grid, 0, 0, frames, "galactic", method=method)
    assert np.isfinite(result.image[sky]).all()
    assert np.isnan(result.image[~sky]).all()
    truth = survey.sky(vec)
    rms = np.sqrt(np.mean(truth[sky] ** 2))
    assert np.percentile(np.abs(result.image[sky] - truth[sky]), 95) < 0.01 * rms


def test_unusable_frames_are_skipped_with_their_name_and_reason():
    grid = PlateGrid(2, 16, 5, 4)
    good = _tan_frame("good.fits", 1.0, 1.0, 30, 0.5, np.ones((30, 30)))

    def truncated():
        raise OSError("good.fits: file truncated, 2880 bytes of 8640")

    broken = _tan_frame("truncated.fits", 2.0, 2.0, 30, 0.5, None)
    broken.loader = truncated
    blank = _tan_frame("blank.fits", 3.0, 3.0, 30, 0.5, np.full((30, 30), np.nan))
    result = mosaic_plate(grid, 2, 2, [good, broken, blank], "galactic")
    assert result.used == ["good.fits"]
    assert set(result.skipped) == {"truncated.fits", "blank.fits"}
    assert "truncated" in result.skipped["truncated.fits"]
    assert "blank.fits" in result.skipped["blank.fits"]
    assert "blank" in result.skipped["blank.fits"]
    covered = result.count > 0
    assert covered.any() and np.all(result.image[covered] == 1.0)


def test_frame_load_reports_shape_mismatch():
    frame = _tan_frame("odd.fits", 0.0, 0.0, 30, 0.5, np.ones((10, 30)))
    with pytest.raises(BadFrameError, match="odd.fits"):
        frame.load()


def test_bilinear_sample_matches_hand_values_and_edge_rules():
    data = np.array([[0.0, 1.0, 2.0], [10.0, 11.0, 12.0]])
    inside, values = bilinear_sample(data, np.array([0.5, 1.25, -0.4, -0.6, 2.4, 2.6]),
                                     np.array([0.5, 0.0, 0.0, 0.0, 1.4, 1.0]))
    assert list(inside) == [True, True, True, False, True, False]
    assert values == pytest.approx([5.5, 1.25, 0.0, 12.0])
