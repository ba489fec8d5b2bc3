"""preview.jpg: PNG tile pixels land where healpy puts them, and the picture is a Mollweide
ellipse with north up."""

import healpy as hp
import numpy as np

from hipsluigi.metadata.preview import PREVIEW_WIDTH, mollweide_image, preview_map
from hipsluigi.testing import tile_pixel_lonlat


def _tiles(order, width, seed=0):
    rng = np.random.default_rng(seed)
    tiles = {}
    for npix in range(12 * 4**order):
        gray = rng.integers(0, 256, (width, width), dtype=np.uint8)
        tiles[npix] = np.stack([gray, np.full_like(gray, 255)], axis=-1)
    return tiles


def test_each_png_pixel_lands_on_its_healpix_cell():
    order, width = 1, 32  # 64 cells a face side: no averaging
    tiles = _tiles(order, width)
    values, nside = preview_map(tiles, order)
    assert nside == width << order
    for npix in (0, 17, 47):
        # PNG rows are the FITS rows flipped: healpy's "flipped" convention
        lon, lat = tile_pixel_lonlat(order, npix, width, "flipped")
        cells = hp.ang2pix(nside, lon, lat, nest=True, lonlat=True)
        assert np.array_equal(values[cells], tiles[npix][..., 0].astype(float))


def test_large_tiles_are_block_averaged_and_blank_pixels_left_out():
    order, width = 3, 512  # 4096 cells a face side, averaged 16 x 16
    gray = np.full((width, width), 100, np.uint8)
    alpha = np.full((width, width), 255, np.uint8)
    gray[:16, :16], alpha[16:32, :16] = 200, 0
    values, nside = preview_map({5: np.stack([gray, alpha], axis=-1)}, order)
    assert nside == 256
    seen = values[np.isfinite(values)]
    assert seen.size == 32 * 32 - 1  # the all-blank block is left out
    assert set(np.unique(seen)) == {100.0, 200.0}


def test_mollweide_picture_has_the_north_up_and_black_outside_the_sky():
    nside = 16
    lat = hp.pix2ang(nside, np.arange(12 * nside**2), nest=True, lonlat=True)[1]
    values = np.where(lat > 0, 250.0, 20.0)
    image = mollweide_image(values)
    assert image.shape == (PREVIEW_WIDTH // 2, PREVIEW_WIDTH)
    assert image[PREVIEW_WIDTH // 8, PREVIEW_WIDTH // 2] > 200  # north: top
    assert image[3 * PREVIEW_WIDTH // 8, PREVIEW_WIDTH // 2] < 40
    assert image[0, 0] == 0 and image[-1, -1] == 0  # outside the ellipse
