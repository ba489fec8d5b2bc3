"""The viewer in a real browser: a small map's ``index.html``, served by ``hipsluigi serve``,
in Debian's headless Chromium with the network blocked beyond loopback.

Chromium is driven through the DevTools protocol over a pipe (``--remote-debugging-pipe``: no
port, no websocket library), so the test waits for the tiles instead of guessing a delay, and
reads the page's own console and network errors. WebGL2 (which Aladin Lite 3 needs) runs on
SwiftShader (``--use-angle=swiftshader --enable-unsafe-swiftshader``; not ``--disable-gpu``).

Order 3: with 64-pixel tiles Aladin Lite draws a whole-sky view from ``Norder3/Allsky.png``
(its allsky texture is ``tile_width * 8`` pixels wide), which a map of order 2 does not have.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import luigi
import numpy as np
import pytest
from PIL import Image

from hipsluigi import AllSkyPNGs
from hipsluigi.metadata.index_html import ALADIN_LITE_JS
from hipsluigi.testing import luigi_options
from hipsluigi.viewer.serve import make_server

NAME = "viewer"
CONFIG = {
    "hips": {"name": NAME, "order": 3, "tile_width": 64, "nplate": "", "background": "none",
             "region": "", "executor": "local", "frame": "galactic"},
    "synthetic": {"seed": 5, "frame_size": 128, "noise": 0, "backgrounds": 0, "sources": 60,
                  "blobs": 60},
}

#: Recipe flags for headless Chromium on this kind of machine, WebGL on SwiftShader, and no
#: network but loopback: every host name fails to resolve and every other request goes to a
#: closed proxy port (loopback bypasses the proxy).
FLAGS = ["--headless", "--no-sandbox", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--window-size=1000,700",
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
         "--proxy-server=127.0.0.1:9"]

#: A drawn sky has many grey levels; the page's interface alone (buttons, text, a uniform
#: background) has a handful.
MIN_SKY_LEVELS = 64
MAX_BARE_LEVELS = 16


class DevTools:
    """Chromium driven over ``--remote-debugging-pipe`` (fd 3: commands in, fd 4: replies out;
    JSON messages ending in a NUL byte)."""

    def __init__(self, exe: str, flags: list[str], log: Path):
        cmd_r, self._cmd_w = os.pipe()
        self._out_r, out_w = os.pipe()

        def fds_3_and_4():
            # dup first: a pipe end may itself be fd 3 or 4
            a, b = os.dup(cmd_r), os.dup(out_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self._profile = tempfile.mkdtemp(prefix="chromium-")
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(
                [exe, "--remote-debugging-pipe", f"--user-data-dir={self._profile}", *flags],
                preexec_fn=fds_3_and_4, close_fds=False, stdin=subprocess.DEVNULL,
                stdout=err, stderr=err)
        os.close(cmd_r)
        os.close(out_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []

    def send(self, method: str, session: str | None = None, timeout: float = 60, **params):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self._buf:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self._out_r], [], [], left)[0]:
                    raise TimeoutError(f"chromium did not answer {method} in {timeout} s")
                chunk = os.read(self._out_r, 1 << 20)
                if not chunk:
                    raise EOFError(f"chromium exited (rc {self.proc.poll()}) during {method}")
                self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def open(self, url: str) -> Page:
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session)
        self.send("Page.navigate", session, url=url)
        return Page(self, session)

    def close(self):
        with contextlib.suppress(OSError, TimeoutError, EOFError, RuntimeError):
            self.send("Browser.close", timeout=10)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._cmd_w)
        os.close(self._out_r)
        shutil.rmtree(self._profile, ignore_errors=True)


class Page:
    def __init__(self, browser: DevTools, session: str):
        self.browser, self.session = browser, session

    def eval(self, expression: str):
        result = self.browser.send("Runtime.evaluate", self.session, expression=expression,
                                   awaitPromise=True, returnByValue=True)
        return result["result"].get("value")

    def screenshot(self) -> np.ndarray:
        data = self.browser.send("Page.captureScreenshot", self.session, format="png")["data"]
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("L"))

    def sky(self) -> np.ndarray:
        """The middle of the Aladin Lite view (grey levels), away from its corner buttons."""
        rect = self.eval("JSON.stringify(document.getElementById('aladin-lite-div')"
                         ".getBoundingClientRect())")
        r = json.loads(rect)
        x0, y0, w, h = r["x"], r["y"], r["width"], r["height"]
        assert w > 200 and h > 200, f"the Aladin Lite view is {w} x {h} CSS pixels"
        shot = self.screenshot()
        return shot[int(y0 + 0.2 * h):int(y0 + 0.8 * h), int(x0 + 0.2 * w):int(x0 + 0.8 * w)]

    def wait_for(self, condition: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.eval(condition):
            assert time.monotonic() < deadline, f"timed out waiting for {condition}"
            time.sleep(0.25)

    def wait_for_sky(self, timeout: float = 60) -> np.ndarray:
        """The view once it stops changing and has many grey levels (or at the timeout)."""
        deadline = time.monotonic() + timeout
        previous = None
        while True:
            sky = self.sky()
            done = (previous is not None and np.array_equal(sky, previous)
                    and len(np.unique(sky)) >= MIN_SKY_LEVELS)
            if done or time.monotonic() > deadline:
                return sky
            previous = sky
            time.sleep(1.0)

    def log_entries(self) -> list[dict]:
        return [e["params"]["entry"] for e in self.browser.events
                if e.get("sessionId") == self.session and e.get("method") == "Log.entryAdded"]


def _hipsluigi() -> list[str]:
    script = Path(sys.executable).with_name("hipsluigi")
    return [str(script)] if script.exists() else [sys.executable, "-m", "hipsluigi.cli"]


@pytest.fixture(scope="module")
def hips(tmp_path_factory):
    """The built map: its storage units and HiPS folder."""
    root = tmp_path_factory.mktemp("viewer")
    options = {k: dict(v) for k, v in CONFIG.items()}
    options["hips"]["storage"] = f"{root}/u0,{root}/u1"
    with luigi_options(options):
        result = luigi.build([AllSkyPNGs()], local_scheduler=True, workers=2,
                             detailed_summary=True)
    assert result.status == luigi.LuigiStatusCode.SUCCESS, result.summary_text
    hips_dir = root / "u0" / NAME / "HiPS"
    assert (hips_dir / "aladin-lite" / "aladin.js").is_file(), (
        "the build put no Aladin Lite into the HiPS (no network and no cached copy?)")
    return {"root": root, "dir": hips_dir, "storage": options["hips"]["storage"]}


@pytest.fixture(scope="module")
def served(hips, tmp_path_factory):
    """``hipsluigi serve --hips-name viewer --hips-storage ... --port 0``: its URL and log."""
    log = tmp_path_factory.mktemp("serve") / "requests.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [*_hipsluigi(), "serve", "--hips-name", NAME, "--hips-storage", hips["storage"],
             "--port", "0"], cwd=hips["root"], stdout=subprocess.PIPE, stderr=err)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        line = proc.stdout.readline().decode() if ready else ""
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, f"no URL printed: {line!r}; log: {log.read_text()[-2000:]}"
        assert match.group(1) != "0"
        yield {"url": match.group(0), "log": log}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stdout.close()


@pytest.fixture(scope="module")
def browser(chromium, tmp_path_factory):
    devtools = DevTools(chromium, FLAGS, tmp_path_factory.mktemp("chromium") / "chromium.log")
    yield devtools
    devtools.close()


@pytest.fixture(scope="module")
def page(browser, served):
    page = browser.open(served["url"] + "index.html")
    page.wait_for("typeof window.aladin === 'object'")
    page.sky_shot = page.wait_for_sky()
    return page


def _serve_in_thread(folder: Path):
    server = make_server(folder, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


@pytest.fixture(scope="module")
def bare_sky(browser, hips, tmp_path_factory):
    """The same page and Aladin Lite with no tile, no Allsky and no MOC: the interface alone."""
    bare = tmp_path_factory.mktemp("bare")
    for name in ("index.html", "properties"):
        shutil.copy(hips["dir"] / name, bare / name)
    shutil.copytree(hips["dir"] / "aladin-lite", bare / "aladin-lite")
    server, url = _serve_in_thread(bare)
    try:
        page = browser.open(url + "index.html")
        page.wait_for("typeof window.aladin === 'object'")
        time.sleep(5)  # as long as the map's page may take to draw its first tiles
        return page.sky()
    finally:
        server.shutdown()
        server.server_close()


def test_page_draws_the_sky_from_local_tiles_offline(page, bare_sky):
    sky = page.sky_shot
    levels, bare_levels = len(np.unique(sky)), len(np.unique(bare_sky))
    assert bare_levels <= MAX_BARE_LEVELS, f"the bare page already has {bare_levels} levels"
    assert levels >= MIN_SKY_LEVELS, f"only {levels} grey levels: no sky drawn"
    changed = np.mean(np.abs(sky.astype(int) - bare_sky.astype(int)) > 8)
    print(f"view: {levels} grey levels with the tiles, {bare_levels} without; {changed:.0%} "
          "of its pixels differ")
    assert changed > 0.5, f"only {changed:.0%} of the view differs from the bare page"


def test_server_log_shows_local_aladin_lite_and_tile_requests(page, served):
    log = served["log"].read_text()
    assert re.search(r'"GET /aladin-lite/aladin\.js HTTP/1\.1" 200', log)
    tiles = re.findall(r'"GET /+Norder(\d+)/(?:Dir\d+/Npix\d+|Allsky)\.png HTTP/1\.1" 200', log)
    assert tiles, "no PNG tile or Allsky was served"
    # the CDS copy was never asked for
    assert not [e for e in page.log_entries() if ALADIN_LITE_JS in (e.get("url") or "")]


def test_network_beyond_loopback_was_blocked(page):
    # Aladin Lite reports its start to the CDS; that request must have failed
    outside = [e for e in page.log_entries()
               if (e.get("url") or "").startswith("http")
               and not (e.get("url") or "").startswith("http://127.0.0.1")]
    assert outside, "the page made no request beyond loopback, so the block was not tested"
    assert all(re.search(r"ERR_(PROXY_CONNECTION_FAILED|NAME_NOT_RESOLVED|TUNNEL)",
                         e.get("text", "")) for e in outside), outside


def test_fits_choice_shows_fits_tiles_with_the_properties_cut(page, served, hips):
    props = {key.strip(): value.strip() for key, _, value in
             (line.partition("=") for line in (hips["dir"] / "properties").read_text()
              .splitlines() if "=" in line and not line.startswith("#"))}
    lo, hi = (float(v) for v in props["hips_pixel_cut"].split())
    page.eval("const s = document.getElementById('hips-format'); s.value = 'fits';"
              "s.dispatchEvent(new Event('change')); true")
    page.wait_for("window.aladin.getBaseImageLayer().imgFormat === 'fits'")
    sky = page.wait_for_sky()
    assert len(np.unique(sky)) >= MIN_SKY_LEVELS
    cuts = page.eval("window.aladin.getBaseImageLayer().getCuts()")
    assert cuts == pytest.approx([lo, hi], rel=1e-6)
    assert re.search(r'"GET /+Norder\d+/(?:Dir\d+/Npix\d+|Allsky)\.fits HTTP/1\.1" 200',
                     served["log"].read_text())


def test_page_falls_back_to_cds_when_the_local_copy_fails(browser, hips, tmp_path_factory):
    # written with a local copy, which is then gone: the page must try the CDS script
    folder = tmp_path_factory.mktemp("fallback")
    for name in ("index.html", "properties"):
        shutil.copy(hips["dir"] / name, folder / name)
    server, url = _serve_in_thread(folder)
    try:
        page = browser.open(url + "index.html")
        deadline = time.monotonic() + 30
        while not [e for e in page.log_entries() if ALADIN_LITE_JS in (e.get("url") or "")]:
            assert time.monotonic() < deadline, page.log_entries()
            time.sleep(0.25)
            page.eval("1")  # collect the events that arrived meanwhile
    finally:
        server.shutdown()
        server.server_close()
