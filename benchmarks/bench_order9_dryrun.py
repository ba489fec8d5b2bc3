"""The real sky's task graph (order 9, 3,328 plates) with ``executor = dryrun`` through luigid.

Starts a luigid on 127.0.0.1 (hipsluigi's indexed scheduler, or Luigi's own with
``--stock``), samples ``/api/task_list`` every second from another thread, and runs
``luigi --module hipsluigi AllSkyPNGs --hips-executor dryrun`` against it. Prints the tasks per
stage, graph-building and total times, the peak memory of the worker and of luigid, and the
latency of luigid's answers during the run (median and worst).

    .venv/bin/python benchmarks/bench_order9_dryrun.py [--order 9] [--workers 1] [--stock]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stage_counts(order: int, storage: str) -> collections.Counter:
    import luigi

    import hipsluigi
    from hipsluigi.testing import luigi_options

    with luigi_options({"hips": {"order": order, "executor": "dryrun", "storage": storage}}):
        seen, stack = {}, [hipsluigi.AllSkyPNGs()]
        while stack:
            task = stack.pop()
            if task.task_id not in seen:
                seen[task.task_id] = task
                stack.extend(luigi.task.flatten(task.requires()))
    return collections.Counter(t.get_task_family() for t in seen.values())


def vm_hwm_kb(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(match.group(1)) if match else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--order", type=int, default=9)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--stock", action="store_true", help="Luigi's own luigid")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hipsluigi-dryrun-") as tmp:
        tmp = Path(tmp)
        storage = ",".join(str(tmp / f"unit{k}") for k in range(4))
        counts = stage_counts(args.order, storage)
        print(f"order {args.order}: {sum(counts.values())} tasks")
        for family, n in counts.most_common():
            print(f"  {family:15s} {n:6d}")
        port = free_port()
        env = dict(os.environ)
        if args.stock:
            env["LUIGID"] = str(Path(sys.executable).with_name("luigid"))
        subprocess.run([str(REPO / "scripts" / "luigid-up.sh"), str(port), str(tmp / "luigid")],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        luigid_pid = int((tmp / "luigid" / "luigid.pid").read_text())
        latencies: list[float] = []
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                start = time.perf_counter()
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/task_list",
                                            timeout=60) as r:
                    json.loads(r.read())
                latencies.append(time.perf_counter() - start)
                stop.wait(1.0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        cmd = ["/usr/bin/time", "-f", "%M", str(Path(sys.executable).with_name("luigi")),
               "--module", "hipsluigi", "AllSkyPNGs", "--hips-order", str(args.order),
               "--hips-executor", "dryrun", "--hips-storage", storage, "--workers",
               str(args.workers), "--scheduler-host", "127.0.0.1", "--scheduler-port",
               str(port), "--log-level", "INFO"]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        lines, built_at = [], None
        for line in proc.stderr:  # timestamp Luigi's log lines as they come
            lines.append(line)
            if built_at is None and "Done scheduling tasks" in line:
                built_at = time.perf_counter() - start
        proc.wait()
        total = time.perf_counter() - start
        stop.set()
        sampler.join()
        stderr = "".join(lines)
        peak_worker_mb = int(lines[-1].strip()) / 1024
        if built_at is not None:
            print(f"graph building (until 'Done scheduling tasks'): {built_at:.0f} s")
        ok = "This progress looks :)" in stderr
        print(f"total: {total:.0f} s ({'success' if ok else 'FAILED'}), worker peak "
              f"{peak_worker_mb:.0f} MB, luigid peak {vm_hwm_kb(luigid_pid) / 1024:.0f} MB")
        if latencies:
            print(f"/api/task_list during the run: {len(latencies)} samples, median "
                  f"{statistics.median(latencies):.3f} s, worst {max(latencies):.3f} s")
        subprocess.run([str(REPO / "scripts" / "luigid-down.sh"), str(tmp / "luigid")])
        if not ok:
            print(stderr[-3000:])
            sys.exit(1)


if __name__ == "__main__":
    main()
