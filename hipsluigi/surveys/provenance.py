"""What a map shows, for its HiPS ``properties``: the standard's recommended keys
(``obs_description``, ``prov_progenitor``, ``obs_regime``, ``em_min``/``em_max`` in metres,
``t_min``/``t_max`` in MJD; HiPS 1.0, section 4.4.1) and Hipsgen's ``s_pixel_scale`` (degrees)
and ``data_pixel_bitpix`` of the survey images.

Each survey says what it knows; ``[hips]`` settings of the same names override it
(:func:`map_provenance`). A key nobody knows is left out, and named, so that the caller can warn.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from hipsluigi.spec import METADATA_KEYS, MapSpec

#: The HiPS standard's recommended keys that describe the data.
RECOMMENDED_KEYS = ("obs_description", "prov_progenitor", "obs_regime", "em_min", "em_max",
                    "t_min", "t_max")

#: AllWISE bands: isophotal wavelength and width (Wright et al. 2010, AJ 140, 1868, table 1;
#: Jarrett et al. 2011), metres; and the last day of the AllWISE data the band holds, MJD
#: (4-band cryogenic survey from MJD 55203, 2010-01-07; W4 to 55414, W3 to 55468 with the
#: 3-band cryogenic phase; W1 and W2 to 55593, 2011-02-01, with NEOWISE post-cryo).
WISE_BANDS = {1: (3.3526e-6, 0.6626e-6, 55593.0), 2: (4.6028e-6, 1.0423e-6, 55593.0),
              3: (11.5608e-6, 5.5069e-6, 55468.0), 4: (22.0883e-6, 4.1013e-6, 55414.0)}
WISE_START_MJD = 55203.0
#: AllWISE Atlas image pixels, degrees.
WISE_PIXEL_SCALE = 1.375 / 3600.0
#: J2000.0 (2000-01-01T12:00 TT), MJD: the synthetic survey's nominal epoch.
J2000_MJD = 51544.5


def synthetic_provenance(spec: MapSpec, pixel_scale: float) -> dict[str, object]:
    """The synthetic survey's description: it says it is synthetic, with a nominal optical
    band (500-600 nm) and epoch (J2000.0). ``pixel_scale``: its images' pixels, degrees."""
    syn = spec.synthetic
    return {
        "obs_description": f"Synthetic sky made by hipsluigi (seed {syn.seed}): {syn.sources} "
                           f"point sources and {syn.blobs} diffuse blobs, seen as "
                           f"{syn.frame_size}x{syn.frame_size}-pixel TAN images; not an "
                           "observation (its band and epoch are nominal)",
        "prov_progenitor": f"hipsluigi synthetic survey, seed {syn.seed}",
        "obs_regime": "Optical", "em_min": 5.0e-7, "em_max": 6.0e-7,
        "t_min": J2000_MJD, "t_max": J2000_MJD,
        "s_pixel_scale": pixel_scale, "data_pixel_bitpix": -32,
    }


def wise_provenance(band: int, collection: str) -> dict[str, object]:
    """AllWISE Atlas band ``W<band>`` (1..4) from IRSA's SIA ``collection``."""
    centre, width, end = WISE_BANDS[band]
    return {
        "obs_description": f"AllWISE Atlas images, band W{band} ({centre * 1e6:.1f} um), "
                           "mosaicked into a HiPS by hipsluigi",
        "prov_progenitor": f"AllWISE Atlas Images (Cutri et al. 2013), IRSA SIA collection "
                           f"{collection}",
        "obs_regime": "Infrared", "em_min": centre - width / 2, "em_max": centre + width / 2,
        "t_min": WISE_START_MJD, "t_max": end,
        "s_pixel_scale": WISE_PIXEL_SCALE, "data_pixel_bitpix": -32,
    }


def header_mjd(header: Mapping) -> float | None:
    """The observation date of a FITS header, MJD: ``MJD-OBS``, else ``DATE-OBS`` (ISO 8601,
    UTC assumed when ``TIMESYS`` is absent), else None."""
    from astropy.time import Time

    value = header.get("MJD-OBS")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
        return float(value)
    text = header.get("DATE-OBS")
    if not isinstance(text, str) or not text.strip():
        return None
    scale = str(header.get("TIMESYS", "UTC")).strip().lower()
    try:
        return float(Time(text.strip(), format="isot" if "T" in text else "iso",
                          scale=scale if scale in ("utc", "tt", "tai", "tdb") else "utc").mjd)
    except ValueError:
        return None


@dataclass
class ImageRecord:
    """What the header of one survey image says, for the properties and the progenitor
    index.

    Attributes
    ----------
    path : str
        The file.
    hdu : int
        The image's HDU (0-based).
    date_obs : str or None
        ``DATE-OBS`` as written.
    mjd : float or None
        The observation date (:func:`header_mjd`), MJD.
    pixel_scale : float or None
        Mean pixel side, degrees.
    bitpix : int or None
        The data's BITPIX (``ZBITPIX`` of a compressed image).
    corners : numpy.ndarray or None
        ``(4, 2)`` ICRS ``(ra, dec)`` of the outer corners of pixels ``(1, 1)``, ``(N1, 1)``,
        ``(N1, N2)`` and ``(1, N2)``, degrees.
    """

    path: str
    hdu: int
    date_obs: str | None = None
    mjd: float | None = None
    pixel_scale: float | None = None
    bitpix: int | None = None
    corners: np.ndarray | None = None


def read_image_records(images: list[tuple[str, int]]) -> list[ImageRecord]:
    """:class:`ImageRecord` of each ``(path, hdu)``, as listed in the survey index; an image
    whose header cannot be read now (gone since the index) is left out."""
    from astropy.io import fits
    from astropy.wcs import WCS
    from astropy.wcs.utils import proj_plane_pixel_scales

    records = []
    for path, hdu in images:
        try:
            with fits.open(path) as hdul:
                header = hdul[hdu].header
                wcs = WCS(header, naxis=2).celestial
                n1, n2 = int(header["NAXIS1"]), int(header["NAXIS2"])
                corners = wcs.pixel_to_world([-0.5, n1 - 0.5, n1 - 0.5, -0.5],
                                             [-0.5, -0.5, n2 - 0.5, n2 - 0.5]).icrs
                date = header.get("DATE-OBS")
                records.append(ImageRecord(
                    path=path, hdu=hdu, date_obs=str(date).strip() if date else None,
                    mjd=header_mjd(header),
                    pixel_scale=float(np.mean(proj_plane_pixel_scales(wcs))),
                    bitpix=int(header.get("ZBITPIX", header.get("BITPIX", 0))) or None,
                    corners=np.column_stack([corners.ra.deg, corners.dec.deg])))
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            continue  # an image gone since the index: the mosaics name it
    return records


def fits_folder_provenance(folder: str, records: list[ImageRecord]) -> dict[str, object]:
    """What the headers of a folder's usable images say: dates (``t_min``, ``t_max``), pixel
    scale (median, degrees) and BITPIX (when all agree).

    Parameters
    ----------
    folder : str
        The survey folder (only its name is written).
    records : list of ImageRecord
        The usable images (:func:`read_image_records`).
    """
    dates = [r.mjd for r in records if r.mjd is not None]
    scales = [r.pixel_scale for r in records if r.pixel_scale]
    bitpix = {r.bitpix for r in records if r.bitpix}
    name = os.path.basename(os.path.normpath(folder))
    found: dict[str, object] = {
        "obs_description": f"{len(records)} FITS images of the folder {name}, mosaicked "
                           "into a HiPS by hipsluigi",
        "prov_progenitor": f"{len(records)} FITS images ({name})",
    }
    if dates:
        found["t_min"], found["t_max"] = min(dates), max(dates)
    if scales:
        found["s_pixel_scale"] = float(np.median(scales))
    if len(bitpix) == 1:
        found["data_pixel_bitpix"] = bitpix.pop()
    return found


def healpix_provenance(path: str, column: str, nside: int) -> dict[str, object]:
    """A HEALPix map file's description (its band and dates are not in the file's standard
    keys). ``s_pixel_scale``: the map's pixel side, degrees."""
    name = os.path.basename(path)
    return {
        "obs_description": f"HEALPix map {name} (column {column}, Nside {nside}), resampled "
                           "into a HiPS by hipsluigi",
        "prov_progenitor": f"HEALPix map {name}",
        "s_pixel_scale": float(np.degrees(np.sqrt(4 * np.pi / (12 * nside * nside)))),
    }


def map_provenance(spec: MapSpec, survey_says: Mapping[str, object]
                   ) -> tuple[dict[str, object], list[str]]:
    """The survey's description overridden by the map's ``[hips]`` settings of the same names.

    Returns
    -------
    tuple
        ``(keys, missing)``: the properties keys and values (numbers as numbers), and the
        recommended keys neither the settings nor the survey gave.
    """
    keys = dict(survey_says)
    for key in METADATA_KEYS:
        value = getattr(spec, key)
        if key in RECOMMENDED_KEYS and value not in (None, ""):
            keys[key] = value
    missing = [key for key in RECOMMENDED_KEYS if keys.get(key) in (None, "")]
    return {k: v for k, v in keys.items() if v not in (None, "")}, missing
