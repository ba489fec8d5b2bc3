"""Shrinking plates: the block NaN-mean, the 2 x 2 shrink, and assembling four children."""

import warnings

import healpy as hp
import numpy as np
import pytest

from hipsluigi.geometry.hpx import plane_to_nested
from hipsluigi.geometry.plates import PlateGrid, grid_at_order
from hipsluigi.pyramid.shrink import (
    assemble_quad,
    block_nanmean,
    crop_padding,
    crop_read_bytes,
    shrink2,
    shrink2_with_members,
)


def _numpy_block_nanmean(data, factor, dtype):
    """numpy's own NaN-mean over reshaped blocks (warns, and gives NaN, for all-NaN blocks)."""
    rows, cols = data.shape
    blocks = data.astype(dtype).reshape(rows // factor, factor, cols // factor, factor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(blocks, axis=(1, 3))


def _with_blanks(data, rng, fraction=0.3):
    data[rng.random(data.shape) < fraction] = np.nan
    data[:8, :8] = np.nan  # whole blocks blank at every factor used here
    return data


@pytest.mark.parametrize("factor", [1, 2, 4, 8])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_block_nanmean_equals_numpy_nanmean_exactly_where_the_sums_are_exact(factor, dtype):
    # Eighths below 1000: every partial sum is exact in float32 and float64, whatever the order,
    # and a correctly rounded division by the count leaves a single possible answer.
    rng = np.random.default_rng(factor)
    data = _with_blanks((rng.integers(-8000, 8000, (64, 128)) / 8).astype(np.float32), rng)
    got = block_nanmean(data, factor, dtype)
    assert got.dtype == dtype and got.shape == (64 // factor, 128 // factor)
    np.testing.assert_array_equal(got, _numpy_block_nanmean(data, factor, dtype))


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-6), (np.float64, 1e-14)])
def test_block_nanmean_of_general_floats_is_numpys_nanmean_to_rounding(dtype, rtol):
    rng = np.random.default_rng(3)
    data = _with_blanks(rng.normal(size=(96, 96)).astype(np.float32), rng)
    for factor in (2, 3, 8):
        got = block_nanmean(data, factor, dtype)
        want = _numpy_block_nanmean(data, factor, dtype)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)


def test_block_nanmean_adds_in_dtype_in_row_major_order_within_each_block():
    # The order fixes the last bit of float32 sums: the plates' pixels depend on it.
    rng = np.random.default_rng(4)
    data = _with_blanks(rng.normal(size=(30, 30)).astype(np.float32), rng, 0.2)
    for factor in (2, 3):
        want = np.empty((30 // factor, 30 // factor), np.float32)
        for r, c in np.ndindex(want.shape):
            block = data[r * factor:(r + 1) * factor, c * factor:(c + 1) * factor].ravel()
            total, count = np.float32(0.0), np.float32(0.0)
            for value in block[np.isfinite(block)]:
                total, count = total + value, count + np.float32(1.0)
            want[r, c] = total / count if count else np.nan
        np.testing.assert_array_equal(block_nanmean(data, factor, np.float32), want)


@pytest.mark.parametrize("shape, factor", [((4, 6), 4), ((6, 4), 4), ((4, 4), 0)])
def test_block_nanmean_refuses_shapes_that_are_not_whole_blocks(shape, factor):
    with pytest.raises(ValueError, match="block means"):
        block_nanmean(np.zeros(shape, np.float32), factor)


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


@pytest.mark.parametrize(("shape", "pad", "itemsize", "page"),
                         [((68, 68), 2, 4, 4096), ((2176, 2176), 64, 4, 4096),
                          ((40, 3000), 5, 4, 4096), ((30, 30), 3, 8, 64), ((16, 16), 0, 4, 64),
                          ((10, 10), 5, 4, 64)])
def test_crop_read_bytes_counts_each_page_the_interior_touches_once(shape, pad, itemsize, page):
    nrows, ncols = shape
    r, c = np.mgrid[pad:nrows - pad, pad:ncols - pad]
    pages = np.unique((r * ncols + c).ravel() * itemsize // page)  # every pixel's page
    assert crop_read_bytes(shape, pad, itemsize, page) == pages.size * page
    assert crop_read_bytes(shape, pad, itemsize, page) <= (
        -(-nrows * ncols * itemsize // page) * page)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_block_nanmean_of_a_stack_is_each_array_reduced_alone_bit_for_bit(dtype):
    rng = np.random.default_rng(11)
    stack = rng.normal(0, 1e3, (5, 32, 32)).astype(">f4")  # big-endian, as FITS tiles read
    stack[0, :8, :8] = np.nan  # a blank block
    stack[1][rng.random((32, 32)) < 0.3] = np.nan
    stack[2, 3, 5] = np.inf
    together = block_nanmean(stack, 8, dtype)
    assert together.shape == (5, 4, 4) and together.dtype == dtype
    for k in range(5):
        alone = block_nanmean(np.ascontiguousarray(stack[k]), 8, dtype)
        assert together[k].tobytes() == alone.tobytes()


def test_shrink2_with_members_names_the_finite_pixels_of_each_partly_blank_block():
    nan = np.nan
    plate = np.array([[1, nan, 5, 6],
                      [nan, nan, 7, 8],
                      [nan, nan, 2, nan],
                      [nan, nan, nan, 3]], dtype=np.float32)
    half = shrink2_with_members(plate)
    assert np.array_equal(half.data, shrink2(plate), equal_nan=True)
    # block (0, 0) has only its top-left pixel (bit 0); block (1, 1) its top-left (bit 0)
    # and bottom-right (bit 3); (0, 1) is whole and (1, 0) blank: neither is listed
    assert half.partial.tolist() == [0, 3]
    assert half.members.tolist() == [0b0001, 0b1001]
    assert half.data[0, 0] == 1 and half.data[1, 1] == 2.5
