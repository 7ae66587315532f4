"""Every command and exit code through click's CliRunner, and the README kept in sync."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from feedbridge.cli import cli
from feedbridge.config import FEED_KEYS, TOP_KEYS

from .conftest import BASE_URL, EDGE, EXAMPLES, REPO
from .helpers import make_corpus, target_args


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def dumps(tmp_path: Path) -> Path:
    return make_corpus(tmp_path / "dumps")


def test_build_exits_0_with_rejections_reported_once(dumps: Path, tmp_path: Path) -> None:
    code, _, err = run("build", *target_args(dumps, tmp_path / "out"))
    assert code == 0
    rejected = [line for line in err.splitlines() if line.startswith("rejected: ")]
    assert len(rejected) == 6 == len(set(rejected))
    assert f"rejected: {dumps / 'edge' / 'bad-nul-bytes.md'}:5: NUL byte" in err
    assert f"future: {dumps / 'edge' / 'future.md'}: dated 2100-01-01T00:00:00Z" in err
    assert (tmp_path / "out" / "voa" / "atom.xml").is_file()


def test_build_strict_exits_1(dumps: Path, tmp_path: Path) -> None:
    code, _, _ = run("build", *target_args(dumps, tmp_path / "out"), "--strict")
    assert code == 1
    assert (tmp_path / "out" / "voa" / "atom.xml").is_file()


def test_build_strict_exits_0_when_all_dumps_are_good(tmp_path: Path) -> None:
    code, _, _ = run("build", *target_args(EXAMPLES, tmp_path / "out"), "--strict")
    assert code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "o", "--base-url", BASE_URL], "no dumps folder"),
        (["--dumps", "{dumps}", "--base-url", BASE_URL], "no output folder"),
        (["--dumps", "{dumps}", "--out", "o"], "no base URL"),
        (["--dumps", "{dumps}", "--out", "o", "--base-url", "ftp://x"], "absolute http(s) URL"),
        (["--dumps", "/nonexistent/dumps", "--out", "o", "--base-url", BASE_URL], "does not exist"),
        (
            [
                "--dumps",
                "{dumps}",
                "--out",
                "o",
                "--base-url",
                BASE_URL,
                "--config",
                "/no/such.toml",
            ],
            "no such file",
        ),
        (["--dumps", "{dumps}", "--out", "o", "--bogus"], "No such option"),
    ],
)
def test_build_usage_errors_exit_2(
    dumps: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    args = [
        a.replace("{dumps}", str(dumps)).replace("o", str(tmp_path / "o"))
        if a == "o"
        else a.replace("{dumps}", str(dumps))
        for a in args
    ]
    code, _, err = run("build", *args)
    assert code == 2
    assert message in err
    assert len([line for line in err.splitlines() if "rror" in line]) == 1


def test_invalid_config_is_one_line_exit_2(tmp_path: Path, dumps: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('limit = "many"\n')
    code, _, err = run("build", "--config", str(config), *target_args(dumps, tmp_path / "o"))
    assert code == 2
    assert (
        err.strip()
        == f"feedbridge: error: {config.resolve()}: limit must be an integer, not a string"
    )


def test_build_from_config_file_alone(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "dumps")
    config = tmp_path / "fb.toml"
    config.write_text(f'dumps = "dumps"\nout = "out"\nbase_url = "{BASE_URL}"\n')
    code, _, _ = run("build", "--config", str(config))
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "feeds.opml",
        "feeds.opml.gz",
        "index.html",
        "index.html.gz",
        "nyt",
        "rfi",
        "voa",
    ]


def test_check_exits_1_and_lists_rejections_and_fallbacks(dumps: Path) -> None:
    code, out, _ = run("check", "--dumps", str(dumps))
    assert code == 1
    assert out.count("rejected: ") == 6
    for name in (
        "epoch-nan-body-date.md",
        "epoch-nan-iso-body-date.md",
        "no-epoch-date-line.md",
        "no-date-at-all.md",
    ):
        assert f"{dumps / 'edge' / name}:" in out
    assert "modification time" in out


def test_check_exits_0_on_good_dumps_and_writes_nothing(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "d")
    before = sorted(tmp_path.rglob("*"))
    code, out, _ = run("check", "--dumps", str(tmp_path / "d"))
    assert code == 0 and out == ""
    assert sorted(tmp_path.rglob("*")) == before


def test_check_finds_nul_bytes_deep_in_a_long_body(tmp_path: Path) -> None:
    src = tmp_path / "d" / "s"
    src.mkdir(parents=True)
    body = b"<p>" + b"x" * 10000 + b"\0</p>"
    (src / "a.md").write_bytes(b"<!--1641833943000-->\n[t](https://x.org/)\n------\n\n" + body)
    code, out, _ = run("check", "--dumps", str(tmp_path / "d"))
    assert code == 1 and "NUL byte" in out


def test_version_and_help_on_every_command() -> None:
    code, out, _ = run("--version")
    assert code == 0 and "feedbridge" in out
    for command in cli.commands:
        code, out, _ = run(command, "--help")
        assert code == 0 and "Usage:" in out


README = (REPO / "README.md").read_text("utf-8")


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_readme_documents_every_command_and_option(command: str) -> None:
    assert f"### `feedbridge {command}`" in README
    section = README.split(f"### `feedbridge {command}`", 1)[1].split("\n### ", 1)[0]
    for param in cli.commands[command].params:
        for opt in param.opts:
            if opt.startswith("--") and opt != "--help":
                assert f"`{opt}" in section, f"{command} {opt} is not in the README"


@pytest.mark.parametrize(
    "key", sorted(TOP_KEYS - {"feeds"}) + sorted(f"feeds.{k}" for k in FEED_KEYS)
)
def test_readme_documents_every_config_key(key: str) -> None:
    name = key.removeprefix("feeds.")
    assert re.search(rf"^\| `{re.escape(name)}` \|", README, re.MULTILINE), key


def test_readme_exit_codes_match_the_cli() -> None:
    from feedbridge import cli as cli_module

    names = ("EXIT_OK", "EXIT_REJECTED", "EXIT_USAGE", "EXIT_PUBLISH", "EXIT_STATE")
    for name in (*names, "EXIT_INTERRUPTED"):
        assert f"| {getattr(cli_module, name)} |" in README


def test_edge_folder_alone_builds(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(EDGE, root / "edge")
    code, _, _ = run("build", *target_args(root, tmp_path / "out"))
    assert code == 0
