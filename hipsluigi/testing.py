"""Helpers for tests: Luigi configuration options, and tile pixel positions from healpy."""

from __future__ import annotations

import contextlib

import healpy as hp
import luigi
import numpy as np


def tile_pixel_lonlat(order: int, npix: int, width: int, convention: str = "standard"
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Centres ``(lon, lat)`` (degrees, the map's frame) of tile ``npix``'s pixels
    ``[row, col]``, computed by healpy alone under a pixel-order convention.

    ``standard`` is the HiPS FITS convention (``ix = w-1-row, iy = col``); ``transposed`` and
    ``flipped`` (the PNG orientation taken for FITS) are the usual mistakes, for tests to show
    that their check tells them apart.
    """
    rows, cols = np.meshgrid(np.arange(width), np.arange(width), indexing="ij")
    if convention == "standard":
        ix, iy = width - 1 - rows, cols
    elif convention == "transposed":
        ix, iy = width - 1 - cols, rows
    elif convention == "flipped":
        ix, iy = rows, cols
    else:
        raise ValueError(f"unknown convention {convention!r}")
    tx, ty, face = hp.pix2xyf(1 << order, npix, nest=True)
    ipix = hp.xyf2pix(width << order, tx * width + ix, ty * width + iy, face, nest=True)
    return hp.pix2ang(width << order, ipix, nest=True, lonlat=True)


@contextlib.contextmanager
def luigi_options(options: dict[str, dict[str, object]]):
    """Set Luigi configuration options for the duration of a block, then restore them.

    ``options`` is ``{section: {key: value}}``; values are written as strings.
    """
    cfg = luigi.configuration.get_config()
    saved = []
    for section, values in options.items():
        if not cfg.has_section(section):
            cfg.add_section(section)
        for key, value in values.items():
            old = cfg.get(section, key, raw=True) if cfg.has_option(section, key) else None
            saved.append((section, key, old))
            cfg.set(section, key, str(value))
    try:
        yield cfg
    finally:
        for section, key, old in reversed(saved):
            if old is None:
                cfg.remove_option(section, key)
            else:
                cfg.set(section, key, old)
