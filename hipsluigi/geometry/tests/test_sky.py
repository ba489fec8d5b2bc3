import healpy as hp
import numpy as np
import pytest

from hipsluigi.geometry.plates import PlateGrid
from hipsluigi.geometry.sky import equatorial_block_vectors, plate_pixel_vectors


def _healpy_vectors(face, u, v, nside):
    """healpy's centres of face pixels ix = N - 1 - v, iy = u, through its own xyf indexing."""
    ix = np.broadcast_to((nside - 1 - v)[:, None], (len(v), len(u)))
    iy = np.broadcast_to(u[None, :], (len(v), len(u)))
    nest = hp.xyf2pix(nside, ix, iy, face, nest=True)
    return np.stack(hp.pix2vec(nside, nest, nest=True), axis=-1)


@pytest.mark.parametrize("face", range(12))
def test_equatorial_block_vectors_equal_healpy_and_refuse_the_polar_caps(face):
    nside = 1024
    rng = np.random.default_rng(face)
    belt = caps = 0
    for _ in range(60):
        u0, v0 = rng.integers(0, nside - 40, 2)
        u, v = np.arange(u0, u0 + 40), np.arange(v0, v0 + 30)
        ref = _healpy_vectors(face, u, v, nside)
        vec = equatorial_block_vectors(face, u, v, nside)
        if vec is None:
            caps += 1
            assert (np.abs(ref[..., 2]) > 2 / 3).any()
        else:
            belt += 1
            assert np.abs(vec - ref).max() < 1e-13
    assert belt > 0
    if face < 4 or face > 7:
        assert caps > 0


def test_plate_pixel_vectors_equal_healpy_block_by_block_over_whole_plates():
    grid = PlateGrid(2, 32, 5, 8)
    n, pad, step = grid.face_side, grid.pad, 16
    for (i, j), face in {(1, 0): 1, (2, 2): 4, (3, 4): 10, (0, 0): 6}.items():  # DESIGN 2
        ref = _healpy_vectors(face, np.arange(n), np.arange(n), n)
        for r in range(0, n, step):
            for c in range(0, n, step):
                vec = plate_pixel_vectors(grid, i, j, slice(pad + r, pad + r + step),
                                          slice(pad + c, pad + c + step))
                assert np.abs(vec - ref[r:r + step, c:c + step]).max() < 1e-13
