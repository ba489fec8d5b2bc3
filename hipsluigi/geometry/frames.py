"""Celestial frames: HiPS frame names, WCS axis types, and moving directions between frames.

"Frame" means a celestial reference frame throughout hipsluigi (galactic, equatorial = ICRS);
a survey's input pictures are "images". Angles are degrees unless a name says otherwise; unit
vectors are ``(..., 3)`` arrays ``(x, y, z)`` with ``x`` towards longitude 0 on the equator and
``z`` towards the north pole of their frame.

Most frame changes (ICRS, FK5 at any equinox, galactic, ecliptic) are rotations of the sphere,
applied as a 3 x 3 matrix. Some are not: FK4 adds the E-terms of aberration (up to 0.34",
not a rotation), so :func:`frame_rotation` returns a matrix only when one reproduces astropy's
transformation, and :func:`transform_vectors` runs astropy's full transformation otherwise.
"""

from __future__ import annotations

from functools import lru_cache

import astropy.units as u
import numpy as np
from astropy.coordinates import (
    ICRS,
    BarycentricMeanEcliptic,
    CartesianRepresentation,
    Galactic,
    SkyCoord,
    Supergalactic,
    UnitSphericalRepresentation,
)
from astropy.time import Time
from astropy.wcs import WCS

#: HiPS ``hips_frame`` value -> (CTYPE1 prefix, CTYPE2 prefix, RADESYS or "", astropy frame)
HIPS_FRAMES = {
    "galactic": ("GLON", "GLAT", "", Galactic()),
    "equatorial": ("RA--", "DEC-", "ICRS", ICRS()),
}


def check_frame(frame: str) -> str:
    """Check a HiPS frame name.

    Parameters
    ----------
    frame : str
        A HiPS ``hips_frame`` value.

    Returns
    -------
    str
        ``frame``, if hipsluigi can build a map in it (a key of :data:`HIPS_FRAMES`).

    Raises
    ------
    ValueError
        Otherwise.
    """
    if frame not in HIPS_FRAMES:
        raise ValueError(f"frame must be one of {sorted(HIPS_FRAMES)}, got {frame!r}")
    return frame


def ctypes_for(frame: str, projection: str = "HPX") -> tuple[str, str, str]:
    """The WCS axis types of a HiPS frame in a projection.

    Parameters
    ----------
    frame : str
        HiPS frame name.
    projection : str, optional
        Three-letter WCS projection code.

    Returns
    -------
    tuple of str
        ``(CTYPE1, CTYPE2, RADESYS)``, RADESYS empty for galactic.

    Raises
    ------
    ValueError
        For an unknown frame.
    """
    lon, lat, radesys, _ = HIPS_FRAMES[check_frame(frame)]
    return f"{lon}-{projection}", f"{lat}-{projection}", radesys


def astropy_frame(frame: str):
    """The astropy frame object of a HiPS frame name (raises ``ValueError`` if unknown)."""
    return HIPS_FRAMES[check_frame(frame)][3]


def frame_of_wcs(wcs: WCS):
    """The astropy celestial frame of a celestial WCS.

    astropy's ``wcs_to_celestial_frame``, except for two axis types it does not know:
    ``ELON/ELAT`` (which it reads as ICRS right ascension and declination, since WCSLIB gives
    ecliptic axes a RADESYS) is the barycentric mean ecliptic and equinox of ``EQUINOX``
    (J2000 if none; a Besselian epoch under ``RADESYS = FK4``), as in WCS Paper II;
    ``SLON/SLAT`` is supergalactic.

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        A WCS with celestial axes, in either order.

    Returns
    -------
    astropy.coordinates.BaseCoordinateFrame

    Raises
    ------
    ValueError
        If the WCS has no celestial axes, or astropy knows no frame for them.
    """
    from astropy.wcs.utils import wcs_to_celestial_frame

    if not wcs.has_celestial:
        raise ValueError("the WCS has no celestial axes")
    w = wcs.wcs
    axes = (w.ctype[w.lng][:4], w.ctype[w.lat][:4])
    if axes == ("ELON", "ELAT"):
        if np.isnan(w.equinox):
            return BarycentricMeanEcliptic(equinox=Time("J2000"))
        epoch = "byear" if w.radesys.startswith("FK4") else "jyear"
        return BarycentricMeanEcliptic(equinox=Time(w.equinox, format=epoch))
    if axes == ("SLON", "SLAT"):
        return Supergalactic()
    return wcs_to_celestial_frame(wcs)


@lru_cache(maxsize=64)
def _rotation_cached(from_name: str, to_name: str) -> np.ndarray:
    return _rotation(_frame_from_name(from_name), _frame_from_name(to_name))


def _frame_from_name(name: str):
    from astropy.coordinates import frame_transform_graph

    return frame_transform_graph.lookup_name(name)()


def _rotation(from_frame, to_frame) -> np.ndarray:
    basis = CartesianRepresentation(np.eye(3))
    moved = SkyCoord(from_frame.realize_frame(basis)).transform_to(to_frame)
    cart = moved.cartesian
    return np.array([cart.x.value, cart.y.value, cart.z.value])


def rotation_matrix(from_frame, to_frame) -> np.ndarray:
    """The matrix moving the three axes of one celestial frame into another.

    Exact for frame changes that are rotations (no aberration, no epoch); for others (FK4 with
    its E-terms) only the image of the three axes: use :func:`frame_rotation` to know which.
    Frames without extra attributes (ICRS, Galactic ...) are cached by name.

    Parameters
    ----------
    from_frame, to_frame : astropy.coordinates.BaseCoordinateFrame
        The frames.

    Returns
    -------
    numpy.ndarray
        3x3 matrix ``R`` with ``v_to = R @ v_from`` for unit vectors.
    """
    if not from_frame.frame_attributes and not to_frame.frame_attributes:
        return _rotation_cached(from_frame.name, to_frame.name)
    return _rotation(from_frame, to_frame)


def transform_vectors(vec: np.ndarray, from_frame, to_frame) -> np.ndarray:
    """Directions moved from one celestial frame to another by astropy's full transformation.

    Parameters
    ----------
    vec : numpy.ndarray
        ``(..., 3)`` unit vectors in ``from_frame`` (NaN rows stay NaN).
    from_frame, to_frame : astropy.coordinates.BaseCoordinateFrame
        The frames; directions carry no distance (objects at infinity).

    Returns
    -------
    numpy.ndarray
        ``(..., 3)`` unit vectors in ``to_frame``.
    """
    lon, lat = vec_to_lonlat(vec)
    sky = from_frame.realize_frame(UnitSphericalRepresentation(lon * u.deg, lat * u.deg))
    moved = SkyCoord(sky).transform_to(to_frame).represent_as(UnitSphericalRepresentation)
    return lonlat_to_vec(moved.lon.deg, moved.lat.deg)


#: Largest difference (radians) between :func:`rotation_matrix` and astropy's transformation
#: for a frame change to count as a rotation: 2e-5", far above the 1e-14 rad rounding of
#: true rotations and far below FK4's E-terms (about 1e-6 rad).
ROTATION_TOLERANCE = 1e-10

_ROTATIONS: list[tuple[object, object, np.ndarray | None]] = []


def _test_directions(n: int = 100) -> np.ndarray:
    """``n`` unit vectors spread evenly over the sphere (a Fibonacci lattice)."""
    k = np.arange(n) + 0.5
    z = 1.0 - 2.0 * k / n
    phi = np.pi * (1.0 + 5.0**0.5) * k
    r = np.sqrt(1.0 - z**2)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=-1)


def frame_rotation(from_frame, to_frame) -> np.ndarray | None:
    """The rotation between two celestial frames, if the change of frame is one.

    The change counts as a rotation when :func:`rotation_matrix` reproduces astropy's full
    transformation (:func:`transform_vectors`) within :data:`ROTATION_TOLERANCE` on 100
    directions spread over the sphere: ICRS, FK5, FK4 without E-terms, galactic, supergalactic
    and ecliptic frames are; FK4 (E-terms of aberration) is not. Answers are cached per pair
    of equivalent frames.

    Parameters
    ----------
    from_frame, to_frame : astropy.coordinates.BaseCoordinateFrame
        The frames.

    Returns
    -------
    numpy.ndarray or None
        3x3 matrix ``R`` with ``v_to = R @ v_from``, or None if no rotation is exact.
    """
    for cached_from, cached_to, answer in _ROTATIONS:
        if (cached_from.is_equivalent_frame(from_frame)
                and cached_to.is_equivalent_frame(to_frame)):
            return answer
    rot = rotation_matrix(from_frame, to_frame)
    vec = _test_directions()
    error = np.abs(vec @ rot.T - transform_vectors(vec, from_frame, to_frame)).max()
    answer = rot if error <= ROTATION_TOLERANCE else None
    if len(_ROTATIONS) >= 64:
        _ROTATIONS.pop(0)
    _ROTATIONS.append((from_frame, to_frame, answer))
    return answer


def lonlat_to_vec(lon_deg: np.ndarray, lat_deg: np.ndarray) -> np.ndarray:
    """Unit vectors from longitude and latitude.

    Parameters
    ----------
    lon_deg, lat_deg : array_like
        Degrees (broadcast together).

    Returns
    -------
    numpy.ndarray
        ``(..., 3)`` unit vectors.
    """
    lon = np.radians(lon_deg)
    lat = np.radians(lat_deg)
    cos_lat = np.cos(lat)
    return np.stack([cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)], axis=-1)


def vec_to_lonlat(vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude of unit vectors.

    Parameters
    ----------
    vec : numpy.ndarray
        ``(..., 3)`` unit vectors.

    Returns
    -------
    tuple of numpy.ndarray
        ``(lon, lat)`` in degrees, ``lon`` in [0, 360).
    """
    lon = np.degrees(np.arctan2(vec[..., 1], vec[..., 0])) % 360.0
    lat = np.degrees(np.arcsin(np.clip(vec[..., 2], -1.0, 1.0)))
    return lon, lat
