"""The matrix TAN projection against WCSLIB."""

import numpy as np
import pytest
from astropy.wcs import WCS

from hipsluigi.geometry.frames import lonlat_to_vec, vec_to_lonlat
from hipsluigi.geometry.tan import tan_projection


def _tan(crval, cd, ctype=("RA---TAN", "DEC--TAN")):
    w = WCS(naxis=2)
    w.wcs.ctype = list(ctype)
    w.wcs.crval = crval
    w.wcs.crpix = [50.3, 70.1]
    w.wcs.cd = cd
    return w


@pytest.mark.parametrize("crval,cd", [
    ([10.0, 20.0], [[-0.01, 0.0], [0.0, 0.01]]),
    ([200.0, -89.9], [[-0.002, 0.001], [0.0005, 0.003]]),
    ([359.0, 45.0], [[0.01, 0.0], [0.0, 0.01]]),  # mirrored (east to the right)
])
def test_tan_projection_agrees_with_wcslib_both_ways(crval, cd):
    w = _tan(crval, cd)
    tan = tan_projection(w)
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-50, 150, (2, 2000))
    lon, lat = w.wcs_pix2world(x, y, 0)
    l2, b2 = vec_to_lonlat(tan.pixels_to_vectors(x, y))
    assert np.abs(((l2 - lon + 180) % 360 - 180) * np.cos(np.radians(lat))).max() < 1e-9
    assert np.abs(b2 - lat).max() < 1e-9
    px, py = tan.vectors_to_pixels(lonlat_to_vec(lon, lat))
    assert np.abs(px - x).max() < 1e-8 and np.abs(py - y).max() < 1e-8


def test_tan_projection_declines_what_it_cannot_represent():
    assert tan_projection(_tan([0, 0], [[-1, 0], [0, 1]], ("RA---SIN", "DEC--SIN"))) is None
    assert tan_projection(_tan([0, 90], [[-1, 0], [0, 1]])) is None  # LONPOLE 0 at the pole
    w = _tan([10, 10], [[-0.01, 0], [0, 0.01]])
    w.wcs.lonpole = 170
    assert tan_projection(w) is None


def test_points_behind_the_tangent_plane_have_no_pixel():
    tan = tan_projection(_tan([0.0, 0.0], [[-0.01, 0.0], [0.0, 0.01]]))
    x, y = tan.vectors_to_pixels(lonlat_to_vec(np.array([180.0, 0.0]), np.array([0.0, 0.0])))
    assert np.isnan(x[0]) and np.isfinite(x[1])


@pytest.mark.parametrize("crval1,cd", [(0.0, [[-0.25, 0.0], [0.0, 0.25]]),
                                       (120.0, [[0.1, 0.0], [0.0, 0.1]])])
def test_car_projection_agrees_with_wcslib(crval1, cd):
    from hipsluigi.geometry.tan import car_projection

    w = _tan([crval1, 0.0], cd, ("GLON-CAR", "GLAT-CAR"))
    car = car_projection(w)
    assert car is not None
    rng = np.random.default_rng(3)
    x, y = rng.uniform(0, 300, (2, 3000))
    lon, lat = w.wcs_pix2world(x, y, 0)
    ok = np.isfinite(lon) & (np.abs(lat) < 89.9)
    px, py = car.vectors_to_pixels(lonlat_to_vec(lon[ok], lat[ok]))
    assert np.abs(px - x[ok]).max() < 1e-8 and np.abs(py - y[ok]).max() < 1e-8


@pytest.mark.parametrize("crval1", [0.0, 120.0, 250.0])
def test_car_projection_of_another_frame_agrees_with_astropy_and_wcslib(crval1):
    """An ICRS CAR image placed on a galactic map: vectors turned by the frame rotation."""
    from astropy.coordinates import SkyCoord

    from hipsluigi.geometry.frames import astropy_frame, frame_of_wcs, rotation_matrix
    from hipsluigi.geometry.tan import car_projection

    w = _tan([crval1, 0.0], [[-0.2, 0.0], [0.0, 0.2]], ("RA---CAR", "DEC--CAR"))
    w.wcs.crpix = [900.5, 450.5]
    car = car_projection(w).rotated(rotation_matrix(astropy_frame("galactic"), frame_of_wcs(w)))
    rng = np.random.default_rng(4)
    glon, glat = rng.uniform(0, 360, 4000), np.degrees(np.arcsin(rng.uniform(-0.99, 0.99, 4000)))
    px, py = car.vectors_to_pixels(lonlat_to_vec(glon, glat))
    icrs = SkyCoord(glon, glat, unit="deg", frame="galactic").icrs
    x, y = w.world_to_pixel_values(icrs.ra.deg, icrs.dec.deg)
    # WCSLIB picks the longitude branch nearest CRVAL1, as the projection must.
    assert np.abs(px - x).max() < 1e-6 and np.abs(py - y).max() < 1e-6


def test_car_projection_declines_oblique_cylinders():
    from hipsluigi.geometry.tan import car_projection

    assert car_projection(_tan([0.0, 30.0], [[-1, 0], [0, 1]], ("RA---CAR", "DEC--CAR"))) is None


def _header_file(name):
    from pathlib import Path

    import astropy
    from astropy.io import fits

    path = Path(astropy.__file__).parent / "wcs/tests/data" / name
    if name.endswith(".hdr"):
        return fits.Header.fromfile(path, sep="", endcard=True, padding=False)
    return fits.getheader(path)


@pytest.mark.parametrize("name,ctype", [
    ("tpvonly.hdr", None),                              # TPV
    ("tpvonly.hdr", ("RA---TAN", "DEC--TAN")),          # SCAMP's TAN with PV1_*, PV2_*
    ("dss.14.29.56-62.41.05.fits.gz", None),            # DSS plate solution
])
def test_tan_projection_declines_distortions_behind_a_tan_ctype(name, ctype):
    """WCSLIB turns these into TAN plus a distortion astropy does not show: its ``ctype``
    says TAN and ``has_distortion`` is False, yet the mapping is not plain TAN."""
    import warnings

    header = _header_file(name)
    if ctype:
        header["CTYPE1"], header["CTYPE2"] = ctype
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = WCS(header)
    assert list(w.wcs.ctype) == ["RA---TAN", "DEC--TAN"] and not w.has_distortion
    assert tan_projection(w) is None


def test_tan_projection_declines_latitude_first_axes():
    w = _tan([20.0, 10.0], [[0.0, 0.01], [-0.01, 0.0]], ("DEC--TAN", "RA---TAN"))
    assert w.wcs.lng == 1 and tan_projection(w) is None
