"""The status page rendered by headless Chromium (Debian's `chromium`): filled in, self-contained, live video."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser

import httpx
from api_data.fixtures import Server


class _Dom(HTMLParser):
    """Text by element id and the attributes of <body>, from Chromium's --dump-dom output."""

    def __init__(self) -> None:
        super().__init__()
        self.text: dict[str, str] = {}
        self.body: dict[str, str] = {}
        self.rows: list[dict[str, str]] = []
        self.urls: list[str] = []
        self._open: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.body = attributes
        if tag == "tr" and "data-sha256" in attributes:
            self.rows.append(attributes)
        self.urls += [attributes[k] for k in ("src", "href") if k in attributes]
        self._open.append(attributes.get("id"))

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for element in reversed(self._open):
            if element:
                self.text[element] = self.text.get(element, "") + data
                return


def _render(url: str, *extra: str) -> subprocess.CompletedProcess:
    chromium = shutil.which("chromium")
    assert chromium, "Debian package 'chromium' is missing: run `make sysdeps`"
    return subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--no-first-run", "--virtual-time-budget=6000", *extra, url],
                          capture_output=True, text=True, timeout=120)


def test_status_page_renders_health_temperature_models_latency_and_video(api_server: Server, tmp_path) -> None:
    result = _render(api_server.url + "/status", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    dom = _Dom()
    dom.feed(result.stdout)
    assert dom.body.get("data-loaded") == "1" and dom.body.get("data-state") == "ready"
    assert dom.text["health"].strip() == "READY" and dom.text["profile"].strip() == "dev"
    assert dom.text["temperature"].strip() == "40.0" and dom.text["band"].strip() == "normal"
    assert re.fullmatch(r"\d+\.\d", dom.text["dehaze-p50"].strip())
    with api_server.client() as client:
        models = {m["sha256"] for m in client.get("/v1/models").json()["data"]}
    assert {row["data-sha256"] for row in dom.rows} == models
    assert dom.body.get("data-preview") == "ok"  # at least one dehazed MJPEG frame decoded
    assert all(not re.match(r"(https?:)?//", url) for url in dom.urls)  # no CDN, no external asset
    screenshot = tmp_path / "status.png"
    shot = _render(api_server.url + "/status", f"--screenshot={screenshot}", "--window-size=1280,800")
    assert shot.returncode == 0 and screenshot.stat().st_size > 10_000


def test_status_page_assets_and_preview_are_served_locally(api_server: Server) -> None:
    html = httpx.get(api_server.url + "/status").text
    assert "http://" not in html and "https://" not in html
    css = httpx.get(api_server.url + "/status/static/status.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert httpx.get(api_server.url + "/status/static/../keys.json").status_code == 404
    with httpx.stream("GET", api_server.url + "/status/preview.mjpeg", timeout=10) as response:
        assert response.headers["content-type"].startswith("multipart/x-mixed-replace")
        head = b""
        for chunk in response.iter_bytes():
            head += chunk
            if b"\xff\xd9" in head:
                break
    assert b"Content-Type: image/jpeg" in head and b"\xff\xd8" in head  # a whole JPEG frame
