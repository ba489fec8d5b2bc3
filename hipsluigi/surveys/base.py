"""What every survey hands the mosaic: survey images with a celestial WCS and pixels on demand.

Vocabulary: an *image* is one input picture of a survey (a FITS file's image HDU, one synthetic
exposure); a *frame* is a celestial reference frame (galactic, equatorial/ICRS). Every image
carries its own WCS, in whatever frame; the map has one frame, the *map frame*, in which the
image centres are given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from astropy.wcs import WCS


class BadImageError(ValueError):
    """A survey image that cannot be used; the message names the image and the reason."""


@dataclass(eq=False)
class SurveyImage:
    """One input image of a survey.

    Attributes
    ----------
    key : str
        Names the image in logs and errors (a file path with its HDU, or ``synthetic:<id>``).
    wcs : astropy.wcs.WCS
        2-D celestial WCS, any projection and frame.
    shape : tuple of int
        ``(rows, cols)`` of the pixels, i.e. ``(NAXIS2, NAXIS1)``.
    centre : numpy.ndarray
        Unit vector ``(3,)`` of the image centre in the *map's* frame.
    radius : float
        Radius of a cap around ``centre`` holding every pixel, in radians.
    loader : callable
        Returns the pixels ``[row, col]`` when called (any numeric array).
    """

    key: str
    wcs: WCS
    shape: tuple[int, int]
    centre: np.ndarray
    radius: float
    loader: Callable[[], np.ndarray] = field(repr=False)

    def load(self) -> np.ndarray:
        """The image's pixels.

        Returns
        -------
        numpy.ndarray
            float64 ``shape`` array ``[row, col]``, NaN where blank.

        Raises
        ------
        BadImageError
            If the pixels do not have the WCS shape, or none is finite.
        """
        data = np.asarray(self.loader(), dtype=np.float64)
        if data.shape != tuple(self.shape):
            raise BadImageError(f"{self.key}: data shape {data.shape} differs from the WCS "
                                f"shape {tuple(self.shape)}")
        if not np.isfinite(data).any():
            raise BadImageError(f"{self.key}: every pixel is blank (NaN or infinite)")
        return data


class Survey(Protocol):
    """A source of survey images."""

    def images_touching(self, centre: np.ndarray, radius: float) -> Sequence[SurveyImage]:
        """The images whose cap meets a cap of the sky.

        Parameters
        ----------
        centre : numpy.ndarray
            Unit vector ``(3,)`` in the map frame.
        radius : float
            Cap radius, radians.

        Returns
        -------
        sequence of SurveyImage
            Every image whose cap intersects the cap ``(centre, radius)`` (maybe a few more).
        """
        ...


def caps_intersect(centres: np.ndarray, radii: np.ndarray, centre: np.ndarray,
                   radius: float) -> np.ndarray:
    """Which caps meet a given cap.

    Parameters
    ----------
    centres : numpy.ndarray
        ``(n, 3)`` unit vectors.
    radii : numpy.ndarray
        ``(n,)`` cap radii, radians.
    centre : numpy.ndarray
        ``(3,)`` unit vector.
    radius : float
        Radius, radians.

    Returns
    -------
    numpy.ndarray
        Boolean ``(n,)``: cap ``(centres[k], radii[k])`` meets the cap ``(centre, radius)``.
    """
    angle = np.arccos(np.clip(centres @ centre, -1.0, 1.0))
    return angle <= radii + radius


def caps_touching(centres: np.ndarray, radii: np.ndarray, cap_centres: np.ndarray,
                  cap_radii: np.ndarray) -> list[np.ndarray]:
    """Which caps meet each of many caps: :func:`caps_intersect` for every one of them, with
    a k-d tree of the centres instead of a pass over all of them per cap.

    Parameters
    ----------
    centres : numpy.ndarray
        ``(n, 3)`` unit vectors (e.g. the images of a survey index).
    radii : numpy.ndarray
        ``(n,)`` cap radii, radians.
    cap_centres : numpy.ndarray
        ``(m, 3)`` unit vectors (e.g. the plates of a map).
    cap_radii : numpy.ndarray
        ``(m,)`` radii, radians.

    Returns
    -------
    list of numpy.ndarray
        For cap ``k``, the increasing indices ``i`` of the caps ``(centres[i], radii[i])``
        that meet it, as ``np.flatnonzero(caps_intersect(centres, radii, cap_centres[k],
        cap_radii[k]))`` gives them.
    """
    from scipy.spatial import cKDTree

    centres = np.asarray(centres, dtype=float).reshape(-1, 3)
    radii = np.asarray(radii, dtype=float)
    cap_centres = np.asarray(cap_centres, dtype=float).reshape(-1, 3)
    cap_radii = np.asarray(cap_radii, dtype=float)
    if len(centres) == 0:
        return [np.zeros(0, dtype=np.intp) for _ in range(len(cap_centres))]
    # Candidates lie within the chord of the widest angle that can still meet (widened so
    # that rounding never drops one); each is then tested exactly as caps_intersect does.
    angle = np.minimum(cap_radii + radii.max(), np.pi)
    chord = 2.0 * np.sin(angle / 2.0) * (1.0 + 1e-9) + 1e-12
    near = cKDTree(centres).query_ball_point(cap_centres, chord)
    out = []
    for k, found in enumerate(near):
        found = np.sort(np.asarray(found, dtype=np.intp))
        out.append(found[caps_intersect(centres[found], radii[found], cap_centres[k],
                                        cap_radii[k])])
    return out
