"""Several maps in one graph: ``luigi --module hipsluigi AllMaps --maps A,B`` with one luigid.

The two maps differ in synthetic seed and in order; each is checked against its own truth at
healpy pixel centres (never hipsluigi's geometry), and against the other's truth to show that
the check tells them apart.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from hipsluigi.execution.slurm_jobs import config_text
from hipsluigi.pipeline.settings import map_spec
from hipsluigi.surveys import synthetic
from hipsluigi.testing import luigi_options, tile_pixel_lonlat

LUIGI = Path(sys.executable).with_name("luigi")
WIDTH = 64
MAPS = {"skyA": {"order": 2, "seed": 3}, "skyB": {"order": 1, "seed": 8}}


def _config(root: Path) -> dict:
    options = {
        "core": {"autoload_range": "false"},
        "hips": {"name": "unused", "tile_width": WIDTH, "background": "none", "nplate": "",
                 "frame": "galactic", "executor": "local", "region": "",
                 "storage": f"{root}/u0,{root}/u1"},
        "synthetic": {"frame_size": 128, "noise": 0, "backgrounds": 0, "sources": 100,
                      "blobs": 100},
    }
    for name, settings in MAPS.items():
        options[f"hips.{name}"] = {"order": settings["order"]}
        options[f"synthetic.{name}"] = {"seed": settings["seed"]}
    return options


def _luigi(cfg: Path, cwd: Path, luigid) -> subprocess.CompletedProcess:
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(cfg)}
    return subprocess.run([str(LUIGI), "--module", "hipsluigi", "AllMaps", "--maps",
                           ",".join(MAPS), "--workers", "2", "--scheduler-host", "127.0.0.1",
                           "--scheduler-port", str(luigid.port)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def built(tmp_path_factory, luigid):
    root = tmp_path_factory.mktemp("allmaps")
    cfg = root / "luigi.cfg"
    options = _config(root)
    cfg.write_text(config_text(options))
    first = _luigi(cfg, root, luigid)
    assert first.returncode == 0, first.stderr[-4000:]
    return {"root": root, "cfg": cfg, "options": options, "first": first}


def test_both_maps_match_their_own_truth_at_healpy_pixel_centres(built):
    with luigi_options(built["options"]):
        specs = {name: map_spec(name) for name in MAPS}
    assert {n: (s.order, s.synthetic.seed) for n, s in specs.items()} == {
        n: (m["order"], m["seed"]) for n, m in MAPS.items()}
    for name, spec in specs.items():
        other = specs[next(n for n in MAPS if n != name)]
        hips = built["root"] / "u0" / name / "HiPS"
        tiles = sorted(hips.glob(f"Norder{spec.order}/Dir*/Npix*.fits"))
        assert len(tiles) == 12 * 4**spec.order
        assert not (hips / f"Norder{spec.order + 1}").exists()
        own, others, truths = [], [], []
        for path in tiles[:: max(1, len(tiles) // 16)]:
            lon, lat = tile_pixel_lonlat(spec.order, int(path.stem[4:]), WIDTH)
            data = fits.getdata(path)
            truth = synthetic.truth(spec, lon, lat)
            own.append(np.abs(data - truth).ravel())
            others.append(np.abs(data - synthetic.truth(other, lon, lat)).ravel())
            truths.append(truth.ravel())
        rms = np.sqrt(np.mean(np.concatenate(truths) ** 2))
        p95_own = np.percentile(np.concatenate(own), 95)
        p95_other = np.percentile(np.concatenate(others), 95)
        print(f"{name}: order {spec.order} seed {spec.synthetic.seed}: p95 |tile - truth| "
              f"{p95_own:.4f} (truth RMS {rms:.3f}; against the other map's sky {p95_other:.4f})")
        assert p95_own <= 0.05 * rms
        assert p95_other > 10 * p95_own


def test_the_two_maps_have_distinct_task_ids_in_one_luigid(built, luigid):
    tasks = {name: luigid.tasks_of_map(name) for name in MAPS}
    assert all(tasks.values())
    assert not set(tasks["skyA"]) & set(tasks["skyB"])
    for name, found in tasks.items():
        assert all(info["status"] == "DONE" for info in found.values()), name
        families = {info["name"] for info in found.values()}
        assert {"PlateMosaic", "PlatePNGs", "HiPSMetadata"} <= families
    # the deeper map has more plate tasks: each map's graph follows its own order
    tiles = {n: sum(i["name"] == "PlatePNGs" for i in t.values()) for n, t in tasks.items()}
    assert tiles["skyA"] > tiles["skyB"]


def test_running_again_runs_nothing(built, luigid):
    root = built["root"]
    stamps = {p: p.stat().st_mtime_ns for p in root.glob("u*/sky*/**/*") if p.is_file()}
    again = _luigi(built["cfg"], root, luigid)
    assert again.returncode == 0, again.stderr[-4000:]
    summary = again.stderr + again.stdout
    assert "ran successfully" not in summary
    assert "complete ones were encountered" in summary
    assert {p: p.stat().st_mtime_ns for p in root.glob("u*/sky*/**/*") if p.is_file()} == stamps
