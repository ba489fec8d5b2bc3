"""``write_hips_metadata``: the pixel unit in ``properties`` and in the Allsky headers."""

import numpy as np
import pytest
from astropy.io import fits

from hipsluigi.geometry.hpx import tile_relpath
from hipsluigi.metadata.allsky import write_allsky
from hipsluigi.metadata.build import write_hips_metadata
from hipsluigi.metadata.properties import parse_properties
from hipsluigi.spec import MapSpec
from hipsluigi.stretch.stretch import Stretch
from hipsluigi.tiles.cut import TileWriter
from hipsluigi.tiles.png import encode_png

WIDTH = 64
UNITS = {"BUNIT": "DN", "MAGZP": 20.5}


@pytest.fixture
def hips(tmp_path):
    """A whole-sky order-1 HiPS of random tiles (FITS with the unit cards, and PNG)."""
    spec = MapSpec(name="units", order=1, tile_width=WIDTH, storage=(str(tmp_path),))
    stretch = Stretch("linear", 0.0, 255.0, np.arange(255) + 0.5, 0.0, 255.0)
    rng = np.random.default_rng(3)
    tiles = {}
    for order in (0, 1):
        writer = TileWriter(order, WIDTH, spec.frame, cards=list(UNITS.items()))
        tiles[order] = list(range(12 * 4**order))
        for npix in tiles[order]:
            tile = rng.uniform(0, 255, (WIDTH, WIDTH)).astype(np.float32)
            path = tmp_path / "HiPS" / tile_relpath(order, npix, "fits")
            path.parent.mkdir(parents=True, exist_ok=True)
            writer.write(path, npix, tile)
            path.with_suffix(".png").write_bytes(encode_png(tile, stretch))
    return spec, tmp_path / "HiPS", tiles, stretch


def test_units_go_into_properties_and_allsky_headers(hips):
    spec, folder, tiles, stretch = hips
    write_hips_metadata(spec, folder, tiles, stretch, units=UNITS)
    props = parse_properties((folder / "properties").read_text(encoding="utf-8"))
    assert props["hips_bunit"] == "DN"
    for order in (0, 1):
        header = fits.getheader(folder / f"Norder{order}" / "Allsky.fits")
        assert header["BUNIT"] == "DN" and header["MAGZP"] == 20.5
        # the tiles carry the same cards
        assert fits.getheader(folder / tile_relpath(order, 5, "fits"))["BUNIT"] == "DN"


def test_without_units_allsky_is_the_plain_allsky_and_properties_state_no_unit(hips, tmp_path):
    spec, folder, tiles, stretch = hips
    write_hips_metadata(spec, folder, tiles, stretch)
    assert "hips_bunit" not in parse_properties((folder / "properties").read_text())
    for order in (0, 1):
        fits_tiles = {n: fits.getdata(folder / tile_relpath(order, n, "fits"))
                      for n in tiles[order]}
        reference = tmp_path / "reference"
        (reference / f"Norder{order}").mkdir(parents=True)
        write_allsky(reference, order, fits_tiles, None, WIDTH)
        ours = folder / f"Norder{order}" / "Allsky.fits"
        assert ours.read_bytes() == (reference / f"Norder{order}" / "Allsky.fits").read_bytes()
        assert "BUNIT" not in fits.getheader(ours)


def test_units_with_the_allsky_data_unchanged(hips, tmp_path):
    spec, folder, tiles, stretch = hips
    write_hips_metadata(spec, folder, tiles, stretch, units=UNITS)
    with_units = fits.getdata(folder / "Norder1" / "Allsky.fits")
    write_hips_metadata(spec, folder, tiles, stretch)
    assert np.array_equal(with_units, fits.getdata(folder / "Norder1" / "Allsky.fits"),
                          equal_nan=True)


def test_a_unit_card_fits_cannot_hold_is_refused_naming_it(hips):
    spec, folder, tiles, stretch = hips
    with pytest.raises(ValueError, match="MAGZP"):
        write_hips_metadata(spec, folder, tiles, stretch, units={"MAGZP": float("inf")})


def test_tile_file_problem_says_what_is_wrong_from_the_size(tmp_path):
    from hipsluigi.metadata.build import tile_file_problem

    size = TileWriter(1, WIDTH, "galactic").file_size
    whole, cut, empty = tmp_path / "whole.fits", tmp_path / "cut.fits", tmp_path / "empty.png"
    whole.write_bytes(b"\0" * size)
    cut.write_bytes(b"\0" * 4096)
    empty.write_bytes(b"")
    assert tile_file_problem(whole, size) is None
    assert tile_file_problem(cut, size) == f"4096 bytes, expected {size}"
    assert tile_file_problem(tmp_path / "gone.fits", size) == "missing"
    assert tile_file_problem(empty, None) == "empty"
    assert tile_file_problem(whole, None) is None  # a PNG: any non-empty size


def test_every_unreadable_tile_is_named_and_nothing_is_written(hips):
    """The issue's case (a FITS tile cut at 4,096 bytes: its data ends after 304 pixels),
    a FITS tile of another width and a PNG that is not one, all named at once."""
    from hipsluigi.metadata.build import UnreadableTiles

    spec, folder, tiles, stretch = hips
    cut = folder / tile_relpath(1, 7, "fits")
    cut.write_bytes(cut.read_bytes()[:4096])
    small = folder / tile_relpath(1, 30, "fits")
    TileWriter(1, WIDTH // 2, spec.frame).write(small, 30, np.ones((32, 32), np.float32))
    garbage = folder / tile_relpath(0, 3, "png")
    garbage.write_bytes(b"\0" * 100)
    with pytest.raises(UnreadableTiles) as err:
        write_hips_metadata(spec, folder, tiles, stretch)
    assert set(err.value.problems) == {cut, small, garbage}
    assert (f"truncated: the file holds 304 of the tile's {WIDTH * WIDTH} pixels"
            in err.value.problems[cut])
    assert err.value.problems[small] == f"shape (32, 32), expected {WIDTH} x {WIDTH}"
    assert str(garbage) in str(err.value) and "3 unreadable tile(s)" in str(err.value)
    assert not (folder / "properties").exists() and not (folder / "Norder1" / "Allsky.png").exists()

