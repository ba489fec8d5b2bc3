"""The I/O meter: what the artifact layer counts, and by which storage unit."""

import os
import threading

import numpy as np
from astropy.io import fits

from hipsluigi.storage import artifacts
from hipsluigi.storage.atomic import link_or_copy_atomic, write_bytes_atomic
from hipsluigi.storage.iometer import OUTSIDE, IOMeter, by_unit, count_read, count_write


def test_meter_counts_only_while_open_and_from_every_thread(tmp_path):
    count_write(tmp_path / "before", 5)
    with IOMeter() as meter:
        threads = [threading.Thread(target=count_write, args=(tmp_path / "a" / f"f{k}", 100))
                   for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        count_read(tmp_path / "a" / "g", 7)
    count_read(tmp_path / "a" / "after", 9)
    assert dict(meter.written) == {str(tmp_path / "a"): 800}
    assert dict(meter.read) == {str(tmp_path / "a"): 7}


def test_atomic_writes_count_their_bytes_and_a_hard_link_counts_none(tmp_path):
    with IOMeter() as meter:
        write_bytes_atomic(tmp_path / "x.bin", b"\0" * 1234)
        link_or_copy_atomic(tmp_path / "x.bin", tmp_path / "y.bin")
    assert os.stat(tmp_path / "y.bin").st_nlink == 2  # really a link here
    assert sum(meter.written.values()) == 1234


def test_plate_reads_count_the_pixels_and_can_be_left_to_the_reader(tmp_path):
    path = tmp_path / "plate.fits"
    fits.writeto(path, np.zeros((64, 32), np.float32))
    with IOMeter() as meter:
        artifacts.read_plate(path)
        artifacts.read_plate(path, count=False)
    assert sum(meter.read.values()) == 64 * 32 * 4


def test_bytes_go_to_the_deepest_unit_holding_the_folder_links_resolved(tmp_path):
    u0, u1 = tmp_path / "u0", tmp_path / "u0" / "inner"
    u1.mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(u1, target_is_directory=True)
    counts = {str(u0 / "map" / "HiPS"): 10, str(u1 / "map"): 20, str(tmp_path / "link"): 5,
              str(tmp_path / "elsewhere"): 1, str(tmp_path / "u0x"): 2}
    assert by_unit(counts, [str(u0), str(u1)]) == {"unit0": 10, "unit1": 25, OUTSIDE: 3}
