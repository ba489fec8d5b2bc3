"""Everything at the root of a colour HiPS besides its tiles: ``properties`` (with
``dataproduct_subtype = color``), ``Norder{0..3}/Allsky.png`` in RGBA, ``Moc.fits`` and
``index.html``.

A colour HiPS has PNG tiles only (red, green, blue, alpha; see :mod:`hipsluigi.tiles.colour`),
so there is no FITS Allsky, pixel cut or data range. Hipsgen's colour ``properties`` name the
maps of the three channels as ``hips_rgb_red``, ``hips_rgb_green`` and ``hips_rgb_blue``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from hipsluigi.geometry.hpx import face_side


def read_colour_tiles(hips_dir: Path, order: int, npix: Sequence[int], tile_width: int
                      ) -> dict[int, np.ndarray]:
    """The RGBA tiles ``npix`` of ``order``, for the Allsky file.

    Returns
    -------
    dict of int to numpy.ndarray
        npix -> uint8 ``(tile_width, tile_width, 4)``, rows top-down.

    Raises
    ------
    ValueError
        Naming every tile that cannot be read or is not ``tile_width`` square, and why.
    """
    from hipsluigi.metadata.build import read_tiles
    from hipsluigi.tiles.colour import decode_rgba_png

    problems: dict[Path, str] = {}
    tiles = read_tiles(Path(hips_dir), order, npix, tile_width, problems,
                       readers={"png": decode_rgba_png})["png"]
    if problems:
        listed = "; ".join(f"{path}: {why}" for path, why in problems.items())
        raise ValueError(f"{len(problems)} unreadable colour tile(s): {listed}")
    return tiles


def colour_provenance(channels: Mapping[str, Mapping[str, str]]) -> dict[str, object]:
    """The composite's recommended properties keys from its three maps' ``properties``.

    Parameters
    ----------
    channels : mapping
        ``{"red": props, "green": props, "blue": props}``, each map's parsed ``properties``.

    Returns
    -------
    dict
        ``obs_description`` and ``prov_progenitor`` naming the maps by channel; the
        wavelength range and dates spanning the three; ``obs_regime`` when the three share
        it, else the red map's (one word, as the standard has it).
    """
    said: dict[str, object] = {}
    described = [f"{c}: {props.get('obs_title', '?')} ({props.get('obs_description', '')})"
                 for c, props in channels.items()]
    said["obs_description"] = "Colour composite of three HiPS maps; " + "; ".join(described)
    said["prov_progenitor"] = "; ".join(
        f"{c}: {props['prov_progenitor']}" for c, props in channels.items()
        if props.get("prov_progenitor"))
    regimes = [props.get("obs_regime") for props in channels.values()]
    if regimes[0]:
        said["obs_regime"] = regimes[0]
    for key, pick in (("em_min", min), ("em_max", max), ("t_min", min), ("t_max", max)):
        values = [float(props[key]) for props in channels.values() if key in props]
        if len(values) == len(channels):
            said[key] = pick(values)
    return {k: v for k, v in said.items() if v not in ("", None)}


def write_colour_metadata(
    hips_dir: str | Path, *, order: int, tile_width: int, frame: str,
    tiles: Mapping[int, Sequence[int]], title: str, creator_did: str,
    channels: Mapping[str, str], provenance: Mapping[str, object] | None = None,
) -> None:
    """Write the colour HiPS's ``properties``, ``Moc.fits``, ``index.html`` and
    ``Norder{0..min(3, order)}/Allsky.png``.

    Parameters
    ----------
    hips_dir : str or pathlib.Path
        The colour HiPS folder, holding its tiles already written.
    order : int
        Deepest order.
    tile_width : int
        Tile width, pixels.
    frame : str
        HiPS frame of the three maps.
    tiles : mapping of int to sequence of int
        Each order's colour tiles (NESTED indices).
    title : str
        ``obs_title`` and the page's title.
    creator_did : str
        IVOID of the composite.
    channels : mapping of str to str
        ``{"red": ..., "green": ..., "blue": ...}``: what each channel shows (a map and its
        band), for ``hips_rgb_red`` etc.
    provenance : mapping, optional
        The recommended keys (:func:`colour_provenance`).

    Raises
    ------
    ValueError
        If no tile was written at ``order``, or naming the tiles of orders 0 to 3 that cannot
        be read (nothing is written then but the Allsky files of earlier orders).
    """
    from hipsluigi.metadata.allsky import write_allsky
    from hipsluigi.metadata.build import hips_size_kb, initial_view
    from hipsluigi.metadata.index_html import write_index_html
    from hipsluigi.metadata.moc import icrs_coverage, moc_sky_fraction, write_moc
    from hipsluigi.metadata.properties import hips_properties, write_properties
    from hipsluigi.viewer.aladin_lite import install_aladin_lite

    hips_dir = Path(hips_dir)
    deepest = sorted(tiles.get(order, []))
    if not deepest:
        raise ValueError(f"{hips_dir}: no colour tile was written at order {order}")
    for k in range(min(3, order) + 1):
        write_allsky(hips_dir, k, None, read_colour_tiles(hips_dir, k, tiles.get(k, []),
                                                          tile_width), tile_width)
    moc = icrs_coverage(frame, order, deepest)
    write_moc(hips_dir / "Moc.fits", moc)
    ra, dec, fov = initial_view(order, deepest, frame)
    install_aladin_lite(hips_dir)  # as for the maps: the page loads this copy if it is there
    write_index_html(hips_dir / "index.html", title, frame, ra, dec, fov, fits_tiles=False)
    props = hips_properties(
        creator_did=creator_did, obs_title=title, order=order, tile_width=tile_width,
        frame=frame, tile_formats=("png",), initial_ra=ra, initial_dec=dec, initial_fov=fov,
        pixel_scale=float(np.degrees(np.sqrt(np.pi / 3) / face_side(order, tile_width))),
        moc_sky_fraction=moc_sky_fraction(moc), estsize_kb=hips_size_kb(hips_dir),
        provenance=provenance, extra={"dataproduct_subtype": "color",
               **{f"hips_rgb_{c}": channels[c] for c in ("red", "green", "blue")}},
    )
    write_properties(hips_dir / "properties", props)
