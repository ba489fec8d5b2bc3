"""Task records: written where work() runs (worker or job entry), read back, added up."""

import json
import os
import time

import luigi
import pytest

from hipsluigi.execution import SlurmTask
from hipsluigi.execution.job import main as job_main
from hipsluigi.execution.records import (
    Recorder,
    TaskRecord,
    format_bytes,
    read_records,
    summarise,
    summary_lines,
    unit_lines,
    unit_totals,
    write_record,
)
from hipsluigi.storage.atomic import write_bytes_atomic
from hipsluigi.storage.iometer import count_read


def _record(family, k, start, wall, cpu, written, status="done"):
    return TaskRecord(family=family, task_id=f"{family}_{k}", status=status, start=start,
                      end=start + wall, wall=wall, cpu=cpu, bytes_written=written, host="h",
                      pid=1)


def test_records_round_trip_and_torn_or_foreign_files_are_skipped(tmp_path):
    a = _record("PlateMosaic", 1, 100.0, 2.5, 2.0, 1000)
    b = _record("Histogram", 1, 90.0, 0.5, 0.25, 10)
    write_record(tmp_path, a)
    path = write_record(tmp_path, b)
    assert path == tmp_path / "Histogram_1.json"
    whole = path.read_text()
    (tmp_path / "Torn_1.json").write_text(whole[: len(whole) // 2])  # cut mid-record
    (tmp_path / "Other_1.json").write_text(json.dumps({"family": "Other"}))  # fields missing
    (tmp_path / "notes.txt").write_text("not a record")
    assert read_records(tmp_path) == [b, a]  # oldest start first
    assert read_records(tmp_path, since=95.0) == [a]
    assert read_records(tmp_path / "absent") == []


def test_summary_adds_up_each_family_in_the_order_stages_began():
    records = [_record("PlateMosaic", 1, 10.0, 4.0, 3.0, 1_000_000),
               _record("PlateMosaic", 2, 11.0, 5.0, 4.5, 2_500_000, status="failed"),
               _record("Setup", 1, 9.0, 0.5, 0.1, 200),
               _record("Histogram", 1, 20.0, 1.0, 0.5, 0)]
    stages = summarise(records)
    assert [s.family for s in stages] == ["Setup", "PlateMosaic", "Histogram"]
    mosaic = stages[1]
    assert (mosaic.tasks, mosaic.failed) == (2, 1)
    assert mosaic.wall == pytest.approx(9.0) and mosaic.cpu == pytest.approx(7.5)
    assert mosaic.span == pytest.approx(16.0 - 10.0)  # first start 10, last end 11 + 5
    assert mosaic.bytes_written == 3_500_000
    lines = summary_lines(stages)
    assert lines[1] == ("PlateMosaic: 2 tasks, 1 failed, 6.0 s elapsed, 9.0 s wall, 7.5 s CPU, "
                        "3.5 MB written")
    assert lines[0] == "Setup: 1 tasks, 0.5 s elapsed, 0.5 s wall, 0.1 s CPU, 200 B written"
    # from the first start (9) to the last end (21)
    assert lines[-1] == ("all stages: 4 tasks, 12.0 s elapsed, 10.5 s wall, 8.1 s CPU, "
                         "3.5 MB written")
    assert summary_lines([]) == []


def test_format_bytes_uses_powers_of_1000():
    assert [format_bytes(n) for n in (0, 999, 1000, 1_234_567, 5 * 10**12)] == \
        ["0 B", "999 B", "1.0 kB", "1.2 MB", "5.0 TB"]


def test_recorder_measures_wall_cpu_and_bytes(tmp_path):
    payload = os.urandom(300_000)
    with Recorder("F", "F_1") as recorder:
        deadline = time.process_time() + 0.2
        while time.process_time() < deadline:  # burn CPU
            pass
        time.sleep(0.2)  # and wait without it
        (tmp_path / "out.bin").write_bytes(payload)
    r = recorder.record()
    assert r.status == "done" and r.family == "F" and r.pid == os.getpid()
    assert r.wall >= 0.4 and r.end - r.start == pytest.approx(r.wall)
    assert 0.2 <= r.cpu < r.wall
    assert r.bytes_written >= len(payload)


def test_recorder_attributes_bytes_to_storage_units_and_the_kernel_counts_them_too(tmp_path):
    units = [tmp_path / "u0", tmp_path / "u1"]
    with Recorder("F", "F_2", units=[str(u) for u in units]) as recorder:
        write_bytes_atomic(units[0] / "map" / "a.bin", b"a" * 3000)
        write_bytes_atomic(units[1] / "map" / "tiles" / "b.bin", b"b" * 5000)
        count_read(tmp_path / "survey" / "image.fits", 700)
        count_read(units[1] / "map" / "plate.fits", 900)
    r = recorder.record()
    assert r.written_by_unit == {"unit0": 3000, "unit1": 5000}
    assert r.read_by_unit == {"outside": 700, "unit1": 900}
    assert r.proc_io["wchar"] >= 8000  # the kernel saw at least the two files' bytes
    write_record(tmp_path / "records", r)
    assert read_records(tmp_path / "records") == [r]


def test_records_of_an_earlier_version_without_unit_counts_still_read(tmp_path):
    old = {"family": "F", "task_id": "F_1", "status": "done", "start": 1.0, "end": 2.0,
           "wall": 1.0, "cpu": 0.5, "bytes_written": 10, "host": "h", "pid": 1}
    (tmp_path / "F_1.json").write_text(json.dumps(old))
    (record,) = read_records(tmp_path)
    assert record.read_by_unit == {} and record.written_by_unit == {} and record.proc_io == {}


def test_unit_totals_and_lines_add_up_per_family_and_unit():
    a = TaskRecord(family="PlateTiles", task_id="a", status="done", start=0, end=1, wall=1,
                   cpu=1, bytes_written=0, host="h", pid=1,
                   read_by_unit={"unit1": 4_000_000}, written_by_unit={"unit1": 4_100_000})
    b = TaskRecord(family="PlateTiles", task_id="b", status="done", start=0, end=1, wall=1,
                   cpu=1, bytes_written=0, host="h", pid=1,
                   read_by_unit={"unit0": 1_000_000}, written_by_unit={"unit0": 1_000_000})
    c = TaskRecord(family="PlateMosaic", task_id="c", status="done", start=0, end=1, wall=1,
                   cpu=1, bytes_written=0, host="h", pid=1,
                   read_by_unit={"outside": 2_000_000}, written_by_unit={"unit1": 500_000})
    assert unit_totals([a, b, c]) == {
        "PlateTiles": {"unit1": {"read": 4_000_000, "written": 4_100_000},
                       "unit0": {"read": 1_000_000, "written": 1_000_000}},
        "PlateMosaic": {"outside": {"read": 2_000_000, "written": 0},
                        "unit1": {"read": 0, "written": 500_000}}}
    assert unit_lines([a, b, c]) == [
        "unit1: 4.0 MB read, 4.6 MB written (most by PlateTiles 8.1 MB, PlateMosaic 500.0 kB)",
        "unit0: 1.0 MB read, 1.0 MB written (most by PlateTiles 2.0 MB)",
        "outside: 2.0 MB read, 0 B written (most by PlateMosaic 2.0 MB)"]


class RecordedTask(SlurmTask):
    """Writes ``out``; raises when ``fail`` is set; records into ``records``."""

    out = luigi.Parameter()
    records = luigi.Parameter()
    fail = luigi.BoolParameter(default=False)

    @property
    def executor(self):
        return "local"

    def record_dir(self):
        return self.records

    def output(self):
        return luigi.LocalTarget(self.out)

    def work(self) -> None:
        if self.fail:
            raise RuntimeError("asked to fail")
        with open(self.out, "w") as f:
            f.write("x" * 5000)


def test_work_run_by_the_worker_and_by_the_job_entry_records_itself(tmp_path):
    records = tmp_path / "records"
    task = RecordedTask(out=str(tmp_path / "a.txt"), records=str(records))
    task.run()
    # what a SLURM job script runs: the job entry rebuilds the task and runs its work
    job = RecordedTask(out=str(tmp_path / "b.txt"), records=str(records))
    assert job_main(["--module", __name__, "RecordedTask",
                     json.dumps(job.to_str_params())]) == 0
    got = {r.task_id: r for r in read_records(records)}
    assert set(got) == {task.task_id, job.task_id}
    for r in got.values():
        assert r.family == "RecordedTask" and r.status == "done" and r.wall > 0
        assert r.bytes_written >= 5000


def test_failed_work_is_recorded_as_failed_and_the_error_still_raised(tmp_path):
    task = RecordedTask(out=str(tmp_path / "a.txt"), records=str(tmp_path / "r"), fail=True)
    with pytest.raises(RuntimeError, match="asked to fail"):
        task.run()
    (record,) = read_records(tmp_path / "r")
    assert record.status == "failed" and record.task_id == task.task_id


def test_no_record_dir_writes_no_record(tmp_path):
    class Plain(RecordedTask):
        def record_dir(self):
            return None

    Plain(out=str(tmp_path / "a.txt"), records=str(tmp_path / "r")).run()
    assert (tmp_path / "a.txt").exists() and not (tmp_path / "r").exists()
