"""``[hips] region``: the part of the sky a map is limited to.

Forms (case-insensitive):

* ``""`` : the whole sky.
* ``plates XMIN YMIN XMAX YMAX`` : plates with ``XMIN <= i <= XMAX`` and ``YMIN <= j <= YMAX`` on
  the deepest order's grid (mHPXPlateList's test arguments; inclusive, 0-based).
* ``cone LON LAT RADIUS [FRAME]`` : plates touching a cone, degrees; the position is in the
  map's frame unless ``FRAME`` (``icrs``, ``galactic``, ``equatorial``, ...) says otherwise.
  Unless ``nplate`` is given, a cone's plates are made about as small as the cone
  (:func:`hipsluigi.geometry.plates.default_nplate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import healpy as hp
import numpy as np

from hipsluigi.geometry.frames import astropy_frame, lonlat_to_vec, rotation_matrix
from hipsluigi.geometry.hpx import SPLIT_FACE, nested_to_plane
from hipsluigi.geometry.plates import PlateGrid


@dataclass(frozen=True)
class Region:
    """A parsed region.

    Attributes
    ----------
    kind : str
        ``sky``, ``plates`` or ``cone``.
    plates : (int, int, int, int) or None
        ``(xmin, ymin, xmax, ymax)``, inclusive, for ``plates``.
    lon, lat, radius : float
        The cone, map frame, degrees.
    """

    kind: str
    plates: tuple[int, int, int, int] | None = None  # xmin, ymin, xmax, ymax
    lon: float = 0.0  # map frame, degrees
    lat: float = 0.0
    radius: float = 180.0

    def contains_plate(self, grid: PlateGrid, i: int, j: int) -> bool:
        """Whether unpadded plate ``(i, j)`` of ``grid`` is in the region.

        For a cone: whether one of the plate's tiles meets the cone, as healpy's
        ``query_disc`` (inclusive) finds at the grid's order, its overlap test made at 1/1024
        of a tile (so a tile may count that misses the cone by that much). Plates of cell
        (4, 4) follow the face-6 tiles they repeat.
        """
        if self.kind == "sky":
            return True
        if self.kind == "plates":
            xmin, ymin, xmax, ymax = self.plates
            return xmin <= i <= xmax and ymin <= j <= ymax
        return (i, j) in _cone_plates(self.lon, self.lat, self.radius, grid)

    @property
    def cone_radius(self) -> float | None:
        """The cone's radius in degrees; None for other regions (for
        :func:`hipsluigi.geometry.plates.default_nplate`, which sizes plates to a cone)."""
        return self.radius if self.kind == "cone" else None


@lru_cache(maxsize=16)
def _cone_plates(lon: float, lat: float, radius: float, grid: PlateGrid
                 ) -> frozenset[tuple[int, int]]:
    """The plates ``(i, j)`` of ``grid`` holding a tile that meets the cone (degrees)."""
    nside = 1 << grid.order
    # healpy tests the overlap at fact * nside, which must stay below 2**30 in NESTED.
    fact = 1 << min(10, 29 - grid.order)
    tiles = hp.query_disc(nside, lonlat_to_vec(lon, lat), np.radians(min(radius, 180.0)),
                          inclusive=True, fact=fact, nest=True)
    tc, tr = nested_to_plane(tiles, nside)
    split = (tiles >> (2 * grid.order)) == SPLIT_FACE  # also in cell (4, 4), 4 cells along
    tc = np.concatenate([tc, tc[split] + 4 * nside])
    tr = np.concatenate([tr, tr[split] + 4 * nside])
    per_plate = grid.tiles_per_plate_side
    return frozenset(zip((tc // per_plate).tolist(), (tr // per_plate).tolist(), strict=True))


def parse_region(text: str, map_frame: str) -> Region:
    """Parse ``[hips] region``.

    Parameters
    ----------
    text : str
        The region (see the module docstring); empty for the whole sky.
    map_frame : str
        The map's frame, into which a cone's position is converted.

    Returns
    -------
    Region

    Raises
    ------
    ValueError
        Naming the text and the reason.
    """
    words = (text or "").split()
    if not words:
        return Region("sky")
    kind = words[0].lower()
    try:
        if kind == "plates" and len(words) == 5:
            xmin, ymin, xmax, ymax = (int(w) for w in words[1:])
            if xmin > xmax or ymin > ymax:
                raise ValueError("XMIN > XMAX or YMIN > YMAX")
            return Region("plates", plates=(xmin, ymin, xmax, ymax))
        if kind == "cone" and len(words) in (4, 5):
            lon, lat, radius = (float(w) for w in words[1:4])
            if not (-90 <= lat <= 90 and radius > 0):
                raise ValueError("latitude outside [-90, 90] or radius <= 0")
            if len(words) == 5:
                lon, lat = _to_map_frame(lon, lat, words[4].lower(), map_frame)
            return Region("cone", lon=lon, lat=lat, radius=radius)
    except ValueError as err:
        raise ValueError(f"[hips] region {text!r}: {err}") from None
    raise ValueError(
        f"[hips] region {text!r}: expected 'plates XMIN YMIN XMAX YMAX' or "
        "'cone LON LAT RADIUS [FRAME]'"
    )


def _to_map_frame(lon: float, lat: float, frame_name: str, map_frame: str) -> tuple[float, float]:
    from astropy.coordinates import frame_transform_graph

    from hipsluigi.geometry.frames import vec_to_lonlat

    names = {"equatorial": "icrs"}
    frame_cls = frame_transform_graph.lookup_name(names.get(frame_name, frame_name))
    if frame_cls is None:
        raise ValueError(f"unknown frame {frame_name!r}")
    rot = rotation_matrix(frame_cls(), astropy_frame(map_frame))
    lon_m, lat_m = vec_to_lonlat(rot @ lonlat_to_vec(lon, lat))
    return float(lon_m), float(lat_m)
