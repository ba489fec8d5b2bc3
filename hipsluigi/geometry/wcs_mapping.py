"""Where map-frame directions fall in a survey image: the fast exact route, or astropy's.

A survey image's WCS maps its pixels to the sky; a plate mosaic needs the inverse for many
directions given as unit vectors of the map's frame. :func:`image_projection` picks the route:

* the array algebra of :mod:`hipsluigi.geometry.tan` (about ten times faster than WCSLIB
  through astropy) only when it is provably the same mapping as astropy's: the WCS's structure
  is plain TAN or CAR (:func:`~hipsluigi.geometry.tan.tan_projection`,
  :func:`~hipsluigi.geometry.tan.car_projection`), the numbers agree with astropy's
  ``world_to_pixel_values`` on a lattice of the image to :data:`FAST_TOLERANCE` pixels
  (:func:`fast_projection`), and the change from the map's frame to the image's is a rotation
  (:func:`~hipsluigi.geometry.frames.frame_rotation`);
* otherwise :class:`WcsProjection`: astropy's full transformation (distortions, any projection,
  latitude-first axes, frames such as FK4 that are not a rotation of ICRS), whose answers are
  checked by mapping them back to the sky (:data:`ROUND_TRIP_PIXELS`).

Pixel positions are 0-based, ``x`` along columns (FITS axis 1) and ``y`` along rows; image
shapes are ``(rows, cols)``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
from astropy.wcs import WCS

from hipsluigi.geometry.frames import (
    frame_of_wcs,
    frame_rotation,
    lonlat_to_vec,
    transform_vectors,
    vec_to_lonlat,
)
from hipsluigi.geometry.tan import CarProjection, TanProjection, car_projection, tan_projection

#: Largest difference, in pixels, between a fast projection and astropy's inverse on the
#: lattice of :func:`fast_projection` for the fast projection to be used.
FAST_TOLERANCE = 1e-6

#: Points of the checking lattice along each image axis (first and last pixel centres
#: included, so corners, edges and interior).
LATTICE = 9

#: A position astropy's inverse returns is kept only if mapping it back to the sky lands
#: within this many pixels (times the image's :func:`pixel_size`) of the direction asked for.
#: astropy's iterative inverse of SIP and lookup-table distortions converges to 1e-4 pixel;
#: where it does not, it returns its "best solution", which can lie inside the image for
#: directions degrees away from it.
ROUND_TRIP_PIXELS = 0.01


@lru_cache(maxsize=64)
def _lattice(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """0-based ``(x, y)`` of a ``LATTICE x LATTICE`` grid over an image's pixel centres
    (read-only: shared by the images of one shape)."""
    ny, nx = shape
    x, y = np.meshgrid(np.linspace(0.0, nx - 1.0, LATTICE), np.linspace(0.0, ny - 1.0, LATTICE))
    x, y = x.ravel(), y.ravel()
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _lattice_steps(wcs: WCS, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Angles (radians) from each pixel of the checking lattice to the next along ``x`` and
    along ``y``, through the whole WCS (NaN where a pixel is off the sky)."""
    x, y = _lattice(tuple(shape))
    w = wcs.wcs
    vec = []
    for dx, dy in ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0)):
        world = wcs.pixel_to_world_values(x + dx, y + dy)
        vec.append(lonlat_to_vec(world[w.lng], world[w.lat]))
    return tuple(np.linalg.norm(vec[k] - vec[0], axis=-1) for k in (1, 2))


def pixel_size(wcs: WCS, shape: tuple[int, int]) -> float:
    """The typical size of an image's pixels on the sky, in radians.

    Measured through the WCS itself (distortions included; DSS plate solutions, for one, have
    a linear part in other units): the median, over a lattice of the image, of the larger of
    the angles to the next pixel along ``x`` and along ``y``.

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        The image's 2-D celestial WCS.
    shape : tuple of int
        The image's ``(rows, cols)``.

    Returns
    -------
    float
        Radians; NaN if no lattice pixel maps to the sky.
    """
    size = np.fmax(*_lattice_steps(wcs, shape))
    return float(np.median(size[np.isfinite(size)])) if np.isfinite(size).any() else np.nan


def pixel_steps(wcs: WCS, shape: tuple[int, int]) -> tuple[float, float]:
    """The typical sizes of an image's pixels along ``x`` and along ``y``, in radians.

    The medians, over the lattice of :func:`pixel_size`, of the angles to the next pixel along
    each axis: 0 for an axis the WCS collapses (a scale of 1e300 degrees puts every pixel but
    one column on the projection's edge).

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        The image's 2-D celestial WCS.
    shape : tuple of int
        The image's ``(rows, cols)``.

    Returns
    -------
    tuple of float
        ``(along x, along y)``, radians; NaN if no lattice pixel maps to the sky.
    """
    return tuple(float(np.median(s[np.isfinite(s)])) if np.isfinite(s).any() else np.nan
                 for s in _lattice_steps(wcs, shape))


def fast_projection_error(fast: TanProjection | CarProjection, wcs: WCS,
                          shape: tuple[int, int]) -> float:
    """Largest distance, in pixels, between a fast projection and astropy's inverse.

    Parameters
    ----------
    fast : TanProjection or CarProjection
        The fast projection of ``wcs`` (in the WCS's own frame).
    wcs : astropy.wcs.WCS
        The image's 2-D celestial WCS.
    shape : tuple of int
        The image's ``(rows, cols)``.

    Returns
    -------
    float
        The largest distance over the lattice's directions (the sky positions astropy gives
        the lattice's pixels), infinite if the two disagree on which directions have a
        position, or if no lattice direction can be compared. Directions within 1e-9 degree
        of a pole are left out: their longitude, hence a CAR column, is arbitrary.
    """
    x, y = _lattice(tuple(shape))
    lon, lat = (np.asarray(v, dtype=np.float64) for v in wcs.pixel_to_world_values(x, y))
    known = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lat) < 90.0 - 1e-9)
    if not known.any():
        return np.inf
    lon, lat = lon[known], lat[known]
    fx, fy = fast.vectors_to_pixels(lonlat_to_vec(lon, lat))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ax, ay = (np.asarray(v, dtype=np.float64) for v in wcs.world_to_pixel_values(lon, lat))
    if not (np.isfinite(fx).all() and np.isfinite(fy).all() and np.isfinite(ax).all()
            and np.isfinite(ay).all()):
        return np.inf
    return float(np.hypot(fx - ax, fy - ay).max())


def fast_projection(wcs: WCS, shape: tuple[int, int]) -> TanProjection | CarProjection | None:
    """The fast projection of an image's WCS, if it is provably astropy's mapping.

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        The image's 2-D celestial WCS.
    shape : tuple of int
        The image's ``(rows, cols)``.

    Returns
    -------
    TanProjection or CarProjection or None
        In the WCS's own frame; None unless the structure is plain TAN or CAR and
        :func:`fast_projection_error` is at most :data:`FAST_TOLERANCE`.
    """
    fast = tan_projection(wcs) or car_projection(wcs)
    if fast is None or not fast_projection_error(fast, wcs, shape) <= FAST_TOLERANCE:
        return None
    return fast


@dataclass(frozen=True)
class WcsProjection:
    """An image's WCS applied through astropy, with a round-trip check.

    Attributes
    ----------
    wcs : astropy.wcs.WCS
        The image's 2-D celestial WCS (any projection, distortions, axis order).
    shape : tuple of int
        The image's ``(rows, cols)``.
    map_frame, image_frame : astropy.coordinates.BaseCoordinateFrame
        The frame of the vectors given, and the WCS's frame.
    rotation : numpy.ndarray or None
        ``v_image = rotation @ v_map`` when the change of frame is a rotation; None to use
        astropy's full transformation (FK4's E-terms).
    """

    wcs: WCS
    shape: tuple[int, int]
    map_frame: object
    image_frame: object
    rotation: np.ndarray | None

    def vectors_to_pixels(self, vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """0-based ``(x, y)`` of map-frame unit vectors ``(..., 3)``.

        NaN where astropy finds no position, and, for positions within one pixel of the
        image's outer edges (the only ones a sampler uses), where the position maps back to
        the sky more than :data:`ROUND_TRIP_PIXELS` pixels from the direction asked for.
        Positions farther out are returned unchecked.
        """
        flat = np.asarray(vec, dtype=np.float64).reshape(-1, 3)
        if self.rotation is not None:
            own = flat @ self.rotation.T
        else:
            own = transform_vectors(flat, self.map_frame, self.image_frame)
        w = self.wcs.wcs
        world = [None, None]
        world[w.lng], world[w.lat] = vec_to_lonlat(own)
        with warnings.catch_warnings():
            # Non-converged inverses warn, and are caught by the round trip below.
            warnings.simplefilter("ignore")
            x, y = (np.array(v, dtype=np.float64).ravel()
                    for v in self.wcs.world_to_pixel_values(*world))
        ny, nx = self.shape
        near = np.flatnonzero((x >= -1.5) & (x <= nx + 0.5) & (y >= -1.5) & (y <= ny + 0.5))
        if len(near):
            back = self.wcs.pixel_to_world_values(x[near], y[near])
            back_vec = lonlat_to_vec(back[w.lng], back[w.lat])
            chord = np.linalg.norm(back_vec - own[near], axis=-1)
            missed = near[~(chord <= self.round_trip_chord)]  # NaN counts as missed
            x[missed] = np.nan
            y[missed] = np.nan
        out_shape = np.shape(vec)[:-1]
        return x.reshape(out_shape), y.reshape(out_shape)

    @cached_property
    def round_trip_chord(self) -> float:
        """The round trip's tolerance: :data:`ROUND_TRIP_PIXELS` times the image's pixel size
        (:func:`pixel_size`), as a chord between unit vectors (radians)."""
        return ROUND_TRIP_PIXELS * pixel_size(self.wcs, self.shape)


def image_projection(wcs: WCS, shape: tuple[int, int], map_frame
                     ) -> TanProjection | CarProjection | WcsProjection:
    """The route from map-frame unit vectors to an image's pixels (see the module docstring).

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        The image's 2-D celestial WCS, any projection and frame.
    shape : tuple of int
        The image's ``(rows, cols)``.
    map_frame : astropy.coordinates.BaseCoordinateFrame
        The frame of the unit vectors the projection will be given.

    Returns
    -------
    TanProjection, CarProjection or WcsProjection
        An object whose ``vectors_to_pixels(vec)`` returns 0-based ``(x, y)``.

    Raises
    ------
    ValueError
        If the WCS has no celestial frame astropy knows.
    """
    image_frame = frame_of_wcs(wcs)
    rotation = frame_rotation(map_frame, image_frame)
    if rotation is not None:
        fast = fast_projection(wcs, shape)
        if fast is not None:
            return fast.rotated(rotation)
    return WcsProjection(wcs, tuple(shape), map_frame, image_frame, rotation)
