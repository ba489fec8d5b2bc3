"""Cap selection: the k-d tree route picks exactly what the direct test picks."""

import numpy as np

from hipsluigi.surveys.base import caps_intersect, caps_touching


def _random_caps(rng, n, rmax):
    vec = rng.normal(size=(n, 3))
    return vec / np.linalg.norm(vec, axis=1, keepdims=True), rng.uniform(0, rmax, n)


def test_caps_touching_equals_caps_intersect_for_every_query():
    rng = np.random.default_rng(5)
    centres, radii = _random_caps(rng, 3000, 0.05)
    queries, qradii = _random_caps(rng, 400, 0.2)
    qradii[:5] = [0.0, np.pi, 1e-9, 3.0, 0.5]  # a point, the whole sky, and wide caps
    found = caps_touching(centres, radii, queries, qradii)
    assert len(found) == len(queries)
    for k, got in enumerate(found):
        expected = np.flatnonzero(caps_intersect(centres, radii, queries[k], qradii[k]))
        np.testing.assert_array_equal(got, expected)
    assert sum(map(len, found)) > 400  # the caps do meet: the comparison is not of empties


def test_caps_touching_with_no_caps_finds_nothing():
    got = caps_touching(np.zeros((0, 3)), np.zeros(0), np.array([[1.0, 0, 0]]), np.array([1.0]))
    assert len(got) == 1 and len(got[0]) == 0
