"""One published HiPS tree over tiles written on several units."""

import os

import pytest

from hipsluigi.storage.tile_links import LinkConflict, link_dir, link_file, real_dir


def test_a_dir_of_one_unit_is_one_relative_link(tmp_path):
    public = tmp_path / "u0" / "m" / "HiPS" / "Norder3" / "Dir0"
    target = tmp_path / "u1" / "m" / "tiles" / "Norder3" / "Dir0"
    assert link_dir(public, target)
    assert link_dir(public, target)  # again: already there
    assert not os.path.isabs(os.readlink(public))
    (target / "Npix5.fits").write_bytes(b"tile")
    assert (public / "Npix5.fits").read_bytes() == b"tile"
    # the whole work tree moved elsewhere keeps its links
    os.rename(tmp_path / "u0", tmp_path / "moved0")
    os.rename(tmp_path / "u1", tmp_path / "moved1")
    os.symlink("moved1", tmp_path / "u1")
    assert (tmp_path / "moved0" / "m" / "HiPS" / "Norder3" / "Dir0" / "Npix5.fits").exists()


def test_a_real_dir_is_kept_and_its_tiles_linked_one_by_one(tmp_path):
    public = tmp_path / "HiPS" / "Norder3" / "Dir0"
    public.mkdir(parents=True)
    (public / "Npix1.fits").write_bytes(b"unit0 tile")
    target = tmp_path / "u1" / "Norder3" / "Dir0"
    assert not link_dir(public, target)
    (target / "Npix2.fits").write_bytes(b"unit1 tile")
    link_file(public / "Npix2.fits", target / "Npix2.fits")
    link_file(public / "Npix2.fits", target / "Npix2.fits")
    assert (public / "Npix2.fits").is_symlink()
    assert (public / "Npix2.fits").read_bytes() == b"unit1 tile"
    assert (public / "Npix1.fits").read_bytes() == b"unit0 tile"
    # a stale file (a tile of an earlier layout) is replaced by the link
    (public / "Npix3.fits").write_bytes(b"old")
    (target / "Npix3.fits").write_bytes(b"new")
    link_file(public / "Npix3.fits", target / "Npix3.fits")
    assert (public / "Npix3.fits").read_bytes() == b"new"
    assert sorted(p.name for p in public.iterdir()) == ["Npix1.fits", "Npix2.fits",
                                                        "Npix3.fits"]


def test_links_that_contradict_the_plan_are_refused_naming_the_folder(tmp_path):
    public = tmp_path / "HiPS" / "Dir0"
    assert link_dir(public, tmp_path / "u1" / "Dir0")
    with pytest.raises(LinkConflict, match="Dir0"):
        link_dir(public, tmp_path / "u2" / "Dir0")
    with pytest.raises(LinkConflict, match="several storage units"):
        real_dir(public)
    real_dir(tmp_path / "HiPS" / "Dir10000")
    assert (tmp_path / "HiPS" / "Dir10000").is_dir()
