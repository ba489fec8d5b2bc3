"""Whether a survey index can give a map any pixel at all, and why not.

Checked once, when the survey is indexed, so that a map with no usable pixel fails at once with
the reason (every input rejected, none in the region, all smaller than one HiPS pixel) instead
of after every plate has been mosaicked.
"""

from __future__ import annotations

from collections.abc import Sequence

import healpy as hp
import numpy as np
from astropy.table import Table

from hipsluigi.geometry.frames import lonlat_to_vec
from hipsluigi.surveys.base import caps_touching


def check_coverage(index: Table, plate_caps: Sequence[tuple[np.ndarray, float]],
                   pixel_nside: int, region: str, source: str) -> int:
    """Check that some usable image of an index can give the map a pixel.

    Parameters
    ----------
    index : astropy.table.Table
        A survey index: ``status`` (``ok`` for usable rows), ``lon``, ``lat`` (cap centre in
        the map frame, degrees) and ``radius`` (cap radius, radians).
    plate_caps : sequence of tuple
        ``(centre, radius)`` of every plate of the map (map-frame unit vector, radians).
    pixel_nside : int
        Nside of the map's pixels at the deepest order (``2**order * tile_width``).
    region : str
        ``[hips] region``, for the message.
    source : str
        What was indexed (``[hips] survey_path '...'``), for the message.

    Returns
    -------
    int
        The number of usable images touching a plate.

    Raises
    ------
    ValueError
        Saying why no pixel can be made: no usable image, none touching the map's plates, or
        every image touching them smaller than one HiPS pixel (no pixel centre in its cap).
    """
    usable = index[np.asarray(index["status"]) == "ok"]
    if len(usable) == 0:
        raise ValueError(f"{source}: no usable image among {len(index)} inputs (each reason is "
                         "in survey/rejects.tbl)")
    centres = lonlat_to_vec(np.asarray(usable["lon"], float),
                            np.asarray(usable["lat"], float)).reshape(-1, 3)
    radii = np.asarray(usable["radius"], float)
    touching = np.zeros(len(usable), bool)
    if len(plate_caps):
        hits = caps_touching(centres, radii, np.array([c for c, _ in plate_caps]),
                             np.array([r for _, r in plate_caps]))
        for found in hits:
            touching[found] = True
    where = f"the region {region!r}" if region.strip() else "the sky"
    if not touching.any():
        raise ValueError(f"{source}: none of the {len(usable)} usable images touches any plate "
                         f"of {where}")
    # A cap wider than a pixel's circumradius holds a pixel centre; narrower ones are asked.
    pixrad = hp.max_pixrad(pixel_nside)
    idx = np.flatnonzero(touching)
    small = idx[radii[idx] < pixrad]
    if len(small) == len(idx) and not any(
            len(hp.query_disc(pixel_nside, centres[k], radii[k], inclusive=False, nest=True))
            for k in small):
        size = np.degrees(hp.nside2resol(pixel_nside)) * 3600
        largest = np.degrees(radii[idx].max()) * 2 * 3600
        raise ValueError(f"{source}: the {len(idx)} usable images touching {where} are all "
                         f"smaller than one HiPS pixel (largest {largest:.3g} arcsec across; "
                         f"HiPS pixels are {size:.3g} arcsec): raise [hips] order or "
                         "tile_width")
    return int(touching.sum())
