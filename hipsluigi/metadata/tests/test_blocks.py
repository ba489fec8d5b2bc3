import numpy as np
import pytest

from hipsluigi.metadata.blocks import block_reduce


@pytest.mark.parametrize("f", [1, 2, 8, 16])
def test_block_sums_and_maxima_are_those_of_each_block(f):
    x = np.random.default_rng(f).integers(0, 256, size=(32, 32), dtype=np.uint8)
    sums = block_reduce(x, f, np.add, np.uint32)
    maxima = block_reduce(x, f, np.maximum, np.uint8)
    n = 32 // f
    assert sums.shape == maxima.shape == (n, n)
    for r in range(n):
        for c in range(n):
            block = x[r * f:(r + 1) * f, c * f:(c + 1) * f]
            assert sums[r, c] == int(block.astype(np.int64).sum())  # no uint8 wrap-around
            assert maxima[r, c] == block.max()
