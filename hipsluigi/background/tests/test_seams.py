"""Seam fields: each plate takes half of the mismatch on its edges; Coons filling."""

from types import SimpleNamespace

import numpy as np

from hipsluigi.background.overlap import EDGE_BINS
from hipsluigi.background.seams import coons_patch, correct_plate, edge_fields


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
