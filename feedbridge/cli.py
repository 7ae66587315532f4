"""The thin command-line layer: parse options, call the library, print, exit.

Exit codes: 0 success; 1 dumps were rejected (``build --strict``, ``check``); 2 usage,
configuration or lock errors; 3 the output could not be written.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from feedbridge import __version__
from feedbridge.config import Config, check_base_url, load_config
from feedbridge.errors import ConfigError, FeedbridgeError, LockedError, PublishError
from feedbridge.model import BuildReport
from feedbridge.progress import Progress, no_progress, terminal_progress

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_PUBLISH = 3

logger = logging.getLogger("feedbridge")


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = (
        logging.ERROR
        if quiet
        else logging.DEBUG
        if verbose > 1
        else (logging.INFO if verbose else logging.WARNING)
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("feedbridge: %(levelname)s: %(message)s"))
    root = logging.getLogger("feedbridge")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _fail(code: int, message: str) -> NoReturn:
    click.echo(f"feedbridge: error: {message}", err=True)
    sys.exit(code)


class Settings:
    """The resolved settings of one command: config file, then command-line overrides."""

    def __init__(self, config: Config, dumps: Path, out: Path | None, base_url: str | None) -> None:
        self.config = config
        self.dumps = dumps
        self.out = out
        self.base_url = base_url


def _settings(
    config_file: Path | None,
    dumps: Path | None,
    out: Path | None,
    base_url: str | None,
    *,
    need_out: bool = True,
) -> Settings:
    config = load_config(config_file) if config_file else Config()
    dumps = dumps.resolve() if dumps else config.dumps
    out = out.resolve() if out else config.out
    base_url = check_base_url(base_url) if base_url else config.base_url
    if dumps is None:
        raise click.UsageError("no dumps folder: pass --dumps or set 'dumps' in the config")
    if not dumps.is_dir():
        raise ConfigError(f"dumps folder {dumps} does not exist or is not a folder")
    if need_out and out is None:
        raise click.UsageError("no output folder: pass --out or set 'out' in the config")
    if need_out and base_url is None:
        raise click.UsageError("no base URL: pass --base-url or set 'base_url' in the config")
    return Settings(config, dumps, out, base_url)


def _progress(ctx: click.Context) -> Progress:
    """A bar on stderr for long builds, when it is a terminal and not -q."""
    if ctx.obj["quiet"] or not sys.stderr.isatty():
        return no_progress
    return terminal_progress(sys.stderr)


def _print_report(report: BuildReport, *, verbose: bool) -> None:
    for w in report.warnings:
        click.echo(f"warning: {w}", err=True)
    for r in report.rejected:
        click.echo(f"rejected: {r}", err=True)
    for d in report.future:
        click.echo(
            f"future: {d.path}: dated {d.published:%Y-%m-%dT%H:%M:%SZ}, left out until then",
            err=True,
        )
    if verbose:
        for d in report.fallbacks:
            click.echo(f"fallback: {d.path}: time from {d.provenance.value}", err=True)


dumps_option = click.option(
    "--dumps",
    type=click.Path(path_type=Path, file_okay=False),
    help="Root folder of the dumps; each subfolder is a source.",
)
out_option = click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="Output folder for the feeds (served as is by any web server).",
)
config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="TOML configuration file (see README).",
)
state_option = click.option(
    "--state",
    "state_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="State folder (index, lock, status); default under $XDG_CACHE_HOME.",
)
common_options = [
    dumps_option,
    out_option,
    click.option("--base-url", help="Public URL of the output folder, for self links and ids."),
    config_option,
    state_option,
]


@contextlib.contextmanager
def exit_codes() -> Iterator[None]:
    """Turn the errors a command expects into a one-line message and its exit code."""
    try:
        yield
    except (ConfigError, LockedError) as e:
        _fail(EXIT_USAGE, str(e))
    except PublishError as e:
        _fail(EXIT_PUBLISH, str(e))


def with_common(f: Any) -> Any:
    for option in reversed(common_options):
        f = option(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="feedbridge")
@click.option("-v", "--verbose", count=True, help="More output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Republish folders of article dumps as Atom, RSS and JSON Feed."""
    _setup_logging(verbose, quiet)
    ctx.obj = {"verbose": verbose, "quiet": quiet}


@cli.command()
@with_common
@click.option("--strict", is_flag=True, help="Exit 1 if any dump was rejected.")
@click.pass_context
def build(
    ctx: click.Context,
    dumps: Path | None,
    out: Path | None,
    base_url: str | None,
    config_file: Path | None,
    state_dir: Path | None,
    strict: bool,
) -> None:
    """Regenerate every feed once and exit.

    Writes OUT/NAME/atom.xml, rss.xml, feed.json and index.html (its page) for every feed,
    plus OUT/index.html and OUT/feeds.opml; files whose bytes would not change are not touched.
    """
    from feedbridge.app import run_build

    with exit_codes():
        s = _settings(config_file, dumps, out, base_url)
        assert s.out is not None and s.base_url is not None
        report = run_build(
            s.config,
            dumps=s.dumps,
            out=s.out,
            base_url=s.base_url,
            state_dir=state_dir or s.config.state_dir,
            now=datetime.now(UTC),
            progress=_progress(ctx),
            fallbacks=ctx.obj["verbose"] > 0,
        )
    _print_report(report, verbose=ctx.obj["verbose"] > 0)
    if not ctx.obj["quiet"]:
        click.echo(
            f"feedbridge: {len(report.feeds)} feeds, {report.entries} entries, "
            f"{len(report.written)} files written, {len(report.rejected)} dumps rejected, "
            f"{len(report.future)} in the future",
            err=True,
        )
    if strict and report.rejected:
        sys.exit(EXIT_REJECTED)


@cli.command()
@dumps_option
@config_option
@click.pass_context
def check(ctx: click.Context, dumps: Path | None, config_file: Path | None) -> None:
    """Lint every dump without writing anything.

    Prints every rejected dump and every time taken from a fallback (the 日期 line, a date in
    the body, or the file's modification time).  Exits 1 if any dump was rejected.
    """
    from feedbridge.build import check_tree

    try:
        s = _settings(config_file, dumps, None, None, need_out=False)
    except ConfigError as e:
        _fail(EXIT_USAGE, str(e))
    with exit_codes():
        rejected, warnings, count = check_tree(s.dumps, s.config)
    for path, line, reason in rejected:
        click.echo(f"rejected: {path}:{line}: {reason}")
    for warning in warnings:
        click.echo(f"warning: {warning}")
    if not ctx.obj["quiet"]:
        click.echo(
            f"feedbridge: {count} dumps checked, {len(rejected)} rejected, "
            f"{len(warnings)} warnings",
            err=True,
        )
    sys.exit(EXIT_REJECTED if rejected else EXIT_OK)


@cli.command()
@with_common
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Seconds between full rescans (default 300, or 'interval' in the config).",
)
@click.option(
    "--serve",
    "serve",
    metavar="HOST:PORT",
    default=None,
    help="Also serve OUT over HTTP here, e.g. 127.0.0.1:8080.",
)
@click.pass_context
def run(
    ctx: click.Context,
    dumps: Path | None,
    out: Path | None,
    base_url: str | None,
    config_file: Path | None,
    state_dir: Path | None,
    interval: float | None,
    serve: str | None,
) -> None:
    """Keep the feeds current as dumps arrive, change or disappear.

    Rebuilds the affected feed within a second of a change, rescans everything every
    --interval seconds, publishes future-dated dumps when their time comes, and optionally
    serves OUT.  SIGTERM or SIGINT: finish the build in progress and exit 0.  SIGHUP: reload
    the config file (an invalid one is logged and the running one kept).
    """
    from feedbridge.daemon import Daemon, Overrides
    from feedbridge.serve import parse_listen

    if not ctx.obj["quiet"] and ctx.obj["verbose"] == 0:
        logging.getLogger("feedbridge").setLevel(logging.INFO)
    with exit_codes():
        s = _settings(config_file, dumps, out, base_url)
        assert s.out is not None and s.base_url is not None
        listen = serve or s.config.serve
        daemon = Daemon(
            config=s.config,
            config_file=config_file.resolve() if config_file else None,
            overrides=Overrides(
                dumps=s.dumps,
                out=s.out,
                base_url=base_url,
                interval=interval,
                state_dir=state_dir or s.config.state_dir,
            ),
            base_url=s.base_url,
            serve=parse_listen(listen) if listen else None,
        )
        code = daemon.run()
    sys.exit(code)


@cli.command()
@out_option
@config_option
@state_option
def status(out: Path | None, config_file: Path | None, state_dir: Path | None) -> None:
    """Show the last build: its time, entries per feed, rejected and future dumps."""
    from feedbridge.state import default_state_dir, read_status

    try:
        config = load_config(config_file) if config_file else Config()
    except ConfigError as e:
        _fail(EXIT_USAGE, str(e))
    out = out.resolve() if out else config.out
    if out is None:
        raise click.UsageError("no output folder: pass --out or set 'out' in the config")
    state = state_dir or config.state_dir or default_state_dir(out)
    info = read_status(state)
    if info is None:
        _fail(EXIT_USAGE, f"no build recorded for {out} (state folder {state})")
    click.echo(f"last build: {info.get('last_build')}")
    if info.get("pid"):
        click.echo(
            f"daemon pid: {info['pid']}"
            + (f", serving {info['serving']}" if info.get("serving") else "")
        )
    click.echo(f"dumps: {info.get('dumps', 0)}")
    feeds = info.get("feeds", {})
    click.echo(f"feeds: {len(feeds)}")
    for name, entries in sorted(feeds.items()):
        click.echo(f"  {name}: {entries} entries")
    rejected = info.get("rejected", [])
    click.echo(f"rejected dumps: {len(rejected)}")
    for line in rejected:
        click.echo(f"  {line}")
    future = info.get("future", [])
    click.echo(f"future dumps: {len(future)}")
    for line in future:
        click.echo(f"  {line}")


def main() -> None:
    try:
        cli(prog_name="feedbridge")
    except FeedbridgeError as e:  # pragma: no cover - every command maps its own errors
        _fail(EXIT_USAGE, str(e))
