"""``feedbridge status`` tells the truth: liveness by the lock, the archive's size, and the
state folder wherever the build kept it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from feedbridge.app import open_builder, status_of
from feedbridge.cli import EXIT_OK, EXIT_STATE, EXIT_USAGE, cli
from feedbridge.config import Config
from feedbridge.scan import is_dump_name
from feedbridge.state import locked, write_status

from .conftest import BASE_URL, EXAMPLES, NOW
from .helpers import make_corpus, target_args


def _status(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["status", *args], catch_exceptions=False)
    return result.exit_code, result.stdout + result.stderr


def _dump_files(root: Path) -> list[Path]:
    return [
        p
        for source in root.iterdir()
        if source.is_dir() and not source.name.startswith(".")
        for p in source.iterdir()
        if p.is_file() and is_dump_name(p.name, "*.md")
    ]


def test_a_stopped_daemon_is_not_running_even_if_its_pid_lives(tmp_path: Path) -> None:
    out, state = tmp_path / "out", tmp_path / "state"
    CliRunner().invoke(cli, ["build", *target_args(EXAMPLES, out, state)], catch_exceptions=False)
    info = json.loads((state / "status.json").read_text())
    # as a daemon leaves it: its pid (here: a live process, ours) and its URL
    info.update(pid=os.getpid(), serving="http://127.0.0.1:1/")
    write_status(state, info)
    code, text = _status("--out", str(out), "--state", str(state))
    assert code == EXIT_OK
    assert f"daemon: not running (pid {os.getpid()} stopped)" in text
    assert "daemon pid:" not in text and "serving" not in text
    with locked(state, out):  # now it holds OUT's lock: running
        code, text = _status("--out", str(out), "--state", str(state))
    assert f"daemon pid: {os.getpid()}, serving http://127.0.0.1:1/" in text
    # another process than the daemon that wrote the status holds OUT: a build, say
    write_status(state, {**info, "pid": 1})
    with locked(tmp_path / "other-state", out):
        code, text = _status("--out", str(out), "--state", str(state))
    assert f"running: pid {os.getpid()}" in text and "daemon pid:" not in text


def test_dumps_is_the_archive_not_what_the_last_build_read(tmp_path: Path) -> None:
    dumps = make_corpus(tmp_path / "dumps")
    out, state = tmp_path / "out", tmp_path / "state"
    total = len(_dump_files(dumps))
    config = Config()
    with open_builder(
        config, dumps=dumps, out=out, base_url=BASE_URL, state_dir=state, parallel=False
    ) as (builder, _):
        first = builder.build(now=NOW)
        # a daemon's build of one changed file: it reads one, the archive is unchanged
        changed = next(p for p in (dumps / "voa").iterdir() if p.suffix == ".md")
        os.utime(changed, ns=(NOW.timestamp().__int__() * 10**9,) * 2)
        report = builder.build(now=NOW, paths=[f"voa/{changed.name}"])
        write_status(state, status_of(report, NOW))
        # and a daemon's builds of a new dump, then of a deleted one, keep the count
        shutil.copy(changed, dumps / "voa" / "new.md")
        assert builder.build(now=NOW, paths=["voa/new.md"]).archive == total + 1
        changed.unlink()
        gone = builder.build(now=NOW, paths=[f"voa/{changed.name}", "voa/new.md"])
        assert gone.archive == total == builder.index.count()
    assert report.archive == first.archive == total
    rejected, future = len(report.rejected), len(report.future)
    assert rejected and future
    code, text = _status("--out", str(out), "--state", str(state))
    assert code == EXIT_OK
    accepted = total - rejected - future
    assert (
        f"dumps: {total} in the archive ({accepted} accepted, {rejected} rejected, "
        f"{future} future); the last build read {report.scanned}"
    ) in text
    assert report.scanned < total


def test_status_finds_a_state_folder_set_in_the_config(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "dumps")
    config = tmp_path / "fb.toml"
    config.write_text(
        f'dumps = "dumps"\nout = "out"\nbase_url = "{BASE_URL}"\nstate_dir = "elsewhere"\n'
    )
    result = CliRunner().invoke(cli, ["build", "--config", str(config)], catch_exceptions=False)
    assert result.exit_code == EXIT_OK
    code, text = _status("--out", str(tmp_path / "out"))  # no --config, no --state
    assert code == EXIT_OK, text
    assert "voa: 4 entries" in text
    # the same output built with the default state folder again: that one is found
    shutil.rmtree(tmp_path / "dumps" / "voa")
    args = target_args(tmp_path / "dumps", tmp_path / "out")
    CliRunner().invoke(cli, ["build", *args], catch_exceptions=False)
    code, text = _status("--out", str(tmp_path / "out"))
    assert code == EXIT_OK and "voa" not in text


def test_status_of_an_output_never_built_is_exit_2(tmp_path: Path) -> None:
    code, text = _status("--out", str(tmp_path / "nothing"))
    assert code == EXIT_USAGE
    assert text.count("\n") == 1 and "no build recorded" in text


@pytest.mark.parametrize(
    "damage",
    [
        "{",
        "[]",
        "null",
        '{"feeds": "x"}',
        '{"dumps": "y"}',
        '{"rejected": 3}',
        '{"future": [{"a": 1}]}',
        '{"feeds": {"a": "b"}}',
        '{"last_build": {"pid": "x"}}',
        '{"pid": "x"}',
    ],
)
def test_a_damaged_status_file_is_one_line_exit_4(tmp_path: Path, damage: str) -> None:
    """status.json is written atomically: only damage from outside makes it other than what a
    build writes, and status then says so in one line instead of a traceback."""
    out, state = tmp_path / "out", tmp_path / "state"
    CliRunner().invoke(cli, ["build", *target_args(EXAMPLES, out, state)], catch_exceptions=False)
    (state / "status.json").write_text(damage)
    code, text = _status("--out", str(out), "--state", str(state))
    assert code == EXIT_STATE
    assert text.count("\n") == 1 and "status.json is damaged" in text, text
    CliRunner().invoke(cli, ["build", *target_args(EXAMPLES, out, state)], catch_exceptions=False)
    assert _status("--out", str(out), "--state", str(state))[0] == EXIT_OK
