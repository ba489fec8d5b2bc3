"""``HpxFinder/``: the progenitor index, which survey images made each tile, in Hipsgen's format
(its INDEX action), so that Aladin can show a tile's original images.

For each deepest-order tile touched by an image, ``HpxFinder/Norder{k}/Dir{d}/Npix{n}`` (no
extension) holds one JSON object a line per image::

    { "name": "img1", "path": "...", "ra": "11.005", "dec": "19.995",
      "stc": "POLYGON J2000 ra1 dec1 ... ra4 dec4", "DATE-OBS": "2010-05-02T00:00:00" }

(ICRS degrees, as strings, as Hipsgen writes them), beside ``HpxFinder/properties``
(``dataproduct_type = meta``) and ``HpxFinder/Moc.fits``. An image known only by a cone (an
archive's footprint) gets ``"stc": "CIRCLE ICRS ra dec radius"``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import healpy as hp
import numpy as np

from hipsluigi.geometry.hpx import DIR_SIZE

FINDER_DIR = "HpxFinder"


@dataclass(frozen=True)
class Progenitor:
    """One survey image of the index.

    Attributes
    ----------
    name, path : str
        Its name (file name without ``.fits``) and where it is (a path or a URL).
    corners : numpy.ndarray or None
        ``(4, 2)`` ICRS ``(ra, dec)`` of its corners, degrees, in order around the edge.
    cap : (float, float, float) or None
        ICRS ``(ra, dec, radius)`` of a circle holding it, degrees: used without corners.
    date_obs : str or None
        Its ``DATE-OBS``.
    """

    name: str
    path: str
    corners: np.ndarray | None = None
    cap: tuple[float, float, float] | None = None
    date_obs: str | None = None

    def centre(self) -> tuple[float, float]:
        """ICRS ``(ra, dec)`` degrees: the cap's centre, or the corners' mean direction."""
        if self.corners is None:
            return self.cap[0], self.cap[1]
        vec = hp.ang2vec(self.corners[:, 0], self.corners[:, 1], lonlat=True).sum(axis=0)
        ra, dec = hp.vec2ang(vec / np.linalg.norm(vec), lonlat=True)
        return float(ra[0]) % 360.0, float(dec[0])

    def record(self) -> str:
        """Its line in a ``HpxFinder`` tile file (JSON, values as strings like Hipsgen's)."""
        ra, dec = self.centre()
        if self.corners is not None:
            stc = "POLYGON J2000 " + " ".join(f"{v!r}" for v in self.corners.ravel().tolist())
        else:
            stc = "CIRCLE ICRS " + " ".join(repr(float(v)) for v in self.cap)
        entry = {"name": self.name, "path": self.path, "ra": repr(ra), "dec": repr(dec),
                 "stc": stc}
        if self.date_obs:
            entry["DATE-OBS"] = self.date_obs
        return json.dumps(entry, ensure_ascii=False)


def progenitor_tiles(image: Progenitor, order: int, to_frame: np.ndarray) -> np.ndarray:
    """The NESTED tiles of ``order`` (in the HiPS frame) an image touches, a superset.

    Parameters
    ----------
    image : Progenitor
    order : int
        HiPS order.
    to_frame : numpy.ndarray
        ``(3, 3)`` rotation from ICRS to the HiPS frame.
    """
    nside = 1 << order
    if image.corners is not None:
        vecs = hp.ang2vec(image.corners[:, 0], image.corners[:, 1], lonlat=True) @ to_frame.T
        try:
            return hp.query_polygon(nside, vecs, inclusive=True, nest=True)
        except (ValueError, RuntimeError):  # not convex: the cap around it
            pass
    ra, dec = image.centre()
    centre = to_frame @ hp.ang2vec(ra, dec, lonlat=True)
    if image.corners is not None:
        corner_vecs = hp.ang2vec(image.corners[:, 0], image.corners[:, 1], lonlat=True)
        radius = float(np.arccos(np.clip(corner_vecs @ (to_frame.T @ centre), -1, 1)).max())
    else:
        radius = float(np.radians(image.cap[2]))
    return hp.query_disc(nside, centre, radius, inclusive=True, nest=True)


def progenitor_index(images: Sequence[Progenitor], order: int, to_frame: np.ndarray,
                     tiles: Iterable[int]) -> dict[int, list[int]]:
    """``{tile: [image numbers]}`` for the map's ``tiles`` of ``order`` that images touch."""
    wanted = np.zeros(12 * 4**order, dtype=bool)
    wanted[np.fromiter(tiles, dtype=np.int64)] = True
    index: dict[int, list[int]] = {}
    for k, image in enumerate(images):
        for npix in progenitor_tiles(image, order, to_frame):
            if wanted[npix]:
                index.setdefault(int(npix), []).append(k)
    return index


def write_progenitor_index(hips_dir: Path, order: int, frame: str, tile_width: int,
                           images: Sequence[Progenitor], tiles: Iterable[int],
                           properties: dict[str, str]) -> int:
    """Write ``<hips_dir>/HpxFinder/``, replacing a previous one whole.

    Written into a temporary folder beside it and moved into place, so that a reader sees the
    old index or the new one.

    Parameters
    ----------
    hips_dir : pathlib.Path
        The HiPS folder.
    order, frame, tile_width : int, str, int
        The map's deepest order, frame and tile width.
    images : sequence of Progenitor
        The usable survey images.
    tiles : iterable of int
        The map's tiles of ``order``: only these are listed.
    properties : dict of str to str
        ``HpxFinder/properties`` (see :func:`finder_properties`).

    Returns
    -------
    int
        The number of tile files written.
    """
    from astropy.coordinates import ICRS

    from hipsluigi.geometry.frames import astropy_frame, rotation_matrix
    from hipsluigi.metadata.moc import icrs_coverage, write_moc
    from hipsluigi.metadata.properties import write_properties

    hips_dir = Path(hips_dir)
    to_frame = rotation_matrix(ICRS(), astropy_frame(frame))
    index = progenitor_index(images, order, to_frame, tiles)
    records = [image.record() for image in images]
    final = hips_dir / FINDER_DIR
    tmp = hips_dir / f".{FINDER_DIR}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    for npix, members in index.items():
        path = tmp / f"Norder{order}" / f"Dir{(npix // DIR_SIZE) * DIR_SIZE}" / f"Npix{npix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(records[k] + "\n" for k in members), encoding="utf-8")
    tmp.mkdir(exist_ok=True)
    write_properties(tmp / "properties", properties)
    write_moc(tmp / "Moc.fits", icrs_coverage(frame, order, index))
    old = hips_dir / f".{FINDER_DIR}.old-{os.getpid()}"
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return len(index)


def finder_properties(creator_did: str, title: str, order: int, frame: str, tile_width: int,
                      release_date: str) -> dict[str, str]:
    """``HpxFinder/properties`` as Hipsgen writes it (``dataproduct_type = meta``)."""
    return {"creator_did": f"{creator_did}/meta", "obs_title": f"{title}-meta",
            "dataproduct_type": "meta", "hips_frame": frame, "hips_order": str(order),
            "hips_tile_width": str(tile_width), "hips_release_date": release_date,
            "hips_version": "1.4", "hips_builder": "hipsluigi"}
