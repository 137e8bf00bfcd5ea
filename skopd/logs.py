"""The daemon's log output on stderr: readable text, or one JSON object per line.

Fields passed with `extra=` (`job_id`, `state`, `elapsed_s`, ...) become JSON keys, or
`key=value` pairs after a text line, so the journal and log shippers can filter on them.
"""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType

import msgspec

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# Every attribute a bare LogRecord has: whatever else a record carries came from `extra=`.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_encoder = msgspec.json.Encoder(enc_hook=str)


def extra_fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and k[0] != "_"}


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", ...extra, "exc"?}`, one per line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(extra_fields(record))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return _encoder.encode(out).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = extra_fields(record)
        if not fields:
            return line
        return line + "".join(f" {k}={v}" for k, v in fields.items())


def setup(level: str = "info", fmt: str = "text") -> None:
    """Route every log record, Python warning and uncaught exception to stderr in `fmt`."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    wanted = getattr(logging, level.upper())
    # Debug is skopd's own: libraries' debug output (aiosqlite logs every query) would bury it.
    root.setLevel(max(wanted, logging.INFO))
    logging.getLogger("skopd").setLevel(wanted)
    # One line per request would drown the job transitions; errors still show.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # A stray warning printed raw would be the one stderr line a JSON reader cannot parse.
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    logging.getLogger("skopd").critical("uncaught exception", exc_info=(kind, exc, tb))
