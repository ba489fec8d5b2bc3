"""Shrinking plates: the 2 x 2 NaN-mean, and assembling four children."""

import healpy as hp
import numpy as np
import pytest

from hipsluigi.geometry.hpx import plane_to_nested
from hipsluigi.geometry.plates import PlateGrid, grid_at_order
from hipsluigi.pyramid.shrink import assemble_quad, crop_padding, shrink2


def test_shrink2_is_the_nan_ignoring_mean_of_each_2x2_block_including_the_last_row():
    rng = np.random.default_rng(0)
    plate = rng.normal(size=(8, 12)).astype(np.float32)
    plate[rng.random(plate.shape) < 0.3] = np.nan
    plate[6:8, 10:12] = np.nan  # an all-NaN block in the last row of blocks
    out = shrink2(plate)
    assert out.shape == (4, 6) and out.dtype == np.float32
    for r in range(4):
        for c in range(6):
            block = plate[2 * r:2 * r + 2, 2 * c:2 * c + 2]
            if np.isnan(block).all():
                assert np.isnan(out[r, c])
            else:
                assert out[r, c] == pytest.approx(np.nanmean(block), rel=1e-6)
    # Montage's mShrink leaves the last output row at 0; ours is data.
    assert np.isfinite(out[-1, :5]).all() and not np.all(out[-1, :5] == 0)


def test_shrink2_of_a_memory_mapped_big_endian_fits_plate_equals_the_native_one(tmp_path):
    from astropy.io import fits

    rng = np.random.default_rng(1)
    plate = rng.normal(size=(16, 16)).astype(np.float32)
    plate[rng.random(plate.shape) < 0.3] = np.nan
    fits.writeto(tmp_path / "plate.fits", plate)
    with fits.open(tmp_path / "plate.fits", memmap=True) as hdul:
        mapped = hdul[0].data
        assert mapped.dtype.byteorder == ">"
        out = shrink2(mapped)
    assert out.dtype == np.float32 and out.dtype.isnative
    assert np.array_equal(out, shrink2(plate), equal_nan=True)


def test_shrink2_refuses_odd_shapes():
    with pytest.raises(ValueError, match="odd"):
        shrink2(np.zeros((3, 4)))


def test_shrunk_pixel_is_the_healpix_parent_of_its_four_children():
    """A 2x2 block of plane pixels at pixel order p is the 4 NESTED children of one parent."""
    n = 32
    p1, p2 = np.meshgrid(np.arange(5 * n), np.arange(5 * n))
    child = plane_to_nested(p1, p2, n)
    parent = plane_to_nested(p1 // 2, p2 // 2, n // 2)
    sky = child >= 0
    assert np.all(child[sky] // 4 == parent[sky])
    # and healpy agrees on the parent of each child
    theta, phi = hp.pix2ang(n, child[sky], nest=True)
    assert np.all(hp.ang2pix(n // 2, theta, phi, nest=True) == parent[sky])


def test_assemble_quad_places_child_a_b_where_the_plane_puts_plate_2i_a_2j_b():
    base = PlateGrid(3, 8, 10, 0)
    upper = grid_at_order(base, 1)  # 10 x 10 plates of 8 px
    lower = grid_at_order(base, 0)  # 5 x 5 plates of 8 px, each from 2 x 2 upper plates
    assert upper.nplate == 2 * lower.nplate
    i, j = 2, 1
    side = upper.plate_side
    kids = {(a, b): np.full((side, side), 10 * a + b, dtype=np.float32)
            for a in (0, 1) for b in (0, 1)}
    quad = assemble_quad(kids, side)
    # Column offset of child (a, b) is a * side, row offset b * side, matching plate origins.
    for (a, b), _ in kids.items():
        ox, oy = upper.origin(2 * i + a, 2 * j + b)
        px, py = 2 * lower.origin(i, j)[0], 2 * lower.origin(i, j)[1]
        assert (ox - px, oy - py) == (a * side, b * side)
        assert np.all(quad[b * side:(b + 1) * side, a * side:(a + 1) * side] == 10 * a + b)


def test_assemble_quad_leaves_missing_children_blank():
    quad = assemble_quad({(0, 0): np.ones((4, 4), np.float32), (1, 1): None}, 4)
    assert np.all(quad[:4, :4] == 1)
    assert np.isnan(quad[4:, :]).all() and np.isnan(quad[:4, 4:]).all()


def test_crop_padding_returns_the_interior():
    plate = np.arange(100.0).reshape(10, 10)
    assert np.array_equal(crop_padding(plate, 2), plate[2:8, 2:8])
    assert crop_padding(plate, 0) is plate
