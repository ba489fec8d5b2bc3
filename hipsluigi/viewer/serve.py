"""Serve a HiPS folder on 127.0.0.1, so that its ``index.html`` can load the tiles.

Browsers refuse Aladin Lite's tile requests from ``file://`` pages, and an ES module
(``aladin-lite/aladin.js``) is only run when served as JavaScript, the WebAssembly as
``application/wasm``. Only the loopback interface is bound: the map is for the person at the
machine (or at the other end of an ``ssh -L`` tunnel), not for the network.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TextIO

HOST = "127.0.0.1"

#: The types a HiPS and Aladin Lite need, whatever the machine's ``mimetypes`` tables say.
MIME_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".wasm": "application/wasm",
    ".fits": "application/fits",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".html": "text/html",
    ".json": "application/json",
}


class NotAHiPS(ValueError):
    """A folder that holds no HiPS (no ``properties`` file)."""


class HiPSRequestHandler(SimpleHTTPRequestHandler):
    """Static files of one folder, with :data:`MIME_TYPES`; ``properties`` as plain text."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, **MIME_TYPES}

    def guess_type(self, path: str) -> str:
        if Path(path).name == "properties":
            return "text/plain; charset=utf-8"
        return super().guess_type(path)


def check_hips_dir(folder: str | Path) -> Path:
    """``folder`` if it is a HiPS folder (it holds ``properties``).

    Raises
    ------
    NotAHiPS
        Naming the folder and what is missing.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotAHiPS(f"{folder}: no such folder")
    if not (folder / "properties").is_file():
        raise NotAHiPS(f"{folder}: not a HiPS folder (no properties file)")
    return folder


def make_server(hips_dir: str | Path, port: int = 8000) -> ThreadingHTTPServer:
    """A server of ``hips_dir`` bound to ``127.0.0.1:port`` (0: a free port), not yet started.

    Raises
    ------
    NotAHiPS
        If ``hips_dir`` holds no HiPS.
    OSError
        If the port cannot be bound (``errno.EADDRINUSE`` when taken).
    """
    folder = check_hips_dir(hips_dir)
    handler = functools.partial(HiPSRequestHandler, directory=str(folder))
    return ThreadingHTTPServer((HOST, port), handler)


def serve(hips_dir: str | Path, port: int = 8000, out: TextIO | None = None) -> None:
    """Serve ``hips_dir`` until interrupted; print its URL (the real port when ``port`` is 0).

    Each request is logged on standard error (``http.server``'s format).
    """
    out = out or sys.stdout
    server = make_server(hips_dir, port)
    with server:
        host, real_port = server.server_address[:2]
        print(f"Serving HiPS {Path(hips_dir)} at http://{host}:{real_port}/ (Ctrl-C to stop)",
              file=out, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
