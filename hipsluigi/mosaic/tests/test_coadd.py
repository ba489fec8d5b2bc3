"""Plate mosaics: agreement with reproject, the +/-180 degree wrap, unusable images, engines."""

import numpy as np
import pytest
from astropy.wcs import WCS
from reproject import reproject_interp

from hipsluigi.geometry.frames import lonlat_to_vec
from hipsluigi.geometry.plates import PlateGrid
from hipsluigi.geometry.sky import plate_cap, plate_pixel_vectors
from hipsluigi.mosaic.coadd import mosaic_plate
from hipsluigi.mosaic.engines import ENGINES, bilinear_sample, engine_for
from hipsluigi.mosaic.images import ImageCache
from hipsluigi.spec import MapSpec, SyntheticSpec
from hipsluigi.surveys.base import BadImageError, SurveyImage
from hipsluigi.surveys.synthetic import SyntheticSurvey


def _tan_image(key, lon, lat, size, scale, data, frame="galactic"):
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
    return SurveyImage(key, w, (size, size), centre, radius, loader=lambda: data)


def test_interp_equals_reproject_interp_mean_of_images():
    grid = PlateGrid(2, 16, 5, 4)  # plate (2, 2) is face 4, around l = 0, b = 0
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:40, 0:40]
    images = [
        _tan_image("a", 3.0, 2.0, 40, 0.6, np.sin(xx / 5.0) + yy / 10.0),
        _tan_image("b", 355.0, -4.0, 40, 0.5, rng.normal(size=(40, 40))),
        _tan_image("c", 266.4, -28.9, 40, 0.7, np.cos(yy / 3.0) * 2, frame="icrs"),
    ]
    result = mosaic_plate(grid, 2, 2, images, "galactic")
    plate_wcs = WCS(grid.plate_header(2, 2, "galactic"))
    shape = grid.shape(padded=True)
    stack = np.array([reproject_interp((f.load(), f.wcs), plate_wcs, shape_out=shape)[0]
                      for f in images])
    finite = np.isfinite(stack)
    expected = np.where(finite.any(0), np.nansum(stack, 0) / np.maximum(finite.sum(0), 1), np.nan)
    assert np.array_equal(np.isnan(result.data), np.isnan(expected))
    assert np.array_equal(result.count, finite.sum(0))
    assert np.allclose(result.data, expected, rtol=1e-5, atol=1e-5, equal_nan=True)
    assert sorted(result.used_images) == ["a", "b", "c"] and not result.skipped_images


@pytest.mark.parametrize("engine", ["interp", "reproject_interp"])
def test_plate_in_cell_00_is_full_across_the_wrap(engine):
    spec = MapSpec(order=1, tile_width=64, nplate=5, pad=8,
                   synthetic=SyntheticSpec(noise=0, backgrounds=0, frame_size=64, sources=0))
    survey = SyntheticSurvey(spec)
    grid = spec.grid
    rows, cols = grid.shape(padded=True)
    vec = plate_pixel_vectors(grid, 0, 0, slice(0, rows), slice(0, cols))
    sky = np.isfinite(vec[..., 0])
    images = survey.images_touching(*plate_cap(grid, 0, 0))
    result = mosaic_plate(grid, 0, 0, images, "galactic", engine=engine)
    assert np.isfinite(result.data[sky]).all()
    assert np.isnan(result.data[~sky]).all()
    truth = survey.sky(vec)
    rms = np.sqrt(np.mean(truth[sky] ** 2))
    assert np.percentile(np.abs(result.data[sky] - truth[sky]), 95) < 0.01 * rms


def test_unusable_images_are_skipped_with_their_name_and_reason():
    grid = PlateGrid(2, 16, 5, 4)
    good = _tan_image("good.fits", 1.0, 1.0, 30, 0.5, np.ones((30, 30)))

    def truncated():
        raise OSError("good.fits: file truncated, 2880 bytes of 8640")

    broken = _tan_image("truncated.fits", 2.0, 2.0, 30, 0.5, None)
    broken.loader = truncated
    blank = _tan_image("blank.fits", 3.0, 3.0, 30, 0.5, np.full((30, 30), np.nan))
    result = mosaic_plate(grid, 2, 2, [good, broken, blank], "galactic")
    assert result.used_images == ["good.fits"]
    assert set(result.skipped_images) == {"truncated.fits", "blank.fits"}
    assert "truncated" in result.skipped_images["truncated.fits"]
    assert "blank.fits" in result.skipped_images["blank.fits"]
    assert "blank" in result.skipped_images["blank.fits"]
    covered = result.count > 0
    assert covered.any() and np.all(result.data[covered] == 1.0)


def test_image_load_reports_shape_mismatch():
    image = _tan_image("odd.fits", 0.0, 0.0, 30, 0.5, np.ones((10, 30)))
    with pytest.raises(BadImageError, match="odd.fits"):
        image.load()


def test_bilinear_sample_matches_hand_values_and_edge_rules():
    data = np.array([[0.0, 1.0, 2.0], [10.0, 11.0, 12.0]])
    inside, values = bilinear_sample(data, np.array([0.5, 1.25, -0.4, -0.6, 2.4, 2.6]),
                                     np.array([0.5, 0.0, 0.0, 0.0, 1.4, 1.0]))
    assert list(inside) == [True, True, True, False, True, False]
    assert values == pytest.approx([5.5, 1.25, 0.0, 12.0])


def test_engines_are_chosen_by_name_and_unknown_names_are_refused():
    assert set(ENGINES) == {"interp", "reproject_interp", "reproject_exact", "reproject_adaptive"}
    assert all(engine_for(name).name == name for name in ENGINES)
    with pytest.raises(ValueError, match="reproject must be one of"):
        engine_for("nearest")
    with pytest.raises(ValueError, match="nearest"):
        mosaic_plate(PlateGrid(2, 16, 5, 4), 2, 2, [], "galactic", engine="nearest")


def test_an_engine_object_gets_every_block_and_image_of_the_walk():
    """The coadd loop only walks; an engine object given in place of a name does the rest."""
    grid = PlateGrid(2, 16, 5, 4)
    images = [_tan_image("a", 3.0, 2.0, 40, 0.6, np.ones((40, 40))),
              _tan_image("b", 355.0, -4.0, 40, 0.5, np.full((40, 40), 3.0))]
    calls = []

    class Recorder:
        name = "recorder"

        def start(self, plate, cache):
            interp = engine_for("interp").start(plate, cache)

            class Coadd:
                def begin_block(self, *args):
                    calls.append("block")
                    interp.begin_block(*args)

                def add(self, k, data, x, y):
                    calls.append(images[k].key)
                    interp.add(k, data, x, y)

                def end_block(self):
                    interp.end_block()

                def image_done(self, k):
                    calls.append(f"done {images[k].key}")
                    interp.image_done(k)

                def finish(self):
                    return interp.finish()

            return Coadd()

    got = mosaic_plate(grid, 2, 2, images, "galactic", engine=Recorder(), block=8)
    want = mosaic_plate(grid, 2, 2, images, "galactic", block=8)
    assert got.data.tobytes() == want.data.tobytes() and np.array_equal(got.count, want.count)
    assert calls.count("block") > 1 and {"a", "b", "done a", "done b"} <= set(calls)


def test_matched_images_get_back_their_offsets_up_to_one_constant():
    grid = PlateGrid(2, 16, 5, 4)  # plate (2, 2) is face 4, around l = 0, b = 0
    rng = np.random.default_rng(8)
    offsets = {f"{lon},{lat}": rng.normal() for lon in (-6, 0, 6) for lat in (-6, 0, 6)}
    images = [_tan_image(key, float(key.split(",")[0]) % 360, float(key.split(",")[1]), 40,
                         0.2, np.full((40, 40), 5.0 + offset))  # 8 degrees, 2 overlapping
              for key, offset in offsets.items()]
    result = mosaic_plate(grid, 2, 2, images, "galactic", match_images=True)
    got = np.array([result.image_planes[key] for key in offsets])
    want = np.array(list(offsets.values()))
    assert np.allclose(got[:, 0] - got[:, 0].mean(), want - want.mean(), atol=1e-6)
    assert abs(got[:, 0].sum()) < 1e-6 and np.abs(got[:, 1:]).max() < 1e-6
    covered = result.count > 0  # every image now reads 5 + the mean offset
    assert np.allclose(result.data[covered], 5.0 + want.mean(), atol=1e-5)


def test_each_image_is_read_once_when_the_plate_holds_more_images_than_the_cache(monkeypatch):
    """An image's pixels are freed after the last band of blocks that uses it, so a cache
    that holds a band's images but not the plate's reads every image once: on a plate many
    blocks wide, a cap around a whole band kept far more images alive than the band uses."""
    from hipsluigi.mosaic import coadd

    grid = PlateGrid(2, 16, 5, 4)  # plate (2, 2): face 4, about 65 degrees wide
    loads: dict[str, int] = {}

    def image(lon: float, lat: float) -> SurveyImage:
        key = f"{lon},{lat}"
        pixels = np.full((20, 20), 1.0)

        def load():
            loads[key] = loads.get(key, 0) + 1
            return pixels

        w = WCS(naxis=2)
        w.wcs.ctype = ["GLON-TAN", "GLAT-TAN"]
        w.wcs.crval = [lon % 360, lat]
        w.wcs.crpix = [10.5, 10.5]
        w.wcs.cdelt = [-0.5, 0.5]
        return SurveyImage(key, w, (20, 20), lonlat_to_vec(lon % 360, lat),
                           np.radians(0.5 * 20), loader=load)

    images = [image(lon, lat) for lon in range(-45, 46, 8) for lat in range(-45, 46, 8)]
    budget = 60 * 20 * 20 * 8  # 60 of the 144 images, float64: more than a band uses
    monkeypatch.setattr(coadd, "ImageCache",
                        lambda images, frame: ImageCache(images, frame, budget_bytes=budget))
    result = mosaic_plate(grid, 2, 2, images, "galactic", block=8)
    assert len(result.used_images) > 60  # the plate needs more images than the cache holds
    assert set(loads.values()) == {1}, f"images read again: {sorted(loads.values())[-5:]}"
