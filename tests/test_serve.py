"""``hipsluigi serve``: the printed URL and real port, the types a HiPS and Aladin Lite need,
finding a map's folder from its name and Luigi flags, and one-line errors."""

import re
import select
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from hipsluigi.cli import main, split_luigi_flags
from hipsluigi.viewer.serve import NotAHiPS, make_server


def _hipsluigi() -> list[str]:
    script = Path(sys.executable).with_name("hipsluigi")
    return [str(script)] if script.exists() else [sys.executable, "-m", "hipsluigi.cli"]


def _fake_hips(folder: Path) -> Path:
    files = {"properties": b"hips_order = 0\n", "index.html": b"<!DOCTYPE html>",
             "aladin-lite/aladin.js": b"export default {};", "aladin-lite/core.wasm": b"\0asm",
             "Norder0/Dir0/Npix0.fits": b"SIMPLE  =", "Norder0/Dir0/Npix0.png": b"\x89PNG"}
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture
def storage(tmp_path, monkeypatch):
    """Two storage units; map ``m1``'s HiPS built in the first (``<unit0>/<name>/HiPS``)."""
    monkeypatch.chdir(tmp_path)
    units = [tmp_path / "u0", tmp_path / "u1"]
    hips = _fake_hips(units[0] / "m1" / "HiPS")
    return {"flag": ",".join(map(str, units)), "hips": hips}


def test_serve_prints_the_real_port_and_serves_hips_and_aladin_lite_types(tmp_path):
    hips = _fake_hips(tmp_path / "HiPS")
    proc = subprocess.Popen([*_hipsluigi(), "serve", str(hips), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        line = proc.stdout.readline().decode() if ready else ""
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match and int(match.group(1)) > 0, line
        assert str(hips) in line
        expected = {"aladin-lite/aladin.js": "text/javascript",
                    "aladin-lite/core.wasm": "application/wasm",
                    "Norder0/Dir0/Npix0.fits": "application/fits",
                    "Norder0/Dir0/Npix0.png": "image/png",
                    "properties": "text/plain; charset=utf-8",
                    "index.html": "text/html"}
        for path, mime in expected.items():
            with urllib.request.urlopen(match.group(0) + path, timeout=30) as response:
                assert response.headers["Content-Type"] == mime, path
                assert response.read() == (hips / path).read_bytes()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()


def test_server_binds_loopback_only(tmp_path):
    with make_server(_fake_hips(tmp_path), 0) as server:
        assert server.server_address[0] == "127.0.0.1"
        assert server.server_address[1] > 0


def test_a_folder_without_properties_is_not_served(tmp_path):
    with pytest.raises(NotAHiPS, match="no properties file"):
        make_server(tmp_path, 0)


@pytest.mark.parametrize("how", [["m1"], ["--hips-name", "m1"], ["--hips-name=m1"]])
def test_map_is_found_from_its_name_and_luigi_flags(storage, monkeypatch, how):
    found = {}
    monkeypatch.setattr("hipsluigi.viewer.serve.serve",
                        lambda folder, port: found.update(folder=folder, port=port))
    assert main(["serve", *how, "--hips-storage", storage["flag"], "--port", "0"]) == 0
    assert Path(found["folder"]).resolve() == storage["hips"].resolve()
    assert found["port"] == 0


def test_unknown_map_is_a_one_line_error(storage, capsys):
    assert main(["serve", "nosuch", "--hips-storage", storage["flag"]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("hipsluigi serve: map 'nosuch' has no HiPS at ")
    assert "luigi --module hipsluigi AllSkyPNGs --map nosuch" in err


def test_a_path_that_is_not_a_hips_is_a_one_line_error(tmp_path, capsys):
    assert main(["serve", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"hipsluigi serve: {tmp_path}: not a HiPS folder (no properties file)\n")


def test_port_in_use_is_a_one_line_error(storage, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", str(storage["hips"]), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err == (f"hipsluigi serve: port {port} on 127.0.0.1 is already in use; choose "
                   "another with --port (0: any free port)\n")


def test_luigi_flag_values_are_not_taken_for_the_map():
    assert split_luigi_flags(["--hips-name", "x", "--port", "0", "W2", "--hips-order=3"]) == (
        ["--port", "0", "W2"], ["--hips-name", "x", "--hips-order=3"])
