"""Overlaps of padded plates: the same sky on both sides, and the fitted difference."""

import numpy as np
import pytest

from hipsluigi.background.overlap import _sky_index, fit_overlap, fit_plane_clipped, overlap_pixels
from hipsluigi.geometry.plates import PlateGrid, plate_neighbours
from hipsluigi.geometry.sky import plate_pixel_vectors

GRID = PlateGrid(1, 16, 5, 4)
PAIRS = plate_neighbours(PlateGrid(1, 16, 5, 0))


@pytest.mark.parametrize("kind", ["plane", "wrap", "cut"])
def test_overlap_pixels_hold_the_same_healpix_pixel_on_both_plates(kind):
    sizes = []
    for (i1, j1, i2, j2), k in PAIRS.items():
        if k != kind:
            continue
        rp, cp, rm, cm, _ = overlap_pixels(GRID, (i1, j1), (i2, j2))
        nest_p = _sky_index(GRID, (i1, j1), rp, cp)[0]
        nest_m = _sky_index(GRID, (i2, j2), rm, cm)[0]
        assert np.array_equal(nest_p, nest_m) and np.all(nest_p >= 0)
        sizes.append(len(rp))
    # every pair sharing an edge overlaps over the whole edge, 2 x pad wide (the polar pairs
    # meeting only at the pole share nothing)
    assert max(sizes) >= 2 * GRID.pad * GRID.plate_side


def test_fit_plane_clipped_recovers_a_plane_through_outliers():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-500, 500, (2, 4000))
    z = 0.003 * x - 0.001 * y + 0.7 + rng.normal(0, 0.05, 4000)
    z[:100] += 20.0  # point sources that did not subtract out
    plane, rms, keep = fit_plane_clipped(x, y, z)
    assert plane == pytest.approx([0.003, -0.001, 0.7], abs=2e-3)
    assert not keep[:100].any() and keep[100:].mean() > 0.98
    assert rms == pytest.approx(0.05, rel=0.15)


@pytest.mark.parametrize("kind", ["plane", "wrap", "cut"])
def test_fit_overlap_measures_the_level_difference_of_two_plates(kind):
    (i1, j1, i2, j2) = next(p for p, k in PAIRS.items() if k == kind
                            and len(overlap_pixels(GRID, p[:2], p[2:])[0]) > 100)
    rows, cols = GRID.shape(padded=True)
    sky = {p: plate_pixel_vectors(GRID, *p, slice(0, rows), slice(0, cols))
           for p in ((i1, j1), (i2, j2))}
    plus = 10 * sky[(i1, j1)][..., 2] + 0.8  # same sky function, levels 0.8 and -0.3
    minus = 10 * sky[(i2, j2)][..., 2] - 0.3
    fit = fit_overlap(GRID, (i1, j1), (i2, j2), plus, minus, 0, 1)
    assert fit.c + fit.a * fit.xcenter + fit.b * fit.ycenter == pytest.approx(1.1, abs=1e-6)
    assert abs(fit.a) < 1e-9 and abs(fit.b) < 1e-9
    lin = np.array([[fit.l11, fit.l12], [fit.l21, fit.l22]])
    assert np.allclose(np.abs(lin), np.eye(2) if kind != "cut" else 1 - np.eye(2), atol=1e-9)
    assert fit.plus_profile and fit.minus_profile
