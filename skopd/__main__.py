"""The command line: `skopd serve`, `skopd check-config`, `skopd --version`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from typing import TYPE_CHECKING

import msgspec

from skopd import __version__
from skopd.cli import add_commands
from skopd.config import Config, ConfigError, check_exposure, effective, load
from skopd.logs import FORMATS
from skopd.logs import setup as setup_logging
from skopd.notify import notify

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("skopd")

# On SIGTERM/SIGINT, requests in flight get DRAIN_S to finish while new ones that would change
# something answer 503; those still running are then cancelled and get CANCEL_S (twice, in
# aiohttp) to unwind. Together well inside the unit's TimeoutStopSec=15.
DRAIN_S = 3.0
CANCEL_S = 1.0


def _serve(args: argparse.Namespace) -> int:
    setup_logging(args.log_level, args.log_format)
    try:
        cfg = load(args.config)
        check_exposure(cfg)
    except ConfigError as exc:
        log.error("configuration error: %s", exc)
        return 2
    cfg.documents_path.mkdir(parents=True, exist_ok=True)
    cfg.database_path.parent.mkdir(parents=True, exist_ok=True)
    import uvloop  # the same asyncio, with its loop in C: every request, read and write is cheaper

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_run(cfg))


async def _run(cfg: Config) -> int:
    """Serve until SIGTERM or SIGINT, telling systemd when ready and when stopping."""
    from aiohttp import web

    from skopd.web.app import make_app

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, sig, stop)
    app = make_app(cfg)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=CANCEL_S)
    await runner.setup()  # the app's startup: database opened, interrupted jobs recovered
    try:
        site = web.TCPSite(runner, cfg.server.host, cfg.server.port, backlog=1024)
        try:
            await site.start()
        except OSError as exc:
            log.error("cannot listen on %s:%d: %s", cfg.server.host, cfg.server.port, exc)
            return 1
        where = f"http://{cfg.server.host}:{cfg.server.port}"
        log.info("skopd %s listening on %s (database %s)", __version__, where, cfg.database_path)
        notify(f"READY=1\nSTATUS=listening on {where}")
        await stop.wait()
        notify("STOPPING=1\nSTATUS=stopping")
        await _drain(app)
    finally:
        await runner.cleanup()  # streams, in-flight requests, jobs, then the database
    log.info("skopd stopped")
    return 0


def _on_signal(sig: signal.Signals, stop: asyncio.Event) -> None:
    if not stop.is_set():
        log.info("%s received: stopping", sig.name)
        stop.set()


async def _drain(app: web.Application) -> None:
    """Refuse new work, stop the crawls taking any, end every event stream now, and give
    requests in flight a moment."""
    from skopd.web import middleware, sse
    from skopd.web.state import SCHEDULER

    drain = app[middleware.DRAIN]
    drain.stopping = True
    app[SCHEDULER].stop_crawling()  # crawls finish what is in flight while requests drain
    await sse.close_streams(app)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DRAIN_S):
            await drain.idle.wait()
    if drain.in_flight:
        log.warning("cancelling %d request(s) still in flight", drain.in_flight)


def _check_config(args: argparse.Namespace) -> int:
    try:
        cfg = load(args.path)
        check_exposure(cfg)
    except ConfigError as exc:
        print(f"skopd: configuration error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(effective(cfg))).decode() + "\n")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="skopd", description="Self-hosted document discovery.")
    p.add_argument("--version", action="version", version=f"skopd {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the daemon")
    serve.add_argument("--config", default="config.toml", help="path to config.toml")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument(
        "--log-format", default="text", choices=FORMATS, help="stderr log lines: text or json"
    )
    serve.set_defaults(func=_serve)
    check = sub.add_parser("check-config", help="validate a config and print effective values")
    check.add_argument("path")
    check.set_defaults(func=_check_config)
    add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
