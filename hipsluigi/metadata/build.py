"""Everything at the root of the HiPS besides tiles: properties, Allsky, MOC, index.html."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import healpy as hp
import numpy as np

from hipsluigi.geometry.frames import astropy_frame, rotation_matrix, vec_to_lonlat
from hipsluigi.geometry.hpx import face_side, tile_relpath
from hipsluigi.spec import MapSpec
from hipsluigi.stretch.stretch import Stretch


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


def write_hips_metadata(spec: MapSpec, hips_dir: Path, tiles: Mapping[int, Sequence[int]],
                        stretch: Stretch, units: Mapping[str, object] | None = None) -> None:
    """Write ``properties``, ``Moc.fits``, ``index.html`` and ``Norder{0..3}/Allsky.*``.

    Parameters
    ----------
    spec : the map.
    hips_dir : the HiPS folder, holding the tiles already written.
    tiles : each order's tiles (HEALPix NESTED indices), FITS and PNG alike.
    stretch : the stretch the PNG tiles were made with.
    units : the pixels' unit cards, as in the tiles, e.g. ``{"BUNIT": "DN", "MAGZP": 20.5}``:
        each goes into the ``Allsky.fits`` headers, and ``BUNIT`` into ``properties`` as
        ``hips_bunit``. None or empty: none (the files are then as without this argument).

    Raises
    ------
    ValueError
        If no tile was written at the deepest order, or for a unit card a FITS header cannot
        hold (see :func:`hipsluigi.tiles.cut.check_cards`).
    """
    from astropy.io import fits

    from hipsluigi.metadata.allsky import allsky_fits_array, write_allsky
    from hipsluigi.metadata.index_html import write_index_html
    from hipsluigi.metadata.moc import moc_sky_fraction, tiles_moc, write_moc
    from hipsluigi.metadata.properties import hips_properties, write_properties
    from hipsluigi.storage.atomic import write_fits_atomic
    from hipsluigi.tiles.cut import check_cards
    from hipsluigi.tiles.png import decode_png

    cards = check_cards([(str(key).upper(), value) for key, value in (units or {}).items()])
    hips_dir = Path(hips_dir)
    deepest = sorted(tiles.get(spec.order, []))
    if not deepest:
        raise ValueError(f"map {spec.name!r}: no tile was written at order {spec.order}; "
                         "the survey holds no pixel in the region")

    for order in range(min(3, spec.order) + 1):
        fits_tiles = {n: fits.getdata(hips_dir / tile_relpath(order, n, "fits"))
                      for n in tiles.get(order, [])}
        png_tiles = {n: decode_png(hips_dir / tile_relpath(order, n, "png"))
                     for n in tiles.get(order, [])}
        write_allsky(hips_dir, order, None, png_tiles, spec.tile_width)
        if fits_tiles:  # written here, to carry the unit cards
            hdu = fits.PrimaryHDU(allsky_fits_array(fits_tiles, order, spec.tile_width))
            for card in cards:
                hdu.header.append(fits.Card(*card))
            write_fits_atomic(hips_dir / f"Norder{order}" / "Allsky.fits", hdu)

    moc = tiles_moc(spec.order, deepest)
    write_moc(hips_dir / "Moc.fits", moc, spec.frame)
    ra, dec, fov = initial_view(spec.order, deepest, spec.frame)
    write_index_html(hips_dir / "index.html", spec.obs_title, spec.frame, ra, dec, fov)

    pixel_scale = float(np.degrees(np.sqrt(np.pi / 3) / face_side(spec.order, spec.tile_width)))
    nb_tiles = sum(len(v) for v in tiles.values())
    props = hips_properties(
        creator_did=spec.creator_did or f"ivo://hipsluigi/P/{spec.name}",
        obs_title=spec.obs_title, order=spec.order, tile_width=spec.tile_width,
        frame=spec.frame, pixel_cut=(stretch.lo, stretch.hi),
        data_range=(stretch.data_min, stretch.data_max), initial_ra=ra, initial_dec=dec,
        initial_fov=fov, pixel_scale=pixel_scale, moc_sky_fraction=moc_sky_fraction(moc),
        nb_tiles=nb_tiles, estsize_kb=_size_kb(hips_dir), bunit=dict(cards).get("BUNIT"),
        extra={"hips_stretch": f"{stretch.kind} {spec.stretch_min or 'default'} "
                               f"{spec.stretch_max or 'default'}"},
    )
    write_properties(hips_dir / "properties", props)


def _size_kb(folder: Path) -> int:
    return int(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) // 1024)
