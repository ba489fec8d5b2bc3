"""``[hips] survey = healpix``: one HEALPix map file, sampled onto the plates.

The file is a HEALPix map in the FITS convention of HEALPix and healpy: a binary table with
``NSIDE`` and ``ORDERING`` (``RING`` or ``NESTED``), one map per column, either every pixel in
order (``INDXSCHM = IMPLICIT``, columns of any width, read row by row) or a partial sky with the
pixel index in the first column (``INDXSCHM = EXPLICIT`` or ``OBJECT = PARTIAL``, as
``healpy.read_map`` detects it; pixels absent from the file have no value). ``UNSEEN``
(-1.6375e30, with healpy's tolerance), NaN and infinite pixels have no value either.

The map's frame is its ``COORDSYS`` (``G`` galactic; ``C`` or ``Q`` equatorial; ``E``
ecliptic), else ``[hips] healpix_frame``. These are healpy's frames (its ``Rotator``): ``G`` is
astropy's ``Galactic``, ``C`` is ``FK5`` at equinox J2000 (healpy converts to ``fk5``; it is
within 0.03 arcsec of ICRS, the HiPS equatorial frame), and ``E`` is astropy's
``BarycentricMeanEcliptic`` at equinox J2000, the mean ecliptic and equinox of J2000 that
healpy's ``E`` uses.

Each plate pixel's value is the bilinear interpolation on the sphere of the map (healpy's
``get_interp_weights``, the weights of ``get_interp_val``) at the pixel centre's direction,
rotated from the HiPS frame to the map's frame. A pixel is NaN when any map pixel with a
non-zero weight has no value: an edge of the data is never blended with zeros.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import healpy as hp
import numpy as np
from astropy.coordinates import FK5, BarycentricMeanEcliptic, Galactic
from astropy.io import fits

from hipsluigi.geometry.frames import astropy_frame, rotation_matrix
from hipsluigi.geometry.plates import PlateGrid
from hipsluigi.geometry.sky import plate_pixel_vectors
from hipsluigi.mosaic.coadd import MosaicResult

log = logging.getLogger(__name__)

#: ``COORDSYS`` values (upper case) -> frame name.
COORDSYS = {
    "G": "galactic", "GALACTIC": "galactic",
    "C": "equatorial", "Q": "equatorial", "CELESTIAL": "equatorial", "EQUATORIAL": "equatorial",
    "E": "ecliptic", "ECLIPTIC": "ecliptic",
}

#: frame name -> astropy frame of healpy's convention for it.
HEALPIX_FRAMES = {
    "galactic": Galactic(),
    "equatorial": FK5(equinox="J2000"),
    "ecliptic": BarycentricMeanEcliptic(equinox="J2000"),
}

#: healpy's ``mask_bad`` tolerance around UNSEEN, relative.
_UNSEEN_RTOL = 1e-5

#: Map pixels cleaned per step (bounds the temporaries on any map to ~5 MB).
_CHUNK = 1 << 18


def interpolate(values: np.ndarray, nest: bool, vec: np.ndarray) -> np.ndarray:
    """Bilinear interpolation on the sphere of a HEALPix map.

    Parameters
    ----------
    values : numpy.ndarray
        The map, ``12 * nside**2`` pixels in ``nest`` ordering, NaN where it has no value.
    nest : bool
        True for NESTED ordering, False for RING.
    vec : numpy.ndarray
        ``(n, 3)`` finite unit vectors ``(x, y, z)`` in the map's frame (``x`` towards
        longitude 0, ``z`` towards the north pole).

    Returns
    -------
    numpy.ndarray
        float64 ``(n,)``: healpy's ``get_interp_val`` at each direction; NaN where a map pixel
        with a non-zero weight is NaN.
    """
    nside = hp.npix2nside(values.size)
    # atan2 keeps colatitude precise near the poles, where arccos(z) loses digits.
    theta = np.arctan2(np.hypot(vec[:, 0], vec[:, 1]), vec[:, 2])
    phi = np.arctan2(vec[:, 1], vec[:, 0])
    pix, weights = hp.get_interp_weights(nside, theta, phi, nest=nest)
    out = np.zeros(len(vec))
    for p, w in zip(pix, weights, strict=True):
        # A zero weight must not let a NaN neighbour blank the pixel (0 * NaN is NaN).
        out += np.where(w > 0, w * values[p], 0.0)
    return out


def map_frame_of(path: str, header_coordsys: str | None, healpix_frame: str) -> str:
    """The frame of a HEALPix map: its ``COORDSYS``, else ``[hips] healpix_frame``.

    Parameters
    ----------
    path : str
        The file, for messages.
    header_coordsys : str or None
        ``COORDSYS`` of the file, None if absent.
    healpix_frame : str
        ``''``, ``galactic``, ``equatorial`` or ``ecliptic``.

    Returns
    -------
    str
        ``galactic``, ``equatorial`` or ``ecliptic``.

    Raises
    ------
    ValueError
        For an unknown ``COORDSYS``, or none and no ``healpix_frame``.
    """
    if healpix_frame and healpix_frame not in HEALPIX_FRAMES:
        raise ValueError(f"[hips] healpix_frame = {healpix_frame!r}: must be one of "
                         f"{', '.join(HEALPIX_FRAMES)} (or empty)")
    if header_coordsys is None or not str(header_coordsys).strip():
        if not healpix_frame:
            raise ValueError(
                f"{path}: the HEALPix map has no COORDSYS keyword, so its frame is unknown; set "
                "[hips] healpix_frame = galactic, equatorial or ecliptic (or add COORDSYS = "
                "'G', 'C' or 'E' to the map's header)")
        return healpix_frame
    value = str(header_coordsys).strip().upper()
    if value not in COORDSYS:
        raise ValueError(f"{path}: COORDSYS = {header_coordsys!r} is not a HEALPix frame "
                         "(G galactic, C or Q equatorial, E ecliptic)")
    frame = COORDSYS[value]
    if healpix_frame and healpix_frame != frame:
        log.warning("%s: COORDSYS = %r (%s) is used, not [hips] healpix_frame = %s", path,
                    header_coordsys, frame, healpix_frame)
    return frame


@dataclass(frozen=True, eq=False)
class HealpixMapSurvey:
    """One column of a HEALPix map file, ready to be sampled onto plates (make it with
    :meth:`open`).

    Attributes
    ----------
    path : str
        The map file.
    column : str
        The column's name (``TTYPEn``).
    nside : int
        HEALPix Nside.
    nest : bool
        True if the file is NESTED, False if RING; :attr:`values` keeps the file's ordering.
    frame : str
        The map's frame: ``galactic``, ``equatorial`` or ``ecliptic`` (see the module).
    unit : str
        The column's ``TUNITn``, empty if none.
    partial : bool
        True for a partial-sky (explicit index) file.
    values : numpy.ndarray
        The map, read-only, float32 or float64 as stored (integer columns become float64),
        NaN where it has no value. Shared by every survey opened on the same file, modification
        time and column in this process.
    """

    path: str
    column: str
    nside: int
    nest: bool
    frame: str
    unit: str
    partial: bool
    values: np.ndarray = field(repr=False)

    @classmethod
    def open(cls, path: str | os.PathLike, column: str = "", healpix_frame: str = ""
             ) -> HealpixMapSurvey:
        """Read a HEALPix map file (once per process and modification time).

        Parameters
        ----------
        path : str or os.PathLike
            The FITS file.
        column : str, optional
            The column: its name (``TTYPEn``, any case), or its 0-based number among the map
            columns (the pixel index column of a partial-sky file not counted); empty: the
            first.
        healpix_frame : str, optional
            The frame when the header has no ``COORDSYS``: ``galactic``, ``equatorial`` or
            ``ecliptic``.

        Returns
        -------
        HealpixMapSurvey

        Raises
        ------
        ValueError
            Naming the file and the reason: unreadable, not a HEALPix map (no binary table,
            no ``NSIDE`` or ``ORDERING``, a length that is not the map's), an unknown column
            (the message lists the columns), a non-numeric column, no frame.
        """
        path = str(path)
        try:
            stat = os.stat(path)
        except OSError as err:
            raise ValueError(f"{path}: cannot read the HEALPix map ({err.strerror})") from err
        info, values = _read_map(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size,
                                 str(column).strip())
        frame = map_frame_of(path, info["coordsys"], healpix_frame)
        return cls(path, info["column"], info["nside"], info["nest"], frame, info["unit"],
                   info["partial"], values)

    @property
    def key(self) -> str:
        """Names the map in logs and plate headers: ``<path>[<column>]``."""
        return f"{self.path}[{self.column}]"

    def sample(self, vec: np.ndarray, from_frame: str) -> np.ndarray:
        """The map's bilinear interpolation at directions given in a HiPS frame.

        Parameters
        ----------
        vec : numpy.ndarray
            ``(n, 3)`` finite unit vectors in ``from_frame``.
        from_frame : str
            HiPS frame of ``vec``: ``galactic`` or ``equatorial`` (ICRS).

        Returns
        -------
        numpy.ndarray
            float64 ``(n,)``, NaN where the map has no value (see :func:`interpolate`).
        """
        rotation = _rotation(from_frame, self.frame)
        if rotation is not None:
            vec = vec @ rotation.T
        return interpolate(self.values, self.nest, vec)

    def plate_mosaic(self, grid: PlateGrid, i: int, j: int, map_frame: str,
                     block: int = 256) -> MosaicResult:
        """The map sampled on the padded plate ``(i, j)``.

        Parameters
        ----------
        grid : PlateGrid
            The deepest order's plate grid, with its padding.
        i, j : int
            The plate: ``i`` along plane columns, ``j`` along rows.
        map_frame : str
            The HiPS frame (``galactic`` or ``equatorial``).
        block : int, optional
            Side, in pixels, of the blocks the plate is walked in (bounds the memory).

        Returns
        -------
        MosaicResult
            ``data`` float32 ``[row, col]`` of the padded plate, NaN off the sky and where the
            map has no value; ``count`` int32, 1 where ``data`` is finite; ``used_images``
            ``[key]`` if any pixel is finite, else empty.
        """
        nrow, ncol = grid.shape(padded=True)
        data = np.full((nrow, ncol), np.nan, dtype=np.float32)
        for r0 in range(0, nrow, block):
            rows = slice(r0, min(r0 + block, nrow))
            for c0 in range(0, ncol, block):
                cols = slice(c0, min(c0 + block, ncol))
                vec = plate_pixel_vectors(grid, i, j, rows, cols)
                on_sky = np.isfinite(vec[..., 0])
                if on_sky.all():
                    data[rows, cols] = self.sample(vec.reshape(-1, 3), map_frame).reshape(
                        on_sky.shape)
                elif on_sky.any():
                    data[rows, cols][on_sky] = self.sample(vec[on_sky], map_frame)
        count = np.isfinite(data).astype(np.int32)
        used = [self.key] if count.any() else []
        return MosaicResult(data, count, used_images=used, skipped_images={}, image_planes={})


@lru_cache(maxsize=16)
def _rotation(hips_frame: str, healpix_frame: str) -> np.ndarray | None:
    """``R`` with ``v_map = R @ v_hips``; None when the frames are the same."""
    rotation = rotation_matrix(astropy_frame(hips_frame), HEALPIX_FRAMES[healpix_frame])
    # Galactic to galactic comes back with 1e-17 noise: skip it and keep the directions exact.
    if np.abs(rotation - np.eye(3)).max() < 1e-15:
        return None
    return rotation


def _map_hdu(path: str, hdul) -> tuple[int, fits.BinTableHDU]:
    tables = [(k, hdu) for k, hdu in enumerate(hdul) if isinstance(hdu, fits.BinTableHDU)]
    if not tables:
        raise ValueError(f"{path}: not a HEALPix map: no binary table HDU")
    for k, hdu in tables:
        if "NSIDE" in hdu.header:
            return k, hdu
    raise ValueError(f"{path}: not a HEALPix map: no NSIDE keyword in binary table HDU "
                     f"{tables[0][0]}")


def _is_partial(path: str, header) -> bool:
    """healpy.read_map's rule: OBJECT = PARTIAL/FULLSKY, else INDXSCHM, else implicit."""
    obj = str(header.get("OBJECT", "")).strip().upper()
    scheme = str(header.get("INDXSCHM", "")).strip().upper()
    if (obj, scheme) in (("FULLSKY", "EXPLICIT"), ("PARTIAL", "IMPLICIT")):
        raise ValueError(f"{path}: OBJECT = {obj} contradicts INDXSCHM = {scheme}")
    if scheme in ("EXPLICIT", "IMPLICIT"):
        return scheme == "EXPLICIT"
    return obj == "PARTIAL"


def _pick_column(path: str, names: list[str], column: str) -> int:
    listing = ", ".join(f"{k} {name}" for k, name in enumerate(names))
    if not names:
        raise ValueError(f"{path}: the HEALPix table has no map column")
    if column == "":
        return 0
    if column.isdigit():
        k = int(column)
        if k < len(names):
            return k
        raise ValueError(f"{path}: no column number {k} (0-based); the map columns are "
                         f"{listing}")
    folded = [name.upper() for name in names]
    if column.upper() in folded:
        return folded.index(column.upper())
    raise ValueError(f"{path}: no column {column!r}; the map columns are {listing}")


@lru_cache(maxsize=2)
def _read_map(path: str, mtime_ns: int, size: int, column: str) -> tuple[dict, np.ndarray]:
    """Header facts and the map of one column; cached by file, modification time and column.

    ``size`` only makes the cache key stricter. Two maps at most stay in memory.
    """
    try:
        hdul = fits.open(path, memmap=True)
    except Exception as err:  # noqa: BLE001  (astropy raises many types for a bad file)
        raise ValueError(f"{path}: cannot read the HEALPix map as FITS ({err})") from err
    with hdul:
        try:
            number, hdu = _map_hdu(path, hdul)
            header = hdu.header
            nside, nest = _nside_ordering(path, header)
            partial = _is_partial(path, header)
            names = list(hdu.columns.names)[1 if partial else 0:]
            k = _pick_column(path, names, column)
            name = names[k]
            values = _column_map(path, hdu, k + partial, name, nside, partial)
            unit = str(hdu.columns[k + partial].unit or "").strip()
            # On close astropy copies every column still linked to the memory-mapped table
            # into memory (the whole table: 3 x the map for I, Q, U); unlink them first.
            for col in hdu.data.columns:
                del col.array
            coordsys = header.get("COORDSYS", hdul[0].header.get("COORDSYS"))
        except ValueError:
            raise
        except Exception as err:  # noqa: BLE001  (a damaged table fails in astropy or numpy)
            raise ValueError(f"{path}: cannot read the HEALPix map ({err})") from err
    values.flags.writeable = False  # shared through the cache
    log.info("%s: HEALPix map column %s, Nside %d, %s, HDU %d", path, name, nside,
             "NESTED" if nest else "RING", number)
    info = {"column": name, "nside": nside, "nest": nest, "partial": partial, "unit": unit,
            "coordsys": None if coordsys is None else str(coordsys)}
    return info, values


def _nside_ordering(path: str, header) -> tuple[int, bool]:
    try:
        nside = int(header["NSIDE"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: not a HEALPix map: NSIDE = {header['NSIDE']!r}") from err
    if "ORDERING" not in header:
        raise ValueError(f"{path}: not a HEALPix map: no ORDERING keyword (RING or NESTED)")
    ordering = str(header["ORDERING"]).strip().upper()
    if ordering not in ("RING", "NESTED", "NEST"):
        raise ValueError(f"{path}: ORDERING = {header['ORDERING']!r}: must be RING or NESTED")
    nest = ordering != "RING"
    if not hp.isnsideok(nside, nest=nest):
        raise ValueError(f"{path}: NSIDE = {nside} is not a valid {ordering} Nside")
    return nside, nest


def _column_map(path: str, hdu, index: int, name: str, nside: int, partial: bool
                ) -> np.ndarray:
    """The full-sky map of table column ``index``: one native-order float copy, NaN for no
    value."""
    npix = hp.nside2npix(nside)
    col = hdu.data.field(index)
    if col.dtype.kind not in "iuf":
        raise ValueError(f"{path}: column {name} holds {col.dtype} values, not numbers")
    # Integer maps (hit counts, masks) become float64 to hold NaN exactly.
    dtype = col.dtype.newbyteorder("=") if col.dtype.kind == "f" else np.dtype(np.float64)
    if partial:
        pix = np.asarray(hdu.data.field(0)).reshape(-1).astype(np.int64)
        if pix.size != col.size:
            raise ValueError(f"{path}: partial map with {pix.size} pixel indices for "
                             f"{col.size} values in column {name}")
        if pix.size and (pix.min() < 0 or pix.max() >= npix):
            raise ValueError(f"{path}: pixel index outside 0..{npix - 1} (Nside {nside})")
        values = np.full(npix, np.nan, dtype=dtype)
        values[pix] = _with_nulls(hdu, index, col.reshape(-1), dtype)
    elif col.size != npix:
        raise ValueError(f"{path}: column {name} has {col.size} values; a full-sky map "
                         f"of Nside {nside} has {npix}")
    elif col.dtype.kind in "iu":
        values = _with_nulls(hdu, index, col.reshape(-1), dtype)
    else:
        values = np.empty(npix, dtype=dtype)
        # Straight from the (memory-mapped, big-endian, maybe strided) column: no other copy.
        values.reshape(col.shape)[...] = col
    if not _blank_unseen(values):
        raise ValueError(f"{path}: column {name} has no pixel with a value (every pixel is "
                         "UNSEEN, NaN or blank)")
    return values


def _with_nulls(hdu, index: int, flat: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """An integer column's TNULL as NaN (a float column's blanks are NaN already)."""
    out = np.asarray(flat, dtype=dtype)
    null = hdu.columns[index].null
    if flat.dtype.kind in "iu" and null is not None:
        out = np.where(flat == null, np.nan, out)
    return out


def _blank_unseen(values: np.ndarray) -> int:
    """UNSEEN (healpy's tolerance), NaN and infinite pixels -> NaN, in place, in chunks;
    returns how many pixels keep a value."""
    tolerance = _UNSEEN_RTOL * abs(hp.UNSEEN)
    good = 0
    for start in range(0, values.size, _CHUNK):
        part = values[start:start + _CHUNK]
        distance = np.abs(part - hp.UNSEEN)
        bad = ~np.isfinite(part)
        bad |= distance <= tolerance
        part[bad] = np.nan
        good += part.size - int(np.count_nonzero(bad))
    return good
