import healpy as hp
import numpy as np
import pytest
from astropy.io import fits

from hipsluigi.metadata.moc import moc_sky_fraction, tiles_moc, write_moc

MOC_DEPTH = 29  # MOC 2.0 RANGE values count cells of order 29


def _area_fraction(order, ncells):
    """Sky fraction of ``ncells`` HEALPix cells of ``order``, from healpy's pixel area."""
    return ncells * hp.nside2pixarea(hp.order2nside(order)) / (4 * np.pi)


def _cells_from_fits(path, order):
    """The order-``order`` cells of a MOC 2.0 FITS file (RANGE ordering), read with astropy."""
    with fits.open(path) as hdul:
        header, data = hdul[1].header, hdul[1].data
        assert header["ORDERING"].strip() == "RANGE"
        ranges = np.asarray(data.field(0), dtype=np.int64).reshape(-1, 2)
    step = 4 ** (MOC_DEPTH - order)
    assert (ranges % step == 0).all()
    return sorted(int(c) for lo, hi in ranges for c in range(lo // step, hi // step))


def test_all_order1_tiles_cover_the_sky():
    moc = tiles_moc(1, range(48))
    assert _area_fraction(1, 48) == pytest.approx(1.0)
    assert moc_sky_fraction(moc) == pytest.approx(1.0, abs=1e-12)


def test_one_order0_tile_is_one_twelfth_of_the_sky():
    moc = tiles_moc(0, [7])
    assert moc_sky_fraction(moc) == pytest.approx(_area_fraction(0, 1), abs=1e-12)
    assert moc_sky_fraction(moc) == pytest.approx(1 / 12, abs=1e-12)


def test_sky_fraction_of_random_tiles_matches_healpy_area():
    rng = np.random.default_rng(3)
    npix = rng.choice(12 * 4**4, size=300, replace=False)
    moc = tiles_moc(4, list(npix) + list(npix[:10]))  # duplicates count once
    assert moc_sky_fraction(moc) == pytest.approx(_area_fraction(4, 300), rel=1e-12)


def test_empty_tile_list_gives_empty_moc():
    assert moc_sky_fraction(tiles_moc(3, [])) == 0.0


@pytest.mark.parametrize("order, npix", [(0, [12]), (2, [-1]), (30, [0])])
def test_rejects_cells_outside_the_order(order, npix):
    with pytest.raises(ValueError):
        tiles_moc(order, npix)


@pytest.mark.parametrize("frame, code", [("galactic", "G"), ("equatorial", "C")])
def test_written_moc_has_frame_and_input_cells(tmp_path, frame, code):
    npix = [0, 1, 2, 3, 17, 100, 191]
    path = tmp_path / "Moc.fits"
    write_moc(path, tiles_moc(2, npix), frame)
    assert fits.getval(path, "COORDSYS", ext=1).strip() == code
    assert _cells_from_fits(path, 2) == npix


def test_write_moc_rejects_unknown_frame(tmp_path):
    with pytest.raises(ValueError):
        write_moc(tmp_path / "Moc.fits", tiles_moc(0, [0]), "ecliptic")
    assert not (tmp_path / "Moc.fits").exists()
