from hipsluigi.storage.atomic import link_or_copy_atomic, write_atomic, write_bytes_atomic


def test_link_or_copy_keeps_the_content_when_the_source_is_rebuilt(tmp_path):
    source, out = tmp_path / "mosaic.fits", tmp_path / "plates" / "plate.fits"
    write_bytes_atomic(source, b"first")
    link_or_copy_atomic(source, out)
    assert out.read_bytes() == b"first"
    assert out.stat().st_ino == source.stat().st_ino  # a link, not a copy, on one disk
    write_bytes_atomic(source, b"second")  # outputs are replaced by rename
    assert out.read_bytes() == b"first"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporaries


def test_a_failed_write_leaves_neither_the_file_nor_a_temporary(tmp_path):
    import pytest

    def broken(tmp):
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(tmp_path / "tile.fits", broken)
    assert list(tmp_path.iterdir()) == []


def test_a_temporary_shorter_than_written_is_never_renamed_into_place(tmp_path):
    import pytest

    path = tmp_path / "Npix5.fits"
    path.write_bytes(b"the previous, whole file")

    def cut_short(tmp):
        tmp.write_bytes(b"\0" * 4096)
        return 20160  # what the writer meant to write

    with pytest.raises(OSError, match=f"{path}: 4096 bytes written of 20160"):
        write_atomic(path, cut_short)
    assert path.read_bytes() == b"the previous, whole file"
    assert [p.name for p in tmp_path.iterdir()] == ["Npix5.fits"]


def test_text_is_checked_in_bytes_not_characters(tmp_path):
    from hipsluigi.storage.atomic import write_text_atomic

    text = "Ω naïve ✓\n"  # 10 characters, 15 bytes in UTF-8
    write_text_atomic(tmp_path / "note.txt", text)
    assert (tmp_path / "note.txt").read_text() == text


def _cut_fits(tmp, keep):
    import os

    os.truncate(tmp, keep(os.path.getsize(tmp)))


def test_a_fits_file_cut_inside_its_data_is_refused(tmp_path):
    import numpy as np
    import pytest
    from astropy.io import fits

    from hipsluigi.storage.atomic import write_fits_atomic

    class ShortHDU(fits.PrimaryHDU):  # as numpy's tofile when fclose's flush fails unseen
        def writeto(self, name, **kwargs):
            super().writeto(name, **kwargs)
            _cut_fits(name, lambda size: size - 4096)

    path = tmp_path / "plate.fits"
    whole = 2880 + -(-96 * 96 * 4 // 2880) * 2880  # a header block, the data in 2880-byte blocks
    with pytest.raises(OSError, match=f"{path}: {whole - 4096} bytes written of {whole}"):
        write_fits_atomic(path, ShortHDU(np.zeros((96, 96), np.float32)))
    assert list(tmp_path.iterdir()) == []
    write_fits_atomic(path, fits.PrimaryHDU(np.zeros((96, 96), np.float32)))  # whole: written
    assert path.stat().st_size == whole


def test_a_fits_file_cut_between_its_hdus_is_refused(tmp_path):
    import numpy as np
    import pytest
    from astropy.io import fits

    from hipsluigi.storage import atomic

    primary = fits.PrimaryHDU(np.zeros((8, 8), np.float32))
    table = fits.BinTableHDU.from_columns([fits.Column("c", "D", array=[1.0, 2.0])])

    class ShortList(fits.HDUList):
        def writeto(self, name, **kwargs):
            super().writeto(name, **kwargs)
            _cut_fits(name, lambda size: 2 * 2880)  # the primary HDU only, whole

    path = tmp_path / "mosaic.fits"
    with pytest.raises(OSError, match=f"{path}: 1 HDUs read back of 2 written"):
        atomic.write_fits_atomic(path, ShortList([primary, table]))
    assert list(tmp_path.iterdir()) == []


def test_fsync_flushes_the_temporary_before_the_rename(tmp_path, monkeypatch):
    import os

    path = tmp_path / "plates" / "plate.fits"
    synced = []

    def fsync(fd):
        synced.append((os.readlink(f"/proc/self/fd/{fd}"), path.exists()))

    from hipsluigi.storage.atomic import write_text_atomic

    monkeypatch.setattr(os, "fsync", fsync)
    write_bytes_atomic(path, b"plate", fsync=True)
    write_bytes_atomic(tmp_path / "tile.png", b"x")  # bulk data: not unless asked
    assert len(synced) == 1
    name, renamed_yet = synced[0]
    assert name.startswith(str(path.parent / ".plate.fits.")) and not renamed_yet
    write_text_atomic(tmp_path / "plate_00_00.fits.json", "{}")  # a record: by default
    assert len(synced) == 2 and "/.plate_00_00.fits.json." in synced[1][0]


def test_a_copy_cut_short_is_refused(tmp_path, monkeypatch):
    import os
    import shutil

    import pytest

    source = tmp_path / "mosaic.fits"
    source.write_bytes(b"x" * 10000)

    def no_link(src, dst):
        raise OSError("cross-device link")

    def short_copy(src, dst):
        with open(dst, "wb") as f:
            f.write(b"x" * 4096)

    monkeypatch.setattr(os, "link", no_link)
    monkeypatch.setattr(shutil, "copyfile", short_copy)
    with pytest.raises(OSError, match="4096 bytes written of 10000"):
        link_or_copy_atomic(source, tmp_path / "plate.fits")
    assert not (tmp_path / "plate.fits").exists()


def test_on_a_full_disk_only_whole_tiles_are_put_in_place(tmp_path, monkeypatch):
    """The tile writer through write_atomic, on a disk with room for two tiles and a page: the
    two are whole, the third (cut short, then ENOSPC) is not there, and no temporary is."""
    import errno
    import os

    import numpy as np
    import pytest

    from hipsluigi.geometry.plates import PlateGrid
    from hipsluigi.tiles.cut import TileWriter, plate_tiles, write_plate_tiles
    from hipsluigi.tiles.tests.test_cut import Disk

    grid = PlateGrid(1, 64, 5, 0)
    plate = np.random.default_rng(3).normal(size=grid.shape()).astype(np.float32)
    writer = TileWriter(1, 64, "galactic")
    monkeypatch.setattr(os, "writev", Disk(free=2 * writer.file_size + 4096))
    with pytest.raises(OSError) as err:
        write_plate_tiles(plate, grid, 2, 2, "galactic", lambda npix: tmp_path / f"Npix{npix}.fits",
                          write_file=write_atomic, threads=1)
    assert err.value.errno == errno.ENOSPC
    first = list(plate_tiles(plate, grid, 2, 2))[:2]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"Npix{n}.fits" for n, _ in first)
    for npix, tile in first:
        assert (tmp_path / f"Npix{npix}.fits").read_bytes() == writer.tile_bytes(npix, tile)
