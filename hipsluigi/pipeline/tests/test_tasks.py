import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from hipsluigi.pipeline.tasks import HipsTask


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


class _RecordsThreads(HipsTask):
    seen: list[int] = []

    def work(self) -> None:
        np.ones((4, 3)) @ np.eye(3)  # BLAS is loaded
        type(self).seen = _blas_threads()


def test_work_runs_with_blas_on_one_thread_and_restores_it_after():
    with threadpool_limits(limits=2, user_api="blas"):  # as on any multi-core machine
        before = _blas_threads()
        assert before == [2] * len(before) and before, "no BLAS visible to threadpoolctl"
        _RecordsThreads(map="demo").run_in_process()
        assert _RecordsThreads.seen and set(_RecordsThreads.seen) == {1}
        assert _blas_threads() == before


def test_published_tree_links_a_dir_of_one_unit_whole_and_a_shared_dir_tile_by_tile(
        tmp_path, monkeypatch):
    from types import SimpleNamespace

    from hipsluigi.pipeline import plan, tasks
    from hipsluigi.storage.layout import StorageLayout

    layout = StorageLayout((str(tmp_path / "u0"), str(tmp_path / "u1")), "m")
    monkeypatch.setattr(plan, "shared_dirs", lambda spec, order: frozenset({1}))  # Dir10000
    group = SimpleNamespace(unit=1, order=5, layout=layout, spec=None)
    for n in (5, 7, 10005):
        path = layout.unit_tile(5, n, "fits", 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"tile {n}".encode())
    layout.tile(5, 10001, "fits").parent.mkdir(parents=True)
    layout.tile(5, 10001, "fits").write_bytes(b"unit 0's tile")
    tasks._publish_tiles(group, "fits", [5, 7, 10005])
    dir0, dir10000 = layout.hips_dir / "Norder5" / "Dir0", layout.hips_dir / "Norder5" / "Dir10000"
    assert dir0.is_symlink() and not dir10000.is_symlink()
    assert (dir10000 / "Npix10005.fits").is_symlink()
    for n in (5, 7, 10005):
        assert layout.tile(5, n, "fits").read_bytes() == f"tile {n}".encode()
    assert (dir10000 / "Npix10001.fits").read_bytes() == b"unit 0's tile"
    # unit 0's groups write in the tree itself and link nothing
    tasks._publish_tiles(SimpleNamespace(unit=0, order=5, layout=layout, spec=None), "fits",
                         [10001])
    assert not (dir10000 / "Npix10001.fits").is_symlink()


def test_import_readies_what_every_forked_task_process_would_redo():
    """``import hipsluigi`` (what ``luigi --module hipsluigi`` does before forking a process a
    task) imports the per-plate tasks' kernels and their codec, and finds the thread pools
    and the C library's ``mallopt``."""
    import subprocess
    import sys

    probe = ("import sys, hipsluigi\n"
             "from hipsluigi.execution.task import _mallopt, thread_pools\n"
             "print(thread_pools.cache_info().currsize)\n"
             "print(_mallopt.cache_info().currsize)\n"
             "for name in ('hipsluigi.mosaic.coadd', 'hipsluigi.tiles.png', 'imagecodecs._png',"
             " 'hipsluigi.pyramid.shrink', 'hipsluigi.surveys.fits_folder'):\n"
             "    print(name in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["1", "1"] + ["True"] * 5
