"""Celestial frames: HiPS frame names, WCS axis types and rotations between frames.

"Frame" means a celestial reference frame throughout hipsluigi (galactic, equatorial = ICRS);
a survey's input pictures are "images". Angles are degrees unless a name says otherwise; unit
vectors are ``(..., 3)`` arrays ``(x, y, z)`` with ``x`` towards longitude 0 on the equator and
``z`` towards the north pole of their frame.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from astropy.coordinates import ICRS, CartesianRepresentation, Galactic, SkyCoord
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
    """The astropy celestial frame of a celestial WCS (raises ``ValueError`` if not celestial)."""
    from astropy.wcs.utils import wcs_to_celestial_frame

    if not wcs.has_celestial:
        raise ValueError("the WCS has no celestial axes")
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
    """The rotation between two celestial frames (no aberration, no epoch).

    Frames without extra attributes (ICRS, Galactic, FK5 J2000 ...) are cached by name.

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
