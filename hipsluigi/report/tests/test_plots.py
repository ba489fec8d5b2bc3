"""QA plots: valid PNGs of the stated width, levels and stretch drawn where they are, coverage
pixels checked with healpy."""

import io

import healpy as hp
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

from hipsluigi.report import plots
from hipsluigi.stretch.histogram import histogram_of
from hipsluigi.stretch.stretch import make_stretch
from hipsluigi.testing import tile_pixel_lonlat


@pytest.fixture(scope="module")
def hist_and_stretch():
    values = np.random.default_rng(1).normal(5.0, 2.0, 50_000)
    hist = histogram_of(values)
    return hist, make_stretch(hist, "linear", "1%", "99%")


def _png(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    assert im.format == "PNG"
    im.load()
    return im


def test_histogram_plot_marks_the_levels_at_their_values_in_the_picture(hist_and_stretch):
    hist, stretch = hist_and_stretch
    fig = plots.histogram_figure(hist, stretch)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[..., :3].astype(int)
    ax = fig.axes[0]
    top, bottom = sorted(pixels.shape[0] - ax.transAxes.transform([(0, 0), (0, 1)])[:, 1])
    for level, colour in ((stretch.lo, (31, 119, 180)), (stretch.hi, (214, 39, 40))):
        col = int(round(ax.transData.transform((level, 1.0))[0]))
        band = pixels[int(top):int(bottom), col - 1:col + 2]
        near = np.abs(band - np.array(colour)).sum(-1) < 60
        assert near.any(axis=1).sum() > 0.3 * (bottom - top), level  # a dashed line there
        # and nowhere 20 pixels away
        far = pixels[int(top):int(bottom), col + 20]
        assert (np.abs(far - np.array(colour)).sum(-1) < 60).sum() < 5
    png = _png(plots.png_bytes(fig))
    assert png.size == (800, 450)


def test_histogram_plot_stretch_curve_is_the_stretch_gray_level(hist_and_stretch):
    hist, stretch = hist_and_stretch
    fig = plots.histogram_figure(hist, stretch)
    (curve,) = [line for ax in fig.axes for line in ax.lines if line.get_gid() == "stretch"]
    x, y = curve.get_xdata(), curve.get_ydata()
    v = np.random.default_rng(2).uniform(hist.lo, hist.hi, 2000)
    drawn = y[np.searchsorted(x, v, side="right") - 1]  # steps drawn "post"
    assert np.array_equal(drawn, stretch.gray(v))
    black = [line for line in fig.axes[0].lines if line.get_gid() == "black level"]
    white = [line for line in fig.axes[0].lines if line.get_gid() == "white level"]
    assert np.allclose(black[0].get_xdata(), stretch.lo)
    assert np.allclose(white[0].get_xdata(), stretch.hi)


def test_allsky_healpix_puts_each_png_pixel_where_healpy_says_it_is():
    order, width = 1, 8
    ntiles, ncols = 48, 6  # floor(sqrt(48)) tiles a row, 8 rows
    image = np.zeros((8 * width, ncols * width, 2), dtype=np.uint8)
    lats = {}
    for npix in range(ntiles):
        # the PNG orientation: healpy's pixel centres of the tile, rows flipped from FITS
        lon, lat = tile_pixel_lonlat(order, npix, width, "flipped")
        r0, c0 = (npix // ncols) * width, (npix % ncols) * width
        image[r0:r0 + width, c0:c0 + width, 0] = np.round(lat + 90)
        image[r0:r0 + width, c0:c0 + width, 1] = 255
        lats[npix] = (lon, lat)
    image[0, 0, 1] = 0  # one transparent pixel: tile 0, PNG row 0, column 0
    sky = plots.allsky_healpix(image, order)
    nside = width << order
    assert sky.size == hp.nside2npix(nside)
    for npix, (lon, lat) in lats.items():
        got = sky[hp.ang2pix(nside, lon, lat, nest=True, lonlat=True)]
        want = np.round(lat + 90)
        if npix == 0:
            assert np.isnan(got[0, 0])
            got, want = got.ravel()[1:], want.ravel()[1:]
        assert np.array_equal(got, want), npix


def test_mollweide_x_puts_longitude_zero_at_the_centre_growing_left():
    assert np.allclose(plots.mollweide_x([0, 90, 270, 359]),
                       np.radians([0, -90, 90, 1]))


def test_coverage_map_covers_exactly_the_tiles_by_healpy():
    order, tiles = 3, [0, 5, 700]
    cover = plots.coverage_map(order, tiles)
    assert cover.size == hp.order2npix(order) and cover.sum() == 3
    for npix in tiles:
        theta, phi = hp.pix2ang(2**order, npix, nest=True)
        assert cover[hp.ang2pix(2**order, theta, phi, nest=True)] == 1
    # deeper tiles are shown at order 7, in the order-7 pixel that holds their centre
    deep = [123_456, 3_000_000]
    cover = plots.coverage_map(9, deep)
    assert cover.size == hp.order2npix(7) and cover.sum() == 2
    for npix in deep:
        theta, phi = hp.pix2ang(2**9, npix, nest=True)
        assert cover[hp.ang2pix(2**7, theta, phi, nest=True)] == 1


@pytest.mark.parametrize("make", [
    lambda: plots.allsky_figure(np.random.default_rng(0).integers(0, 255, (8 * 16, 6 * 16)),
                                1, "t", "galactic"),
    lambda: plots.coverage_figure(2, list(range(60)), "galactic"),
    lambda: plots.plate_values_figure(np.array([0.0, 90, 200]), np.array([0.0, 30, -60]),
                                      np.array([-1.0, 0.5, 2.0]), "equatorial", "t", "v"),
    lambda: plots.residuals_figure(np.array([1.0, -2, 0.5]), np.array([0.01, -0.02, 0.0])),
    lambda: plots.timing_figure(["A", "B"], [3.0, 1.0], [5.0, 1.0], [4.0, 0.5]),
])
def test_every_plot_is_a_png_800_pixels_wide(make):
    png = _png(plots.png_bytes(make()))
    assert png.width == 800 and 150 < png.height < 1200
    assert len(np.unique(np.asarray(png.convert("L")))) > 10  # something was drawn
