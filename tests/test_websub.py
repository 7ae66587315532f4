"""WebSub push: hubs hear of every changed feed document, at once, and of nothing else."""

from __future__ import annotations

import gzip
import itertools
import json
import logging
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import feedparser
import pytest

from feedbridge.config import parse_config, resolve_feeds
from feedbridge.errors import ConfigError
from feedbridge.model import FeedResult
from feedbridge.websub import (
    BUILD_WAIT,
    PingError,
    Publisher,
    hubs_of,
    link_header,
    pings_of,
    publish_form,
    read_pings,
)

from .conftest import SPEC
from .daemon_helpers import RunningDaemon, feedbridge_cmd, free_port, http_request, wait_for
from .helpers import build, target_args
from .websub_helpers import Hub, Subscriber, down_hub, failing_hub, real_hub, real_subscriber

DUMP = (
    "<!--1767225600000-->\n[Pushed at once](https://example.org/pushed)\n------\n\n"
    "<p>Readers hear of this within two seconds.</p>\n"
)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    with real_hub(tmp_path) as h:
        yield h


@pytest.fixture
def subscriber(tmp_path: Path) -> Iterator[Subscriber]:
    with real_subscriber(tmp_path) as s:
        yield s


def _dumps(root: Path) -> Path:
    (root / "news").mkdir(parents=True)
    (root / "news" / "first.md").write_text(
        "<!--1735689600000-->\n[First](https://example.org/first)\n------\n\n<p>One.</p>\n"
    )
    return root


@pytest.mark.slow
def test_a_new_dump_reaches_the_subscriber_within_two_seconds(
    tmp_path: Path, hub: Hub, subscriber: Subscriber
) -> None:
    with failing_hub() as (bad, bad_bodies):
        hubs = [down_hub(), bad, hub.url]
        config = tmp_path / "fb.toml"
        config.write_text(f"hub = {hubs!r}\n".replace("'", '"'))
        port = free_port()
        base = f"http://127.0.0.1:{port}/"
        dumps = _dumps(tmp_path / "dumps")
        daemon = RunningDaemon(
            dumps, tmp_path / "out", tmp_path / "state",
            "--config", str(config), "--base-url", base, "--serve", f"127.0.0.1:{port}",
        )  # fmt: skip
        try:
            topic = base + "news/atom.xml"
            subscriber.subscribe(topic, hub.url)
            status, headers, _ = http_request(port, "GET", "/news/atom.xml")
            assert status == 200 and f'<{hub.url}>; rel="hub"' in headers["link"]
            assert f'<{topic}>; rel="self"' in headers["link"]
            published = len(hub.publishes)
            written = time.monotonic()
            (dumps / "news" / "pushed.md").write_text(DUMP)
            assert subscriber.event.wait(2.0), daemon.output()
            got = subscriber.notifications[0]
            assert got.topic == topic and got.at - written < 2.0
            body = got.body if got.body.startswith(b"<") else gzip.decompress(got.body)
            assert b"Pushed at once" in body
            wait_for(lambda: len(hub.publishes) >= published + 3, what="three publish pings")
            new = hub.publishes[published:]
            assert {p["hub.url"] for p in new} == {
                base + "news/atom.xml",
                base + "news/rss.xml",
                base + "news/feed.json",
            }
            assert all(p["hub.topic"] == p["hub.url"] for p in new)
            # The hub answering 500 is retried (with backoff), the one that is down too; each
            # failure is logged once, not at every attempt.
            wait_for(lambda: len(bad_bodies) >= 6, timeout=8, what="retries of the 500 hub")
        finally:
            assert daemon.stop() == 0
        log = daemon.output()
        assert log.count(f"websub: {bad}: ping for {topic} failed") == 1, log
        assert "Traceback" not in log


#: Where the test feeds say they live: nothing listens there, so the hub's fetch of a topic
#: fails at once and never leaves the machine.
LOCAL_BASE = f"http://127.0.0.1:{free_port()}/"


def _build(tmp_path: Path, config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = target_args(tmp_path / "dumps", tmp_path / "out", tmp_path / "state")
    return subprocess.run(
        feedbridge_cmd("build", *args, "--base-url", LOCAL_BASE, "--config", str(config), *extra),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _config(tmp_path: Path, hubs: list[str]) -> Path:
    config = tmp_path / "fb.toml"
    config.write_text("hub = [" + ", ".join(f'"{h}"' for h in hubs) + "]\n")
    return config


@pytest.mark.slow
def test_build_pings_changed_documents_only(tmp_path: Path, hub: Hub) -> None:
    _dumps(tmp_path / "dumps")
    config = _config(tmp_path, [hub.url])
    first = _build(tmp_path, config)
    assert first.returncode == 0, first.stderr
    topics = sorted(p["hub.url"] for p in hub.publishes)
    assert topics == [LOCAL_BASE + f"news/{name}" for name in ("atom.xml", "feed.json", "rss.xml")]
    assert all(p["hub.mode"] == "publish" for p in hub.publishes)

    again = _build(tmp_path, config)
    assert again.returncode == 0, again.stderr
    assert len(hub.publishes) == 3, "an unchanged rebuild sends no ping"

    (tmp_path / "dumps" / "news" / "pushed.md").write_text(DUMP)
    quiet = _build(tmp_path, config, "--no-ping")
    assert quiet.returncode == 0 and len(hub.publishes) == 3, "--no-ping sends none"

    where = ["--out", str(tmp_path / "out"), "--state", str(tmp_path / "state")]
    status = subprocess.run(
        feedbridge_cmd("status", *where), capture_output=True, text=True, timeout=60, check=False
    )
    assert status.returncode == 0, status.stderr
    assert f"  {hub.url}: last ping " in status.stdout
    assert "ok: HTTP 202" in status.stdout


@pytest.mark.slow
def test_build_with_hubs_failing_is_not_delayed_and_the_next_run_resends(tmp_path: Path) -> None:
    _dumps(tmp_path / "dumps")
    port = free_port()
    down = f"http://127.0.0.1:{port}/hub"
    with failing_hub() as (bad, bodies):
        config = _config(tmp_path, [down, bad])
        started = time.monotonic()
        first = _build(tmp_path, config)
        took = time.monotonic() - started
        assert first.returncode == 0, first.stderr
        assert len(bodies) == 3, "one attempt per changed document, then pending"
    assert took < BUILD_WAIT, "a failing hub does not hold the build up for its backoff"
    for url in (down, bad):
        assert first.stderr.count(f"websub: {url}: ping for ") == 3, first.stderr
    assert first.stderr.count("; the next run sends it") == 6
    assert "Traceback" not in first.stderr
    assert len(read_pings(tmp_path / "state")["pending"]) == 6

    # The hub that was down comes up; the next build, with nothing changed, sends what it missed.
    with real_hub(tmp_path, port) as hub:
        again = _build(tmp_path, config)
    assert again.returncode == 0, again.stderr
    assert sorted(p["hub.url"] for p in hub.publishes) == [
        LOCAL_BASE + f"news/{name}" for name in ("atom.xml", "feed.json", "rss.xml")
    ]
    pending = read_pings(tmp_path / "state")["pending"]
    assert sorted(h for h, _ in pending) == [bad] * 3, "the 500 hub, gone now, still owes them"


# -- the publisher, with a hub function in place of the network ------------------------------


class FlakyHubs:
    """Hubs as a function: each URL fails ``failures[hub]`` times, then accepts."""

    def __init__(self, failures: dict[str, int]) -> None:
        self.failures = dict(failures)
        self.calls: list[tuple[str, str, float]] = []
        self.lock = threading.Lock()

    def __call__(self, hub: str, topic: str, timeout: float) -> str:
        with self.lock:
            self.calls.append((hub, topic, time.monotonic()))
            if self.failures.get(hub, 0) > 0:
                self.failures[hub] -= 1
                raise PingError("HTTP 500 Internal Server Error")
        return "HTTP 202"


def test_pings_of_names_changed_documents_of_feeds_with_hubs() -> None:
    feeds = [
        FeedResult("a", 3, ("/o/a/atom.xml",), ("https://f/a/atom.xml",), ("https://h1/",)),
        FeedResult("b", 3, (), (), ("https://h1/",)),  # unchanged: no ping
        FeedResult("c", 3, ("/o/c/rss.xml",), ("https://f/c/rss.xml",), ()),  # no hub
        FeedResult(
            "d", 3, ("x", "y"), ("https://f/d/rss.xml", "https://f/d/atom.xml"),
            ("https://h1/", "https://h2/"),
        ),
    ]  # fmt: skip
    assert pings_of(feeds) == {
        "https://h1/": ["https://f/a/atom.xml", "https://f/d/atom.xml", "https://f/d/rss.xml"],
        "https://h2/": ["https://f/d/atom.xml", "https://f/d/rss.xml"],
    }
    assert pings_of(feeds[1:3]) == {}


def test_publish_form_says_publish_and_the_url_both_ways() -> None:
    form = parse_qs(publish_form("https://f.org/a b/atom.xml").decode(), strict_parsing=True)
    assert form == {
        "hub.mode": ["publish"],
        "hub.url": ["https://f.org/a b/atom.xml"],
        "hub.topic": ["https://f.org/a b/atom.xml"],
    }


def test_failed_pings_are_retried_with_backoff_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hubs = FlakyHubs({"https://h1/": 3})
    publisher = Publisher(tmp_path, backoff=0.05, send=hubs)
    with caplog.at_level(logging.INFO, logger="feedbridge"):
        publisher.notify({"https://h1/": ["https://f/a/atom.xml"]})
        assert publisher.wait(10)
        publisher.close()
    times = [t for _, _, t in hubs.calls]
    assert len(times) == 4
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.2, "doubling backoff"
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "ping for https://f/a/atom.xml failed" in warnings[0].message
    saved = read_pings(tmp_path)
    assert saved["pending"] == []
    assert saved["hubs"]["https://h1/"]["result"] == "ok: HTTP 202"
    assert saved["hubs"]["https://h1/"]["attempt"] == 4


def test_a_hub_that_never_answers_is_given_up_after_the_last_attempt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hubs = FlakyHubs({"https://h1/": 99})
    publisher = Publisher(tmp_path, attempts=3, backoff=0.01, send=hubs)
    with caplog.at_level(logging.WARNING, logger="feedbridge"):
        publisher.notify({"https://h1/": ["https://f/a/atom.xml"]})
        assert publisher.wait(10)
        publisher.close()
    assert len(hubs.calls) == 3
    assert [r.levelname for r in caplog.records] == ["WARNING", "ERROR"]
    assert "gave up on https://f/a/atom.xml after 3 attempts" in caplog.records[1].message
    assert read_pings(tmp_path)["hubs"]["https://h1/"]["result"].endswith("(gave up)")


def test_a_hanging_hub_delays_no_other_hub(tmp_path: Path) -> None:
    release = threading.Event()
    done: list[str] = []

    def send(hub: str, topic: str, timeout: float) -> str:
        if hub == "https://slow/":
            release.wait(10)
        done.append(hub)
        return "HTTP 202"

    publisher = Publisher(tmp_path, send=send)
    started = time.monotonic()
    publisher.notify({"https://slow/": ["https://f/a"], "https://fast/": ["https://f/a"]})
    wait_for(lambda: done == ["https://fast/"], what="the fast hub's ping")
    assert time.monotonic() - started < 5
    assert not publisher.wait(0.05), "the slow hub's ping is still out"
    release.set()
    assert publisher.wait(10)
    publisher.close()


def test_pending_pings_survive_a_stop_and_are_sent_by_the_next_publisher(tmp_path: Path) -> None:
    down = FlakyHubs({"https://h1/": 99})
    first = Publisher(tmp_path, attempts=1, keep_failed=True, send=down)
    first.notify({"https://h1/": ["https://f/a/atom.xml", "https://f/a/rss.xml"]})
    assert first.wait(10), "a kept ping does not hold up wait()"
    first.close()
    assert sorted(read_pings(tmp_path)["pending"]) == [
        ("https://h1/", "https://f/a/atom.xml"),
        ("https://h1/", "https://f/a/rss.xml"),
    ]
    up = FlakyHubs({})
    second = Publisher(tmp_path, send=up)
    assert second.wait(10)
    second.close()
    assert sorted(t for _, t, _ in up.calls) == ["https://f/a/atom.xml", "https://f/a/rss.xml"]
    assert read_pings(tmp_path)["pending"] == []


def test_a_ping_already_waiting_is_not_queued_twice(tmp_path: Path) -> None:
    hubs = FlakyHubs({"https://h1/": 1})
    publisher = Publisher(tmp_path, backoff=0.3, send=hubs)
    publisher.notify({"https://h1/": ["https://f/a"]})
    wait_for(lambda: len(hubs.calls) == 1, what="the first attempt")
    publisher.notify({"https://h1/": ["https://f/a"]})  # changed again while backing off
    assert publisher.wait(10)
    publisher.close()
    assert len(hubs.calls) == 2


# -- discovery: hub links in the documents and in HTTP headers --------------------------------


def test_config_hub_is_a_url_or_a_list_top_level_and_per_feed() -> None:
    cfg = parse_config(
        {
            "hub": "https://hub.example/",
            "feeds": {"a": {}, "b": {"hub": ["https://h1/", "https://h2/"]}, "c": {"hub": []}},
        }
    )
    assert cfg.hubs == ("https://hub.example/",)
    assert {f.name: f.hubs for f in cfg.feeds} == {
        "a": ("https://hub.example/",),
        "b": ("https://h1/", "https://h2/"),
        "c": (),
    }
    auto = resolve_feeds(cfg, ["a", "z"])
    assert {f.name: f.hubs for f in auto}["z"] == ("https://hub.example/",)
    assert hubs_of(cfg, "z") == ("https://hub.example/",) and hubs_of(cfg, "c") == ()


@pytest.mark.parametrize(
    ("hub", "message"),
    [
        ("hub.example", "hub 'hub.example' must be an absolute http(s) URL"),
        (["ftp://x/"], "hub 'ftp://x/' must be an absolute http(s) URL"),
        (3, "hub must be a URL or a list of URLs"),
    ],
)
def test_config_hub_errors(hub: object, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config({"hub": hub})


def test_link_header_names_hubs_and_self_for_feed_documents() -> None:
    cfg = parse_config({"hub": ["https://h1/", "https://h2/"], "feeds": {"q": {"hub": []}}})
    base = "https://feeds.example.org/"
    assert link_header(cfg, base, "/news/atom.xml") == (
        '<https://h1/>; rel="hub", <https://h2/>; rel="hub", '
        '<https://feeds.example.org/news/atom.xml>; rel="self"'
    )
    assert link_header(cfg, base, "/index.html") is None
    assert link_header(cfg, base, "/news/atom.xml.gz") is None
    assert link_header(cfg, base, "/q/rss.xml") is None


def test_every_format_names_its_hubs(tmp_path: Path) -> None:
    dumps = _dumps(tmp_path / "dumps")
    hubs = ["https://hub.example/", "https://other.example/websub?a=1&b=2"]
    build(dumps, tmp_path / "out", parse_config({"hub": hubs}))
    out = tmp_path / "out" / "news"
    for fmt in ("atom.xml", "rss.xml"):
        parsed = feedparser.parse((out / fmt).read_bytes())
        assert not parsed.bozo, parsed.bozo_exception
        assert [link.href for link in parsed.feed.links if link.rel == "hub"] == hubs
    assert json.loads((out / "feed.json").read_bytes())["hubs"] == [
        {"type": "WebSub", "url": hub} for hub in hubs
    ]
    if shutil.which("jing") is None:
        pytest.fail("jing is not installed (Debian package 'jing')")
    for args in (["-c", str(SPEC / "atom.rnc")], [str(SPEC / "atom-rules.sch")]):
        result = subprocess.run(
            ["jing", *args, str(out / "atom.xml")], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
