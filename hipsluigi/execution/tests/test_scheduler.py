"""The indexed scheduler behaves as Luigi's: order, dependencies, resources, failures; and
how local runs get it."""

import time
import warnings

import luigi
import luigi.interface
import pytest
from luigi import scheduler as luigi_scheduler
from luigi import worker as luigi_worker

from hipsluigi.execution import IndexedScheduler, install_indexed_scheduler, scheduler
from hipsluigi.execution.scheduler import IndexedSchedulerFactory, luigi_is_tested

ORDER: list[str] = []


class Leaf(luigi.Task):
    n = luigi.IntParameter()
    done_flags: dict = {}

    @property
    def priority(self):
        return (self.n * 7) % 5

    def complete(self):
        return Leaf.done_flags.get(self.task_id, False)

    def run(self):
        ORDER.append(self.task_id)
        Leaf.done_flags[self.task_id] = True


class Node(luigi.Task):
    n = luigi.IntParameter()
    width = luigi.IntParameter()
    done_flags: dict = {}

    @property
    def priority(self):
        return self.n % 3

    def requires(self):
        return [Leaf(n=self.n * self.width + k) for k in range(self.width)]

    def complete(self):
        return Node.done_flags.get(self.task_id, False)

    def run(self):
        ORDER.append(self.task_id)
        Node.done_flags[self.task_id] = True


class Root(luigi.WrapperTask):
    nodes = luigi.IntParameter()
    width = luigi.IntParameter()

    def requires(self):
        return [Node(n=k, width=self.width) for k in range(self.nodes)]


def _run(sch, root) -> list[str]:
    ORDER.clear()
    Leaf.done_flags.clear()
    Node.done_flags.clear()
    with luigi_worker.Worker(scheduler=sch, worker_processes=1) as w:
        w.add(root)
        assert w.run()
    return list(ORDER)


def test_runs_tasks_in_the_same_order_as_luigis_scheduler():
    root = Root(nodes=12, width=4)
    stock = _run(luigi_scheduler.Scheduler(prune_on_get_work=True,
                                           record_task_history=False), root)
    ours = _run(IndexedScheduler(prune_on_get_work=True, record_task_history=False), root)
    assert len(ours) == 12 * 5
    assert ours == stock


def test_a_task_never_runs_before_its_dependencies():
    order = _run(IndexedScheduler(prune_on_get_work=True, record_task_history=False),
                 Root(nodes=30, width=3))
    position = {task_id: k for k, task_id in enumerate(order)}
    for k in range(30):
        node = Node(n=k, width=3)
        for leaf in node.requires():
            assert position[leaf.task_id] < position[node.task_id]


def _add(sch, worker, task_id, deps=(), resources=None, priority=0, status="PENDING"):
    sch.add_task(worker=worker, task_id=task_id, deps=list(deps), resources=resources,
                 priority=priority, family=task_id.split("_")[0], status=status)


def test_resources_limit_what_get_work_hands_out():
    sch = IndexedScheduler(resources={"unit": 1}, record_task_history=False)
    _add(sch, "w", "A_1", resources={"unit": 1}, priority=3)
    _add(sch, "w", "A_2", resources={"unit": 1}, priority=2)
    _add(sch, "w", "B_1", priority=1)
    first = sch.get_work(worker="w", current_tasks=[])
    assert first["task_id"] == "A_1"
    second = sch.get_work(worker="w", current_tasks=["A_1"])
    assert second["task_id"] == "B_1"  # A_2 waits for the unit
    assert sch.get_work(worker="w", current_tasks=["A_1", "B_1"])["task_id"] is None
    _add(sch, "w", "A_1", status="DONE")
    assert sch.get_work(worker="w", current_tasks=["B_1"])["task_id"] == "A_2"


def test_tasks_wait_for_dependencies_and_other_workers_tasks_are_not_handed_out():
    sch = IndexedScheduler(record_task_history=False)
    _add(sch, "w1", "P_1", deps=["D_1"])
    _add(sch, "w1", "D_1")
    _add(sch, "w2", "X_1", priority=100)
    assert sch.get_work(worker="w1", current_tasks=[])["task_id"] == "D_1"
    assert sch.get_work(worker="w1", current_tasks=["D_1"])["task_id"] is None
    _add(sch, "w1", "D_1", status="DONE")
    assert sch.get_work(worker="w1", current_tasks=[])["task_id"] == "P_1"


def test_failed_task_is_handed_out_again_after_the_retry_delay(luigi_config):
    with luigi_config({"scheduler": {"retry_delay": "0.05"}}):
        sch = IndexedScheduler(record_task_history=False, prune_on_get_work=True)
    sch.prune_seconds = 0.0
    _add(sch, "w", "F_1")
    assert sch.get_work(worker="w", current_tasks=[])["task_id"] == "F_1"
    _add(sch, "w", "F_1", status="FAILED")
    assert sch.get_work(worker="w", current_tasks=[])["task_id"] is None
    time.sleep(0.1)
    assert sch.get_work(worker="w", current_tasks=[])["task_id"] == "F_1"


def test_every_task_of_a_four_thousand_task_graph_runs_exactly_once():
    order = _run(IndexedScheduler(prune_on_get_work=True, record_task_history=False),
                 Root(nodes=400, width=9))
    assert len(order) == len(set(order)) == 400 * 10


def test_luigi_version_range_check():
    assert scheduler.TESTED_LUIGI == (">=3.5", "<3.9")
    assert luigi_is_tested("3.5") and luigi_is_tested("3.8.1") and luigi_is_tested("3.8.99")
    assert not luigi_is_tested("3.4.9") and not luigi_is_tested("3.9.0")
    assert not luigi_is_tested("3.9.0rc1") and not luigi_is_tested("4.0")


def test_the_setup_cfg_pin_matches_the_tested_range():
    from pathlib import Path

    setup_cfg = Path(scheduler.__file__).resolve().parents[2] / "setup.cfg"
    assert f"luigi{','.join(scheduler.TESTED_LUIGI)}" in setup_cfg.read_text().split()


@pytest.fixture
def stock_factory_method():
    """Restore Luigi's own create_local_scheduler (and the warn-once flag) after the test."""
    original = luigi.interface._WorkerSchedulerFactory.create_local_scheduler
    yield original
    luigi.interface._WorkerSchedulerFactory.create_local_scheduler = original
    scheduler._warned = False


def test_installed_hook_gives_local_builds_the_indexed_scheduler(stock_factory_method):
    assert install_indexed_scheduler() is True
    created = luigi.interface._WorkerSchedulerFactory().create_local_scheduler()
    assert type(created) is IndexedScheduler
    ORDER.clear()
    Leaf.done_flags.clear()
    assert luigi.build([Leaf(n=3)], local_scheduler=True, log_level="WARNING")
    ran = list(ORDER)
    assert ran == [Leaf(n=3).task_id]


def test_outside_the_tested_luigi_range_the_hook_warns_once_and_leaves_luigi_alone(
        stock_factory_method, monkeypatch):
    monkeypatch.setattr(scheduler, "TESTED_LUIGI", (">=99",))
    with pytest.warns(RuntimeWarning, match="outside the range >=99"):
        assert install_indexed_scheduler() is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert install_indexed_scheduler() is False  # no second warning
        created = IndexedSchedulerFactory().create_local_scheduler()
    assert type(created) is luigi_scheduler.Scheduler
    assert luigi.interface._WorkerSchedulerFactory.create_local_scheduler is stock_factory_method


def test_factory_runs_a_build_through_luigis_documented_hook(stock_factory_method):
    made = []

    class Recording(IndexedSchedulerFactory):
        def create_local_scheduler(self):
            made.append(super().create_local_scheduler())
            return made[-1]

    ORDER.clear()
    Leaf.done_flags.clear()
    Node.done_flags.clear()
    assert luigi.build([Node(n=1, width=3)], worker_scheduler_factory=Recording(),
                       local_scheduler=True, log_level="WARNING")
    assert [type(s) for s in made] == [IndexedScheduler]
    assert len(ORDER) == 4 and ORDER[-1] == Node(n=1, width=3).task_id
