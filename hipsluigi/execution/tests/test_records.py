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
    write_record,
)


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
