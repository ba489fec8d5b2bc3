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
