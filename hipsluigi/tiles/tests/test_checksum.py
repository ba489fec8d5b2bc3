"""DATASUM and CHECKSUM of FITS tiles, checked with astropy's own implementation."""

import io
import warnings

import numpy as np
import pytest
from astropy.io import fits

from hipsluigi.tiles.checksum import encode_checksum, fold, ones_complement_sum
from hipsluigi.tiles.cut import TileWriter


def test_ones_complement_sum_folds_carries():
    words = np.array([0xFFFFFFFF, 0x00000002], dtype=">u4")
    assert ones_complement_sum(words.tobytes()) == 2  # 0x1_00000001 folds to 2
    assert fold(0x1_FFFF_FFFF) == 1  # 0xFFFFFFFF + 1, then 1 + 0
    assert fold(0x2_0000_0003) == 5


@pytest.mark.parametrize("seed", range(5))
def test_datasum_is_astropys(seed):
    data = np.random.default_rng(seed).normal(size=(32, 48)).astype(np.float32)
    hdu = fits.PrimaryHDU(data)
    hdu.add_checksum(when="x")
    assert ones_complement_sum(data.astype(">f4")) == int(hdu.header["DATASUM"])


@pytest.mark.parametrize("seed", range(5))
def test_written_tiles_pass_astropys_checksum_verification(seed):
    rng = np.random.default_rng(seed)
    tile = rng.normal(100, 30, size=(64, 64)).astype(np.float32)
    tile[rng.random(tile.shape) < 0.1] = np.nan
    data = TileWriter(3, 64, "galactic", [("BUNIT", "DN")]).tile_bytes(int(rng.integers(768)),
                                                                      tile)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # astropy warns on a checksum mismatch
        with fits.open(io.BytesIO(data), checksum=True) as hdul:
            assert hdul[0].verify_datasum() == 1
            assert hdul[0].verify_checksum() == 1
            assert len(hdul[0].header["CHECKSUM"]) == 16


def test_a_changed_pixel_or_header_byte_fails_verification():
    tile = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    good = TileWriter(2, 64, "equatorial").tile_bytes(17, tile)
    header_end = good.index(b"END" + b" " * 77) + 80
    for at in (header_end // 2 + 11, len(good) - 2880 - 7):  # a header byte, a data byte
        bad = bytearray(good)
        bad[at] ^= 0x10
        with fits.open(io.BytesIO(bytes(bad))) as hdul:
            assert hdul[0].verify_checksum() == 0


def test_checksum_encoding_uses_only_digits_and_letters():
    for total in (0, 1, 0x7FFFFFFF, 0xFFFFFFFE, 0x12345678, 0x3A3A3A3A, 0x5B5B5B5B):
        text = encode_checksum(total)
        assert len(text) == 16
        assert text.isascii() and text.isalnum()
