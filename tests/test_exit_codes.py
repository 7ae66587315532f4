"""Every command under every failure of the folders around the dumps: one line on stderr, no
traceback, the documented exit code.

Read-only and full folders are real where the machine allows it (a read-only bind mount, a
small tmpfs: the tests run as root); the mapping of the same errors is also checked with
simulated ones, which need no privilege.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from feedbridge.cli import EXIT_OK, EXIT_PUBLISH, EXIT_STATE, EXIT_USAGE, cli
from feedbridge.state import lock_holder

from .conftest import BASE_URL, EXAMPLES

#: Commands that never finish on success (``run``) are only run where they must fail at once.
TIMEOUT = 60


def _feedbridge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "feedbridge", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        env=env,
    )


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here ({result.stderr.strip()}); see the simulated tests")


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """``folder`` on a read-only bind mount of itself (EROFS for every write)."""
    _mount("--bind", str(folder), str(folder))
    try:
        _mount("-o", "remount,bind,ro", str(folder))
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder))
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def fill(folder: Path) -> None:
    """Fill the file system of ``folder`` to the last byte (ENOSPC for every write)."""
    with contextlib.suppress(OSError), (folder / "filler").open("wb", buffering=0) as f:
        while True:
            f.write(b"x" * 512)


@contextlib.contextmanager
def full(folder: Path) -> Iterator[Path]:
    """``folder`` on a small tmpfs filled to the last byte."""
    with tmpfs(folder, "64k"):
        fill(folder)
        yield folder


def _assert_one_line(result: subprocess.CompletedProcess[str], code: int, what: str) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, (what, result.returncode, result.stderr)
    if code != EXIT_OK:
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("feedbridge: error: "), result.stderr


Setup = Callable[[Path, "contextlib.ExitStack"], tuple[Path, Path]]


def _out_in_proc(tmp: Path, stack: contextlib.ExitStack) -> tuple[Path, Path]:
    return Path("/proc/feedbridge-out"), tmp / "state"


def _out_is_a_file(tmp: Path, stack: contextlib.ExitStack) -> tuple[Path, Path]:
    (tmp / "file").write_text("a file")
    return tmp / "file", tmp / "state"


def _out_under_a_file(tmp: Path, stack: contextlib.ExitStack) -> tuple[Path, Path]:
    (tmp / "file").write_text("a file")
    return tmp / "file" / "out", tmp / "state"


def _state_is_a_file(tmp: Path, stack: contextlib.ExitStack) -> tuple[Path, Path]:
    (tmp / "file").write_text("a file")
    return tmp / "out", tmp / "file"


def _state_in_proc(tmp: Path, stack: contextlib.ExitStack) -> tuple[Path, Path]:
    return tmp / "out", Path("/proc/feedbridge-state")


def _state_read_only(tmp: Path, stack: contextlib.ExitStack) -> tuple[Path, Path]:
    _build_once(tmp)
    stack.enter_context(read_only(tmp / "state"))
    return tmp / "out", tmp / "state"


def _state_full(tmp: Path, stack: contextlib.ExitStack) -> tuple[Path, Path]:
    stack.enter_context(full(tmp / "state"))
    return tmp / "out", tmp / "state"


def _out_read_only(tmp: Path, stack: contextlib.ExitStack) -> tuple[Path, Path]:
    _build_once(tmp)
    stack.enter_context(read_only(tmp / "out"))
    return tmp / "out", tmp / "state"


def _out_full(tmp: Path, stack: contextlib.ExitStack) -> tuple[Path, Path]:
    stack.enter_context(full(tmp / "out"))
    return tmp / "out", tmp / "state"


def _build_once(tmp: Path) -> None:
    args = ["--dumps", str(EXAMPLES), "--out", str(tmp / "out"), "--state", str(tmp / "state")]
    _assert_one_line(_feedbridge("build", *args, "--base-url", BASE_URL), EXIT_OK, "first build")


#: (setup, exit code of build, of run, of status); None: that command is not affected.
CASES: dict[str, tuple[Setup, int, int | None, int]] = {
    "out in /proc": (_out_in_proc, EXIT_PUBLISH, EXIT_PUBLISH, EXIT_USAGE),
    "out is a file": (_out_is_a_file, EXIT_PUBLISH, EXIT_PUBLISH, EXIT_USAGE),
    "out under a file": (_out_under_a_file, EXIT_PUBLISH, EXIT_PUBLISH, EXIT_USAGE),
    "state is a file": (_state_is_a_file, EXIT_STATE, EXIT_STATE, EXIT_STATE),
    "state in /proc": (_state_in_proc, EXIT_STATE, EXIT_STATE, EXIT_USAGE),
    "state read-only": (_state_read_only, EXIT_STATE, EXIT_STATE, EXIT_OK),
    "state full": (_state_full, EXIT_STATE, EXIT_STATE, EXIT_USAGE),
    # the daemon keeps running when a build cannot be written: not run here
    "out read-only": (_out_read_only, EXIT_PUBLISH, None, EXIT_OK),
    "out full": (_out_full, EXIT_PUBLISH, None, EXIT_USAGE),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_command_fails_in_one_line_with_its_code(tmp_path: Path, case: str) -> None:
    setup, build_code, run_code, status_code = CASES[case]
    with contextlib.ExitStack() as stack:
        out, state = setup(tmp_path, stack)
        # another base URL: every feed must be written again
        target = ["--dumps", str(EXAMPLES), "--out", str(out), "--base-url", "https://b.example/"]
        _assert_one_line(_feedbridge("build", *target, "--state", str(state)), build_code, case)
        if run_code is not None:
            result = _feedbridge("run", *target, "--state", str(state), "--interval", "60")
            _assert_one_line(result, run_code, case)
        status = _feedbridge("status", "--out", str(out), "--state", str(state))
        _assert_one_line(status, status_code, case)
        check = _feedbridge("check", "--dumps", str(EXAMPLES))
        _assert_one_line(check, EXIT_OK, case)  # check touches neither folder


def test_a_failed_build_leaves_the_old_feeds_whole_and_no_temporaries(tmp_path: Path) -> None:
    _build_once(tmp_path)
    out = tmp_path / "out"
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with full(tmp_path / "spare") as spare:
        # OUT full: nothing but the old feeds, and no temporary left behind
        for p in before:
            target = spare / p.relative_to(out)
            target.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                shutil.copy(p, target)
        args = ["--dumps", str(EXAMPLES), "--out", str(spare), "--base-url", "https://b.example/"]
        kept = {p: p.read_bytes() for p in spare.rglob("*") if p.is_file()}
        _assert_one_line(_feedbridge("build", *args), EXIT_PUBLISH, "full out")
        assert {p: p.read_bytes() for p in spare.rglob("*") if p.is_file()} == kept
    with read_only(out):
        args = ["--dumps", str(EXAMPLES), "--out", str(out), "--base-url", "https://b.example/"]
        _assert_one_line(_feedbridge("build", *args), EXIT_PUBLISH, "read-only out")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_full_state_folder_never_sets_the_index_aside(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "state", "1m") as state:
        _build_once(tmp_path)
        fill(state)
        args = ["--dumps", str(EXAMPLES), "--out", str(tmp_path / "out"), "--state", str(state)]
        result = _feedbridge("build", *args, "--base-url", "https://b.example/")
        _assert_one_line(result, EXIT_STATE, "full state")
        (state / "filler").unlink()
        assert (state / "index.sqlite3").is_file()
        assert not [p for p in state.iterdir() if "corrupt" in p.name]
        _build_once(tmp_path)  # and once there is room again, it builds


# -- the same errors, simulated: no privilege needed ---------------------------------------------


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stderr


def _target(tmp_path: Path) -> list[str]:
    return ["--dumps", str(EXAMPLES), "--out", str(tmp_path / "out"), "--base-url", BASE_URL]


@pytest.mark.parametrize("where", ["open", "build"])
@pytest.mark.parametrize(
    "message", ["database or disk is full", "attempt to write a readonly database"]
)
def test_an_index_that_cannot_be_written_is_exit_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, message: str, where: str
) -> None:
    from feedbridge import app, build

    def refuse(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError(message)

    if where == "open":
        monkeypatch.setattr(app, "Index", refuse)
    else:
        monkeypatch.setattr(build.Builder, "build", refuse)
    code, err = _invoke("build", *_target(tmp_path), "--state", str(tmp_path / "state"))
    assert code == EXIT_STATE
    assert err == f"feedbridge: error: index {tmp_path / 'state' / 'index.sqlite3'}: {message}\n"


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_a_status_that_cannot_be_written_is_exit_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: int
) -> None:
    from feedbridge import publish

    real = publish.os.replace

    def refuse(src: str, dst: str) -> None:
        if Path(dst).name == "status.json":
            raise OSError(error, "simulated", src)
        real(src, dst)

    monkeypatch.setattr(publish.os, "replace", refuse)
    code, err = _invoke("build", *_target(tmp_path), "--state", str(tmp_path / "state"))
    assert code == EXIT_STATE
    assert err.count("\n") == 1 and "status.json: simulated" in err, err
    assert not [p for p in (tmp_path / "state").iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EROFS])
def test_an_output_that_cannot_be_written_is_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: int
) -> None:
    from feedbridge import publish

    def refuse(fd: int) -> None:
        raise OSError(error, "simulated")

    monkeypatch.setattr(publish.os, "fsync", refuse)
    code, err = _invoke("build", *_target(tmp_path), "--state", str(tmp_path / "state"))
    assert code == EXIT_PUBLISH
    assert err.startswith(f"feedbridge: error: cannot write {tmp_path / 'out'}"), err
    assert err.count("\n") == 1, err
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


def test_an_unlink_refused_in_out_is_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A raw OSError about a file in OUT (here: removing a feed whose source is gone)."""
    dumps = tmp_path / "dumps"
    shutil.copytree(EXAMPLES, dumps)
    target = ["--dumps", str(dumps), "--out", str(tmp_path / "out"), "--base-url", BASE_URL]
    assert _invoke("build", *target)[0] == EXIT_OK
    shutil.rmtree(dumps / "voa")

    def refuse(self: Path, missing_ok: bool = False) -> None:
        raise PermissionError(errno.EACCES, "simulated", str(self))

    monkeypatch.setattr(Path, "unlink", refuse)
    code, err = _invoke("build", *target)
    assert code == EXIT_PUBLISH
    assert (
        err == f"feedbridge: error: cannot remove {tmp_path / 'out' / 'voa'}/atom.xml: simulated\n"
    )


def test_ctrl_c_is_not_exit_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from feedbridge import app
    from feedbridge.cli import EXIT_INTERRUPTED

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(app.LockedBuilder, "build", interrupted)
    code, err = _invoke("build", *_target(tmp_path))
    assert (code, err) == (EXIT_INTERRUPTED, "feedbridge: error: interrupted\n")
    assert lock_holder(tmp_path / "out") == (False, None)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["build"], "no dumps folder"),
        (["build", "--bogus"], "No such option '--bogus'"),
        (["check", "--dumps", "/etc/passwd"], "'/etc/passwd' is a file"),
        (["run", "--interval", "-5"], "--interval"),
        (["nonsense"], "No such command 'nonsense'"),
        (["status", "--out"], "'--out' requires an argument"),
    ],
)
def test_a_usage_error_is_one_line_with_exit_2(args: list[str], says: str) -> None:
    """Errors click finds in the command line are errors like any other: one line."""
    result = _feedbridge(*args)
    _assert_one_line(result, EXIT_USAGE, " ".join(args))
    assert says in result.stderr and "--help" in result.stderr


def test_help_and_version_still_exit_0() -> None:
    for args in (["--help"], ["build", "--help"], ["--version"]):
        result = _feedbridge(*args)
        assert (result.returncode, result.stderr) == (0, ""), args
        assert result.stdout
