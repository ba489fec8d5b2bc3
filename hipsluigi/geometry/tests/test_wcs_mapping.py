"""The choice of route from directions to image pixels, and its numeric checks."""

import time
import warnings
from pathlib import Path

import astropy
import numpy as np
from astropy.coordinates import ICRS
from astropy.io import fits
from astropy.wcs import WCS

from hipsluigi.geometry.tan import TanProjection, tan_projection
from hipsluigi.geometry.wcs_mapping import (
    FAST_TOLERANCE,
    WcsProjection,
    fast_projection,
    fast_projection_error,
    image_projection,
    pixel_size,
)


def _tan(crpix=(100.3, 80.7)):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, -30.0]
    w.wcs.crpix = list(crpix)
    w.wcs.cd = [[-2e-4, 1e-5], [1.2e-5, 2e-4]]
    return w


def test_lattice_check_measures_a_thousandth_of_a_pixel():
    shape = (160, 200)
    fast = tan_projection(_tan())
    assert fast_projection_error(fast, _tan(), shape) < 1e-9
    moved = _tan(crpix=(100.301, 80.7))  # the same sky 0.001 pixel further along x
    assert abs(fast_projection_error(fast, moved, shape) - 1e-3) < 1e-8
    assert fast_projection(_tan(), shape) is not None
    assert FAST_TOLERANCE <= 1e-6


def test_fast_route_is_the_plain_projection_rotated_and_costs_little():
    """A plain TAN image keeps the fast route, with the projection's very numbers; the
    numeric check's cost is printed."""
    w, shape = _tan(), (160, 200)
    projection = image_projection(w, shape, ICRS())
    plain = tan_projection(w)
    assert isinstance(projection, TanProjection)
    assert np.array_equal(projection.pix, plain.pix)
    assert np.array_equal(projection.crpix0, plain.crpix0)
    assert np.abs(projection.basis - plain.basis).max() < 1e-15
    start = time.perf_counter()
    for _ in range(50):
        fast_projection_error(plain, w, shape)
    print(f"numeric check: {(time.perf_counter() - start) / 50 * 1e3:.2f} ms per image")


def test_pixel_size_is_measured_through_the_whole_mapping():
    w = _tan()
    assert abs(pixel_size(w, (160, 200)) / np.radians(2e-4 * np.hypot(1, 0.06)) - 1) < 0.01
    # DSS: WCSLIB's linear part is in plate millimetres; the pixel is PLTSCALE * XPIXELSZ.
    header = fits.getheader(Path(astropy.__file__).parent
                            / "wcs/tests/data/dss.14.29.56-62.41.05.fits.gz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dss = WCS(header)
    arcsec = header["PLTSCALE"] * header["XPIXELSZ"] / 1000.0
    assert abs(np.degrees(pixel_size(dss, (100, 100))) * 3600 / arcsec - 1) < 0.02
    assert isinstance(image_projection(dss, (100, 100), ICRS()), WcsProjection)
