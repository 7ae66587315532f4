"""The output's lock: on OUT itself, never inherited by forked workers, never stale; and the
temporary files of killed writers, removed by the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from feedbridge.errors import LockedError, PublishError, StateError
from feedbridge.publish import is_temporary, write_atomic
from feedbridge.state import flock_owner, lock_holder, locked

from .conftest import EXAMPLES
from .helpers import build

#: How long a killed process's workers may take to be gone (they are SIGKILLed at once).
GRACE = 10.0


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie waiting for its reaper is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_gone(pids: list[int]) -> list[int]:
    deadline = time.monotonic() + GRACE
    while (alive := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def test_lock_is_on_out_whatever_the_state_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with locked(tmp_path / "state-a", out):
        assert lock_holder(out) == (True, os.getpid())
        held = f"{out} is in use by pid {os.getpid()}"
        with pytest.raises(LockedError, match=held), locked(tmp_path / "state-b", out):
            pass
    assert lock_holder(out) == (False, None)
    assert list(out.iterdir()) == []  # the lock leaves no file in OUT


def test_two_outputs_never_share_a_state_folder_at_once(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with locked(state, tmp_path / "out-a"):
        held = f"state folder {state} is in use by pid"
        with pytest.raises(LockedError, match=held), locked(state, tmp_path / "out-b"):
            pass
        # the failed attempt let go of OUT b and kept the holder's pid in the lock file
        assert lock_holder(tmp_path / "out-b") == (False, None)
        assert (state / "lock").read_text() == f"{os.getpid()}\n"


def test_a_second_build_or_daemon_with_its_own_state_exits_2(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from feedbridge.cli import cli

    out = tmp_path / "out"
    args = ["--dumps", str(EXAMPLES), "--out", str(out), "--base-url", "https://x.example/"]
    for command in ("build", "run"):
        with locked(tmp_path / "daemon-state", out):
            state = ["--state", str(tmp_path / "other")]
            result = CliRunner().invoke(cli, [command, *args, *state], catch_exceptions=False)
        assert result.exit_code == 2, command
        assert result.stderr == f"feedbridge: error: {out} is in use by pid {os.getpid()} " + (
            "(feedbridge lock)\n"
        )


@pytest.mark.parametrize("out", ["/proc/feedbridge-out", "{tmp}/file", "{tmp}/file/out"])
def test_an_out_that_cannot_be_created_is_a_publish_error(tmp_path: Path, out: str) -> None:
    (tmp_path / "file").write_text("not a folder")
    where = Path(out.format(tmp=tmp_path))
    with pytest.raises(PublishError, match=f"output folder {where}"), locked(tmp_path / "s", where):
        pass


@pytest.mark.parametrize("state", ["/proc/feedbridge-state", "{tmp}/file", "{tmp}/file/state"])
def test_a_state_folder_that_cannot_be_created_is_a_state_error(tmp_path: Path, state: str) -> None:
    (tmp_path / "file").write_text("not a folder")
    where = Path(state.format(tmp=tmp_path))
    with pytest.raises(StateError, match=f"state folder {where}"), locked(where, tmp_path / "out"):
        pass
    assert lock_holder(tmp_path / "out") == (False, None)  # OUT was let go


_HOLD_AND_DIE = textwrap.dedent(
    """
    import multiprocessing, os, signal, sys, time
    from pathlib import Path
    from feedbridge.state import locked

    out, state, pids = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    with locked(state, out):
        pool = multiprocessing.get_context("fork").Pool(2)
        for _ in range(2):
            pool.apply_async(time.sleep, (3600,))
        child = os.fork()
        if child == 0:  # a bare fork too, busy in Python code of its own
            time.sleep(3600)
            os._exit(0)
        pids.write_text(" ".join(str(p.pid) for p in pool._pool) + f" {child}")
        os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_kill_9_releases_the_lock_and_the_workers_die(tmp_path: Path) -> None:
    out, state, pids = tmp_path / "out", tmp_path / "state", tmp_path / "pids"
    with (tmp_path / "stderr").open("wb") as err:  # not a pipe: orphans would hold it open
        proc = subprocess.run(
            [sys.executable, "-c", _HOLD_AND_DIE, str(out), str(state), str(pids)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            timeout=60,
            check=False,
        )
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "stderr").read_text()
    workers = [int(p) for p in pids.read_text().split()]
    try:
        # at once, not after some grace: no forked child kept the lock
        assert lock_holder(out) == (False, None)
        with locked(tmp_path / "another-state", out), locked(state, tmp_path / "another-out"):
            pass
        assert len(workers) == 3
        assert _wait_gone(workers) == []
    finally:
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_child_whose_parent_is_already_gone_dies() -> None:
    from feedbridge.state import die_with_parent

    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        die_with_parent(os.getppid())  # the right parent: lives on
        die_with_parent(-1)  # a parent that is not ours any more: dies here
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def _child_state() -> int:
    """In a forked child: bit 0 set if it dies with its parent, bit 1 if it ignores SIGINT,
    bit 2 if SIGINT is still blocked (it must not be: it is only held back across the fork)."""
    import ctypes

    pdeathsig = ctypes.c_int(0)
    ctypes.CDLL(None).prctl(2, ctypes.byref(pdeathsig), 0, 0, 0)  # PR_GET_PDEATHSIG
    dies = pdeathsig.value == signal.SIGKILL
    blocked = signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    return dies | (signal.getsignal(signal.SIGINT) == signal.SIG_IGN) << 1 | blocked << 2


def _fork_state() -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os._exit(_child_state())
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status)
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())  # the parent's
    return os.WEXITSTATUS(status)


def test_a_child_forked_under_the_lock_dies_with_its_parent_and_leaves_it_ctrl_c(
    tmp_path: Path,
) -> None:
    with locked(tmp_path / "state", tmp_path / "out"):
        assert _fork_state() == 0b11
        assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN  # the parent's is kept
    # forked after the lock was let go (a pool's thread, while an interrupted build unwinds):
    # it dies with its parent too, but Ctrl-C is its own again
    assert _fork_state() == 0b01
    # a grandchild: not tied to its parent, and SIGINT not left blocked
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            code = _fork_state()
        except BaseException:
            code = 99
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


_CTRL_C_IN_A_FORK_HOOK = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from feedbridge.state import locked

    # a Ctrl-C that lands while Python runs its fork hooks (logging's, say)
    os.register_at_fork(before=lambda: os.kill(os.getpid(), signal.SIGINT))
    with locked(Path(sys.argv[1]), Path(sys.argv[2])):
        try:
            if os.fork() == 0:
                os._exit(0)
        except KeyboardInterrupt:
            print("interrupted")
        else:
            print("lost")
    """
)


def test_a_ctrl_c_during_a_fork_reaches_the_code_that_forked(tmp_path: Path) -> None:
    """Python drops what a fork hook raises: held back across the fork, the Ctrl-C surfaces
    after it, where a build can stop its workers and exit 130."""
    result = subprocess.run(
        [sys.executable, "-c", _CTRL_C_IN_A_FORK_HOOK, str(tmp_path / "s"), str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.stdout, result.stderr) == ("interrupted\n", "")


@pytest.mark.parametrize(
    ("line", "owner"),
    [
        ("1: FLOCK  ADVISORY  WRITE 4242 00:2f:1234 0 EOF", 4242),
        ("1: -> FLOCK  ADVISORY  WRITE 77 00:2f:1234 0 EOF", None),  # a waiter
        ("2: POSIX  ADVISORY  WRITE 4242 00:2f:1234 0 EOF", None),  # not flock
        ("1: FLOCK  ADVISORY  WRITE 4242 00:2f:1235 0 EOF", None),  # another inode
        ("1: FLOCK  ADVISORY  WRITE 4242 00:30:1234 0 EOF", None),  # another device
        ("1: FLOCK  ADVISORY  WRITE -1 00:2f:1234 0 EOF", 0),  # held, pid not visible here
        ("garbage", None),
    ],
)
def test_flock_owner_reads_proc_locks(line: str, owner: int | None) -> None:
    assert flock_owner(line + "\n", os.makedev(0, 0x2F), 1234) == owner


# -- temporaries -------------------------------------------------------------------------------


def test_temporaries_have_a_pattern_of_their_own(tmp_path: Path) -> None:
    seen: list[str] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        seen.append(Path(src).name)
        real_replace(src, dst)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "replace", spy)
        write_atomic(tmp_path / "atom.xml", b"x")
    assert len(seen) == 1 and is_temporary(seen[0]), seen
    for name in ("atom.xml", ".atom.xml.abcdefgh.tmp", "notes.tmp", ".x.feedbridge.abc.tmp"):
        assert not is_temporary(name), name


def test_a_build_removes_what_killed_writers_left_and_nothing_else(tmp_path: Path) -> None:
    out, state = tmp_path / "out", tmp_path / "state"
    build(EXAMPLES, out, state=state)
    litter = [
        out / ".index.html.feedbridge.k2j4h5g6.tmp",
        out / "voa" / ".atom.xml.feedbridge.a_b9c8d7.tmp",
        state / ".status.json.feedbridge.zz00yy11.tmp",
    ]
    users = [
        out / ".atom.xml.abcdefgh.tmp",  # not our pattern
        out / "voa" / "notes.tmp",
        out / "own" / "deep" / ".x.feedbridge.abc.tmp",
        state / "own" / ".x.feedbridge.k2j4h5g6.tmp",  # the state folder is not walked
    ]
    for path in (*litter, *users):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    (out / "link").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere").mkdir()
    outside = tmp_path / "elsewhere" / ".atom.xml.feedbridge.k2j4h5g6.tmp"
    outside.write_bytes(b"not under OUT")
    build(EXAMPLES, out, state=state)
    assert [p for p in litter if p.exists()] == []
    assert all(p.read_bytes() == b"partial" for p in users)
    assert outside.exists()
