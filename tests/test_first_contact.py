"""A new user's first steps: make run/build/test, -q/-v anywhere, links to the served address."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from feedbridge.cli import _settings, cli

from .conftest import BASE_URL, EXAMPLES, REPO
from .daemon_helpers import DEADLINE, feedbridge_cmd, free_port, http_request, read, wait_for
from .helpers import target_args


def make_n(*args: str) -> list[str]:
    """The commands ``make -n ARGS`` would run in the repository."""
    if shutil.which("make") is None:
        pytest.fail("make is not installed (the quick start needs it)")
    # As a user's own top-level make, also when the tests run under `make test` (a sub-make
    # would print "Entering/Leaving directory" lines and inherit the outer make's flags).
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.splitlines()


# -- make --------------------------------------------------------------------------------------


def test_make_run_serves_on_host_and_port() -> None:
    assert make_n("run", "PORT=9000")[-1] == (
        ".venv/bin/feedbridge run --config config/feedbridge.toml --serve 127.0.0.1:9000"
    )
    assert make_n("run", "HOST=0.0.0.0", "PORT=80")[-1].endswith(" --serve 0.0.0.0:80")
    assert make_n("run")[-1].endswith(" --serve 127.0.0.1:8080")


def test_make_build_links_to_where_make_run_serves() -> None:
    assert make_n("build", "PORT=9000")[-1] == (
        ".venv/bin/feedbridge build --config config/feedbridge.toml "
        "--base-url http://127.0.0.1:9000/"
    )


def test_make_run_installs_only_what_running_needs() -> None:
    # -B: as on a fresh clone, every recipe on the way is shown.
    installs = [line for line in make_n("-B", "run") if "pip install" in line]
    assert installs and not any("test" in line for line in installs)
    assert any("-e '.[test]'" in line for line in make_n("-B", "test"))


# -- -q and -v before or after the command ----------------------------------------------------


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_before_or_after_build(where: str, tmp_path: Path) -> None:
    command = ["build", *target_args(EXAMPLES, tmp_path / "out")]
    args = ["-q", *command] if where == "before" else [*command, "-q"]
    code, err = invoke(*args)
    assert code == 0 and err == ""
    code, err = invoke(*command)
    assert code == 0 and "feeds," in err  # without -q, the summary line


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_before_or_after_check(where: str) -> None:
    args = ["-q", "check", "--dumps", str(EXAMPLES)]
    if where == "after":
        args = [*args[1:], "-q"]
    code, err = invoke(*args)
    assert code == 0 and err == ""


@pytest.mark.parametrize(
    ("args", "level"),
    [
        (["build", "-v"], logging.INFO),
        (["-v", "build", "-v"], logging.DEBUG),
        (["build", "-vv"], logging.DEBUG),
        (["build", "-v", "-q"], logging.ERROR),
        (["-q", "build", "-v"], logging.ERROR),
        (["build"], logging.WARNING),
    ],
)
def test_verbosity_adds_up_across_the_command(args: list[str], level: int, tmp_path: Path) -> None:
    code, _ = invoke(*args, *target_args(EXAMPLES, tmp_path / "out"))
    assert code == 0
    assert logging.getLogger("feedbridge").level == level


@pytest.mark.parametrize("command", ["build", "check", "run", "status"])
def test_every_command_takes_q_and_v(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0
    assert "-q, --quiet" in result.stdout and "-v, --verbose" in result.stdout


def test_status_accepts_q_after_the_command(tmp_path: Path) -> None:
    out, state = tmp_path / "out", tmp_path / "state"
    assert invoke("-q", "build", *target_args(EXAMPLES, out, state))[0] == 0
    result = CliRunner().invoke(cli, ["status", "--out", str(out), "--state", str(state), "-q"])
    assert result.exit_code == 0 and "feeds:" in result.stdout


# -- the base URL when serving -----------------------------------------------------------------


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """The shipped example config, as shipped, beside a copy of its dumps."""
    folder = tmp_path / "config"
    folder.mkdir()
    shutil.copy(REPO / "config" / "feedbridge.toml", folder)
    shutil.copytree(EXAMPLES, folder / "dumps")
    return folder / "feedbridge.toml"


@pytest.fixture
def daemon_on_a_port(
    example: Path, tmp_path: Path
) -> Iterator[tuple[int, subprocess.Popen[bytes], Path]]:
    port = free_port()
    log = tmp_path / "daemon.log"
    with log.open("w") as log_file:
        proc = subprocess.Popen(
            feedbridge_cmd(
                "run",
                "--config",
                str(example),
                "--serve",
                f"127.0.0.1:{port}",
                "--state",
                str(tmp_path / "state"),
            ),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            wait_for(
                lambda: (
                    http_request(port, "GET", "/feeds.opml")[0] == 200 or proc.poll() is not None
                ),
                what="the served feeds",
            )
            assert proc.poll() is None, read(log)
            yield port, proc, log
        finally:
            proc.terminate()
            proc.wait(timeout=DEADLINE)


def _links_to(port: int, base: str) -> bool:
    atom = http_request(port, "GET", "/voa/atom.xml")[2]
    opml = http_request(port, "GET", "/feeds.opml")[2]
    return f'href="{base}voa/atom.xml"'.encode() in atom and f"{base}voa/".encode() in opml


def test_the_example_served_on_any_port_links_to_that_port(
    daemon_on_a_port: tuple[int, subprocess.Popen[bytes], Path],
) -> None:
    port, _, _ = daemon_on_a_port
    wait_for(lambda: _links_to(port, f"http://127.0.0.1:{port}/"), what="links to the port")
    assert b":8080/" not in http_request(port, "GET", "/voa/atom.xml")[2]


def test_a_reload_keeps_linking_to_the_served_address(
    daemon_on_a_port: tuple[int, subprocess.Popen[bytes], Path],
) -> None:
    port, proc, log = daemon_on_a_port
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "SIGHUP" in read(log), what="the reload")
    assert "SIGHUP: reloaded" in read(log), read(log)
    assert _links_to(port, f"http://127.0.0.1:{port}/")


def test_serving_on_port_0_needs_a_base_url(example: Path) -> None:
    code, err = invoke("run", "--config", str(example), "--serve", "127.0.0.1:0")
    assert code == 2 and "port 0" in err and "base_url" in err


@pytest.mark.parametrize(
    ("config_base", "cli_base", "serve", "expected"),
    [
        (None, None, "127.0.0.1:9000", "http://127.0.0.1:9000/"),
        (None, None, "0.0.0.0:9000", "http://127.0.0.1:9000/"),
        ("https://feeds.example.org/", None, "127.0.0.1:9000", "https://feeds.example.org/"),
        (None, BASE_URL, "127.0.0.1:9000", BASE_URL),
        ("https://x.example/", BASE_URL, "127.0.0.1:9000", BASE_URL),
    ],
)
def test_base_url_precedence(
    tmp_path: Path, config_base: str | None, cli_base: str | None, serve: str, expected: str
) -> None:
    config = tmp_path / "fb.toml"
    config.write_text(f'base_url = "{config_base}"\n' if config_base else "")
    s = _settings(config, EXAMPLES, tmp_path / "out", cli_base, serve=serve)
    assert s.base_url == expected


def test_serve_in_the_config_gives_build_its_base_url(tmp_path: Path) -> None:
    config = tmp_path / "fb.toml"
    config.write_text(f'dumps = "{EXAMPLES}"\nout = "out"\nserve = "127.0.0.1:9001"\n')
    code, _ = invoke("build", "--config", str(config), "-q")
    assert code == 0
    assert (
        b'href="http://127.0.0.1:9001/voa/atom.xml"'
        in (tmp_path / "out" / "voa" / "atom.xml").read_bytes()
    )


def test_check_needs_no_address(tmp_path: Path) -> None:
    config = tmp_path / "fb.toml"
    config.write_text(f'dumps = "{EXAMPLES}"\nserve = "127.0.0.1:0"\n')
    assert invoke("check", "--config", str(config), "-q") == (0, "")
