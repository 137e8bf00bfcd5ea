"""The client commands `skopd submit | watch | scrape`, which talk to a running daemon over HTTP.

`add_commands` plugs them into the `skopd` parser. Each command returns its exit status:
0 completed, 1 failed or cancelled, 2 a usage, HTTP or connection problem, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import contextlib
import json
import os
import re
import shutil
import sys
import time
import unicodedata
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import quote

import aiohttp
import msgspec

DEFAULT_SERVER = "http://127.0.0.1:8765"
GIVE_UP_AFTER_S = 30.0
FIRST_RETRY_S = 0.25
REDRAW_EVERY_S = 0.1
# The server pings every 15 s, so three missed pings mean the connection is dead.
STREAM_IDLE_S = 45.0
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=5)
STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=STREAM_IDLE_S)
BAR_CELLS = 20
EXIT_STATUSES = (
    "exit status: 0 completed, 1 failed or cancelled, 2 a request or connection error, "
    "130 interrupted (the job keeps running)"
)


class CliError(Exception):
    """Ends the command with `skopd: <message>` on stderr and exit status 2."""


class HttpError(CliError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{message} (HTTP {status})")
        self.status = status


class Unreachable(CliError):
    pass


# ---- the event stream -------------------------------------------------------------------

_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class ServerEvent:
    event: str
    data: str
    id: str | None


class EventStreamParser:
    """Incremental text/event-stream parser following the WHATWG rules: any of the three line
    endings (also split across chunks), comments, multi-line data, a sticky last event id,
    and an unfinished event at the end of the stream is never dispatched."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""
        self._skip_lf = False
        self._started = False
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self.retry_ms: int | None = None

    def feed(self, chunk: bytes) -> list[ServerEvent]:
        text = self._decoder.decode(chunk)
        if not text:
            return []
        if not self._started:
            self._started = True
            text = text.removeprefix("\ufeff")
        if self._skip_lf and text.startswith("\n"):  # the other half of a split \r\n
            text = text[1:]
        self._skip_lf = text.endswith("\r")
        lines = _LINE_END.split(self._partial + text)
        self._partial = lines.pop()
        events = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> ServerEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> ServerEvent | None:
        data, event = self._data, self._event or "message"
        self._data, self._event = [], ""
        if not data:
            return None
        return ServerEvent(event, "\n".join(data), self._id)


def _sequence(event_id: str | None) -> int | None:
    if event_id is None or not event_id.isascii() or not event_id.isdigit():
        return None
    return int(event_id)


# ---- the daemon's HTTP API --------------------------------------------------------------


class DaemonClient:
    """The few routes the commands use, with errors turned into `CliError`s."""

    def __init__(self, session: aiohttp.ClientSession, server: str, api_key: str | None) -> None:
        self.server = server.rstrip("/")
        self._session = session
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def submit(self, website: str, prompt: str, parameters: dict[str, Any]) -> str:
        body = {"website": website, "prompt": prompt, "parameters": parameters}
        async with self._request("POST", "/scrape", REQUEST_TIMEOUT, json=body) as resp:
            job_id: str = (await resp.json())["job_id"]
            return job_id

    async def results(self, job_id: str) -> bytes:
        path = f"/scrape/results/{quote(job_id, safe='')}"
        async with self._request("GET", path, REQUEST_TIMEOUT) as resp:
            return await resp.read()

    def events(
        self, job_id: str, last_id: int
    ) -> contextlib.AbstractAsyncContextManager[aiohttp.ClientResponse]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if last_id:
            headers["Last-Event-ID"] = str(last_id)
        path = f"/scrape/events/{quote(job_id, safe='')}"
        return self._request("GET", path, STREAM_TIMEOUT, headers=headers)

    @contextlib.asynccontextmanager
    async def _request(
        self,
        method: str,
        path: str,
        timeout: aiohttp.ClientTimeout,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        url = self.server + path
        try:
            async with self._session.request(
                method, url, headers={**self._headers, **(headers or {})}, timeout=timeout, **kwargs
            ) as resp:
                if resp.status >= 400:
                    raise HttpError(resp.status, await _error_message(resp))
                yield resp
        except aiohttp.ClientConnectorError as exc:
            raise Unreachable(f"cannot reach skopd at {self.server}: is it running?") from exc
        except aiohttp.InvalidURL as exc:
            raise CliError(f"invalid server URL {self.server!r}") from exc


async def _error_message(resp: aiohttp.ClientResponse) -> str:
    text = await resp.text(errors="replace")
    try:
        message = json.loads(text)["message"]
    except (ValueError, KeyError, TypeError):
        message = text.strip()[:200] or resp.reason or "error"
    return _clean(str(message))


# ---- what the user sees while a job runs ------------------------------------------------


class Progress:
    """Live progress on stderr: a bar redrawn in place on a terminal, else a line per change."""

    def __init__(self, err: TextIO, live: bool) -> None:
        self.err = err
        self.live = live
        self.status: dict[str, Any] = {}
        self.pages = 0
        self.downloaded = 0
        self._last_state: tuple[Any, Any] | None = None
        self._dirty = False
        self._drawn_at = 0.0
        self._bar_shown = False
        self._fancy = _is_utf8(err)

    def on_event(self, name: str, data: Any) -> None:
        if not isinstance(data, dict):
            return
        if name in ("status", "done"):
            self.status = data
            self._status_changed()
        elif name == "page":
            self.pages += 1
        elif name == "document" and data.get("decision") == "downloaded":
            self.downloaded += 1
            self._print(_document_line(data))
        elif name == "warning":
            self._print(f"warning: {_clean(str(data.get('message', '')))}")
        elif name == "error" and not data.get("is_recoverable", True):
            where = f" ({data['page_url']})" if data.get("page_url") else ""
            self._print(f"error: {_clean(str(data.get('error_message', '')))}{_clean(where)}")
        self._dirty = True

    @contextlib.asynccontextmanager
    async def shown(self) -> AsyncIterator[None]:
        ticker = asyncio.create_task(self._tick()) if self.live else None
        try:
            yield
        finally:
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
            self._erase()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(REDRAW_EVERY_S)
            # Redraw each second even when idle, so the ETA keeps counting down.
            if self._dirty or time.monotonic() - self._drawn_at >= 1.0:
                self._draw()

    def _status_changed(self) -> None:
        state = (self.status.get("status"), self.status.get("current_agent"))
        if self.live or state == self._last_state:
            return
        self._last_state = state
        status, agent = state
        percent = _percent(self.status)
        share = "" if percent is None else f", {percent:.0f}%"
        self._print(f"{status}{f' ({agent})' if agent else ''}: {self._counts()}{share}")

    def _pages(self) -> int:
        return max(self.pages, self.status.get("total_pages_crawled") or 0)

    def _counts(self) -> str:
        return f"{_plural(self._pages(), 'page')}, {_plural(self.downloaded, 'document')}"

    def _print(self, line: str) -> None:
        self._erase()
        self.err.write(line + "\n")
        self.err.flush()

    def _draw(self) -> None:
        width = shutil.get_terminal_size().columns - 1
        self.err.write("\r\x1b[K" + _fit(self._bar(), width))
        self.err.flush()
        self._bar_shown, self._dirty, self._drawn_at = True, False, time.monotonic()

    def _erase(self) -> None:
        if self._bar_shown:
            self.err.write("\r\x1b[K")
            self.err.flush()
            self._bar_shown = False

    def _bar(self) -> str:
        percent = _percent(self.status)
        filled = round(BAR_CELLS * (percent or 0.0) / 100)
        full, empty = ("█", "░") if self._fancy else ("#", "-")
        parts = [
            f"[{full * filled}{empty * (BAR_CELLS - filled)}]"
            + (" --%" if percent is None else f" {percent:3.0f}%"),
            str(self.status.get("current_agent") or self.status.get("status") or "connecting"),
            f"{self._pages()} pages",
            f"{self.downloaded} docs",
        ]
        eta = _eta(self.status.get("estimated_completion"))
        if eta is not None and self.status.get("is_active"):
            parts.append(f"ETA {eta}")
        return "  ".join(parts)


def _percent(status: dict[str, Any]) -> float | None:
    progress = status.get("progress")
    if not isinstance(progress, int | float):
        return None
    return min(max(float(progress), 0.0), 100.0)


def _megabytes(size: Any) -> str:
    if not isinstance(size, int | float):
        return "-"
    return "<0.01" if 0 < size < 0.01 else f"{size:.2f}"


def _document_line(doc: dict[str, Any]) -> str:
    details = f"{doc.get('document_type') or '?'}, {_megabytes(doc.get('file_size_mb'))} MB"
    return _clean(f"downloaded {doc.get('name') or '?'} ({details}) {doc.get('url')}")


def _eta(iso: Any) -> str | None:
    try:
        when = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return _duration(max((when - datetime.now(UTC)).total_seconds(), 0.0))


async def follow(client: DaemonClient, job_id: str, on_event: Callable[[str, Any], None]) -> Any:
    """Passes every event of the job to `on_event` exactly once, across reconnections, and
    returns the final status (the `done` event's data)."""
    return await _Follower(client, job_id, on_event).run()


class _Follower:
    def __init__(
        self, client: DaemonClient, job_id: str, on_event: Callable[[str, Any], None]
    ) -> None:
        self.client, self.job_id, self.on_event = client, job_id, on_event
        self.last_id = 0
        self.delay = FIRST_RETRY_S
        self.retry_cap = 2.0
        self.failing_since: float | None = None
        self.final: Any = None

    async def run(self) -> Any:
        connected = False
        while True:
            parser = EventStreamParser()
            try:
                async with self.client.events(self.job_id, self.last_id) as resp:
                    connected = True
                    async for chunk in resp.content.iter_any():
                        for event in parser.feed(chunk):
                            if self._take(event) and event.event == "done":
                                return self.final
            except HttpError as exc:
                if exc.status < 500:
                    raise
            except Unreachable:
                if not connected:
                    raise
            except (aiohttp.ClientError, TimeoutError):
                pass
            if parser.retry_ms:
                self.retry_cap = max(parser.retry_ms / 1000, FIRST_RETRY_S)
            await self._back_off()

    def _take(self, event: ServerEvent) -> bool:
        """Hands a new event on; False for a replay of one already seen or for garbage."""
        seq = _sequence(event.id)
        if seq is not None:
            if seq <= self.last_id:
                return False
            self.last_id = seq
        self.failing_since, self.delay = None, FIRST_RETRY_S
        try:
            data = msgspec.json.decode(event.data)
        except msgspec.DecodeError:
            return False
        self.on_event(event.event, data)
        self.final = data
        return True

    async def _back_off(self) -> None:
        now = time.monotonic()
        self.failing_since = now if self.failing_since is None else self.failing_since
        if now - self.failing_since >= GIVE_UP_AFTER_S:
            raise CliError(
                f"lost the event stream from {self.client.server} for {GIVE_UP_AFTER_S:.0f} s; "
                f"job {self.job_id} may still be running (skopd watch {self.job_id})"
            )
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, self.retry_cap)


# ---- the results table ------------------------------------------------------------------

_HEADER = ("name", "type", "size MB", "confidence", "URL")
_NUMERIC = (False, False, True, True, False)
_FLEXIBLE = (0, 4)  # name and URL give up width first
_MIN_FLEX = 8
_GAP = "  "


def document_table(documents: list[dict[str, Any]], width: int | None, fancy: bool) -> list[str]:
    rows = [_HEADER] + [_row(doc) for doc in documents]
    widths = [max(_width(row[i]) for row in rows) for i in range(len(_HEADER))]
    if width is not None:
        widths = _shrink(widths, width - len(_GAP) * (len(widths) - 1))
    ellipsis = "…" if fancy else "~"
    return [
        _GAP.join(
            _pad(_truncate(cell, w, ellipsis), w, right)
            for cell, w, right in zip(row, widths, _NUMERIC, strict=True)
        ).rstrip()
        for row in rows
    ]


def _row(doc: dict[str, Any]) -> tuple[str, ...]:
    size, score = doc.get("file_size_mb"), doc.get("confidence_score")
    return (
        _clean(str(doc.get("name") or "")),
        _clean(str(doc.get("document_type") or "")),
        _megabytes(size),
        f"{score:.2f}" if isinstance(score, int | float) else "-",
        _clean(str(doc.get("url") or "")),
    )


def _shrink(widths: list[int], room: int) -> list[int]:
    widths = list(widths)
    excess = sum(widths) - room
    while excess > 0:
        widest = max(_FLEXIBLE, key=lambda i: widths[i])
        if widths[widest] <= _MIN_FLEX:
            break
        widths[widest] -= 1
        excess -= 1
    return widths


def summary(results: dict[str, Any]) -> str:
    status = results.get("status")
    line = (
        f"{status}: {_plural(len(results.get('documents') or []), 'document')} from "
        f"{_plural(results.get('total_pages_crawled') or 0, 'page')} in "
        f"{_duration(results.get('total_runtime_seconds') or 0.0)}"
    )
    notes = [
        _plural(len(results.get(key) or []), noun)
        for key, noun in (("errors", "error"), ("warnings", "warning"))
        if results.get(key)
    ]
    if status != "completed" and results.get("message"):
        notes.insert(0, _clean(str(results["message"])))
    return line + (f" ({'; '.join(notes)})" if notes else "")


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f}s"
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


# ---- terminal text ----------------------------------------------------------------------


def _clean(text: str) -> str:
    """Names, URLs and messages come from crawled sites: keep their control characters (escape
    sequences, bidi overrides) away from the user's terminal."""
    if text.isprintable():
        return text
    return "".join(_UNSAFE.get(unicodedata.category(c), c) for c in text)


_UNSAFE = {"Cc": " ", "Zl": " ", "Zp": " ", "Cf": ""}


def _char_width(c: str) -> int:
    if unicodedata.combining(c):
        return 0
    return 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1


def _width(text: str) -> int:
    return len(text) if text.isascii() else sum(map(_char_width, text))


def _truncate(text: str, width: int, ellipsis: str) -> str:
    if _width(text) <= width:
        return text
    kept, used = [], 0
    for c in text:
        if used + _char_width(c) > width - 1:
            break
        kept.append(c)
        used += _char_width(c)
    return "".join(kept) + ellipsis


def _pad(text: str, width: int, right: bool) -> str:
    space = " " * max(width - _width(text), 0)
    return space + text if right else text + space


def _fit(line: str, width: int) -> str:
    return _truncate(line, max(width, 1), "")


def _is_utf8(stream: TextIO) -> bool:
    return (getattr(stream, "encoding", None) or "").lower().replace("-", "") == "utf8"


# ---- the commands -----------------------------------------------------------------------


class Invocation:
    """One run of a command: where it connects, where it writes, and the job it follows."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.server: str = args.server or os.environ.get("SKOPD_URL") or DEFAULT_SERVER
        self.api_key: str | None = args.api_key or os.environ.get("SKOPD_API_KEY") or None
        self.out, self.err = sys.stdout, sys.stderr
        self.job_id: str | None = None

    def run(self, main: Callable[[DaemonClient], Coroutine[Any, Any, int]]) -> int:
        try:
            return asyncio.run(self._with_client(main))
        except CliError as exc:
            self.err.write(f"skopd: {exc}\n")
            return 2
        except KeyboardInterrupt:
            if self.job_id is None:
                self.err.write("skopd: interrupted\n")
            else:
                self.err.write(f"stopped watching; job {self.job_id} continues\n")
            return 130

    async def _with_client(self, main: Callable[[DaemonClient], Coroutine[Any, Any, int]]) -> int:
        async with aiohttp.ClientSession() as session:
            return await main(DaemonClient(session, self.server, self.api_key))

    async def watch(self, client: DaemonClient, job_id: str, as_json: bool) -> int:
        self.job_id = job_id
        progress = Progress(self.err, live=self.err.isatty())
        async with progress.shown():
            final = await follow(client, job_id, progress.on_event)
        body = await client.results(job_id)
        if as_json:
            text = body.decode("utf-8", errors="replace")
            self.out.write(text if text.endswith("\n") else text + "\n")
        else:
            self._print_results(msgspec.json.decode(body))
        return 0 if isinstance(final, dict) and final.get("status") == "completed" else 1

    def _print_results(self, results: dict[str, Any]) -> None:
        documents = results.get("documents") or []
        if documents:
            width = self._table_width()
            for line in document_table(documents, width, _is_utf8(self.out)):
                self.out.write(line + "\n")
        self.out.write(summary(results) + "\n")
        self.out.flush()

    def _table_width(self) -> int | None:
        # A pipe or a file gets whole cells; a terminal (or an explicit COLUMNS) gets a fit.
        if self.out.isatty() or "COLUMNS" in os.environ:
            return shutil.get_terminal_size().columns
        return None


def _submit_command(args: argparse.Namespace) -> int:
    inv = Invocation(args)

    async def main(client: DaemonClient) -> int:
        inv.out.write(await client.submit(args.website, args.prompt, dict(args.param)) + "\n")
        return 0

    return inv.run(main)


def _watch_command(args: argparse.Namespace) -> int:
    inv = Invocation(args)

    async def main(client: DaemonClient) -> int:
        return await inv.watch(client, args.job_id, args.json)

    return inv.run(main)


def _scrape_command(args: argparse.Namespace) -> int:
    inv = Invocation(args)

    async def main(client: DaemonClient) -> int:
        job_id = await client.submit(args.website, args.prompt, dict(args.param))
        inv.err.write(f"submitted {job_id}\n")
        return await inv.watch(client, job_id, args.json)

    return inv.run(main)


def _param(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds `submit`, `watch` and `scrape` to the `skopd` command line."""
    daemon = argparse.ArgumentParser(add_help=False)
    daemon.add_argument("--server", help=f"daemon URL (default: $SKOPD_URL or {DEFAULT_SERVER})")
    daemon.add_argument("--api-key", help="API key (default: $SKOPD_API_KEY)")
    job = argparse.ArgumentParser(add_help=False)
    job.add_argument("website", help="start URL of the site to crawl")
    job.add_argument("prompt", help='what to find, e.g. "board meeting minutes from 2024"')
    job.add_argument(
        "--param",
        action="append",
        type=_param,
        default=[],
        metavar="KEY=VALUE",
        help="a job parameter; VALUE is read as JSON when it parses (max_pages=50, "
        'single_page=true, document_types=["pdf"]), else as a string; repeatable',
    )
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument(
        "--json", action="store_true", help="print the results JSON instead of a table"
    )

    submit = sub.add_parser("submit", parents=[job, daemon], help="submit a job, print its id")
    submit.set_defaults(func=_submit_command)
    watch = sub.add_parser(
        "watch",
        parents=[daemon, output],
        help="follow a job live, then print its documents",
        epilog=EXIT_STATUSES,
    )
    watch.add_argument("job_id", help="the job to follow (job_...)")
    watch.set_defaults(func=_watch_command)
    scrape = sub.add_parser(
        "scrape",
        parents=[job, daemon, output],
        help="submit a job and watch it (submit + watch)",
        epilog=EXIT_STATUSES,
    )
    scrape.set_defaults(func=_scrape_command)
