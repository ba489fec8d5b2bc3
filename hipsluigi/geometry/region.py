"""``[hips] region``: the part of the sky a map is limited to.

Forms (case-insensitive):

* ``""`` : the whole sky.
* ``plates XMIN YMIN XMAX YMAX`` : plates with ``XMIN <= i <= XMAX`` and ``YMIN <= j <= YMAX`` on
  the deepest order's grid (mHPXPlateList's test arguments; inclusive, 0-based).
* ``cone LON LAT RADIUS [FRAME]`` : plates touching a cone, degrees; the position is in the
  map's frame unless ``FRAME`` (``icrs``, ``galactic``, ``equatorial``, ...) says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hipsluigi.geometry.frames import astropy_frame, lonlat_to_vec, rotation_matrix
from hipsluigi.geometry.plates import PlateGrid
from hipsluigi.geometry.sky import plane_pixel_vectors


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
        """Whether unpadded plate ``(i, j)`` of ``grid`` is in the region (for a cone: may
        touch it, up to one sampling step)."""
        if self.kind == "sky":
            return True
        if self.kind == "plates":
            xmin, ymin, xmax, ymax = self.plates
            return xmin <= i <= xmax and ymin <= j <= ymax
        # Closest point of a 17 x 17 lattice over the plate, allowing one lattice diagonal.
        side = grid.plate_side
        samples = 17
        lattice = np.linspace(0, side - 1, samples)
        p1_0, p2_0 = grid.origin(i, j)
        vec = plane_pixel_vectors((p1_0 + lattice).round()[None, :].astype(np.int64),
                                  (p2_0 + lattice).round()[:, None].astype(np.int64),
                                  grid.face_side).reshape(-1, 3)
        vec = vec[np.isfinite(vec[:, 0])]
        if len(vec) == 0:
            return False
        cone = lonlat_to_vec(self.lon, self.lat)
        closest = np.degrees(np.arccos(np.clip(vec @ cone, -1.0, 1.0)).min())
        step = np.degrees(np.sqrt(2) * np.radians(90.0 / grid.face_side)) * side / (samples - 1)
        return bool(closest <= self.radius + step)


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
