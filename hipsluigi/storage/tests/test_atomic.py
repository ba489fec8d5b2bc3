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
