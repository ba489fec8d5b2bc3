"""``[hips] survey = fits``: a folder of FITS images with celestial WCS.

:func:`scan_folder` indexes the folder once (the ``SurveyIndex`` task writes the result as an
IPAC table): for each file, the first 2-D image HDU with a celestial WCS (any projection, any
frame, tile-compressed HDUs too), its shape and a cap on the sky holding it. Files that cannot
be used are listed with ``status = skipped`` and the reason (not FITS or truncated, no image,
no celestial WCS, not 2-D); they never stop the rest of the sky. :class:`FitsFolderSurvey`
serves the indexed images to the plate mosaics; an image whose pixels turn out unusable when
read (all blank, unreadable) is skipped there, with its name and the reason in the log and in
the plate's FITS header.
"""

from __future__ import annotations

import warnings
from functools import partial
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS, FITSFixedWarning

from hipsluigi.geometry.frames import (
    astropy_frame,
    frame_of_wcs,
    lonlat_to_vec,
    rotation_matrix,
    vec_to_lonlat,
)
from hipsluigi.geometry.sky import cap_of_vectors
from hipsluigi.surveys.base import BadImageError, SurveyImage, caps_intersect

PATTERNS = ("*.fits", "*.fit", "*.fts", "*.fits.gz", "*.fit.gz", "*.fits.fz", "*.fz")


def _celestial_wcs(header) -> WCS:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(header).celestial


def _image_hdu(hdul) -> tuple[int, object]:
    """Index and HDU of the first 2-D image with a celestial WCS; raises ValueError why not."""
    reasons = []
    for k, hdu in enumerate(hdul):
        if not hdu.is_image or hdu.header.get("NAXIS", 0) == 0:
            continue
        naxis = hdu.header["NAXIS"]
        shape = tuple(hdu.header[f"NAXIS{n}"] for n in range(naxis, 0, -1))
        if len([s for s in shape if s > 1]) != 2:
            reasons.append(f"HDU {k} is not a 2-D image (shape {shape})")
            continue
        try:
            wcs = _celestial_wcs(hdu.header)
        except Exception as err:  # noqa: BLE001  (any WCS error makes the HDU unusable)
            reasons.append(f"HDU {k} has an unreadable WCS ({err})")
            continue
        if wcs.naxis != 2:
            reasons.append(f"HDU {k} has no celestial WCS")
            continue
        return k, hdu
    raise ValueError("; ".join(reasons) or "no image HDU")


def footprint_cap(wcs: WCS, shape: tuple[int, int], map_frame: str,
                  samples: int = 9) -> tuple[np.ndarray, float]:
    """A cap on the sky holding every pixel of an image.

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        The image's 2-D celestial WCS.
    shape : tuple of int
        The image's ``(rows, cols)``.
    map_frame : str
        The map's frame (``galactic`` or ``equatorial``).
    samples : int, optional
        Points sampled along each edge of the image (its outer pixel edges, 0-based
        ``-0.5 .. n - 0.5``), plus the centre.

    Returns
    -------
    tuple
        ``(centre, radius)``: unit vector ``(3,)`` in the map frame, radius in radians (widened
        by one sampling step so the cap holds the whole image).

    Raises
    ------
    ValueError
        If no sampled pixel maps to the sky.
    """
    ny, nx = shape
    edge_x = np.linspace(-0.5, nx - 0.5, samples)
    edge_y = np.linspace(-0.5, ny - 0.5, samples)
    xs = np.concatenate([edge_x, edge_x, np.full(samples, -0.5), np.full(samples, nx - 0.5),
                         [(nx - 1) / 2]])
    ys = np.concatenate([np.full(samples, -0.5), np.full(samples, ny - 0.5), edge_y, edge_y,
                         [(ny - 1) / 2]])
    lon, lat = wcs.pixel_to_world_values(xs, ys)
    ok = np.isfinite(lon) & np.isfinite(lat)
    if not ok.any():
        raise ValueError("no pixel of the image maps to the sky")
    rot = rotation_matrix(frame_of_wcs(wcs), astropy_frame(map_frame))
    vec = lonlat_to_vec(lon[ok], lat[ok]) @ rot.T
    centre, radius = cap_of_vectors(vec)
    # Edges were sampled: widen by one sampling step (plus a pixel) so the cap holds them all.
    step = radius * 2.0 / (samples - 1)
    return centre, radius + step + 1e-6


def scan_folder(folder: str | Path, map_frame: str) -> Table:
    """Index every FITS file in ``folder`` (not recursive).

    Parameters
    ----------
    folder : str or pathlib.Path
        The folder; files matching :data:`PATTERNS` are read.
    map_frame : str
        The map's frame, in which the caps are given.

    Returns
    -------
    astropy.table.Table
        One row per file, sorted by path: ``path``, ``hdu`` (index of the image HDU used, -1
        if none), ``naxis1``, ``naxis2`` (pixels), ``lon``, ``lat`` (cap centre in the map
        frame, degrees), ``radius`` (radians), ``status`` (``ok`` or ``skipped``) and
        ``reason`` (why it was skipped).

    Raises
    ------
    ValueError
        If ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"[hips] survey_path {str(folder)!r} is not a folder")
    paths = sorted({p for pattern in PATTERNS for p in folder.glob(pattern) if p.is_file()})
    rows = []
    for path in paths:
        row = {"path": str(path), "hdu": -1, "naxis1": 0, "naxis2": 0, "lon": np.nan,
               "lat": np.nan, "radius": np.nan, "status": "ok", "reason": ""}
        try:
            with fits.open(path, memmap=False) as hdul:
                k, hdu = _image_hdu(hdul)
                wcs = _celestial_wcs(hdu.header)
                ny, nx = (s for s in hdu.data.shape if s > 1) if hdu.data is not None else (0, 0)
                centre, radius = footprint_cap(wcs, (ny, nx), map_frame)
            lon, lat = vec_to_lonlat(centre)
            row.update(hdu=k, naxis1=nx, naxis2=ny, lon=float(lon), lat=float(lat),
                       radius=float(radius))
        except Exception as err:  # noqa: BLE001  (a bad file is reported, never fatal)
            row.update(status="skipped", reason=f"{type(err).__name__}: {err}"[:300])
        rows.append(row)
    names = ["path", "hdu", "naxis1", "naxis2", "lon", "lat", "radius", "status", "reason"]
    if not rows:
        return Table(names=names, dtype=[str, int, int, int, float, float, float, str, str])
    return Table(rows=[[r[n] for n in names] for r in rows], names=names)


def _load(path: str, hdu: int) -> np.ndarray:
    try:
        with fits.open(path, memmap=False) as hdul:
            image = hdul[hdu]
            raw = np.squeeze(np.asarray(image.data))
            data = raw.astype(np.float64)
            # astropy turns BLANK into NaN only for scaled integers: mask raw ones here.
            blank = image.header.get("BLANK")
            if raw.dtype.kind in "iu" and blank is not None:
                data[raw == blank] = np.nan
    except (OSError, ValueError, TypeError, IndexError) as err:
        raise BadImageError(f"{path}[{hdu}]: cannot read the pixels ({err})") from None
    data[~np.isfinite(data)] = np.nan
    return data


class FitsFolderSurvey:
    """The images of a :func:`scan_folder` index (its ``ok`` rows), as a :class:`Survey`.

    Parameters
    ----------
    index : astropy.table.Table
        The index :func:`scan_folder` made.
    map_frame : str
        The map's frame (the frame of the index's caps).
    """

    def __init__(self, index: Table, map_frame: str):
        good = index[index["status"] == "ok"]
        self.paths = [str(p) for p in good["path"]]
        self.hdus = [int(k) for k in good["hdu"]]
        self.shapes = [(int(ny), int(nx)) for nx, ny in zip(good["naxis1"], good["naxis2"],
                                                             strict=True)]
        self.centres = lonlat_to_vec(np.asarray(good["lon"], dtype=float),
                                     np.asarray(good["lat"], dtype=float)).reshape(-1, 3)
        self.radii = np.asarray(good["radius"], dtype=float)
        self.map_frame = map_frame

    def images_touching(self, centre: np.ndarray, radius: float) -> list[SurveyImage]:
        """The images whose cap meets the cap ``(centre, radius)`` (map frame, radians).

        Each image's WCS is read now, its pixels when the mosaic loads them.
        """
        if len(self.paths) == 0:
            return []
        hit = np.flatnonzero(caps_intersect(self.centres, self.radii, centre, radius))
        return [self._image(k) for k in hit]

    def _image(self, k: int) -> SurveyImage:
        path, hdu = self.paths[k], self.hdus[k]
        with fits.open(path, memmap=False) as hdul:
            wcs = _celestial_wcs(hdul[hdu].header)
        return SurveyImage(key=f"{path}[{hdu}]", wcs=wcs, shape=self.shapes[k],
                           centre=self.centres[k], radius=float(self.radii[k]),
                           loader=partial(_load, path, hdu))
