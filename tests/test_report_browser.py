"""The executive pack in a real headless Chromium: it renders offline, without errors.

Needs Debian's Chromium (``scripts/install_browser.sh``); run with ``make test-slow``. The
browser is driven over the Chrome DevTools Protocol with a small stdlib websocket client, so
no extra Python package is needed.

Also a tool: ``python tests/test_report_browser.py PACK.html OUT.png`` saves a full-page
screenshot of a pack (how ``docs/exec_pack.png`` is made).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("SOP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
]


#: What the test asks the page: chart divs, charts plotly has drawn, section titles.
PAGE_FACTS = """(() => {
  const divs = [...document.querySelectorAll('.plotly-graph-div')];
  return {
    divs: divs.length,
    drawn: divs.filter((d) => d.querySelector('.main-svg') !== null).length,
    sections: [...document.querySelectorAll('section.block h2')].map((h) => h.textContent),
    plotly: typeof Plotly,
  };
})()"""


class WebSocket:
    """Just enough of RFC 6455 for CDP: masked text frames out, (fragmented) frames in."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        match = re.match(r"ws://([^/:]+):(\d+)(/.*)", url)
        if not match:
            raise ValueError(f"not a ws:// URL: {url}")
        host, port, path = match.group(1), int(match.group(2)), match.group(3)
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("websocket handshake: connection closed")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"websocket handshake refused: {head[:200]!r}")
        self.buffer = head.split(b"\r\n\r\n", 1)[1]

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buffer)))
            if not chunk:
                raise ConnectionError("websocket closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def send(self, text: str) -> None:
        payload = text.encode()
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def recv(self) -> str:
        parts: list[bytes] = []
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            data = self._read(n)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            if opcode == 0x8:
                raise ConnectionError("websocket closed by the browser")
            if opcode in (0x9, 0xA):  # ping / pong: nothing to do for CDP
                continue
            parts.append(data)
            if b0 & 0x80:
                return b"".join(parts).decode()

    def close(self) -> None:
        self.sock.close()


class Browser:
    """A headless Chromium with one page, driven over CDP."""

    def __init__(self, width: int = 1400, height: int = 1000) -> None:
        self.profile = tempfile.mkdtemp(prefix="sop-chromium-")
        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        port = None
        deadline = time.monotonic() + 30
        while port is None and time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                break
            match = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            if match:
                port = int(match.group(1))
        if port is None:
            self.quit()
            raise RuntimeError(f"{CHROMIUM} did not start its DevTools endpoint")
        # keep draining stderr so the browser never blocks on a full pipe
        self._drain = threading.Thread(target=self.proc.stderr.read, daemon=True)
        self._drain.start()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            pages = [t for t in json.load(resp) if t["type"] == "page"]
        self.ws = WebSocket(pages[0]["webSocketDebuggerUrl"])
        self.next_id = 0
        self.events: list[dict] = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def call(self, method: str, timeout: float = 60.0, **params: object) -> dict:
        self.next_id += 1
        msg_id = self.next_id
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)
        raise TimeoutError(method)

    def wait_event(self, method: str, timeout: float = 60.0) -> dict:
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            self.events.append(msg)
            if msg.get("method") == method:
                return msg
        raise TimeoutError(method)

    def load(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> object:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def errors(self) -> list[str]:
        """Uncaught exceptions, console.error calls and error log entries so far."""
        found = []
        for e in self.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(json.dumps(params.get("exceptionDetails", {}))[:500])
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(json.dumps(params.get("args", []))[:500])
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                found.append(params["entry"].get("text", "")[:500])
        return found

    def requests(self) -> list[str]:
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e.get("method") == "Network.requestWillBeSent"
        ]

    def screenshot(self, full_page: bool = True, width: int = 1400) -> bytes:
        if full_page:
            metrics = self.call("Page.getLayoutMetrics")
            height = int(metrics["cssContentSize"]["height"])
            self.call(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
            time.sleep(1.0)  # let plotly's responsive charts re-layout
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        return base64.b64decode(data["data"])

    def quit(self) -> None:
        try:
            if getattr(self, "ws", None):
                self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            if getattr(self, "_drain", None):
                self._drain.join(timeout=10)
            shutil.rmtree(self.profile, ignore_errors=True)


#: What the presentation test asks the drawn page: the waterfall's value axis and the height
#: on screen of its change bars, and the exceptions section's summary and tables.
PRESENTATION_FACTS = """(() => {
  const wf = document.getElementById('fig-waterfall');
  const bars = [...wf.querySelectorAll('.trace.bars .point path, .waterfalllayer .point path')];
  const heights = bars.map((p) => p.getBoundingClientRect().height);
  const ex = document.getElementById('exceptions');
  return {
    waterfall_range: wf._fullLayout.yaxis.range,
    waterfall_plot_height: wf._fullLayout.yaxis._length,
    waterfall_bar_heights: heights,
    exceptions_summary: ex.querySelector('p').textContent,
    exceptions_action_rows: ex.querySelectorAll('table.ex-action tbody tr').length,
    exceptions_low_rows: ex.querySelectorAll('table.ex-low tbody tr').length,
    exceptions_first_action: (ex.querySelector('table.ex-action tbody tr') || {}).textContent,
  };
})()"""


def render(
    pack: Path, width: int = 1400, probe: str | None = None
) -> tuple[bytes, list[str], list[str], dict]:
    """Load a pack; return (full-page PNG, errors, requested URLs, page facts).

    ``probe``: a JavaScript expression evaluated once the charts are drawn; its value is
    ``facts["probe"]``.
    """
    browser = Browser(width=width)
    try:
        browser.load(pack.resolve().as_uri())
        # plotly draws synchronously on load; wait until every chart has its SVG
        facts: dict = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            facts = browser.evaluate(PAGE_FACTS)
            if facts["divs"] and facts["drawn"] == facts["divs"]:
                break
            time.sleep(0.2)
        if probe is not None:
            facts["probe"] = browser.evaluate(probe)
        png = browser.screenshot(width=width)
        return png, browser.errors(), browser.requests(), facts
    finally:
        browser.quit()


needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"{CHROMIUM} missing: run scripts/install_browser.sh (make test-slow does)",
)


@pytest.mark.slow
@needs_chromium
def test_pack_renders_in_headless_chromium_offline_without_errors(tmp_path):
    from factories.pack import build_full_pack  # tests/ is on sys.path under pytest
    from PIL import Image

    pack = build_full_pack(tmp_path)
    png, errors, requests, facts = render(pack)

    assert errors == [], f"console errors in the pack: {errors}"
    remote = [u for u in requests if not u.startswith(("file:", "data:", "blob:", "about:"))]
    assert remote == [], f"the pack fetched from the network: {remote}"
    assert facts["plotly"] == "object", "plotly.js did not load from the inlined script"
    assert facts["divs"] >= 8 and facts["drawn"] == facts["divs"], facts
    assert "KPI scorecard" in facts["sections"] and "Data lineage" in facts["sections"]

    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.width == 1400 and image.height > 3000, image.size
    colours = image.resize((350, image.height // 4)).getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 200, "the screenshot looks blank"


@pytest.mark.slow
@needs_chromium
def test_pack_waterfall_axis_and_exceptions_summary_in_the_browser(tmp_path):
    from factories.pack import build_full_pack  # tests/ is on sys.path under pytest

    pack = build_full_pack(tmp_path)  # waterfall 1,000 -> +150 -> -50 -> 1,100 units
    _png, errors, _requests, facts = render(pack, probe=PRESENTATION_FACTS)
    assert errors == [], errors
    got = facts["probe"]
    low, high = got["waterfall_range"]
    # the units axis starts near the plan's level, not at 0: the changes get their own scale
    assert 900 < low < 1000 and 1150 < high < 1300, got
    # every bar, the -50 change included, is drawn tall enough to read (plotly draws the
    # bars of both panels; the smallest is the -50 units change)
    heights = got["waterfall_bar_heights"]
    assert len(heights) >= 8, got
    assert min(heights) > 0.1 * got["waterfall_plot_height"], got
    # the exceptions summary: what needs action first, the low-priority rows grouped after
    assert "2 need action" in got["exceptions_summary"], got
    assert "1 is low priority" in got["exceptions_summary"], got
    assert got["exceptions_action_rows"] == 2 and got["exceptions_low_rows"] == 1, got
    assert "capacity overload" in got["exceptions_first_action"], got


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python tests/test_report_browser.py PACK.html OUT.png")
    png, errors, requests, facts = render(Path(sys.argv[1]))
    Path(sys.argv[2]).write_bytes(png)
    print(
        f"{sys.argv[2]}: {len(png):,} bytes; charts {facts}; errors {errors}; requests {len(requests)}"
    )
