"""Frames of WCS axes, and which frame changes are rotations, against astropy's transformations."""

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import (
    FK4,
    FK5,
    ICRS,
    BarycentricMeanEcliptic,
    FK4NoETerms,
    Galactic,
    SkyCoord,
    Supergalactic,
)
from astropy.time import Time
from astropy.wcs import WCS

from hipsluigi.geometry.frames import frame_of_wcs, frame_rotation, transform_vectors


def _sky(n=400):
    rng = np.random.default_rng(2)
    lon = rng.uniform(0, 360, n)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    return SkyCoord(lon * u.deg, lat * u.deg, frame="icrs")


def _vec(coord):
    c = coord.cartesian
    return np.stack([c.x.value, c.y.value, c.z.value], axis=-1)


@pytest.mark.parametrize("frame", [Galactic(), FK5(equinox="J2000"), FK5(equinox="J1975"),
                                   FK4NoETerms(equinox="B1950", obstime="B1950"),
                                   BarycentricMeanEcliptic(equinox="J2000"), Supergalactic()])
def test_rotations_reproduce_astropy(frame):
    rot = frame_rotation(ICRS(), frame)
    assert rot is not None
    sky = _sky()
    assert np.abs(_vec(sky) @ rot.T - _vec(sky.transform_to(frame))).max() < 1e-12


def test_fk4_with_e_terms_is_not_a_rotation_and_moves_as_astropy_says():
    fk4 = FK4(equinox="B1950", obstime="B1950")
    assert frame_rotation(ICRS(), fk4) is None
    assert frame_rotation(fk4, Galactic()) is None
    sky = _sky()
    moved = transform_vectors(_vec(sky), ICRS(), fk4)
    assert np.abs(moved - _vec(sky.transform_to(fk4))).max() < 1e-12


def _wcs(ctype, radesys="", equinox=None):
    w = WCS(naxis=2)
    w.wcs.ctype = list(ctype)
    if radesys:
        w.wcs.radesys = radesys
    if equinox is not None:
        w.wcs.equinox = equinox
    return w


def test_frames_of_wcs_axes():
    ecl = frame_of_wcs(_wcs(("ELON-TAN", "ELAT-TAN")))
    assert isinstance(ecl, BarycentricMeanEcliptic) and ecl.equinox == Time("J2000")
    old = frame_of_wcs(_wcs(("ELON-TAN", "ELAT-TAN"), "FK4", 1950.0))
    assert isinstance(old, BarycentricMeanEcliptic)
    assert abs(old.equinox.byear - 1950.0) < 1e-9
    assert isinstance(frame_of_wcs(_wcs(("SLON-TAN", "SLAT-TAN"))), Supergalactic)
    fk4 = frame_of_wcs(_wcs(("DEC--TAN", "RA---TAN"), "FK4", 1950.0))  # latitude first
    assert isinstance(fk4, FK4) and abs(fk4.equinox.byear - 1950.0) < 1e-9
    assert isinstance(frame_of_wcs(_wcs(("GLAT-CAR", "GLON-CAR"))), Galactic)
    with pytest.raises(ValueError):
        frame_of_wcs(_wcs(("LINEAR", "LINEAR")))
