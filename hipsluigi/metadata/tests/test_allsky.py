import math
import warnings

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from hipsluigi.metadata.allsky import (
    allsky_arrays,
    allsky_fits_array,
    allsky_layout,
    allsky_part,
    allsky_png_array,
    merge_allsky_parts,
    reduce_fits_tile,
    write_allsky,
)


def _hipsgen_fits_allsky(tiles, order, w):
    """Transliteration of Hipsgen ``BuilderAllsky.createAllSky`` (cds-astro/aladin) for
    ``gap = 1``. ``cds.fits.Fits`` get/setPixelDouble(x, y) index the data with ``y`` counted
    from the first FITS row, i.e. numpy ``[y, x]``."""
    n = 12 * 4**order
    nb_w = int(math.sqrt(n))
    nb_h = n // nb_w + (1 if n % nb_w else 0)
    height = nb_h * w
    out = np.full((height, nb_w * w), np.nan, dtype=np.float32)
    for npix, tile in tiles.items():
        y_los, x_los = npix // nb_w, npix % nb_w
        for y in range(w):
            for x in range(w):
                p = tile[w - 1 - y, x]  # in.getPixelDouble(x, in.height-1-y)
                x_out, y_out = x_los * w + x, y_los * w + y
                out[height - 1 - y_out, x_out] = p  # out.setPixelDouble(xOut, height-1-yOut)
    return out


@pytest.mark.parametrize("order, expected", [(0, (3, 4)), (1, (6, 8)), (2, (13, 15)),
                                             (3, (27, 29))])
def test_layout_is_floor_sqrt_wide_and_ceil_high(order, expected):
    # 12, 48, 192, 768 tiles: floor(sqrt) = 3, 6, 13, 27 (HiPS: "27 at order 3");
    # rows: 12/3 = 4, 48/6 = 8, 192/13 = 14.8 -> 15, 768/27 = 28.4 -> 29
    assert allsky_layout(order) == expected


@pytest.mark.parametrize("order", [-1, 4])
def test_layout_only_for_orders_0_to_3(order):
    with pytest.raises(ValueError):
        allsky_layout(order)


def test_fits_allsky_matches_hipsgen_placement():
    rng = np.random.default_rng(1)
    w = 4
    tiles = {n: rng.normal(size=(w, w)).astype(np.float32) for n in (0, 1, 5, 6, 13, 47)}
    got = allsky_fits_array(tiles, order=1, tile_width=w, allsky_width=w)
    np.testing.assert_array_equal(got, _hipsgen_fits_allsky(tiles, 1, w))


def test_fits_allsky_puts_tile_0_in_last_rows_unflipped():
    # order 0: 3 x 4 grid. Tile 0 (grid row 0, top when displayed FITS-way) fills the last w
    # rows of the array; tile 11 (grid row 3, col 2) the first w rows, columns 2w..3w.
    w = 2
    t0 = np.array([[1, 2], [3, 4]], dtype=np.float32)
    t11 = np.array([[5, 6], [7, 8]], dtype=np.float32)
    got = allsky_fits_array({0: t0, 11: t11}, order=0, tile_width=w, allsky_width=w)
    assert got.shape == (8, 6) and got.dtype == np.float32
    np.testing.assert_array_equal(got[6:8, 0:2], t0)
    np.testing.assert_array_equal(got[0:2, 4:6], t11)
    assert np.isnan(got).sum() == got.size - 8  # every other tile missing -> NaN


def test_png_allsky_tiles_left_to_right_top_to_bottom():
    # HiPS 4.3.2: tiles side by side left to right, PNG lines stored top -> down
    w = 2
    tiles = {}
    for npix in (0, 2, 3, 11):
        t = np.zeros((w, w, 2), dtype=np.uint8)
        t[..., 0] = [[10 * npix + 1, 10 * npix + 2], [10 * npix + 3, 10 * npix + 4]]
        t[..., 1] = 255
        tiles[npix] = t
    got = allsky_png_array(tiles, order=0, tile_width=w, allsky_width=w)
    assert got.shape == (8, 6, 2) and got.dtype == np.uint8
    np.testing.assert_array_equal(got[0:2, 0:2], tiles[0])     # row 0, col 0
    np.testing.assert_array_equal(got[0:2, 4:6], tiles[2])     # row 0, col 2
    np.testing.assert_array_equal(got[2:4, 0:2], tiles[3])     # row 1, col 0
    np.testing.assert_array_equal(got[6:8, 4:6], tiles[11])    # row 3, col 2
    assert (got[2:4, 2:4, 1] == 0).all()                       # tile 4 missing: transparent


def test_fits_allsky_flipped_equals_png_allsky_of_flipped_tiles():
    # a PNG tile is its FITS tile flipped vertically; displayed FITS-way (flipud) the FITS
    # Allsky must look like the PNG Allsky
    rng = np.random.default_rng(2)
    w = 4
    fits_tiles = {n: rng.integers(0, 256, size=(w, w)).astype(np.float32)
                  for n in rng.choice(192, size=40, replace=False)}
    png_tiles = {n: np.stack([np.flipud(t).astype(np.uint8), np.full((w, w), 255, np.uint8)],
                             axis=-1) for n, t in fits_tiles.items()}
    f = allsky_fits_array(fits_tiles, order=2, tile_width=w, allsky_width=w)
    p = allsky_png_array(png_tiles, order=2, tile_width=w, allsky_width=w)
    flipped = np.flipud(f)
    opaque = p[..., 1] == 255
    np.testing.assert_array_equal(opaque, np.isfinite(flipped))
    np.testing.assert_array_equal(p[..., 0][opaque], flipped[opaque].astype(np.uint8))


def test_fits_reduction_is_nan_ignoring_block_mean():
    tile = np.full((128, 128), 7.0, dtype=np.float32)
    tile[0:2, 0:2] = [[1.0, np.nan], [3.0, np.nan]]   # block (0, 0): mean of 1, 3 = 2
    tile[0:2, 2:4] = np.nan                           # block (0, 1): all blank
    tile[2:4, 0:2] = [[1.0, 2.0], [3.0, 6.0]]         # block (1, 0): 3
    got = allsky_fits_array({0: tile}, order=0, tile_width=128)
    assert got.shape == (4 * 64, 3 * 64)
    block = got[192:256, 0:64]                        # tile 0: last 64 rows, first 64 columns
    assert block[0, 0] == 2.0
    assert np.isnan(block[0, 1])
    assert block[1, 0] == 3.0
    assert block[5, 7] == 7.0
    assert np.isnan(block).sum() == 1


def test_fits_reduction_is_numpys_float64_nanmean_and_blank_blocks_are_positive_nan():
    rng = np.random.default_rng(6)
    tile = (5.0 + rng.normal(0, 0.05, (512, 512))).astype(np.float32)  # float64 sums exact
    tile[rng.random(tile.shape) < 0.3] = np.nan
    tile[:16, :16] = np.nan                             # blank blocks: the first 2 x 2
    got = reduce_fits_tile(tile, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = np.nanmean(tile.astype(np.float64).reshape(64, 8, 64, 8), axis=(1, 3))
    np.testing.assert_array_equal(got, want.astype(np.float32))
    # the same NaN as the missing tiles around it, bit for bit
    assert got.dtype == np.float32 and np.isnan(got[:2, :2]).all()
    assert (got[:2, :2].view(np.uint32) == np.float32(np.nan).view(np.uint32)).all()


def test_png_reduction_means_opaque_gray_and_keeps_any_opaque():
    tile = np.zeros((128, 128, 2), dtype=np.uint8)
    tile[..., 0], tile[..., 1] = 100, 255
    tile[0:2, 0:2, 0] = [[10, 20], [200, 31]]
    tile[0:2, 0:2, 1] = [[255, 255], [0, 255]]        # 200 is transparent: (10+20+31)/3 = 20.33
    tile[0:2, 2:4, 1] = 0                             # fully transparent block
    got = allsky_png_array({0: tile}, order=0, tile_width=128)
    block = got[0:64, 0:64]                           # tile 0: top-left
    assert tuple(block[0, 0]) == (20, 255)
    assert block[0, 1, 1] == 0
    assert tuple(block[10, 10]) == (100, 255)


def test_small_tiles_keep_their_width():
    tile = np.arange(32 * 32, dtype=np.float32).reshape(32, 32)
    got = allsky_fits_array({5: tile}, order=0, tile_width=32)
    assert got.shape == (4 * 32, 3 * 32)
    # tile 5: grid row 1, col 2 -> array rows (4-1-1)*32 = 64..96, columns 64..96
    np.testing.assert_array_equal(got[64:96, 64:96], tile)


@pytest.mark.parametrize("bad", [{12: np.zeros((4, 4), np.float32)},
                                 {0: np.zeros((4, 2), np.float32)}])
def test_rejects_bad_npix_or_shape(bad):
    with pytest.raises(ValueError):
        allsky_fits_array(bad, order=0, tile_width=4)


def test_write_allsky_writes_fits_and_la_png(tmp_path):
    w = 128
    fits_tiles = {0: np.full((w, w), 3.0, np.float32), 700: np.full((w, w), -1.5, np.float32)}
    png_tiles = {0: np.full((w, w, 2), 255, np.uint8)}
    written = write_allsky(tmp_path, 3, fits_tiles, png_tiles, tile_width=w)
    fits_path = tmp_path / "Norder3" / "Allsky.fits"
    png_path = tmp_path / "Norder3" / "Allsky.png"
    assert written == [fits_path, png_path]

    with fits.open(fits_path) as hdul:
        assert hdul[0].header["BITPIX"] == -32
        data = hdul[0].data
    assert data.shape == (29 * 64, 27 * 64)
    assert (data[28 * 64:, 0:64] == 3.0).all()              # tile 0: grid row 0 -> last rows
    r, c = divmod(700, 27)                                  # (25, 25)
    row0 = (29 - 1 - r) * 64
    assert (data[row0:row0 + 64, c * 64:(c + 1) * 64] == -1.5).all()
    assert np.isnan(data).sum() == data.size - 2 * 64 * 64

    with Image.open(png_path) as im:
        assert im.mode == "LA"
        assert im.size == (27 * 64, 29 * 64)                # PIL size is (width, height)
        png = np.asarray(im)
    assert (png[0:64, 0:64] == 255).all()
    assert (png[64:, :, 1] == 0).all() and (png[:, 64:, 1] == 0).all()


def test_write_allsky_skips_none_formats(tmp_path):
    tiles = {0: np.ones((64, 64), np.float32)}
    assert write_allsky(tmp_path, 0, tiles, None, tile_width=64) == [
        tmp_path / "Norder0" / "Allsky.fits"]
    assert not (tmp_path / "Norder0" / "Allsky.png").exists()
    assert write_allsky(tmp_path, 1, None, None, tile_width=64) == []
    assert not (tmp_path / "Norder1").exists()


def test_rgba_allsky_reduces_each_colour_over_opaque_pixels_and_places_tiles_like_la(tmp_path):
    w = 128
    tile = np.zeros((w, w, 4), dtype=np.uint8)
    tile[..., :3], tile[..., 3] = (100, 50, 200), 255
    tile[0:2, 0:2, 0] = [[10, 20], [200, 31]]          # red: (10+20+31)/3 = 20.33 -> 20
    tile[0:2, 0:2, 1] = [[0, 2], [250, 4]]             # green: (0+2+4)/3 = 2
    tile[1, 0, 3] = 0                                  # the 200/250 pixel is transparent
    tile[0:2, 2:4, 3] = 0                              # fully transparent block
    tiles = {5: tile}
    got = allsky_png_array(tiles, order=0, tile_width=w)
    assert got.shape == (4 * 64, 3 * 64, 4) and got.dtype == np.uint8
    block = got[64:128, 128:192]                       # tile 5: grid row 1, column 2
    assert tuple(block[0, 0]) == (20, 2, 200, 255)
    assert block[0, 1, 3] == 0
    assert tuple(block[10, 10]) == (100, 50, 200, 255)
    assert (got[:64, :, 3] == 0).all() and (got[:, :128, 3] == 0).all()
    # each colour channel is reduced exactly as an LA tile holding that channel as gray
    for k in range(3):
        la = allsky_png_array({5: tile[..., [k, 3]]}, order=0, tile_width=w)
        np.testing.assert_array_equal(got[..., [k, 3]], la)

    write_allsky(tmp_path, 0, None, tiles, tile_width=w)
    with Image.open(tmp_path / "Norder0" / "Allsky.png") as im:
        assert im.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(im), got)


def test_allsky_refuses_la_and_rgba_tiles_mixed():
    tiles = {0: np.zeros((64, 64, 2), np.uint8), 1: np.zeros((64, 64, 4), np.uint8)}
    with pytest.raises(ValueError, match="shape"):
        allsky_png_array(tiles, order=0, tile_width=64)


def test_png_reduction_equals_the_alpha_weighted_mean_by_definition_for_any_alpha():
    rng = np.random.default_rng(7)
    tile = rng.integers(0, 256, size=(32, 32, 4), dtype=np.uint8)
    tile[:8, :8, 3] = 0  # one block fully transparent
    tile[8:16, :8, 3] = rng.choice([0, 255], size=(8, 8))
    got = allsky_png_array({0: tile}, order=0, tile_width=32, allsky_width=4)[:4, :4]
    for r in range(4):
        for c in range(4):
            block = tile[8 * r:8 * r + 8, 8 * c:8 * c + 8].reshape(-1, 4).astype(float)
            weight = block[:, 3].sum()
            for k in range(3):
                mean = (block[:, k] * block[:, 3]).sum() / weight if weight else 0.0
                assert got[r, c, k] == int(np.clip(np.rint(mean), 0, 255))
            assert got[r, c, 3] == block[:, 3].max()


def _tiles_with_blanks(rng, npix, w):
    fits_tiles, png_tiles = {}, {}
    for n in npix:
        tile = rng.normal(100, 30, (w, w)).astype(np.float32)
        tile[rng.random((w, w)) < 0.2] = np.nan
        if n % 7 == 0:
            tile[: w // 2] = np.nan  # blank blocks
        fits_tiles[n] = tile
        gray = np.clip(np.nan_to_num(np.flipud(tile)), 0, 255).astype(np.uint8)
        alpha = np.where(np.isnan(np.flipud(tile)), 0, 255).astype(np.uint8)
        png_tiles[n] = np.stack([gray * (alpha > 0), alpha], axis=-1)
    return fits_tiles, png_tiles


def test_allsky_from_parts_is_the_allsky_of_the_tiles_bit_for_bit_and_block_means():
    """Two parts (as two tile groups write them), stacks longer than one batch, merged."""
    rng = np.random.default_rng(5)
    w, aw, order = 32, 8, 1
    npix = sorted(int(n) for n in rng.choice(48, size=30, replace=False))
    fits_tiles, png_tiles = _tiles_with_blanks(rng, npix, w)
    halves = npix[:11], npix[11:]
    parts = [allsky_part([fits_tiles[n] for n in h], [png_tiles[n] for n in h], h, w,
                         allsky_width=aw) for h in halves]
    got_fits, got_png = allsky_arrays(merge_allsky_parts(parts), order)
    assert got_fits.tobytes() == allsky_fits_array(fits_tiles, order, w, aw).tobytes()
    assert got_png.tobytes() == allsky_png_array(png_tiles, order, w, aw).tobytes()
    # independently: block means over a 4-d view, and the alpha-weighted gray
    ncols, nrows = allsky_layout(order)
    f = w // aw
    for n in npix:
        r, c = divmod(n, ncols)
        blocks = fits_tiles[n].reshape(aw, f, aw, f).astype(np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks
            expected = np.nanmean(blocks, axis=(1, 3))
        row0 = (nrows - 1 - r) * aw
        np.testing.assert_allclose(got_fits[row0:row0 + aw, c * aw:(c + 1) * aw], expected,
                                   rtol=1e-6)
        gray = png_tiles[n][..., 0].reshape(aw, f, aw, f).astype(np.int64)
        alpha = png_tiles[n][..., 1].reshape(aw, f, aw, f).astype(np.int64)
        weight = alpha.sum(axis=(1, 3))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(weight > 0, (gray * alpha).sum(axis=(1, 3)) / weight, 0)
        small = got_png[r * aw:(r + 1) * aw, c * aw:(c + 1) * aw]
        np.testing.assert_array_equal(small[..., 0], np.rint(mean))
        np.testing.assert_array_equal(small[..., 1], alpha.max(axis=(1, 3)))


def test_allsky_part_carries_the_preview_cells_of_the_preview_order_only():
    from hipsluigi.metadata.preview import preview_map, preview_map_of_cells

    rng = np.random.default_rng(6)
    w = 64
    npix = list(range(0, 48, 3))
    fits_tiles, png_tiles = _tiles_with_blanks(rng, npix, w)
    plain = allsky_part([fits_tiles[n] for n in npix], [png_tiles[n] for n in npix], npix, w)
    assert plain.preview_count is None and plain.preview_total is None
    part = allsky_part([fits_tiles[n] for n in npix], [png_tiles[n] for n in npix], npix, w,
                       preview_block=4)
    values, nside = preview_map_of_cells(part.npix, part.preview_count, part.preview_total, 1)
    expected, expected_nside = preview_map(png_tiles, 1, max_nside=32)  # (64 << 1) / 32 = 4
    assert nside == expected_nside == 32
    assert values.tobytes() == expected.tobytes()
