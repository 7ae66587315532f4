"""``kill -9`` of a build at random moments: the next build is never locked out, leaves no
temporary file, and writes exactly what a clean build writes.

A few thousand generated dumps, so that a cold build forks its scan workers (the kill lands
in the parallel scan too), and a base URL that changes between rounds, so that kills land
while feeds are being written.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from feedbridge.publish import is_temporary
from feedbridge.scan import PARALLEL_MIN_FILES
from feedbridge.state import lock_holder

from .conftest import REPO

ROUNDS = 12
DUMPS = PARALLEL_MIN_FILES + 100
BASES = ("https://a.example/feeds/", "https://b.example/")
#: How long the workers of a killed build may take to be gone (they are SIGKILLed at once).
GRACE = 10.0


def _build(
    dumps: Path, out: Path, state: Path, base: str, *, group: bool = False
) -> subprocess.Popen[bytes]:
    """Start a build; its stderr goes to a file beside OUT (a pipe would stay open as long
    as any process it forked lives)."""
    args = ["--dumps", str(dumps), "--out", str(out), "--state", str(state), "--base-url", base]
    with Path(f"{out}.stderr").open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "feedbridge", "-q", "build", *args],
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=group,
        )


def _finish(proc: subprocess.Popen[bytes], out: Path) -> str:
    proc.wait(timeout=300)
    return Path(f"{out}.stderr").read_text()


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _survivors(marker: str) -> list[int]:
    """Live processes whose command line names ``marker`` (a killed build's workers)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state != "Z":
            pids.append(int(proc.name))
    return pids


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, bytes]]]:
    """The generated dumps, and what a clean build of them writes for each base URL."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from corpus import generate  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    root = tmp_path_factory.mktemp("kill")
    generate(root / "dumps", DUMPS, seed=8)
    clean = {}
    for i, base in enumerate(BASES):
        proc = _build(root / "dumps", root / f"clean{i}", root / f"state{i}", base)
        err = _finish(proc, root / f"clean{i}")
        assert proc.returncode == 0, err
        clean[base] = _files(root / f"clean{i}")
    return root / "dumps", clean


def _wait_locked(out: Path, proc: subprocess.Popen[bytes]) -> bool:
    """Wait until the build holds OUT's lock (it is at work); False if it ended first."""
    while proc.poll() is None:
        if lock_holder(out)[0]:
            return True
        time.sleep(0.005)
    return False


def test_kill_9_at_random_moments(
    archive: tuple[Path, dict[str, dict[str, bytes]]], tmp_path: Path
) -> None:
    dumps, clean = archive
    out, state = tmp_path / "out", tmp_path / "state"
    rng = random.Random(8)
    spans = []  # how long a cold build and a warm one work here: kill within that
    for base in BASES:
        proc = _build(dumps, out, state, base)
        assert _wait_locked(out, proc)
        started = time.monotonic()
        _finish(proc, out)
        spans.append(time.monotonic() - started)
    current = BASES[1]  # what OUT holds
    kills = 0
    for round_ in range(ROUNDS):
        if round_ % 2:  # cold: the kill lands in the parallel scan or the first writes
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(state, ignore_errors=True)
        # warm: another base URL than OUT has, so that the build rewrites every feed
        killed = _build(dumps, out, state, BASES[1 - BASES.index(current)])
        if _wait_locked(out, killed):
            time.sleep(rng.uniform(0, 0.8 * spans[0 if round_ % 2 else 1]))
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=60)
        kills += killed.returncode == -signal.SIGKILL
        current = rng.choice(BASES)
        rebuild = _build(dumps, out, state, current)
        err = _finish(rebuild, out)
        what = f"round {round_}, killed with {killed.returncode}"
        assert rebuild.returncode == 0, (what, err)
        litter = [p for p in (*out.rglob("*"), *state.rglob("*")) if is_temporary(p.name)]
        assert litter == [], what
        assert _files(out) == clean[current], what
        deadline = time.monotonic() + GRACE
        while (alive := _survivors(str(out))) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert alive == [], what
    assert kills >= ROUNDS // 3  # rounds were killed mid-build, not only after it


def test_ctrl_c_stops_a_build_and_its_workers_in_one_line(
    archive: tuple[Path, dict[str, dict[str, bytes]]], tmp_path: Path
) -> None:
    """SIGINT to the whole process group, as a terminal sends it, during a cold build."""
    dumps, _ = archive
    out, state = tmp_path / "out", tmp_path / "state"
    rng = random.Random(2)
    interrupted = 0
    for round_ in range(6):
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
        proc = _build(dumps, out, state, BASES[0], group=True)
        if _wait_locked(out, proc):
            time.sleep(rng.uniform(0, 0.3))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        err = _finish(proc, out)
        what = f"round {round_}"
        if proc.returncode == 0:  # it was done first (not: a Ctrl-C lost in a fork hook)
            assert err == "", what
            continue
        interrupted += 1
        assert (proc.returncode, err) == (130, "feedbridge: error: interrupted\n"), what
        assert lock_holder(out) == (False, None), what
        deadline = time.monotonic() + GRACE
        while (alive := _survivors(str(out))) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert alive == [], what
    assert interrupted
