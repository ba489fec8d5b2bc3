"""The survey images of one plate mosaic: loaded once, background planes applied, positions.

:class:`ImageCache` loads each image's pixels when first asked (within a memory budget), turns
an image that cannot be used into a logged, recorded skip instead of an error, subtracts the
background planes of image matching (:mod:`hipsluigi.mosaic.matching`), and maps map-frame unit
vectors to 0-based pixel positions in an image through the fastest exact route
(:func:`hipsluigi.geometry.wcs_mapping.image_projection`: array algebra for plain TAN and CAR
when it provably equals astropy's mapping, astropy's full transformation otherwise).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from hipsluigi.geometry.frames import astropy_frame
from hipsluigi.geometry.wcs_mapping import image_projection
from hipsluigi.mosaic.matching import image_coordinates, plane_values
from hipsluigi.surveys.base import BadImageError, SurveyImage

log = logging.getLogger("hipsluigi.mosaic")


class ImageCache:
    """The pixels and projections of a plate's survey images, addressed by their index.

    Parameters
    ----------
    images : sequence of SurveyImage
        The images of the plate; ``k`` below indexes this sequence.
    map_frame : str
        The map's celestial frame (``galactic`` or ``equatorial``).
    budget_bytes : float, optional
        Pixels held at once; beyond it the least recently loaded images are released.

    Attributes
    ----------
    used : list of str
        Keys of the images loaded successfully, in order of first use.
    skipped : dict of str to str
        Key -> reason, for images that could not be used (the reason names the image).
    planes : dict of str to numpy.ndarray
        Key -> background plane ``(c, a, b)`` subtracted from the image's pixels.
    """

    def __init__(self, images: Sequence[SurveyImage], map_frame: str,
                 budget_bytes: float = 2e9):
        self.images = list(images)
        self.map_frame = astropy_frame(map_frame)
        self.data: dict[str, np.ndarray] = {}  # insertion order = least recently loaded first
        self.projections: dict[str, object] = {}
        self.skipped: dict[str, str] = {}
        self.used: list[str] = []
        self.planes: dict[str, np.ndarray] = {}
        self.budget = budget_bytes
        self.nbytes = 0

    def get(self, k: int) -> np.ndarray | None:
        """The pixels ``[row, col]`` of image ``k`` (float64, its plane subtracted), or None if
        the image cannot be used (recorded in :attr:`skipped` and logged, once)."""
        image = self.images[k]
        if image.key in self.skipped:
            return None
        if image.key not in self.data:
            try:
                projection = self.projections.get(image.key) or image_projection(
                    image.wcs, image.shape, self.map_frame)
                data = image.load()
                if min(data.shape) < 2:
                    raise BadImageError(f"{image.key}: image {data.shape} is too small")
            except (BadImageError, ValueError, OSError) as err:
                reason = str(err) if image.key in str(err) else f"{image.key}: {err}"
                log.warning("skipping image %s", reason)
                self.skipped[image.key] = reason
                return None
            if image.key in self.planes:
                data = data - _plane_image(self.planes[image.key], data.shape)
            while self.data and self.nbytes + data.nbytes > self.budget:
                self._release_key(next(iter(self.data)))
            self.data[image.key] = data
            self.nbytes += data.nbytes
            if image.key not in self.projections:
                self.projections[image.key] = projection
                self.used.append(image.key)
        return self.data[image.key]

    def positions(self, k: int, vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """0-based pixel positions ``(x, y)`` (``x`` along columns) in image ``k`` of map-frame
        unit vectors ``(..., 3)``; image ``k`` must have been loaded by :meth:`get`."""
        return image_pixels(self.projections[self.images[k].key], vec)

    def set_planes(self, planes: dict[str, np.ndarray]) -> None:
        """From now on, images come with their background plane subtracted.

        Parameters
        ----------
        planes : dict of str to numpy.ndarray
            Image key -> ``(c, a, b)`` (see :func:`hipsluigi.mosaic.matching.plane_values`).
        """
        self.planes = planes
        for key, data in self.data.items():
            if key in planes:
                data -= _plane_image(planes[key], data.shape)

    def release(self, k: int) -> None:
        """Free the pixels of image ``k`` (they are loaded again if asked for)."""
        self._release_key(self.images[k].key)

    def _release_key(self, key: str) -> None:
        data = self.data.pop(key, None)
        if data is not None:
            self.nbytes -= data.nbytes


def _plane_image(params: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
    return plane_values(params, *image_coordinates(xs, ys, shape))


def image_pixels(projection, vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0-based pixel positions in a survey image of map-frame unit vectors.

    Parameters
    ----------
    projection : TanProjection, CarProjection, WcsProjection or callable
        What :func:`~hipsluigi.geometry.wcs_mapping.image_projection` returns for the image
        and the map frame (anything with ``vectors_to_pixels(vec)``), or a callable
        ``vec -> (x, y)``.
    vec : numpy.ndarray
        Unit vectors ``(..., 3)`` in the map frame.

    Returns
    -------
    tuple of numpy.ndarray
        ``(x, y)``, 0-based, ``x`` along columns and ``y`` along rows; NaN where the vector has
        no position in the image's projection (or, near the image, no position that maps back
        to it: :class:`~hipsluigi.geometry.wcs_mapping.WcsProjection`).
    """
    if hasattr(projection, "vectors_to_pixels"):
        return projection.vectors_to_pixels(vec)
    return projection(vec)
