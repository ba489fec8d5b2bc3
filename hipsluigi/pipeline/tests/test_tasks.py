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
