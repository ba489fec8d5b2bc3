import os
from pathlib import Path

import pytest

from hipsluigi.storage.layout import StorageLayout


def _layout(tmp_path) -> StorageLayout:
    return StorageLayout(tuple(str(tmp_path / f"u{u}") for u in range(3)), "m")


def test_setup_makes_each_units_mosaics_link_and_can_run_again(tmp_path):
    layout = _layout(tmp_path)
    layout.setup()
    layout.setup()
    for u in (1, 2):
        assert Path(os.readlink(layout.subset_link(u))) == layout.mosaics_dir(u)


def test_setup_accepts_the_link_another_client_makes_at_the_same_moment(tmp_path,
                                                                      monkeypatch):
    # two `luigi` clients of one luigid set up the same map: the other one's link appears
    # between this one's look and its symlink call
    layout = _layout(tmp_path)
    symlink_to = Path.symlink_to

    def raced(self, target, target_is_directory=False):
        symlink_to(self, target, target_is_directory)  # the other client
        symlink_to(self, target, target_is_directory)

    monkeypatch.setattr(Path, "symlink_to", raced)
    layout.setup()
    for u in (1, 2):
        assert Path(os.readlink(layout.subset_link(u))) == layout.mosaics_dir(u)


def test_setup_repoints_a_stale_link_and_refuses_a_real_folder(tmp_path):
    layout = _layout(tmp_path)
    layout.subset_link(1).parent.mkdir(parents=True)
    layout.subset_link(1).symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    layout.subset_link(2).mkdir()
    with pytest.raises(FileExistsError, match="subset3: exists and is not a link to"):
        layout.setup()
    assert Path(os.readlink(layout.subset_link(1))) == layout.mosaics_dir(1)
