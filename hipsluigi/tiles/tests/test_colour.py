import numpy as np
import pytest
from PIL import Image

from hipsluigi.tiles.colour import (
    compose_rgba,
    decode_rgba_png,
    encode_rgba_png,
    group_cells,
    group_order,
    group_tiles,
)


def _la(gray, alpha):
    return np.stack([np.asarray(gray, np.uint8), np.asarray(alpha, np.uint8)], axis=-1)


def test_channels_are_each_maps_gray_in_place_and_blank_pixels_are_zero():
    rng = np.random.default_rng(1)
    grays = [rng.integers(1, 256, (8, 8), dtype=np.uint8) for _ in range(3)]
    alphas = [np.full((8, 8), 255, np.uint8) for _ in range(3)]
    alphas[1][2, 3] = 0                       # green blank at one pixel
    rgba = compose_rgba(*(_la(g, a) for g, a in zip(grays, alphas, strict=True)))
    assert rgba.shape == (8, 8, 4) and rgba.dtype == np.uint8
    np.testing.assert_array_equal(rgba[..., 0], grays[0])
    np.testing.assert_array_equal(rgba[..., 2], grays[2])
    expected_green = grays[1].copy()
    expected_green[2, 3] = 0
    np.testing.assert_array_equal(rgba[..., 1], expected_green)
    assert (rgba[..., 3] == 255).all()        # red and blue still have data there


def test_alpha_is_opaque_where_any_map_has_data_and_missing_tiles_are_blank():
    red = _la(np.full((4, 4), 90), np.zeros((4, 4)))
    red[0, 0] = (90, 255)
    blue = _la(np.full((4, 4), 30), np.zeros((4, 4)))
    blue[3, 3] = (30, 255)
    rgba = compose_rgba(red, None, blue)
    assert tuple(rgba[0, 0]) == (90, 0, 0, 255)
    assert tuple(rgba[3, 3]) == (0, 0, 30, 255)
    assert tuple(rgba[1, 1]) == (0, 0, 0, 0)
    assert int((rgba[..., 3] == 255).sum()) == 2


def test_compose_refuses_no_tile_wrong_mode_or_mismatched_shapes():
    with pytest.raises(ValueError, match="at least one"):
        compose_rgba(None, None, None)
    with pytest.raises(ValueError, match="green"):
        compose_rgba(_la(np.zeros((4, 4)), np.zeros((4, 4))), np.zeros((4, 4, 3), np.uint8),
                     None)
    with pytest.raises(ValueError, match="blue tile has shape"):
        compose_rgba(_la(np.zeros((4, 4)), np.zeros((4, 4))), None,
                     _la(np.zeros((8, 8)), np.zeros((8, 8))))


def test_png_round_trip_is_rgba_top_row_first(tmp_path):
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[0, :] = (255, 10, 20, 255)           # top row red
    rgba[15, :, 3] = 0
    data = encode_rgba_png(rgba)
    path = tmp_path / "t.png"
    path.write_bytes(data)
    with Image.open(path) as im:
        assert im.mode == "RGBA"
        assert im.getpixel((0, 0)) == (255, 10, 20, 255)  # PIL (x, y), y = 0 on top
    np.testing.assert_array_equal(decode_rgba_png(data), rgba)
    np.testing.assert_array_equal(decode_rgba_png(path), rgba)
    with pytest.raises(ValueError, match="uint8"):
        encode_rgba_png(rgba[..., :3])


@pytest.mark.parametrize("order, g", [(0, 0), (3, 0), (4, 1), (5, 2), (9, 2)])
def test_groups_partition_every_order_into_nested_descendants(order, g):
    assert group_order(order) == g
    tiles = [n for cell in group_cells(order) for n in group_tiles(order, cell)]
    assert tiles == list(range(12 * 4**order))          # every tile once
    for cell in (0, len(group_cells(order)) - 1):
        # NESTED: a tile's ancestor at order g drops 2 bits an order
        assert all(n >> (2 * (order - g)) == cell for n in group_tiles(order, cell))


def test_group_tiles_refuses_a_cell_outside_its_order():
    with pytest.raises(ValueError, match="cell 12"):
        group_tiles(2, 12)
