import healpy as hp
import numpy as np
import pytest

from hipsluigi.geometry.plates import PlateGrid
from hipsluigi.geometry.sky import face_block_vectors, plate_pixel_vectors


def _healpy_vectors(face, u, v, nside):
    """healpy's centres of face pixels ix = N - 1 - v, iy = u, through its own xyf indexing."""
    ix = np.broadcast_to((nside - 1 - v)[:, None], (len(v), len(u)))
    iy = np.broadcast_to(u[None, :], (len(v), len(u)))
    nest = hp.xyf2pix(nside, ix, iy, face, nest=True)
    return np.stack(hp.pix2vec(nside, nest, nest=True), axis=-1)


@pytest.mark.parametrize("face", range(12))
def test_face_block_vectors_equal_healpy_in_the_belt_the_caps_and_across(face):
    nside = 1024
    rng = np.random.default_rng(face)
    kinds = set()
    for _ in range(80):
        u0, v0 = rng.integers(0, nside - 40, 2)
        u, v = np.arange(u0, u0 + 40), np.arange(v0, v0 + 30)
        ref = _healpy_vectors(face, u, v, nside)
        assert np.abs(face_block_vectors(face, u, v, nside) - ref).max() < 1e-13
        polar = np.abs(ref[..., 2]) > 2 / 3
        kinds.add("cap" if polar.all() else "belt" if not polar.any() else "both")
    # Polar faces are half cap, half belt; equatorial faces lie wholly in the belt.
    assert kinds == ({"cap", "belt", "both"} if face < 4 or face > 7 else {"belt"})
    corner = np.arange(3)  # pixels at two opposite corners: a pole, or the belt's edge
    for u, v in [(corner, corner), (nside - 1 - corner, nside - 1 - corner)]:
        ref = _healpy_vectors(face, u, v, nside)
        assert np.abs(face_block_vectors(face, u, v, nside) - ref).max() < 1e-13


def test_plate_pixel_vectors_equal_healpy_block_by_block_over_whole_plates():
    grid = PlateGrid(2, 32, 5, 8)
    n, pad, step = grid.face_side, grid.pad, 16
    # the face in each cell: docs/design.md, "HPX geometry"
    for (i, j), face in {(1, 0): 1, (2, 2): 4, (3, 4): 10, (0, 0): 6}.items():
        ref = _healpy_vectors(face, np.arange(n), np.arange(n), n)
        for r in range(0, n, step):
            for c in range(0, n, step):
                vec = plate_pixel_vectors(grid, i, j, slice(pad + r, pad + r + step),
                                          slice(pad + c, pad + c + step))
                assert np.abs(vec - ref[r:r + step, c:c + step]).max() < 1e-13
