"""The pages in a real browser: Debian's Chromium driven by Playwright, over the whole shared
corpus built and served by ``feedbridge.serve`` on 127.0.0.1.

Every page at 375x800 and 1280x900: no console error, no failed request to OUT, no request
anywhere else but images, no horizontal scrolling, every link inside OUT answers 200, and
axe-core finds no serious or critical violation (in light and dark).  Article images are
answered by the test with a small picture, as their hosts would (there is no network here).
Screenshots of the index and a feed page, light and dark, go to ``SCREENSHOTS`` for a person
to look at.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from feedbridge.app import run_build
from feedbridge.config import parse_config
from feedbridge.serve import Server

from .conftest import NOW
from .helpers import make_corpus
from .test_deploy import nginx  # noqa: F401 - the shipped server block on a real nginx
from .test_pages import CORPUS_CONFIG

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Response

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("corpus_present")]

CHROMIUM = Path(os.environ.get("FEEDBRIDGE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
VIEWPORTS = [(375, 800), (1280, 900)]
SCREENSHOTS = Path(os.environ.get("FEEDBRIDGE_SCREENSHOTS", "/tmp/feedbridge-screenshots"))


def png(width: int, height: int) -> bytes:
    """A small gradient picture standing in for an article image."""
    rows = b"".join(
        b"\0"
        + b"".join(
            bytes((60 + 150 * x // width, 90 + 100 * y // height, 160 - 60 * x // width))
            for x in range(width)
        )
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PICTURE = png(240, 160)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The shared corpus built with the served URL as base URL, and that server."""
    base = tmp_path_factory.mktemp("browser")
    dumps = make_corpus(base / "dumps")
    # what could push a phone's page sideways: a long folder name, unbroken title and URL
    long = dumps / ("long-" * 12)
    long.mkdir()
    (long / "1.md").write_text(
        f"<!--1700000000000-->\n[{'W' * 300}](https://example.org/{'p' * 400})\n---\n\n"
        f"<p>{'Z' * 500}</p><img src='https://img.example.org/{'i' * 300}.jpg'>\n"
    )
    out = base / "out"
    out.mkdir()
    server = Server(out, "127.0.0.1", 0)
    try:
        run_build(
            # feeds of five entries: every source of the corpus has archive pages too
            parse_config({**CORPUS_CONFIG, "limit": 5}),
            dumps=dumps,
            out=out,
            base_url=server.url,
            state_dir=base / "state",
            now=NOW,
        )
        server.start()
        yield server.url, out
    finally:
        server.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (or set FEEDBRIDGE_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def page_paths(out: Path) -> list[str]:
    """URL paths of every page: the index and one per feed folder, and the newest and oldest
    archive pages of each feed."""
    feeds = [p for p in sorted(out.iterdir()) if (p / "index.html").is_file()]
    archives = []
    for feed in feeds:
        pages = sorted(feed.glob("archive/*.html"), key=lambda p: p.stat().st_mtime_ns)
        archives.extend(f"{feed.name}/archive/{p.name}" for p in {*pages[:1], *pages[-1:]})
    return ["", *(f"{p.name}/" for p in feeds), *sorted(archives)]


class Visit:
    """One browser context that records everything that went wrong while pages loaded."""

    def __init__(self, browser: object, root: str, width: int, height: int, scheme: str) -> None:
        from playwright.sync_api import Browser, Route

        assert isinstance(browser, Browser)
        self.root = root
        self.problems: list[str] = []
        self.images: list[str] = []
        self.context = browser.new_context(
            viewport={"width": width, "height": height},
            color_scheme=scheme,  # type: ignore[arg-type]
        )

        def route(r: Route) -> None:
            request = r.request
            if request.url.startswith(root):
                r.continue_()
            elif request.resource_type == "image" and request.url.startswith(("http:", "https:")):
                self.images.append(request.url)
                r.fulfill(status=200, content_type="image/png", body=PICTURE)
            else:
                self.problems.append(f"request outside OUT: {request.resource_type} {request.url}")
                r.abort()

        self.context.route("**/*", route)
        self.page = self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url}"))
        self.page.on("response", self._response)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.problems.append(f"console {message.type}: {message.text}")

    def _response(self, response: Response) -> None:
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.url}")

    def open(self, path: str) -> None:
        response = self.page.goto(self.root + path, wait_until="load")
        assert response is not None and response.status == 200, path
        assert response.headers["content-type"] == "text/html; charset=utf-8", path
        # without an icon of its own a page makes browsers ask OUT for /favicon.ico (a 404),
        # a request Playwright does not report
        assert self.page.locator('link[rel="icon"]').count() == 1, path

    def links(self) -> list[str]:
        hrefs: list[str] = self.page.eval_on_selector_all(
            "a[href], link[href]", "els => els.map(e => e.href)"
        )
        return [h.split("#")[0] for h in hrefs if h.startswith(self.root)]

    def close(self) -> None:
        self.context.close()


def serious_violations(page: object) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} -- {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize(("width", "height"), VIEWPORTS)
def test_every_page_loads_cleanly_fits_and_passes_axe(
    site: tuple[str, Path], browser: object, width: int, height: int
) -> None:
    root, out = site
    paths = page_paths(out)
    assert len(paths) >= 12
    visit = Visit(browser, root, width, height, "light")
    links: set[str] = set()
    try:
        for path in paths:
            visit.open(path)
            scroll = visit.page.evaluate(
                "[document.documentElement.scrollWidth, window.innerWidth]"
            )
            assert scroll[0] <= scroll[1], f"{path}: horizontal scroll at {width}px: {scroll}"
            assert serious_violations(visit.page) == [], path
            links.update(visit.links())
            assert visit.problems == [], path
        statuses = {
            url: visit.context.request.get(url, max_redirects=0).status for url in sorted(links)
        }
        assert {u: s for u, s in statuses.items() if s != 200} == {}
        # the index, the OPML, and every feed's page, three feeds and newest archive page
        feeds = [p for p in paths if p.count("/") == 1]
        assert len([u for u in statuses if "/archive/" not in u]) == 2 + 4 * len(feeds)
        assert len([u for u in statuses if u.endswith(".html") and "/archive/" in u]) > len(feeds)
        assert visit.images, "no thumbnail was requested"
    finally:
        visit.close()


def test_dark_pages_pass_axe(site: tuple[str, Path], browser: object) -> None:
    """Contrast is checked in the dark scheme too."""
    root, out = site
    visit = Visit(browser, root, 1280, 900, "dark")
    try:
        for path in page_paths(out):
            visit.open(path)
            assert serious_violations(visit.page) == [], path
            assert visit.problems == [], path
    finally:
        visit.close()


def luminance(css_color: str) -> float:
    r, g, b = (int(c) for c in css_color[css_color.index("(") + 1 : -1].split(",")[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots_follow_the_color_scheme(
    site: tuple[str, Path], browser: object, scheme: str
) -> None:
    root, _ = site
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in VIEWPORTS:
        visit = Visit(browser, root, width, height, scheme)
        try:
            for path, name in (("", "index"), ("voa/", "feed")):
                visit.open(path)
                visit.page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
                visit.page.wait_for_load_state("networkidle")
                shot = SCREENSHOTS / f"{name}-{scheme}-{width}.png"
                visit.page.screenshot(path=str(shot), full_page=True)
                assert shot.stat().st_size > 10_000
                background = visit.page.evaluate("getComputedStyle(document.body).backgroundColor")
                text = visit.page.evaluate("getComputedStyle(document.body).color")
                dark = scheme == "dark"
                assert (luminance(background) < 0.2) is dark, background
                assert (luminance(text) > 0.8) is dark, text
            assert visit.problems == []
        finally:
            visit.close()


def test_pages_over_the_shipped_nginx_block(nginx: tuple[int, Path], browser: object) -> None:  # noqa: F811
    """The same checks through the shipped nginx server block (the bundled example)."""
    port, out = nginx
    root = f"http://127.0.0.1:{port}/"
    visit = Visit(browser, root, 375, 800, "light")
    links: set[str] = set()
    try:
        for path in page_paths(out):
            visit.open(path)
            scroll = visit.page.evaluate("document.documentElement.scrollWidth")
            assert scroll <= 375, path
            links.update(visit.links())
            assert visit.problems == [], path
        statuses = {u: visit.context.request.get(u, max_redirects=0).status for u in links}
        assert {u: s for u, s in statuses.items() if s != 200} == {}
        feeds = [p for p in page_paths(out) if p.count("/") == 1]
        assert len([u for u in statuses if "/archive/" not in u]) == 2 + 4 * len(feeds)
        assert len([u for u in statuses if "/archive/" in u]) > len(feeds)
    finally:
        visit.close()
