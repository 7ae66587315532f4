"""Configuration: every key validated with a clear message; the bundled example loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from feedbridge.config import feed_urls, load_config, parse_config, resolve_feeds
from feedbridge.errors import ConfigError
from feedbridge.model import FeedSpec

from .conftest import EXAMPLES, REPO


def test_bundled_example_loads() -> None:
    config = load_config(REPO / "config" / "feedbridge.toml")
    assert config.dumps == EXAMPLES
    assert config.base_url == "http://127.0.0.1:8080/"
    assert [f.name for f in config.feeds] == ["voa", "nyt", "all"]
    feeds = resolve_feeds(config, ["nyt", "rfi", "voa"])
    assert [f.name for f in feeds] == ["all", "nyt", "rfi", "voa"]
    assert feeds[0].sources == ("nyt", "rfi", "voa") and feeds[0].limit == 20


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"titel": "x"}, "unknown key 'titel' in the top level"),
        ({"limit": 0}, "limit must be at least 1"),
        ({"limit": True}, "limit must be a int"),
        ({"max_bytes": 10}, "max_bytes must be at least 64"),
        ({"interval": -1}, "interval must be positive"),
        ({"base_url": "example.org"}, "absolute http(s) URL"),
        ({"auto_feeds": "yes"}, "auto_feeds must be true or false"),
        ({"feeds": {"a": {"sourcez": ["x"]}}}, "unknown key 'sourcez' in [feeds.a]"),
        ({"feeds": {"a": {"sources": []}}}, "sources must be a non-empty list"),
        ({"feeds": {"a": {"limit": -2}}}, "[feeds.a] limit must be at least 1"),
        ({"feeds": {".hidden": {}}}, "cannot be a folder name"),
        ({"feeds": {"index.html": {}}}, "cannot be a folder name"),
        ({"feeds": {"a": "x"}}, "must be a table"),
        ({"feeds": []}, "feeds must be a table"),
    ],
)
def test_invalid_configs(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data, src=Path("/etc/fb.toml"))
    assert message in str(info.value)
    assert str(info.value).startswith("/etc/fb.toml: ")


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.toml"
    bad.write_text("title = \n")
    with pytest.raises(ConfigError, match=r"x.toml: invalid TOML"):
        load_config(bad)


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    f = tmp_path / "c" / "fb.toml"
    f.write_text('dumps = "../d"\nout = "o"\n')
    config = load_config(f)
    assert config.dumps == (tmp_path / "d").resolve()
    assert config.out == (tmp_path / "c" / "o").resolve()


def test_auto_feeds_and_declared_feeds() -> None:
    config = parse_config({"feeds": {"bbc": {"sources": ["bbc", "BBC"], "title": "BBC"}}})
    feeds = resolve_feeds(config, ["BBC", "bbc", "voa", ".git"])
    # a declared feed takes its name's folder; every other folder keeps a feed of its own
    assert [(f.name, f.sources) for f in feeds] == [
        ("BBC", ("BBC",)),
        ("bbc", ("BBC", "bbc")),
        ("voa", ("voa",)),
    ]
    off = parse_config({"auto_feeds": False, "feeds": {"x": {"sources": ["nothing-*"]}}})
    assert [(f.name, f.sources) for f in resolve_feeds(off, ["voa"])] == [("x", ())]


def test_feed_urls_are_absolute_and_quoted() -> None:
    urls = feed_urls(FeedSpec(name="中文 feed", title="t", sources=()), "https://x.org/f/")
    assert urls.atom == "https://x.org/f/%E4%B8%AD%E6%96%87%20feed/atom.xml"
    assert urls.site == "https://x.org/f/"
