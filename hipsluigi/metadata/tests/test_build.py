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
