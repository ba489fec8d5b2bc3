"""What every survey hands the mosaic: frames with a celestial WCS and pixels on demand."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from astropy.wcs import WCS


class BadFrameError(ValueError):
    """A frame that cannot be used; the message names the frame and the reason."""


@dataclass(eq=False)
class Frame:
    """One input image.

    ``key`` names it in logs and errors (a file path, or ``synthetic:<id>``); ``wcs`` is a 2-D
    celestial WCS; ``shape`` is ``(ny, nx)``; ``centre`` is the unit vector of its centre in the
    *map's* frame and ``radius`` (radians) a cap around it holding every pixel.
    """

    key: str
    wcs: WCS
    shape: tuple[int, int]
    centre: np.ndarray
    radius: float
    loader: Callable[[], np.ndarray] = field(repr=False)

    def load(self) -> np.ndarray:
        """The frame's pixels as float64, NaN where blank. Raises :class:`BadFrameError`."""
        data = np.asarray(self.loader(), dtype=np.float64)
        if data.shape != tuple(self.shape):
            raise BadFrameError(f"{self.key}: data shape {data.shape} differs from the WCS "
                                f"shape {tuple(self.shape)}")
        if not np.isfinite(data).any():
            raise BadFrameError(f"{self.key}: every pixel is blank (NaN or infinite)")
        return data


class Survey(Protocol):
    """A source of frames."""

    def frames_touching(self, centre: np.ndarray, radius: float) -> Sequence[Frame]:
        """Frames whose cap intersects the cap ``(centre, radius)`` (map frame, radians)."""
        ...


def caps_intersect(centres: np.ndarray, radii: np.ndarray, centre: np.ndarray,
                   radius: float) -> np.ndarray:
    """Boolean mask of caps ``(centres[k], radii[k])`` that meet the cap ``(centre, radius)``."""
    angle = np.arccos(np.clip(centres @ centre, -1.0, 1.0))
    return angle <= radii + radius
