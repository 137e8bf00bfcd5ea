"""A hostile website: answers no well-behaved server would give, written byte by byte.

A raw asyncio server (aiohttp would refuse to produce most of these answers). One request
per connection. `/index/<case>` is a page linking the URLs of one case; each case's URLs
misbehave in one way. Endless answers stop when the client goes away or after
STREAM_CAP_S seconds, whichever comes first, so no test can leave the server busy.

Cases (`CASES`):
  gzip_page      a page whose gzip body decodes to endless zeros (generated on the fly)
  deflate_page   the same with deflate, and a fixed-size bomb with Content-Length
  gzip_document  a "PDF" whose gzip body decodes to endless bytes
  br_page        Content-Encoding: br with bytes that are not brotli
  broken_gzip    Content-Encoding: gzip with corrupted data and trailing garbage
  endless_page   a chunked HTML page that never ends
  endless_doc    a chunked PDF that never ends
  drip_page      a page sent one byte every 0.5 s, forever
  drip_doc       a PDF sent one byte every 0.5 s, forever
  drip_headers   headers sent one byte every 0.5 s, forever
  huge_header    one header line of 1 MB
  many_headers   10,000 headers
  bad_headers    header lines without a colon, with NUL and bare CR
  bad_status     a status line that is not HTTP
  bad_chunks     a chunked body with an invalid chunk size
  short_body     Content-Length 100000, then the connection closes after 10 bytes
  endless_redirect  /redirect/1 -> /redirect/2 -> ... forever
  bad_charset    an unknown charset, invalid UTF-8 and bytes in every encoding
  deep_html      100,000 nested elements, unclosed, between two links
  nul_html       NUL bytes, unclosed tags and comments, a stray </html> in the middle
  retry_after    429 and 503 whose Retry-After is no number HTTP knows: a superscript
                 digit, Arabic-Indic digits, a date in them, and a link to a good PDF

`hostile_robots` set: robots.txt answers 503 with such a Retry-After.
"""

from __future__ import annotations

import asyncio
import functools
import zlib
from collections.abc import Awaitable, Callable

STREAM_CAP_S = 30.0
DRIP_S = 0.5
PDF_HEAD = b"%PDF-1.4\n% board meeting minutes 2024\n"
FIXED_BOMB_BYTES = 64 * 1024 * 1024

Handler = Callable[[asyncio.StreamWriter], Awaitable[None]]

# The links of each case's index page: (href, link text).
CASES: dict[str, list[tuple[str, str]]] = {
    "gzip_page": [("/bomb/gzip", "board meeting minutes 2024 archive")],
    "deflate_page": [
        ("/bomb/deflate", "board meeting minutes 2024 archive"),
        ("/bomb/deflate-fixed", "board meeting minutes 2024 index"),
    ],
    "gzip_document": [("/bomb/minutes-2024.pdf", "board meeting minutes 2024")],
    "br_page": [("/bomb/br", "board meeting minutes 2024 archive")],
    "broken_gzip": [("/bomb/broken-gzip", "board meeting minutes 2024 archive")],
    "endless_page": [("/endless/page", "board meeting minutes 2024 archive")],
    "endless_doc": [("/endless/minutes-2024.pdf", "board meeting minutes 2024")],
    "drip_page": [("/drip/page", "board meeting minutes 2024 archive")],
    "drip_doc": [("/drip/minutes-2024.pdf", "board meeting minutes 2024")],
    "drip_headers": [("/drip/headers", "board meeting minutes 2024 archive")],
    "huge_header": [("/headers/huge", "board meeting minutes 2024 archive")],
    "many_headers": [("/headers/many", "board meeting minutes 2024 archive")],
    "bad_headers": [("/headers/bad", "board meeting minutes 2024 archive")],
    "bad_status": [("/status/bad", "board meeting minutes 2024 archive")],
    "bad_chunks": [("/chunks/bad", "board meeting minutes 2024 archive")],
    "short_body": [("/short/minutes-2024.pdf", "board meeting minutes 2024")],
    "endless_redirect": [("/redirect/1", "board meeting minutes 2024 archive")],
    "bad_charset": [("/charset/bad", "board meeting minutes 2024 archive")],
    "deep_html": [("/html/deep", "board meeting minutes 2024 archive")],
    "nul_html": [("/html/nul", "board meeting minutes 2024 archive")],
    "retry_after": [
        ("/retry/superscript", "board meeting minutes 2024 archive"),
        ("/retry/arabic", "board meeting minutes 2024 index"),
        ("/retry/date", "board meeting minutes 2024 list"),
        ("/after/retry-minutes-2024.pdf", "board meeting minutes 2024"),
    ],
}
# Retry-After values that str.isdigit() or the date parser's int() would take for numbers.
HOSTILE_RETRY_AFTER = {
    "/retry/superscript": (b"429 Too Many Requests", "\u00b2".encode()),
    "/retry/arabic": (b"503 Service Unavailable", "\u0661\u0662\u0660".encode()),
    "/retry/date": (
        b"503 Service Unavailable",
        "Wed, \u0662\u0661 Oct 2015 07:28:00 GMT".encode(),
    ),
}
# Pages that the malformed-but-readable pages link to: reaching them shows they were read.
AFTER_CHARSET = "/after/charset-minutes-2024.pdf"
AFTER_DEEP = "/after/deep-minutes-2024.pdf"
AFTER_NUL = "/after/nul-minutes-2024.pdf"
AFTER_RETRY = "/after/retry-minutes-2024.pdf"


class HostileSite:
    def __init__(self) -> None:
        self.port = 0
        self.hostile_robots = False
        self.hits: dict[str, int] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._routes: dict[str, Handler] = {
            "/robots.txt": self._robots,
            "/bomb/gzip": functools.partial(self._endless_compressed, "gzip"),
            "/bomb/deflate": functools.partial(self._endless_compressed, "deflate"),
            "/bomb/deflate-fixed": self._fixed_bomb,
            "/bomb/minutes-2024.pdf": self._document_bomb,
            "/bomb/br": self._not_brotli,
            "/bomb/broken-gzip": self._broken_gzip,
            "/endless/page": functools.partial(self._endless, b"text/html", b"<p>board "),
            "/endless/minutes-2024.pdf": functools.partial(
                self._endless, b"application/pdf", PDF_HEAD
            ),
            "/drip/page": functools.partial(self._drip, b"text/html"),
            "/drip/minutes-2024.pdf": functools.partial(self._drip, b"application/pdf"),
            "/drip/headers": self._drip_headers,
            "/headers/huge": self._huge_header,
            "/headers/many": self._many_headers,
            "/headers/bad": self._bad_headers,
            "/status/bad": self._bad_status,
            "/chunks/bad": self._bad_chunks,
            "/short/minutes-2024.pdf": self._short_body,
            "/charset/bad": self._bad_charset,
            "/html/deep": self._deep_html,
            "/html/nul": self._nul_html,
            AFTER_CHARSET: self._pdf,
            AFTER_DEEP: self._pdf,
            AFTER_NUL: self._pdf,
            AFTER_RETRY: self._pdf,
        }
        for path, (status, value) in HOSTILE_RETRY_AFTER.items():
            self._routes[path] = functools.partial(self._retry_after, status, value)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        await asyncio.to_thread(_fixed_bomb)
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            path = request.split(b" ", 2)[1].decode("latin-1").split("?")[0]
            self.hits[path] = self.hits.get(path, 0) + 1
            await asyncio.wait_for(self._answer(path, writer), STREAM_CAP_S)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, IndexError):
            pass
        except asyncio.CancelledError:
            pass  # the site is closing
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _answer(self, path: str, writer: asyncio.StreamWriter) -> None:
        if path.startswith("/index/"):
            await self._index(path.removeprefix("/index/"), writer)
        elif path.startswith("/redirect/"):
            n = int(path.rsplit("/", 1)[1])
            await _send(writer, b"302 Found", [(b"Location", f"/redirect/{n + 1}".encode())], b"")
        elif path in self._routes:
            await self._routes[path](writer)
        else:
            await _send(writer, b"404 Not Found", [(b"Content-Type", b"text/plain")], b"no")

    async def _index(self, case: str, writer: asyncio.StreamWriter) -> None:
        links = "".join(f'<li><a href="{href}">{text}</a></li>' for href, text in CASES[case])
        body = f"<html><head><title>Board 2024</title></head><body><ul>{links}</ul></body></html>"
        await _send(writer, b"200 OK", [(b"Content-Type", b"text/html")], body.encode())

    async def _robots(self, writer: asyncio.StreamWriter) -> None:
        if self.hostile_robots:
            value = HOSTILE_RETRY_AFTER["/retry/superscript"][1]
            await self._retry_after(b"503 Service Unavailable", value, writer)
            return
        await _send(writer, b"404 Not Found", [(b"Content-Type", b"text/plain")], b"")

    async def _retry_after(self, status: bytes, value: bytes, writer: asyncio.StreamWriter) -> None:
        head = [(b"Content-Type", b"text/plain"), (b"Retry-After", value)]
        await _send(writer, status, head, b"come back later")

    async def _pdf(self, writer: asyncio.StreamWriter) -> None:
        body = PDF_HEAD + b"x" * 1000 + b"\n%%EOF\n"
        await _send(writer, b"200 OK", [(b"Content-Type", b"application/pdf")], body)

    # -- decompression bombs ----------------------------------------------

    async def _endless_compressed(self, encoding: str, writer: asyncio.StreamWriter) -> None:
        wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
        comp = zlib.compressobj(9, zlib.DEFLATED, wbits)
        head = [
            (b"Content-Type", b"text/html"),
            (b"Content-Encoding", encoding.encode()),
            (b"Transfer-Encoding", b"chunked"),
        ]
        await _send_head(writer, b"200 OK", head)
        await _chunk(writer, comp.compress(b"<html><body><p>board minutes 2024</p>"))
        zeros = b"\0" * (1024 * 1024)
        while True:  # ~1 KB on the wire per MB decoded
            data = comp.compress(zeros) + comp.flush(zlib.Z_SYNC_FLUSH)
            await _chunk(writer, data)
            await asyncio.sleep(0)  # the crawler shares this event loop

    async def _fixed_bomb(self, writer: asyncio.StreamWriter) -> None:
        head = [
            (b"Content-Type", b"text/html"),
            (b"Content-Encoding", b"deflate"),
        ]
        await _send(writer, b"200 OK", head, _fixed_bomb())

    async def _document_bomb(self, writer: asyncio.StreamWriter) -> None:
        comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        head = [
            (b"Content-Type", b"application/pdf"),
            (b"Content-Encoding", b"gzip"),
            (b"Transfer-Encoding", b"chunked"),
        ]
        await _send_head(writer, b"200 OK", head)
        await _chunk(writer, comp.compress(PDF_HEAD))
        block = b"0" * (1024 * 1024)
        while True:
            await _chunk(writer, comp.compress(block) + comp.flush(zlib.Z_SYNC_FLUSH))
            await asyncio.sleep(0)

    async def _broken_gzip(self, writer: asyncio.StreamWriter) -> None:
        good = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        body = good.compress(b"<html><body>board minutes") + good.flush()
        body = body[:20] + bytes(b ^ 0x5A for b in body[20:40]) + body[40:]
        head = [(b"Content-Type", b"text/html"), (b"Content-Encoding", b"gzip")]
        await _send(writer, b"200 OK", head, body + b"trailing garbage")

    async def _not_brotli(self, writer: asyncio.StreamWriter) -> None:
        head = [(b"Content-Type", b"text/html"), (b"Content-Encoding", b"br")]
        await _send(writer, b"200 OK", head, b"\xff\xfe not brotli at all " * 100)

    # -- endless and slow bodies ------------------------------------------

    async def _endless(self, ctype: bytes, first: bytes, writer: asyncio.StreamWriter) -> None:
        head = [(b"Content-Type", ctype), (b"Transfer-Encoding", b"chunked")]
        await _send_head(writer, b"200 OK", head)
        await _chunk(writer, first)
        block = b"board minutes 2024 " * 3000
        while True:
            await _chunk(writer, block)
            await asyncio.sleep(0)

    async def _drip(self, ctype: bytes, writer: asyncio.StreamWriter) -> None:
        head = [(b"Content-Type", ctype), (b"Content-Length", b"100000000")]
        await _send_head(writer, b"200 OK", head)
        body = PDF_HEAD if ctype == b"application/pdf" else b"<html><body>"
        i = 0
        while True:
            writer.write(body[i : i + 1] if i < len(body) else b"x")
            await writer.drain()
            i += 1
            await asyncio.sleep(DRIP_S)

    async def _drip_headers(self, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Slow: ")
        while True:
            writer.write(b"a")
            await writer.drain()
            await asyncio.sleep(DRIP_S)

    # -- malformed heads ----------------------------------------------------

    async def _huge_header(self, writer: asyncio.StreamWriter) -> None:
        head = [(b"Content-Type", b"text/html"), (b"X-Huge", b"a" * (1024 * 1024))]
        await _send(writer, b"200 OK", head, b"<html>board</html>")

    async def _many_headers(self, writer: asyncio.StreamWriter) -> None:
        head = [(b"Content-Type", b"text/html")]
        head += [(f"X-Many-{i}".encode(), b"board minutes") for i in range(10_000)]
        await _send(writer, b"200 OK", head, b"<html>board</html>")

    async def _bad_headers(self, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nThis line has no colon\r\n"
            b"X-Nul: a\0b\r\nX-Cr: a\rb\r\n\x01\x02: \x03\r\nContent-Length: 5\r\n\r\nhello"
        )
        await writer.drain()

    async def _bad_status(self, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SPDY/9 banana\r\n\r\n<html>")
        await writer.drain()

    async def _bad_chunks(self, writer: asyncio.StreamWriter) -> None:
        head = [(b"Content-Type", b"text/html"), (b"Transfer-Encoding", b"chunked")]
        await _send_head(writer, b"200 OK", head)
        writer.write(b"5\r\nhello\r\nZZZ-not-hex\r\nbroken\r\n0\r\n\r\n")
        await writer.drain()

    async def _short_body(self, writer: asyncio.StreamWriter) -> None:
        head = [(b"Content-Type", b"application/pdf"), (b"Content-Length", b"100000")]
        await _send_head(writer, b"200 OK", head)
        writer.write(PDF_HEAD[:10])
        await writer.drain()

    # -- malformed bodies ---------------------------------------------------

    async def _bad_charset(self, writer: asyncio.StreamWriter) -> None:
        body = (
            b'<html><head><meta charset="x-klingon-8"><title>\xff\xfe Board \xc3\x28</title>'
            b"</head><body>\xe9\xe8 \xf0\x28\x8c\x28 \xed\xa0\x80 \x80\x81\x82"
            + f'<a href="{AFTER_CHARSET}">board meeting minutes 2024 \xc3\x28</a>'.encode("latin-1")
            + b"</body></html>"
        )
        head = [(b"Content-Type", b"text/html; charset=utf-99")]
        await _send(writer, b"200 OK", head, body)

    async def _deep_html(self, writer: asyncio.StreamWriter) -> None:
        depth = 100_000
        link = f'<a href="{AFTER_DEEP}">board meeting minutes 2024</a>'.encode()
        body = b"<html><body>" + link + b"<div><span>" * (depth // 2) + link + b"</body></html>"
        await _send(writer, b"200 OK", [(b"Content-Type", b"text/html")], body)

    async def _nul_html(self, writer: asyncio.StreamWriter) -> None:
        body = (
            b"<html>\0<head><title>Board\0 2024</title><body><p>unclosed <b>bold <i>it"
            b"<table><tr><td>cell<td>cell2 <!-- a comment -- with -- dashes -->"
            b"</html>\0\0\0<div>"
            + f'\0<a href="{AFTER_NUL}">board \0meeting minutes 2024</a>'.encode()
            + b"<a href='javascript:\0x'>x</a><div <script>never ended"
        )
        await _send(writer, b"200 OK", [(b"Content-Type", b"text/html")], body)


@functools.cache
def _fixed_bomb() -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS)
    zeros = b"\0" * (1024 * 1024)
    out = [comp.compress(b"<html><body>")]
    out += [comp.compress(zeros) for _ in range(FIXED_BOMB_BYTES // len(zeros))]
    out.append(comp.flush())
    return b"".join(out)


async def _send_head(
    writer: asyncio.StreamWriter, status: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    lines = [b"HTTP/1.1 " + status, b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
    await writer.drain()


async def _send(
    writer: asyncio.StreamWriter,
    status: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
) -> None:
    if not any(name.lower() == b"content-length" for name, _ in headers):
        headers = [*headers, (b"Content-Length", str(len(body)).encode())]
    await _send_head(writer, status, headers)
    writer.write(body)
    await writer.drain()


async def _chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    if data:
        writer.write(b"%x\r\n" % len(data) + data + b"\r\n")
        await writer.drain()
