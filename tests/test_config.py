"""Configuration: every key validated with a clear message; the bundled example loads."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from feedbridge.cli import cli
from feedbridge.config import feed_urls, load_config, parse_config, resolve_feeds
from feedbridge.errors import ConfigError
from feedbridge.model import FeedSpec

from .conftest import EXAMPLES, REPO


def test_bundled_example_loads() -> None:
    config = load_config(REPO / "config" / "feedbridge.toml")
    assert config.dumps == EXAMPLES
    # No pinned address: `run --serve HOST:PORT` (make run) links to wherever it serves.
    assert config.base_url is None
    assert [f.name for f in config.feeds] == ["voa", "nyt", "all"]
    feeds = resolve_feeds(config, ["nyt", "rfi", "voa"])
    assert [f.name for f in feeds] == ["all", "nyt", "rfi", "voa"]
    assert feeds[0].sources == ("nyt", "rfi", "voa") and feeds[0].limit == 8


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"titel": "x"}, "unknown key 'titel' in the top level; did you mean 'title'?"),
        ({"base-url": "x"}, "unknown key 'base-url' in the top level; did you mean 'base_url'?"),
        ({"zzz": 1}, "unknown key 'zzz' in the top level; known keys: archive, auto_feeds,"),
        ({"limit": 0}, "limit must be at least 1"),
        ({"limit": True}, "limit must be an integer, not a boolean"),
        ({"limit": "50"}, "limit must be an integer, not a string"),
        ({"limit": 2.5}, "limit must be an integer, not a number"),
        ({"interval": "5"}, "interval must be a number, not a string"),
        ({"title": 3}, "title must be a string, not an integer"),
        ({"serve": 8080}, "serve must be a string, not an integer"),
        ({"out": ["a"]}, "out must be a string, not an array"),
        ({"max_bytes": 10}, "max_bytes must be at least 64"),
        ({"interval": -1}, "interval must be positive"),
        ({"base_url": "example.org"}, "absolute http(s) URL"),
        (
            {"base_url": "http://a\u2100b/"},
            "base_url 'http://a℀b/' must be an absolute http(s) URL",
        ),
        ({"base_url": "http://x:99999/"}, "invalid port"),
        ({"base_url": "http://exa mple/"}, "invalid host"),
        ({"base_url": "http://x/?q=1"}, "without ? or #"),
        ({"base_url": "http://x/#top"}, "without ? or #"),
        ({"feeds": {"a": {"link": "www.example.org"}}}, "[feeds.a] link 'www.example.org' must be"),
        ({"feeds": {"a": {"link": "javascript:alert(1)"}}}, "[feeds.a] link"),
        ({"hub": "http://a>b/"}, "hub 'http://a>b/' must be an absolute http(s) URL"),
        ({"auto_feeds": "yes"}, "auto_feeds must be true or false, not a string"),
        ({"feeds": {"a": {"sourcez": ["x"]}}}, "unknown key 'sourcez' in [feeds.a]; did you mean"),
        (
            {"feeds": {"voa": {"tittle": "x"}}},
            "unknown key 'tittle' in [feeds.voa]; did you mean 'title'?",
        ),
        ({"feeds": {"a": {"sources": []}}}, "sources must be a non-empty array"),
        ({"feeds": {"a": {"sources": 3}}}, "[feeds.a] sources must be an array of strings, not"),
        ({"feeds": {"a": {"limit": -2}}}, "[feeds.a] limit must be at least 1"),
        ({"feeds": {"a": {"limit": "x"}}}, "[feeds.a] limit must be an integer, not a string"),
        ({"feeds": {"a": {"title": 1.5}}}, "[feeds.a] title must be a string, not a number"),
        ({"feeds": {".hidden": {}}}, "cannot be a folder name"),
        ({"feeds": {"index.html": {}}}, "cannot be a folder name"),
        ({"feeds": {"index.html.gz": {}}}, "cannot be a folder name"),
        ({"feeds": {"feeds.opml.gz": {}}}, "cannot be a folder name"),
        ({"feeds": {"a": "x"}}, "[feeds.a] must be a table, not a string"),
        ({"feeds": []}, "feeds must be a table of [feeds.NAME] tables, not an array"),
    ],
)
def test_invalid_configs(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data, src=Path("/etc/fb.toml"))
    assert message in str(info.value)
    assert str(info.value).startswith("/etc/fb.toml: ")
    assert "\n" not in str(info.value)


def test_a_config_typo_through_the_cli_names_file_key_and_suggestion(tmp_path: Path) -> None:
    config = tmp_path / "fb.toml"
    config.write_text('dumps = "d"\nout = "o"\n[feeds.voa]\ntittle = "VOA"\n')
    (tmp_path / "d").mkdir()
    result = CliRunner().invoke(cli, ["build", "--config", str(config)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"feedbridge: error: {config}: unknown key 'tittle' in [feeds.voa]; did you mean 'title'?\n"
    )


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


def test_configured_urls_are_published_in_uri_form() -> None:
    """base_url, link and hub follow the rules of a dump's URL: what a URI cannot hold is
    percent-encoded, a non-ASCII host becomes IDNA."""
    config = parse_config(
        {
            "base_url": "https://ex.example/日本 feeds",
            "hub": "https://hub.example/p?a b",
            "feeds": {"a": {"link": "https://bücher.example/"}},
        }
    )
    assert config.base_url == "https://ex.example/%E6%97%A5%E6%9C%AC%20feeds/"
    assert config.hubs == ("https://hub.example/p?a%20b",)
    assert config.feeds[0].link == "https://xn--bcher-kva.example/"


def test_an_odd_base_url_on_the_command_line_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "build",
            "--dumps",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
            "--base-url",
            "http://a\u2100b/",
        ],
    )
    assert result.exit_code == 2
    assert "must be an absolute http(s) URL" in result.output
