"""Everything at the root of the HiPS besides tiles: properties, Allsky, MOC, index.html; and
the check that the tiles it is built from are whole."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import healpy as hp
import numpy as np

from hipsluigi.geometry.frames import astropy_frame, rotation_matrix, vec_to_lonlat
from hipsluigi.geometry.hpx import face_side, tile_relpath
from hipsluigi.metadata.allsky import ALLSKY_MAX_ORDER, AllskyPart
from hipsluigi.spec import MapSpec
from hipsluigi.storage.iometer import count_read
from hipsluigi.stretch.stretch import Stretch


class UnreadableTiles(ValueError):
    """Tiles that cannot be read back as whole tiles.

    Attributes
    ----------
    problems : dict of pathlib.Path to str
        Each tile file and why it is unusable.
    """

    def __init__(self, problems: Mapping[Path, str], note: str = ""):
        self.problems = dict(problems)
        listed = "; ".join(f"{path}: {why}" for path, why in sorted(self.problems.items()))
        super().__init__(f"{len(self.problems)} unreadable tile(s) ({listed})"
                         + (f"; {note}" if note else ""))


def tile_file_problem(path: str | os.PathLike, size: int | None) -> str | None:
    """Why ``path`` is not a whole tile file, from its size alone (one ``stat``), or None.

    Parameters
    ----------
    path : path-like
        The tile file.
    size : int or None
        Its size in bytes (every FITS tile of an order has the same,
        :func:`hipsluigi.tiles.cut.tile_file_size`); None for a PNG tile, which must only be
        non-empty.

    Returns
    -------
    str or None
        ``"missing"``, ``"empty"``, ``"N bytes, expected M"``, or None for a whole file.
    """
    try:
        found = os.stat(path).st_size
    except FileNotFoundError:
        return "missing"
    except OSError as err:
        return f"cannot be read ({err.strerror})"
    if size is None:
        return None if found > 0 else "empty"
    return None if found == size else f"{found} bytes, expected {size}"


#: What reading a damaged tile raises: astropy (OSError, ValueError "cannot reshape", a
#: truncation warning made an error), Pillow (OSError, SyntaxError "broken PNG file").
_READ_ERRORS = (OSError, ValueError, TypeError, IndexError, EOFError, SyntaxError, Warning)


def read_tiles(hips_dir: Path, order: int, npix: Sequence[int], tile_width: int,
               problems: dict[Path, str], readers: Mapping[str, Callable] | None = None
               ) -> dict[str, dict[int, np.ndarray]]:
    """The tiles ``npix`` of ``order``, read back for the Allsky files.

    Parameters
    ----------
    hips_dir : pathlib.Path
        The HiPS folder.
    order : int
        HiPS order.
    npix : sequence of int
        The tiles (NESTED indices); each has a file of every extension of ``readers``.
    tile_width : int
        Tile width, pixels.
    problems : dict of pathlib.Path to str
        Every tile that cannot be read, or is not ``tile_width`` square, is added here with the
        reason, and left out of the result.
    readers : mapping of str to callable, optional
        File extension -> reader of a path. Default: ``fits``
        (:func:`hipsluigi.tiles.cut.read_fits_tile`) and ``png``
        (:func:`hipsluigi.tiles.png.decode_png`).

    Returns
    -------
    dict of str to dict
        Extension -> npix -> array: ``(w, w)`` float ``[row, col]`` for FITS (FITS
        orientation), ``(w, w, 2)`` uint8 gray/alpha for PNG (rows top-down).
    """
    from astropy.utils.exceptions import AstropyUserWarning

    from hipsluigi.tiles.cut import read_fits_tile
    from hipsluigi.tiles.png import decode_png

    if readers is None:
        readers = {"fits": lambda path: read_fits_tile(path, tile_width), "png": decode_png}
    found: dict[str, dict[int, np.ndarray]] = {ext: {} for ext in readers}
    for n in npix:
        for ext, read in readers.items():
            path = hips_dir / tile_relpath(order, n, ext)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error", AstropyUserWarning)
                    data = read(path)
                count_read(path, os.path.getsize(path))
            except _READ_ERRORS as err:
                problems[path] = f"unreadable ({type(err).__name__}: {err})"
                continue
            if data.shape[:2] != (tile_width, tile_width):
                problems[path] = f"shape {data.shape}, expected {tile_width} x {tile_width}"
                continue
            found[ext][int(n)] = data
    return found


def initial_view(order: int, npix: Sequence[int], frame: str) -> tuple[float, float, float]:
    """``hips_initial_ra, hips_initial_dec, hips_initial_fov`` (ICRS degrees) for the tiles.

    A map covering most of the sky opens on the map frame's origin with a 180 degree field;
    a partial map on the mean direction of its tiles, wide enough to hold them.
    """
    from astropy.coordinates import ICRS

    to_icrs = rotation_matrix(astropy_frame(frame), ICRS())
    vec = np.array(hp.pix2vec(1 << order, np.asarray(npix, dtype=np.int64), nest=True)).T
    mean = vec.mean(axis=0)
    if len(npix) > 6 * 4**order or np.linalg.norm(mean) < 0.5:
        ra, dec = vec_to_lonlat(to_icrs @ np.array([1.0, 0.0, 0.0]))
        return float(ra), float(dec), 180.0
    centre = mean / np.linalg.norm(mean)
    tile_radius = np.degrees(hp.max_pixrad(1 << order))
    extent = np.degrees(np.arccos(np.clip(vec @ centre, -1, 1)).max()) + tile_radius
    ra, dec = vec_to_lonlat(to_icrs @ centre)
    return float(ra), float(dec), float(min(180.0, 2.4 * extent))


#: The QA report's page, relative to the HiPS folder (written after the metadata by the
#: pipeline's ``QAReport``), linked from ``index.html``.
QA_REPORT = "qa/report.html"

#: ``[hips] reproject`` -> ``hips_sampling``: how the survey pixels were resampled.
SAMPLING = {"interp": "bilinear", "reproject_interp": "bilinear",
            "reproject_exact": "flux-conserving (spherical polygon overlap)",
            "reproject_adaptive": "adaptive anti-aliased (DeForest 2004)"}


def read_allsky_parts(spec: MapSpec, hips_dir: Path, tiles: Mapping[int, Sequence[int]]
                      ) -> dict[int, AllskyPart]:
    """The :class:`~hipsluigi.metadata.allsky.AllskyPart` of each order 0 to ``min(3,
    spec.order)``, from its FITS and PNG tiles read back.

    Raises
    ------
    UnreadableTiles
        Naming every tile that cannot be read as a whole tile.
    """
    from hipsluigi.metadata.allsky import allsky_part, part_preview_block

    problems: dict[Path, str] = {}
    parts = {}
    for order in range(min(ALLSKY_MAX_ORDER, spec.order) + 1):
        found = read_tiles(hips_dir, order, tiles.get(order, []), spec.tile_width, problems)
        if problems:  # keep reading, to name every bad tile at once
            continue
        npix = sorted(set(found["fits"]) & set(found["png"]))
        parts[order] = allsky_part([found["fits"][n] for n in npix],
                                   [found["png"][n] for n in npix], npix, spec.tile_width,
                                   part_preview_block(order, spec.order, spec.tile_width))
    if problems:
        raise UnreadableTiles(problems)
    return parts


def write_hips_metadata(spec: MapSpec, hips_dir: Path, tiles: Mapping[int, Sequence[int]],
                        stretch: Stretch, units: Mapping[str, object] | None = None, *,
                        pixel_cut: tuple[float, float] | None = None,
                        provenance: Mapping[str, object] | None = None,
                        allsky: Mapping[int, AllskyPart] | None = None) -> None:
    """Write ``properties``, ``Moc.fits`` (ICRS), ``preview.jpg``, ``index.html`` and
    ``Norder{0..3}/Allsky.*``.

    Parameters
    ----------
    spec : the map.
    hips_dir : the HiPS folder, holding the tiles already written.
    tiles : each order's tiles (HEALPix NESTED indices), FITS and PNG alike.
    stretch : the stretch the PNG tiles were made with.
    units : the pixels' unit cards, as in the tiles, e.g. ``{"BUNIT": "DN", "MAGZP": 20.5}``:
        each goes into the ``Allsky.fits`` headers, and ``BUNIT`` into ``properties`` as
        ``hips_bunit``. None or empty: none (the files are then as without this argument).
    allsky : the :class:`~hipsluigi.metadata.allsky.AllskyPart` of each order 0 to
        ``min(3, spec.order)`` that has tiles, as the tiles were made. None: read back from the
        tiles (:func:`read_allsky_parts`).

    Raises
    ------
    UnreadableTiles
        Without ``allsky``: naming every FITS or PNG tile of orders 0 to 3 that cannot be read
        as a whole tile; nothing is written then.
    ValueError
        If no tile was written at the deepest order, or for a unit card a FITS header cannot
        hold (see :func:`hipsluigi.tiles.cut.check_cards`).
    """
    from hipsluigi.metadata.allsky import allsky_arrays, write_allsky_arrays
    from hipsluigi.metadata.index_html import write_index_html
    from hipsluigi.metadata.moc import icrs_coverage, moc_sky_fraction, write_moc
    from hipsluigi.metadata.preview import preview_jpeg, preview_map_of_cells
    from hipsluigi.metadata.properties import hips_properties, write_properties
    from hipsluigi.storage.atomic import write_bytes_atomic
    from hipsluigi.tiles.cut import check_cards
    from hipsluigi.viewer.aladin_lite import install_aladin_lite

    cards = check_cards([(str(key).upper(), value) for key, value in (units or {}).items()])
    hips_dir = Path(hips_dir)
    if pixel_cut is None:
        pixel_cut = (stretch.lo, stretch.hi)
    deepest = sorted(tiles.get(spec.order, []))
    if not deepest:
        raise ValueError(f"map {spec.name!r}: no tile was written at order {spec.order}; "
                         "the survey holds no pixel in the region")

    if allsky is None:
        allsky = read_allsky_parts(spec, hips_dir, tiles)
    preview = np.full(12, np.nan)  # no tile at the preview's order: a blank sky
    for order, part in sorted(allsky.items()):
        if not len(part.npix):
            continue  # Hipsgen writes no Allsky without tiles
        fits_data, png_pixels = allsky_arrays(part, order)
        write_allsky_arrays(hips_dir, order, fits_data, png_pixels, cards)
        if part.preview_count is not None:  # the order preview.jpg is drawn from
            preview, _ = preview_map_of_cells(part.npix, part.preview_count,
                                              part.preview_total, order)

    moc = icrs_coverage(spec.frame, spec.order, deepest)
    write_moc(hips_dir / "Moc.fits", moc)
    write_bytes_atomic(hips_dir / "preview.jpg", preview_jpeg(preview))
    ra, dec, fov = initial_view(spec.order, deepest, spec.frame)
    install_aladin_lite(hips_dir)  # first: the page loads the local copy only if it is there
    write_index_html(hips_dir / "index.html", spec.obs_title, spec.frame, ra, dec, fov,
                     pixel_cut=pixel_cut, report=QA_REPORT)

    pixel_scale = float(np.degrees(np.sqrt(np.pi / 3) / face_side(spec.order, spec.tile_width)))
    props = hips_properties(
        creator_did=spec.creator_did or f"ivo://hipsluigi/P/{spec.name}",
        obs_title=spec.obs_title, order=spec.order, tile_width=spec.tile_width,
        frame=spec.frame, pixel_cut=pixel_cut,
        data_range=(stretch.data_min, stretch.data_max), initial_ra=ra, initial_dec=dec,
        initial_fov=fov, pixel_scale=pixel_scale, moc_sky_fraction=moc_sky_fraction(moc),
        estsize_kb=hips_size_kb(hips_dir), bunit=dict(cards).get("BUNIT"),
        sampling=SAMPLING[spec.reproject], overlay="mean", hierarchy="mean",
        provenance=provenance,
    )
    write_properties(hips_dir / "properties", props)


def hips_size_kb(folder: Path) -> int:
    """The tiles' and metadata's size (``hips_estsize``), KB: without the properties file, the
    viewer, the QA report and the progenitor index, which are written after it, so that a
    rebuilt map states the size a first build does."""
    skipped = {folder / "properties", *(folder / name for name in NOT_COUNTED)}
    total = 0
    for path in folder.iterdir():
        if path in skipped or path.name.startswith("."):
            continue
        files = [path] if path.is_file() else (p for p in path.rglob("*") if p.is_file())
        total += sum(p.stat().st_size for p in files)
    return int(total // 1024)


#: Folders of the HiPS folder that ``hips_estsize`` leaves out (see :func:`hips_size_kb`).
NOT_COUNTED = ("aladin-lite", "qa", "HpxFinder")
