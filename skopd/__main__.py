"""The command line: `skopd serve`, `skopd check-config`, `skopd --version`."""

from __future__ import annotations

import argparse
import logging
import sys

import msgspec

from skopd import __version__
from skopd.cli import add_commands
from skopd.config import ConfigError, check_exposure, effective, load


def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from skopd.web.app import make_app

    try:
        cfg = load(args.config)
        check_exposure(cfg)
    except ConfigError as exc:
        print(f"skopd: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    cfg.documents_path.mkdir(parents=True, exist_ok=True)
    cfg.database_path.parent.mkdir(parents=True, exist_ok=True)
    logging.getLogger("skopd").info(
        "skopd %s listening on http://%s:%d (database %s)",
        __version__,
        cfg.server.host,
        cfg.server.port,
        cfg.database_path,
    )
    web.run_app(
        make_app(cfg),
        host=cfg.server.host,
        port=cfg.server.port,
        print=None,
        access_log=None,
        shutdown_timeout=5.0,
        backlog=1024,
    )
    return 0


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
