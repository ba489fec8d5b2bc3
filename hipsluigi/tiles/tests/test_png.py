import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from scipy.stats import spearmanr

from hipsluigi.stretch.histogram import histogram_of
from hipsluigi.stretch.stretch import make_stretch
from hipsluigi.tiles.png import decode_png, encode_png, png_bytes, png_pixels

W = 64


def noisy_tile(seed: int = 0, blank_fraction: float = 0.1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    tile = rng.lognormal(0.0, 1.0, size=(W, W)).astype(np.float32)
    tile[rng.random((W, W)) < blank_fraction] = np.nan
    return tile


def gradient_tile() -> np.ndarray:
    """Values rising with the FITS row (bottom to top when displayed), plus a little noise."""
    rows = np.arange(W, dtype=np.float32)[:, None]
    noise = np.random.default_rng(1).normal(0, 0.5, size=(W, W)).astype(np.float32)
    return rows + noise


def test_png_gray_rises_with_the_fits_value():
    tile = noisy_tile()
    stretch = make_stretch(histogram_of(tile), "gaussian-log")
    gray = decode_png(encode_png(tile, stretch))[::-1, :, 0]  # back to FITS row order
    finite = np.isfinite(tile)
    rho = spearmanr(tile[finite], gray[finite]).statistic
    assert rho > 0.99


def test_png_rows_are_the_fits_rows_flipped_vertically():
    tile = gradient_tile()
    stretch = make_stretch(histogram_of(tile), "linear", "min", "max")
    gray = decode_png(encode_png(tile, stretch))[..., 0]
    flipped_back = spearmanr(tile.ravel(), gray[::-1].ravel()).statistic
    unflipped = spearmanr(tile.ravel(), gray.ravel()).statistic
    assert flipped_back > 0.99
    assert unflipped < 0.0
    # The top PNG row shows the last FITS row, the brightest one here.
    assert gray[0].mean() > 240 and gray[-1].mean() < 15


def test_alpha_is_zero_exactly_where_the_fits_tile_is_nan():
    tile = noisy_tile(seed=2, blank_fraction=0.3)
    tile[0, :] = np.nan  # a blank first FITS row must become the last PNG row
    stretch = make_stretch(histogram_of(tile), "sqrt")
    pixels = decode_png(encode_png(tile, stretch))
    blank_png = np.isnan(tile)[::-1]
    np.testing.assert_array_equal(pixels[..., 1] == 0, blank_png)
    assert (pixels[..., 1][~blank_png] == 255).all()
    assert (pixels[..., 0][blank_png] == 0).all()
    assert (pixels[-1, :, 1] == 0).all()


def test_png_pixels_are_the_stretch_gray_of_the_flipped_tile():
    tile = noisy_tile(seed=3)
    stretch = make_stretch(histogram_of(tile), "asinh")
    pixels = png_pixels(tile, stretch)
    assert pixels.shape == (W, W, 2) and pixels.dtype == np.uint8
    for r in (0, 17, W - 1):
        np.testing.assert_array_equal(pixels[r, :, 0], stretch.gray(tile[W - 1 - r]))


def test_encode_decode_round_trip_preserves_the_array(tmp_path):
    tile = noisy_tile(seed=4, blank_fraction=0.2)
    stretch = make_stretch(histogram_of(tile), "gaussian")
    expected = png_pixels(tile, stretch)
    data = encode_png(tile, stretch)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as img:
        assert img.mode == "LA" and img.size == (W, W)
    np.testing.assert_array_equal(decode_png(data), expected)
    path = tmp_path / "Npix42.png"
    path.write_bytes(data)
    np.testing.assert_array_equal(decode_png(path), expected)
    np.testing.assert_array_equal(decode_png(str(path)), expected)


def test_png_pixels_rejects_a_non_2d_tile():
    stretch = make_stretch(histogram_of(np.arange(10.0)), "linear")
    with pytest.raises(ValueError):
        png_pixels(np.zeros((2, 2, 2), dtype=np.float32), stretch)


def _pillow_pixels(data: bytes, mode: str) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        assert img.mode == mode
        return np.array(img)


@pytest.mark.parametrize("shape", [(1, 1, 2), (3, 5, 2), (64, 64, 2), (7, 4, 4), (64, 64, 4)])
def test_png_bytes_decode_with_pillow_to_the_same_pixels(shape):
    pixels = np.random.default_rng(2).integers(0, 256, size=shape, dtype=np.uint8)
    data = png_bytes(pixels)
    np.testing.assert_array_equal(_pillow_pixels(data, {2: "LA", 4: "RGBA"}[shape[2]]), pixels)


@pytest.mark.parametrize("level", [0, 1, 2, 6, 9])
def test_every_compression_level_keeps_the_pixels(level):
    pixels = png_pixels(noisy_tile(4), make_stretch(histogram_of(noisy_tile(4))))
    np.testing.assert_array_equal(_pillow_pixels(png_bytes(pixels, level), "LA"), pixels)


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.uint8),
                                 np.zeros((4, 4, 2), np.uint16), np.zeros((0, 4, 2), np.uint8)])
def test_png_bytes_rejects_what_is_not_la_or_rgba_uint8(bad):
    with pytest.raises(ValueError, match="uint8"):
        png_bytes(bad)


@pytest.mark.parametrize("mode, nchan", [("LA", 2), ("RGBA", 4)])
def test_decode_png_reads_pillow_written_files_as_pillow_does(mode, nchan):
    pixels = np.random.default_rng(6).integers(0, 256, size=(16, 9, nchan), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, mode=mode).save(buf, format="PNG", compress_level=6)
    np.testing.assert_array_equal(decode_png(buf.getvalue(), mode=mode), pixels)
    # and the other mode converts, as Pillow's convert does
    other = "RGBA" if mode == "LA" else "LA"
    with Image.open(io.BytesIO(buf.getvalue())) as img:
        expected = np.array(img.convert(other))
    np.testing.assert_array_equal(decode_png(buf.getvalue(), mode=other), expected)


@pytest.mark.parametrize("damage", ["crc", "truncated", "zlib"])
def test_decode_png_raises_for_a_damaged_file_of_ours(damage):
    pixels = np.random.default_rng(8).integers(0, 256, size=(32, 32, 2), dtype=np.uint8)
    data = bytearray(png_bytes(pixels))
    idat = data.index(b"IDAT")
    if damage == "crc":
        data[idat + 20] ^= 0xFF
    elif damage == "truncated":
        data = data[:idat + 40]
    else:  # a wrong stream whose chunk CRC is made to match: only zlib can tell
        (length,) = struct.unpack(">I", data[idat - 4:idat])
        data[idat + 4:idat + 4 + length] = b"\x00" * length
        data[idat + 4 + length:idat + 8 + length] = struct.pack(
            ">I", zlib.crc32(bytes(data[idat:idat + 4 + length])))
    with pytest.raises((OSError, SyntaxError, ValueError)):
        decode_png(bytes(data))


def test_decode_png_reads_our_files_without_pillow(monkeypatch):
    pixels = np.random.default_rng(9).integers(0, 256, size=(8, 8, 4), dtype=np.uint8)
    data = png_bytes(pixels)

    def no_pillow(*args, **kwargs):
        raise AssertionError("Pillow was asked to decode a file of png_bytes")

    monkeypatch.setattr(Image, "open", no_pillow)
    np.testing.assert_array_equal(decode_png(data, mode="RGBA"), pixels)
