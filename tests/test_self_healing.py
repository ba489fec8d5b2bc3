"""A map heals itself: outputs deleted or damaged after a finished build are rebuilt by
rerunning, with tiles identical byte for byte to the clean build's.

One small map (order 1, 64-pixel tiles, synthetic survey, ``background = none``) is built once;
each case damages its own copy of the finished work tree and reruns the same graph there.
"""

import hashlib
import logging
import shutil
from pathlib import Path

import luigi
import pytest
from luigi.execution_summary import _summary_dict

from hipsluigi import AllSkyPNGs
from hipsluigi.testing import luigi_options

NAME = "heal"
HIPS = Path("u0") / NAME / "HiPS"


def _config(root: Path) -> dict:
    return {"hips": {"name": NAME, "order": 1, "tile_width": 64, "nplate": "", "region": "",
                     "background": "none", "executor": "local", "frame": "galactic",
                     "storage": f"{root}/u0,{root}/u1"},
            "synthetic": {"seed": 3, "frame_size": 64, "sources": 50, "blobs": 20}}


def _build(root: Path) -> tuple[luigi.LuigiStatusCode, dict[str, set[str]]]:
    """Build the map stored under ``root``; Luigi's status and the tasks that ran, by family."""
    with luigi_options(_config(root)):
        result = luigi.build([AllSkyPNGs()], local_scheduler=True, workers=1,
                             detailed_summary=True)
    ran: dict[str, set[str]] = {}
    for task in _summary_dict(result.worker)["completed"]:
        ran.setdefault(task.task_family, set()).add(task.task_id)
    return result.status, ran


def tile_hashes(hips: Path) -> dict[str, str]:
    """sha256 of every FITS and PNG tile (``Norder*/Dir*/Npix*``), by path in the HiPS."""
    return {str(p.relative_to(hips)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(hips.glob("Norder*/Dir*/Npix*.*"))}


def _properties(hips: Path) -> list[str]:
    """``properties`` without its dates (minutes of the build)."""
    return [line for line in (hips / "properties").read_text().splitlines()
            if not line.startswith(("hips_creation_date", "hips_release_date"))]


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("heal") / "clean"
    status, _ = _build(root)
    assert status == luigi.LuigiStatusCode.SUCCESS
    hips = root / HIPS
    hashes = tile_hashes(hips)
    assert len([k for k in hashes if k.endswith(".fits")]) == 60  # every tile of orders 0, 1
    return {"root": root, "hashes": hashes, "properties": _properties(hips),
            "allsky": {p.name: p.read_bytes() for p in (hips / "Norder1").glob("Allsky.*")}}


@pytest.fixture
def copy(clean, tmp_path):
    """A copy of the finished work tree, built in place (its storage is this copy)."""
    root = tmp_path / "copy"
    shutil.copytree(clean["root"], root, symlinks=True)
    return root


def _assert_restored(clean: dict, root: Path) -> None:
    hips = root / HIPS
    assert tile_hashes(hips) == clean["hashes"]
    assert _properties(hips) == clean["properties"]
    assert {p.name: p.read_bytes() for p in (hips / "Norder1").glob("Allsky.*")} == \
        clean["allsky"]
    assert not list(root.rglob("*.tmp"))


def _group_of_tile(root: Path, order: int, npix: int, ext: str) -> str:
    """The manifest file (``plate_II_JJ``) listing tile ``npix``."""
    import json

    for path in root.glob(f"u*/{NAME}/manifests/order{order}/*.{ext}*.json"):
        if npix in json.loads(path.read_text())["tiles"]:
            return path.name.split(".")[0]
    raise AssertionError(f"no manifest lists tile {order}/{npix}")


@pytest.mark.parametrize("ext", ["fits", "png"])
def test_a_deleted_tile_is_rebuilt_by_redoing_only_its_group(clean, copy, ext, caplog):
    tile = copy / HIPS / "Norder1" / "Dir0" / f"Npix5.{ext}"
    plate = _group_of_tile(copy, 1, 5, ext)
    tile.unlink()
    with caplog.at_level(logging.WARNING, logger="luigi-interface"):
        status, ran = _build(copy)
    assert status == luigi.LuigiStatusCode.SUCCESS
    # the one group (PlatePNGs makes both kinds of tile of a plate), nothing else
    assert len(ran["PlatePNGs"]) == 1 and "PlateTiles" not in ran
    assert "CorrectPlate" not in ran and "HiPSMetadata" in ran
    assert f"{tile}: missing" in caplog.text and plate in caplog.text
    _assert_restored(clean, copy)


def test_a_tile_cut_short_is_named_and_rebuilt(clean, copy, caplog):
    """A FITS tile as the old writer left it on a full disk: 4,096 of its 20,160 bytes."""
    tile = copy / HIPS / "Norder1" / "Dir0" / "Npix7.fits"
    whole = tile.stat().st_size
    tile.write_bytes(tile.read_bytes()[:4096])
    with caplog.at_level(logging.WARNING, logger="luigi-interface"):
        status, ran = _build(copy)
    assert status == luigi.LuigiStatusCode.SUCCESS
    assert len(ran["PlatePNGs"]) == 1
    assert f"{tile}: 4096 bytes, expected {whole}" in caplog.text
    _assert_restored(clean, copy)


def test_an_unreadable_allsky_part_fails_naming_it_and_the_next_run_rebuilds_it(
        clean, copy, caplog):
    """The metadata makes the Allsky files from the parts the PNG groups of orders 0 to 3
    wrote (here it must: ``properties`` is gone); a part of the right size that is not one
    fails it, named, and is deleted with its group's manifest for the next run to redo."""
    part = next((copy / "u0" / NAME / "manifests" / "order0").glob("*.allsky-*.npz"))
    part.write_bytes(b"\0" * part.stat().st_size)
    (copy / HIPS / "properties").unlink()
    with caplog.at_level(logging.ERROR, logger="luigi-interface"):
        status, _ = _build(copy)
    assert status == luigi.LuigiStatusCode.FAILED
    assert f"1 unreadable Allsky part(s) ({part}: not an Allsky part (" in caplog.text
    assert not part.exists()  # deleted with its group's manifest
    status, ran = _build(copy)
    assert status == luigi.LuigiStatusCode.SUCCESS
    assert len(ran["PlatePNGs"]) == 1
    _assert_restored(clean, copy)


def test_the_allsky_files_from_the_parts_are_those_from_the_tiles_read_back(clean, tmp_path):
    """Bit for bit: ``Allsky.fits``, ``Allsky.png`` and ``preview.jpg`` as the metadata wrote
    them from the groups' parts, and as made from the finished tiles read back."""
    from hipsluigi.metadata.build import write_hips_metadata
    from hipsluigi.pipeline.settings import map_spec
    from hipsluigi.pipeline.tasks import _unit_cards
    from hipsluigi.pipeline.worktree import layout_of
    from hipsluigi.storage import artifacts

    hips = clean["root"] / HIPS
    again = tmp_path / "HiPS"
    shutil.copytree(hips, again, symlinks=False)  # tiles of both units, as files
    names = ["Norder0/Allsky.fits", "Norder0/Allsky.png", "Norder1/Allsky.fits",
             "Norder1/Allsky.png", "preview.jpg"]
    for name in names:
        (again / name).unlink()
    tiles = {order: sorted(int(p.stem[4:]) for p in hips.glob(f"Norder{order}/Dir*/*.fits"))
             for order in (0, 1)}
    with luigi_options(_config(clean["root"])):
        spec = map_spec(NAME)
    units = {key: value for key, value, _ in _unit_cards(spec, layout_of(spec))}
    stretch = artifacts.read_stretch(
        next((clean["root"] / "u0" / NAME / "stretch").glob("stretch-*.json")))
    write_hips_metadata(spec, again, tiles, stretch, units)  # no parts: the tiles read back
    for name in names:
        assert (again / name).read_bytes() == (hips / name).read_bytes(), name


@pytest.mark.parametrize("deleted", ["Norder1/Dir0", "HiPS"])
def test_a_deleted_folder_is_rebuilt(clean, copy, deleted):
    target = copy / HIPS if deleted == "HiPS" else copy / HIPS / deleted
    shutil.rmtree(target)
    status, ran = _build(copy)
    assert status == luigi.LuigiStatusCode.SUCCESS
    if deleted == "HiPS":  # every group, and the metadata
        assert len(ran["PlatePNGs"]) == 24 and "PlateTiles" not in ran
    _assert_restored(clean, copy)


@pytest.mark.parametrize("deleted", ["mosaics/**/plate_*.fits", "plates/order0/plate_*.fits"])
def test_a_deleted_plate_is_rebuilt_and_its_tiles_cut_again(clean, copy, deleted):
    """The deepest order's plate is its mosaic (read through its correction); a lower
    order's is a plate file."""
    plate = sorted(copy.glob(f"u*/{NAME}/{deleted}"))[0]
    plate.unlink()
    status, ran = _build(copy)
    assert status == luigi.LuigiStatusCode.SUCCESS
    assert plate.exists()
    made = {"PlateMosaic", "CorrectPlate"} if deleted.startswith("mosaics") else {"ShrinkPlate"}
    redone = {family: len(tasks) for family, tasks in ran.items()
              if family not in ("HiPSMetadata", "AllSkyPNGs")}
    assert redone == dict.fromkeys(made | {"PlatePNGs"}, 1)
    _assert_restored(clean, copy)


def test_a_finished_map_reruns_nothing(clean, copy):
    status, ran = _build(copy)
    assert status == luigi.LuigiStatusCode.SUCCESS and ran == {}
