"""Progress bars: drawn on a terminal for long phases, never elsewhere or under -q."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import click
import pytest

from feedbridge import cli as cli_module
from feedbridge.progress import no_progress, terminal_progress

from .conftest import BASE_URL, EXAMPLES
from .helpers import build, target_args


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_bar_draws_on_a_terminal() -> None:
    stream = FakeTerminal()
    bar = terminal_progress(stream, delay=0)(10, "scanning", "file")
    bar.update(4)
    bar.close()
    assert "scanning" in stream.getvalue() and "/10 " in stream.getvalue()


@pytest.mark.parametrize("archive", [True, False])
def test_build_reports_progress_of_both_phases(tmp_path: Path, archive: bool) -> None:
    calls: list[tuple[int | None, str]] = []
    seen: dict[str, int] = {}

    class Recorder:
        def __init__(self, desc: str) -> None:
            self.desc = desc

        def update(self, n: int = 1) -> None:
            seen[self.desc] = seen.get(self.desc, 0) + n

        def close(self) -> None:
            pass

    def progress(total: int | None, desc: str, unit: str) -> Recorder:
        calls.append((total, desc))
        return Recorder(desc)

    dumps = tmp_path / "d"
    shutil.copytree(EXAMPLES, dumps)
    from feedbridge.app import run_build
    from feedbridge.config import Config
    from feedbridge.model import BuildReport

    report: BuildReport = run_build(
        Config(archive=archive, limit=1),  # 3 feeds of 1 entry; 7 entries older than theirs
        dumps=dumps,
        out=tmp_path / "o",
        base_url=BASE_URL,
        state_dir=tmp_path / "s",
        now=__import__("tests.conftest", fromlist=["NOW"]).NOW,
        progress=progress,
    )
    assert report.entries == 3
    if archive:  # feeds read and clean their bodies first (their end is where the archives
        # start), archives the bodies of the older entries
        assert [desc for _, desc in calls] == ["scanning", "cleaning", "archiving"]
        assert seen == {"scanning": 10, "archiving": 7, "cleaning": 3} and calls[2][0] == 7
    else:
        assert [desc for _, desc in calls] == ["scanning", "cleaning"]
        assert seen == {"scanning": 10, "cleaning": 3}


@pytest.mark.parametrize(
    ("tty", "quiet", "drawn"), [(True, False, True), (True, True, False), (False, False, False)]
)
def test_cli_draws_only_on_a_terminal_and_not_quiet(
    monkeypatch: pytest.MonkeyPatch, tty: bool, quiet: bool, drawn: bool
) -> None:
    stream = FakeTerminal() if tty else io.StringIO()
    monkeypatch.setattr(cli_module.sys, "stderr", stream)
    ctx = click.Context(cli_module.cli, obj={"quiet": quiet, "verbose": 0})
    assert (cli_module._progress(ctx) is not no_progress) == drawn


def test_no_bar_in_captured_output(tmp_path: Path) -> None:
    from click.testing import CliRunner

    result = CliRunner().invoke(
        cli_module.cli,
        ["build", *target_args(EXAMPLES, tmp_path / "o")],
    )
    assert result.exit_code == 0
    assert "scanning" not in result.stderr and "\r" not in result.stderr


def test_build_helper_still_works(tmp_path: Path) -> None:
    assert build(EXAMPLES, tmp_path / "o").entries == 10
