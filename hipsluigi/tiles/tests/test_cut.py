"""Cutting tiles and writing them."""

import errno
import io
import os
import threading
import time

import numpy as np
import pytest
from astropy.io import fits

from hipsluigi.geometry.plates import PlateGrid
from hipsluigi.tiles.cut import TileWriter, plate_tiles, tile_hdu, write_plate_tiles


def test_fast_tile_bytes_equal_astropy_tile_written_out():
    rng = np.random.default_rng(0)
    writer = TileWriter(3, 64, "galactic")
    for npix in (0, 7, 300, 384, 400, 447, 767):  # 384-447: face 6, CRVAL1 = 180
        tile = rng.normal(size=(64, 64)).astype(np.float32)
        tile[:5, :5] = np.nan
        buffer = io.BytesIO()
        tile_hdu(tile, 3, npix, "galactic").writeto(buffer)
        fast = writer.tile_bytes(npix, tile)
        with fits.open(io.BytesIO(fast)) as ours, fits.open(io.BytesIO(buffer.getvalue())) as ref:
            assert ours[0].header == ref[0].header
            assert np.array_equal(ours[0].data, ref[0].data, equal_nan=True)
        assert len(fast) % 2880 == 0


def test_tile_writer_writes_the_same_file(tmp_path):
    tile = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    tile[3, 4] = np.nan
    writer = TileWriter(2, 64, "equatorial")
    writer.write(tmp_path / "Npix100.fits", 100, tile)
    assert (tmp_path / "Npix100.fits").read_bytes() == writer.tile_bytes(100, tile)
    assert [p.name for p in tmp_path.iterdir()] == ["Npix100.fits"]


def test_header_cards_match_astropy_for_awkward_values():
    from hipsluigi.tiles.cut import _card

    for value in (0.0, -1.5, 1e-05, 123456789.0, 1e16, -1.2345678901234567e-300, 7, -3):
        assert _card("DATAMIN", value, "c") == fits.Card("DATAMIN", value, "c").image.encode()


@pytest.mark.parametrize("threads", [1, 2])
def test_plate_tiles_are_written_through_the_given_file_writer(tmp_path, threads):
    grid = PlateGrid(1, 16, 5, 0)
    plate = np.random.default_rng(1).normal(size=grid.shape()).astype(np.float32)
    plate[:16, :16] = np.nan  # one blank tile: not written
    calls = []

    def write_file(path, write):  # what hipsluigi.storage.atomic.write_atomic does
        tmp = path.with_name(f".{path.name}.tmp")
        write(tmp)
        os.replace(tmp, path)
        calls.append(path.name)

    written = write_plate_tiles(plate, grid, 2, 2, "galactic",
                                lambda npix: tmp_path / f"Npix{npix}.fits",
                                write_file=write_file, threads=threads)
    tiles = dict(plate_tiles(plate, grid, 2, 2))
    assert written == list(tiles) and len(written) == 3 and sorted(calls) == sorted(
        f"Npix{npix}.fits" for npix in written)
    writer = TileWriter(1, 16, "galactic")
    for npix, tile in tiles.items():
        assert (tmp_path / f"Npix{npix}.fits").read_bytes() == writer.tile_bytes(npix, tile)
    assert len(list(tmp_path.iterdir())) == 3


def test_tiles_failing_together_are_all_named_whatever_order_they_fail_in(tmp_path):
    # the disk fills inside one tile while the other thread starts the next: both fail, and
    # the first in the plate's order wrote nothing, so raising it alone would hide the other
    grid = PlateGrid(1, 16, 5, 0)
    plate = np.random.default_rng(1).normal(size=grid.shape()).astype(np.float32)
    first, second = [npix for npix, _ in plate_tiles(plate, grid, 2, 2)][:2]
    both_running = threading.Barrier(2, timeout=10)
    started = []

    def write_file(path, write):
        started.append(path.name)
        if path.name == f"Npix{first}.fits":
            both_running.wait()
            raise OSError(errno.ENOSPC, f"{path}: No space left on device after 0 of 20160")
        if path.name == f"Npix{second}.fits":
            both_running.wait()
            time.sleep(0.2)  # fails last
            raise OSError(errno.ENOSPC, f"{path}: No space left on device after 4096 of 20160")
        write(path)

    with pytest.raises(OSError) as err:
        write_plate_tiles(plate, grid, 2, 2, "galactic",
                          lambda npix: tmp_path / f"Npix{npix}.fits",
                          write_file=write_file, threads=2)
    assert err.value.errno == errno.ENOSPC
    assert f"Npix{first}.fits: No space left on device after 0 of 20160" in str(err.value)
    assert f"Npix{second}.fits: No space left on device after 4096 of 20160" in str(err.value)
    assert str(err.value).startswith("[Errno 28] 2 tile writes failed: ")
    assert len(started) == 2  # no tile is started after the failure


def test_a_single_failed_tile_write_is_raised_as_it_is(tmp_path):
    grid = PlateGrid(1, 16, 5, 0)
    plate = np.random.default_rng(1).normal(size=grid.shape()).astype(np.float32)
    failure = OSError(errno.EIO, "one tile")
    first = next(plate_tiles(plate, grid, 2, 2))[0]

    def write_file(path, write):
        if path.name == f"Npix{first}.fits":
            raise failure
        write(path)

    with pytest.raises(OSError) as err:
        write_plate_tiles(plate, grid, 2, 2, "galactic",
                          lambda npix: tmp_path / f"Npix{npix}.fits",
                          write_file=write_file, threads=2)
    assert err.value is failure


UNIT_CARDS = [("BUNIT", "DN", "pixel unit"), ("MAGZP", 20.5, "zero point, Vega mag")]


def _astropy_bytes(tile, order, npix, frame, cards=()):
    buffer = io.BytesIO()
    tile_hdu(tile, order, npix, frame, cards).writeto(buffer)
    return buffer.getvalue()


def test_without_cards_tiles_are_byte_for_byte_astropys():
    """No cards: the fast writer's bytes are astropy's file of the plain tile header, on and
    off face 6, whether ``cards`` is left out or given empty."""
    rng = np.random.default_rng(5)
    for frame in ("galactic", "equatorial"):
        default, empty = TileWriter(2, 64, frame), TileWriter(2, 64, frame, cards=())
        for npix in (0, 100, 101, 191):  # 96-111: face 6
            tile = rng.normal(size=(64, 64)).astype(np.float32)
            tile[7, :] = np.nan
            expected = _astropy_bytes(tile, 2, npix, frame)
            assert default.tile_bytes(npix, tile) == expected
            assert empty.tile_bytes(npix, tile) == expected
            assert "BUNIT" not in fits.getheader(io.BytesIO(expected))


def test_tiles_written_with_cards_carry_them_and_the_data_unchanged(tmp_path):
    rng = np.random.default_rng(6)
    writer = TileWriter(3, 64, "equatorial", cards=UNIT_CARDS)
    for npix in (5, 390, 700):
        tile = rng.normal(10, 3, size=(64, 64)).astype(np.float32)
        tile[:3, 10:20] = np.nan
        writer.write(tmp_path / f"Npix{npix}.fits", npix, tile)
        raw = (tmp_path / f"Npix{npix}.fits").read_bytes()
        assert raw == _astropy_bytes(tile, 3, npix, "equatorial", UNIT_CARDS)
        with fits.open(tmp_path / f"Npix{npix}.fits") as hdul:
            header, data = hdul[0].header, hdul[0].data
            assert header["BUNIT"] == "DN" and header.comments["BUNIT"] == "pixel unit"
            assert header["MAGZP"] == 20.5
            assert header["NPIX"] == npix and header["DATAMAX"] == float(np.nanmax(tile))
            assert np.array_equal(data, tile, equal_nan=True)
            assert data.dtype == np.dtype(">f4")


def test_plate_tiles_given_their_npix_yield_exactly_those_views_untested():
    grid = PlateGrid(1, 16, 5, 0)
    plate = np.random.default_rng(2).normal(size=grid.shape()).astype(np.float32)
    plate[:16, :16] = np.nan
    finite = dict(plate_tiles(plate, grid, 2, 2))
    assert len(finite) == 3
    some = sorted(finite)[1:]
    picked = dict(plate_tiles(plate, grid, 2, 2, npix=some))
    assert sorted(picked) == some
    for n in some:
        assert np.shares_memory(picked[n], plate) and np.array_equal(picked[n], finite[n])
    # the caller's word is taken: a listed blank tile is yielded (its npix from the grid)
    blank = next(int(n) for n in grid.tiles(2, 2)[0] if int(n) not in finite)
    assert list(dict(plate_tiles(plate, grid, 2, 2, npix=[blank]))) == [blank]


def test_plate_tiles_carry_the_cards(tmp_path):
    grid = PlateGrid(1, 16, 5, 0)
    plate = np.random.default_rng(2).normal(size=grid.shape()).astype(np.float32)
    written = write_plate_tiles(plate, grid, 2, 2, "galactic",
                                lambda npix: tmp_path / f"Npix{npix}.fits",
                                write_file=lambda path, write: write(path), threads=2,
                                cards=UNIT_CARDS)
    headers = [fits.getheader(tmp_path / f"Npix{npix}.fits") for npix in written]
    assert len(headers) == 4
    assert all(h["BUNIT"] == "DN" and h["MAGZP"] == 20.5 for h in headers)


@pytest.mark.parametrize("cards, why", [
    ([("NPIX", 3)], "set by the tile header"),
    ([("CRVAL1", 10.0)], "set by the tile header"),
    ([("BUNIT", "DN"), ("bunit", "Jy")], "repeated"),
    ([("MAGZP", float("nan"))], "MAGZP"),
    ([("BUNIT",)], "expected"),
])
def test_bad_cards_are_refused_before_any_tile_is_written(tmp_path, cards, why):
    grid = PlateGrid(1, 16, 5, 0)
    plate = np.ones(grid.shape(), np.float32)
    with pytest.raises(ValueError, match=why):
        write_plate_tiles(plate, grid, 2, 2, "galactic", lambda npix: tmp_path / f"{npix}.fits",
                          write_file=lambda path, write: write(path), cards=cards)
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match=why):
        TileWriter(1, 16, "galactic", cards=cards)



# -- a disk that takes part of a write -----------------------------------------------------------

class Disk:
    """``os.writev`` of a disk that takes at most ``chunk`` bytes a call, and ``free`` bytes in
    all (then ENOSPC), as Linux does on a full disk."""

    def __init__(self, chunk: int = 1 << 30, free: int = 1 << 30):
        self.real, self.chunk, self.free, self.calls = os.writev, chunk, free, 0

    def __call__(self, fd, buffers):
        self.calls += 1
        if self.free <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        data = b"".join(bytes(memoryview(b).cast("B")) for b in buffers)
        n = os.write(fd, data[:min(self.chunk, self.free)])
        self.free -= n
        return n


def _tile(seed: int = 0) -> np.ndarray:
    tile = np.random.default_rng(seed).normal(size=(64, 64)).astype(np.float32)
    tile[:4, :9] = np.nan
    return tile


def test_a_write_the_disk_cuts_short_is_finished(tmp_path, monkeypatch):
    writer, tile = TileWriter(2, 64, "galactic"), _tile()
    disk = Disk(chunk=4096)
    monkeypatch.setattr(os, "writev", disk)
    size = writer.write(tmp_path / "Npix9.fits", 9, tile)
    expected = writer.tile_bytes(9, tile)
    assert (tmp_path / "Npix9.fits").read_bytes() == expected and size == len(expected)
    assert disk.calls == -(-len(expected) // 4096)  # 4,096 bytes a call, then the rest


def test_a_full_disk_raises_enospc_naming_the_file_and_what_was_written(tmp_path, monkeypatch):
    writer = TileWriter(2, 64, "galactic")
    monkeypatch.setattr(os, "writev", Disk(free=4096))
    path = tmp_path / "Npix9.fits"
    with pytest.raises(OSError, match=f"{path}: .* after 4096 of {writer.file_size} bytes") as err:
        writer.write(path, 9, _tile())
    assert err.value.errno == errno.ENOSPC


def test_a_write_that_takes_no_byte_raises_instead_of_looping(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "writev", lambda fd, buffers: 0)
    with pytest.raises(OSError, match="write took no byte after 0 of"):
        TileWriter(2, 64, "galactic").write(tmp_path / "Npix9.fits", 9, _tile())


@pytest.mark.parametrize("cards", [(), UNIT_CARDS])
def test_tile_file_size_is_the_size_of_astropys_file(cards):
    from hipsluigi.tiles.cut import tile_file_size

    for order in (0, 3):
        expected = len(_astropy_bytes(_tile(order), order, 5, "galactic", cards))
        assert tile_file_size(order, 64, "galactic", cards) == expected


def test_read_fits_tile_gives_astropys_pixels_and_leaves_other_files_to_astropy(tmp_path):
    from hipsluigi.tiles.cut import read_fits_tile

    rng = np.random.default_rng(8)
    tile = rng.normal(size=(16, 16)).astype(np.float32)
    tile[2, 3] = np.nan
    ours = tmp_path / "Npix5.fits"
    TileWriter(1, 16, "galactic", cards=[("BUNIT", "DN")]).write(ours, 5, tile)
    got = read_fits_tile(ours, 16)
    expected = fits.getdata(ours)
    assert got.dtype == expected.dtype and got.tobytes() == expected.tobytes()
    # scaled integers, as another tool may write: astropy applies BZERO
    scaled = tmp_path / "scaled.fits"
    fits.PrimaryHDU(np.arange(256, dtype=np.int16).reshape(16, 16)).writeto(scaled)
    with fits.open(scaled, mode="update") as hdul:
        hdul[0].header["BZERO"] = 1000
    np.testing.assert_array_equal(read_fits_tile(scaled, 16),
                                  np.arange(256).reshape(16, 16) + 1000)
    ours.write_bytes(ours.read_bytes()[:2880 + 100])
    with pytest.raises(EOFError, match="truncated: the file holds 25 of the tile's 256 pixels"):
        read_fits_tile(ours, 16)
