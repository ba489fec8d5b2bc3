"""Image planes inside a plate, from pairwise overlap differences."""

import numpy as np

from hipsluigi.mosaic.matching import ImagePlanes, image_coordinates, plane_values


def _grid_of_images(truth, step=0.8, samples=400, seed=0):
    """Unit-square images on a 4 x 4 grid (20% overlaps); noise-free differences."""
    rng = np.random.default_rng(seed)
    solver = ImagePlanes()
    origins = {(i, j): np.array([i * step, j * step]) for i in range(4) for j in range(4)}
    keys = {ij: solver.image_index(f"f{ij}") for ij in origins}
    for fa, oa in origins.items():
        for fb, ob in origins.items():
            if keys[fa] >= keys[fb]:
                continue
            lo, hi = np.maximum(oa, ob), np.minimum(oa, ob) + 1.0
            if np.any(hi <= lo):
                continue
            pts = lo + rng.random((samples, 2)) * (hi - lo)
            ua, va = (pts - oa - 0.5).T
            ub, vb = (pts - ob - 0.5).T
            diff = plane_values(truth[fa], ua, va) - plane_values(truth[fb], ub, vb)
            solver.add(keys[fa], keys[fb], ua, va, ub, vb, diff)
    return solver


def test_image_offsets_come_back_exactly_up_to_one_constant():
    rng = np.random.default_rng(1)
    truth = {(i, j): np.array([rng.normal(), 0.0, 0.0]) for i in range(4) for j in range(4)}
    planes = _grid_of_images(truth).solve()
    got = np.array([planes[f"f{ij}"][0] for ij in truth])
    want = np.array([truth[ij][0] for ij in truth])
    assert np.allclose(got - got.mean(), want - want.mean(), atol=1e-6)
    assert abs(got.sum()) < 1e-6  # the gauge: offsets sum to zero


def test_small_tilts_come_back_closely():
    rng = np.random.default_rng(2)
    truth = {(i, j): np.array([rng.normal(), *rng.normal(0, 0.05, 2)])
             for i in range(4) for j in range(4)}
    planes = _grid_of_images(truth).solve()
    u = v = np.linspace(-0.5, 0.5, 5)
    err = [plane_values(planes[f"f{ij}"], u, v) - plane_values(truth[ij], u, v) for ij in truth]
    err = np.array(err)
    assert np.std(err - err.mean()) < 0.02  # tilts 0.05, offsets 1: well below both


def test_image_coordinates_are_centred_and_scaled_by_the_larger_side():
    u, v = image_coordinates(np.array([0.0, 99.0]), np.array([0.0, 49.0]), (50, 100))
    assert np.allclose(u, [-0.495, 0.495]) and np.allclose(v, [-0.245, 0.245])


def test_images_without_overlaps_get_zero_planes():
    solver = ImagePlanes()
    solver.image_index("alone")
    assert np.allclose(solver.solve()["alone"], 0.0)
