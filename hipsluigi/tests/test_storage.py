from hipsluigi.storage import link_or_copy_atomic, write_bytes_atomic


def test_link_or_copy_keeps_the_content_when_the_source_is_rebuilt(tmp_path):
    source, out = tmp_path / "mosaic.fits", tmp_path / "plates" / "plate.fits"
    write_bytes_atomic(source, b"first")
    link_or_copy_atomic(source, out)
    assert out.read_bytes() == b"first"
    assert out.stat().st_ino == source.stat().st_ino  # a link, not a copy, on one disk
    write_bytes_atomic(source, b"second")  # outputs are replaced by rename
    assert out.read_bytes() == b"first"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporaries


def test_check_fits_image_names_the_file_and_the_reason(tmp_path):
    import numpy as np
    import pytest
    from astropy.io import fits

    from hipsluigi.storage import check_fits_image

    good = tmp_path / "plate.fits"
    fits.PrimaryHDU(np.zeros((8, 16), np.float32)).writeto(good)
    check_fits_image(good, (8, 16))
    with pytest.raises(OSError, match=r"plate\.fits: image shape \(8, 16\), expected"):
        check_fits_image(good, (16, 16))
    cut = tmp_path / "cut.fits"
    cut.write_bytes(good.read_bytes()[:2880 + 100])
    with pytest.raises(OSError, match=r"cut\.fits: truncated"):
        check_fits_image(cut, (8, 16))
    text = tmp_path / "text.fits"
    text.write_text("this is not a FITS file\n")
    with pytest.raises(OSError, match=r"text\.fits: not a readable FITS image"):
        check_fits_image(text, (8, 16))
