"""Seam fields: each plate takes half of the mismatch on its edges; Coons filling."""

import warnings
from types import SimpleNamespace

import numpy as np

from hipsluigi.background.overlap import EDGE_BINS
from hipsluigi.background.seams import (
    block_mean_correction,
    coons_patch,
    correct_plate,
    edge_fields,
)
from hipsluigi.pyramid.shrink import shrink2, shrink2_with_members


def test_coons_patch_takes_the_edge_profiles_on_the_edges():
    side = 64
    t = np.linspace(0, 1, EDGE_BINS)
    edges = np.stack([np.sin(3 * t), np.cos(2 * t) + np.sin(3) - np.cos(2) * 0,
                      np.zeros(EDGE_BINS), np.zeros(EDGE_BINS)])
    edges[1] = np.sin(3 * t)  # top equals bottom: the field is the same profile everywhere
    field = coons_patch(edges, side)
    assert field.shape == (side, side)
    assert np.allclose(field[0], field[-1], atol=1e-6)
    assert np.allclose(field[:, 0], field[0, 0], atol=1e-2)  # left edge: the corner value


def test_coons_patch_of_constant_edges_is_that_constant():
    field = coons_patch(np.full((4, EDGE_BINS), 0.3), 32)
    assert np.allclose(field, 0.3, atol=1e-6)


def test_each_plate_takes_half_the_remaining_mismatch_with_opposite_signs():
    fit = SimpleNamespace(plus=0, minus=1, l11=1.0, l12=0.0, l21=0.0, l22=1.0, t1=0.0, t2=0.0,
                          plus_profile=[[3, k, 0.4, 100.0, 10.0 * k] for k in range(EDGE_BINS)],
                          minus_profile=[[2, k, 0.4, 100.0, 10.0 * k]
                                         for k in range(EDGE_BINS)])
    planes = {0: (0.0, 0.0, 0.1), 1: (0.0, 0.0, -0.1)}  # the model already took 0.2 of 0.4
    fields = edge_fields([fit], planes, crpix=0.0)
    assert np.allclose(fields[0][3], 0.1) and np.allclose(fields[1][2], -0.1)
    assert np.isnan(fields[0][0]).all()  # no neighbour on that edge


def test_correct_plate_removes_the_montage_plane_with_p1_along_columns_and_the_seam_field():
    side, origin, crpix = 32, (100, 40), 160.5
    a, b, c = 0.01, -0.02, 3.0
    p1 = np.arange(side)[None, :] + origin[0]  # columns
    p2 = np.arange(side)[:, None] + origin[1]  # rows
    sky = np.random.default_rng(2).normal(size=(side, side)).astype(np.float32)
    edges = np.tile(np.linspace(-0.5, 0.5, EDGE_BINS), (4, 1))
    seam = coons_patch(edges, side)
    plate = sky + a * (p1 - crpix) + b * (p2 - crpix) + c + seam
    out = correct_plate(plate, origin, (a, b, c), edges, crpix)
    assert out.dtype == np.float32 and np.allclose(out, sky, atol=1e-5)
    without_seam = correct_plate(plate, origin, (a, b, c), None, crpix)
    assert np.allclose(without_seam, sky + seam, atol=1e-5)
    transposed = correct_plate(plate, origin, (b, a, c), edges, crpix)
    assert not np.allclose(transposed, sky, atol=1e-2)


def _correction_setup(seed=1, side=64):
    rng = np.random.default_rng(seed)
    plate = rng.normal(300.0, 20.0, (side, side)).astype(np.float32)
    plate[:7, :] = np.nan  # whole blank blocks and, at row 6, partly blank ones
    plate[rng.random((side, side)) < 0.15] = np.nan
    edges = rng.normal(0.0, 2.0, (4, EDGE_BINS))
    edges[2, :5] = np.nan
    return plate, (200, 520), (3e-3, -2e-3, 4.0), edges, 1000.5


def test_block_mean_correction_is_the_mean_over_each_blocks_finite_pixels():
    """Against the field built pixel by pixel in float64: the plane with p1 along columns,
    plus the Coons patch, averaged over the finite pixels of each block."""
    plate, origin, (a, b, c), edges, crpix = _correction_setup()
    side = plate.shape[0]
    half = shrink2_with_members(plate)
    got = block_mean_correction(side, origin, (a, b, c), edges, crpix, half.partial,
                                half.members)
    p2, p1 = np.mgrid[0:side, 0:side].astype(np.float64)
    field = (a * (p1 + origin[0] - crpix) + b * (p2 + origin[1] - crpix) + c
             + coons_patch(edges, side).astype(np.float64))
    masked = np.where(np.isfinite(plate), field, np.nan).reshape(side // 2, 2, side // 2, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # blank blocks
        expected = np.nanmean(masked, axis=(1, 3))
    some = np.isfinite(expected)
    assert half.partial.size > 20 and (~some).any()
    assert np.allclose(got[some], expected[some], rtol=0, atol=1e-6 * np.abs(field).max())


def test_a_half_plate_less_its_block_mean_correction_is_the_corrected_plate_shrunk():
    """Correcting after the shrink, as the pyramid does for the deepest plates, gives what
    shrinking the corrected plate gives to float32 rounding: both within 2 units in the last
    place of the largest pixel value of the float64 result, and not the same bits."""
    plate, origin, plane, edges, crpix = _correction_setup(seed=2)
    side = plate.shape[0]
    half = shrink2_with_members(plate)
    after = (half.data - block_mean_correction(side, origin, plane, edges, crpix, half.partial,
                                               half.members)).astype(np.float32)
    before = shrink2(correct_plate(plate, origin, plane, edges, crpix))
    assert np.array_equal(np.isnan(after), np.isnan(before))
    p2, p1 = np.mgrid[0:side, 0:side].astype(np.float64)
    exact = (plate - (plane[0] * (p1 + origin[0] - crpix) + plane[1] * (p2 + origin[1] - crpix)
                      + plane[2]) - coons_patch(edges, side).astype(np.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # blank blocks
        exact = np.nanmean(exact.reshape(side // 2, 2, side // 2, 2), axis=(1, 3))
    ok = np.isfinite(exact)
    ulp = np.spacing(np.abs(exact[ok]).astype(np.float32)).astype(np.float64)
    assert np.abs(after[ok] - exact[ok]).max() <= 2 * ulp.max()
    assert np.abs(before[ok] - exact[ok]).max() <= 2 * ulp.max()
    assert not np.array_equal(after, before, equal_nan=True)  # not the same bits
