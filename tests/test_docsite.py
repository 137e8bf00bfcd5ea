"""The docsite fixture serves what its module constants claim."""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import time
import zipfile
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urljoin, urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from lxml import html
from pytest_aiohttp import AiohttpClient

from tests.sites import docsite as site

Client = TestClient[web.Request, web.Application]
ALL_DOCUMENTS = (
    site.MINUTES_2024
    | site.MINUTES_2023
    | site.BUDGET_2024
    | site.OTHER_2024
    | site.UNRELATED
    | site.PROTOKOLL_2024
    | site.PROCES_VERBAL_2024
)
NOT_FETCHED = site.DEAD_LINKS | site.REDIRECT_LOOP | {"/slow"}


@pytest.fixture
async def client(aiohttp_client: AiohttpClient) -> Client:
    return await aiohttp_client(site.make_docsite())


@dataclass
class Crawl:
    depth: dict[str, int] = field(default_factory=lambda: {"/": 0})
    documents: set[str] = field(default_factory=set)
    links: set[str] = field(default_factory=set)
    offsite: set[str] = field(default_factory=set)


def _key(url: SplitResult) -> str:
    return url.path + (f"?{url.query}" if url.query else "")


def _targets(page: html.HtmlElement) -> list[str]:
    """Every URL a browser would navigate to or load from this page, as written."""
    found = [str(v) for v in page.xpath("//a/@href|//area/@href|//iframe/@src|//embed/@src")]
    found += [str(v) for v in page.xpath("//object/@data")]
    for refresh in page.xpath('//meta[@http-equiv="refresh"]/@content'):
        found.append(str(refresh).split("url=", 1)[1])
    return found


async def _crawl(client: Client) -> Crawl:
    """A reference breadth-first crawl from "/" that honours <base href>."""
    crawl, origin = Crawl(), client.make_url("/")
    queue = deque(["/"])
    while queue:
        key = queue.popleft()
        async with client.get(key) as response:
            assert response.status == 200, key
            if response.content_type != "text/html":
                crawl.documents.add(site.canonical(key))
                continue
            page = html.fromstring(await response.read())
        here = str(client.make_url(key))
        base = urljoin(here, str(page.xpath("string(//base/@href)")) or here)
        for href in _targets(page):
            target = urlsplit(urljoin(base, href))
            if target.scheme not in ("http", "https"):
                continue
            if target.netloc != f"{origin.host}:{origin.port}":
                crawl.offsite.add(href)
                continue
            link = _key(target)
            crawl.links.add(link)
            if link not in crawl.depth and link not in NOT_FETCHED:
                crawl.depth[link] = crawl.depth[key] + 1
                queue.append(link)
    return crawl


async def test_every_document_is_reachable_from_home(client: Client) -> None:
    crawl = await _crawl(client)
    assert crawl.documents == ALL_DOCUMENTS | {site.HUGE_PDF}
    assert set(site.ALIASES) <= crawl.links
    assert crawl.links >= site.DEAD_LINKS | {"/loop/a", "/slow"}
    assert crawl.offsite == site.OFFSITE
    assert site.expected_for("board meeting minutes from 2024") == site.MINUTES_2024


async def test_depths_make_crawl_limits_observable(client: Client) -> None:
    crawl = await _crawl(client)
    assert crawl.depth["/council/meetings/2024/regular/"] == 4
    assert all(crawl.depth[f"/news/{n}"] == n + 1 for n in range(1, site.NEWS_PAGES + 1))
    assert f"/news/{site.NEWS_PAGES + 1}" not in crawl.depth


async def test_documents_are_unique_except_the_mirror(client: Client) -> None:
    digests = {}
    for path in ALL_DOCUMENTS | set(site.ALIASES):
        async with client.get(path) as response:
            assert response.status == 200, path
            digests[path] = hashlib.sha256(await response.read()).hexdigest()
    assert len(set(digests.values())) == len(ALL_DOCUMENTS)
    for alias, original in site.ALIASES.items():
        assert digests[alias] == digests[original]


async def test_some_pdfs_are_known_only_by_headers_or_magic(client: Client) -> None:
    async with client.get("/download?id=4") as by_type:
        assert by_type.headers["Content-Type"] == "application/pdf"
    async with client.get("/download?id=5") as by_name:
        assert by_name.headers["Content-Type"] == "application/octet-stream"
        assert 'filename="minutes-2024-05.pdf"' in by_name.headers["Content-Disposition"]
    async with client.get("/blob/7") as by_magic:
        assert by_magic.headers["Content-Type"] == "application/octet-stream"
        assert "Content-Disposition" not in by_magic.headers
        assert (await by_magic.read()).startswith(b"%PDF-1.4")


async def test_redirects_dead_links_and_query_strings(client: Client) -> None:
    async with client.get("/old/minutes-2024-06.pdf", allow_redirects=False) as moved:
        assert moved.status == 302
        assert moved.headers["Location"] == "/files/minutes-2024-06.pdf"
    with pytest.raises(aiohttp.TooManyRedirects):
        await client.get("/loop/a")
    for path in [*site.DEAD_LINKS, "/files/minutes-2024-03.pdf"]:
        async with client.get(path) as missing:
            assert missing.status == 404, path


async def test_pages_in_legacy_encodings(client: Client) -> None:
    async with client.get("/de/") as german:
        assert german.headers["Content-Type"] == "text/html"
        body = await german.read()
    assert b'<meta charset="windows-1252">' in body
    assert "Sitzungsprotokolle – März 2024" in body.decode("cp1252")
    async with client.get("/fr/") as french:
        assert french.headers["Content-Type"] == "text/html; charset=iso-8859-1"
        text = await french.text()
    assert "séance du conseil" in text and "<meta" not in text


async def test_huge_pdf_is_streamed_without_length(client: Client) -> None:
    async with client.get(site.HUGE_PDF) as response:
        assert "Content-Length" not in response.headers
        body = await response.read()
    assert len(body) == site.HUGE_BYTES
    assert body.startswith(b"%PDF-") and body.endswith(b"%%EOF\n")


async def test_slow_page_outlasts_a_short_timeout(client: Client) -> None:
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        await client.get("/slow", timeout=aiohttp.ClientTimeout(total=1))
    assert 1 <= time.monotonic() - started < site.SLOW_SECONDS
    assert client.app is not None and client.app[site.HITS]["/slow"] == 1


async def test_apps_count_hits_separately(aiohttp_client: AiohttpClient) -> None:
    first = await aiohttp_client(site.make_docsite())
    second = await aiohttp_client(site.make_docsite())
    for _ in range(2):
        async with first.get("/news/3"):
            pass
    assert first.app is not None and second.app is not None
    assert first.app[site.HITS]["/news/3"] == 2
    assert second.app[site.HITS]["/news/3"] == 0


def test_pdf_xref_points_at_each_object() -> None:
    pdf = site.make_pdf("Board Meeting Minutes – (draft) 2024")
    startxref = int(re.findall(rb"startxref\n(\d+)", pdf)[-1])
    entries = re.findall(rb"(\d{10}) 00000 n ", pdf[startxref:])
    assert len(entries) == 6
    for number, offset in enumerate(entries, 1):
        assert pdf[int(offset) :].startswith(b"%d 0 obj" % number)
    assert b"(Board Meeting Minutes \x96 \\(draft\\) 2024)" in pdf


def test_office_files_are_valid_packages() -> None:
    docx = zipfile.ZipFile(io.BytesIO(site.make_docx("Minutes & notes", ["First line"])))
    assert docx.testzip() is None
    assert "Minutes &amp; notes" in docx.read("word/document.xml").decode()
    assert "Minutes &amp; notes" in docx.read("docProps/core.xml").decode()
    xlsx = zipfile.ZipFile(io.BytesIO(site.make_xlsx("Budget 2024", [("Parks", 7)])))
    assert b"<v>7</v>" in xlsx.read("xl/worksheets/sheet1.xml")
    assert b"worksheets/sheet1.xml" in xlsx.read("xl/_rels/workbook.xml.rels")
    odt = zipfile.ZipFile(io.BytesIO(site.make_odt("Minutes", ["Line"])))
    first = odt.infolist()[0]
    assert (first.filename, first.compress_type) == ("mimetype", zipfile.ZIP_STORED)
    assert b"<text:p>Line</text:p>" in odt.read("content.xml")
