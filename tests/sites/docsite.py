"""A messy municipal website ("City of Riverton") for crawler integration tests.

``make_docsite()`` returns a fresh aiohttp app; ``app[HITS]`` counts requests per
``path_qs``. Truth sets hold the ``path[?query]`` of each document's canonical URL;
``canonical()`` maps the alias URLs (mirror, redirect source) onto them.

Pages and what each exercises (depth = clicks from "/"):
  /                        relative, root-relative, protocol-relative, off-site, mailto:,
                           tel:, javascript:, #fragment links; <area> links to /de/, /fr/;
                           links /slow, /notice, /loop/a and the 404 /council/gone/
  /council/                relative ("meetings/", "../services/") and root-relative links
  /council/meetings/       year only in <details><summary>Meetings 2024</summary> (October)
                           and only in <h2>2024</h2> (September) / <h2>2023</h2> (Nov 2023);
                           <iframe src="special/"> embeds /council/meetings/special/
  /council/meetings/2024/  -> regular/; links the oversized PDF and a 404 "2025" PDF
  /council/meetings/2024/regular/  depth 4: a table whose link texts are "PDF", "[PDF]",
                           "Download", titles in the sibling <td>: "../../../../files/...",
                           absolute http://HOST/files/MINUTES-2024-02.PDF, protocol-relative
                           //HOST/files/minutes-2024-03.pdf?version=2 (404 without the query),
                           /download?id=4 (Content-Type only), /download?id=5 (octet-stream +
                           Content-Disposition filename only), /old/minutes-2024-06.pdf (302),
                           /blob/7 (octet-stream, magic bytes only)
  /council/meetings/2023/  the same kind of table for 2023 (wrong year)
  /notice                  <meta http-equiv="refresh" content="0; url=/council/moved/">
  /council/moved/          <embed src=...-11.pdf> and <object data=...-12.pdf>
  /archive/                <base href="/archive/files/">: a DOCX and the mirror of January
  /de/                     windows-1252, declared only by <meta charset>
  /fr/                     ISO-8859-1, declared only by the Content-Type header
  /services/, /services/finance/, /privacy/   forms, budget, unrelated documents
  /news/, /news/1../news/40  plain pages; /news/N links N+1, N-1, N-2; depth(/news/N) = N+1
  /slow                    answers after SLOW_SECONDS
  /loop/a <-> /loop/b      redirect loop;  /old/minutes-2024-06.pdf -> 302 to the real file
  /files/huge-minutes-2024.pdf  HUGE_BYTES streamed in chunks, no Content-Length
Off-site hrefs (OFFSITE) point at example.org / other.invalid; nothing serves them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Final
from xml.sax.saxutils import escape

from aiohttp import web
from aiohttp.typedefs import Handler

HITS: Final = web.AppKey[collections.Counter[str]]("docsite_hits")
_STOPPING: Final = web.AppKey[asyncio.Event]("docsite_stopping")

SLOW_SECONDS: Final = 5
HUGE_BYTES: Final = 3 * 1024 * 1024
HUGE_PDF: Final = "/files/huge-minutes-2024.pdf"
NEWS_PAGES: Final = 40

MINUTES_2024: Final = frozenset(
    {
        "/files/minutes-2024-01.pdf",
        "/files/MINUTES-2024-02.PDF",
        "/files/minutes-2024-03.pdf?version=2",
        "/download?id=4",
        "/download?id=5",
        "/files/minutes-2024-06.pdf",
        "/blob/7",
        "/files/special-minutes-2024-07-15.pdf",
        "/archive/files/minutes-2024-08.docx",
        "/files/board-minutes-sep.odt",
        "/files/board-minutes-oct.pdf",
        "/files/minutes-2024-11.pdf",
        "/files/minutes-2024-12.pdf",
    }
)
MINUTES_2023: Final = frozenset(
    {"/files/minutes-2023-01.pdf", "/files/minutes-2023-06.pdf", "/files/board-minutes-nov.docx"}
)
BUDGET_2024_XLSX: Final = "/files/budget-2024.xlsx"
BUDGET_2024: Final = frozenset({BUDGET_2024_XLSX, "/files/budget-2024-summary.csv"})
# Shares only the year with the minutes prompt: must rank below every MINUTES_2024 document.
OTHER_2024: Final = frozenset({"/files/water-quality-2024.txt"})
UNRELATED: Final = frozenset(
    {
        "/files/privacy-policy.pdf",
        "/forms/parking-permit.pdf",
        "/forms/job-application.docx",
        "/files/press-release-library-hours.rtf",
        "/files/recycling-schedule.csv",
    }
)
# Foreign-language minutes: a lexical matcher cannot know "Protokoll" means "minutes",
# so the minutes prompt neither requires nor forbids them; their own prompts do.
PROTOKOLL_2024: Final = frozenset({"/de/protokoll-2024-03.pdf"})
PROCES_VERBAL_2024: Final = frozenset({"/fr/proces-verbal-2024-11.pdf"})
ALIASES: Final[Mapping[str, str]] = {
    "/mirror/jan-2024-minutes.pdf": "/files/minutes-2024-01.pdf",
    "/old/minutes-2024-06.pdf": "/files/minutes-2024-06.pdf",
}
DEAD_LINKS: Final = frozenset({"/council/gone/", "/files/minutes-2025-01.pdf"})
REDIRECT_LOOP: Final = frozenset({"/loop/a", "/loop/b"})
OFFSITE: Final = frozenset(
    {
        "http://example.org/minutes-2024.pdf",
        "https://other.invalid/board/minutes-2024.pdf",
        "//other.invalid/council/",
    }
)
PROMPTS: Final[Mapping[str, frozenset[str]]] = {
    "board meeting minutes from 2024": MINUTES_2024,
    "board meeting minutes from 2023": MINUTES_2023,
    "budget 2024": BUDGET_2024,
    "Protokoll März 2024": PROTOKOLL_2024,
    "procès-verbal 2024": PROCES_VERBAL_2024,
}


def expected_for(prompt_key: str) -> frozenset[str]:
    """The canonical document paths that answer one of the PROMPTS."""
    return PROMPTS[prompt_key]


def canonical(path_qs: str) -> str:
    """Map an alias URL path (mirror copy, redirect source) onto its truth-set path."""
    return ALIASES.get(path_qs, path_qs)


# ---------------------------------------------------------------- file formats


def make_pdf(title: str, text: str | None = None) -> bytes:
    """A valid one-page PDF showing ``text`` (default: title) with an /Info /Title."""

    def literal(s: str) -> bytes:
        raw = s.encode("cp1252")  # the font uses WinAnsiEncoding
        return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"

    stream = b"BT /F1 14 Tf 72 720 Td " + literal(text or title) + b" Tj ET"
    info_title = ("\ufeff" + title).encode("utf-16-be").hex().upper().encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Title <" + info_title + b"> /Producer (Riverton docsite) >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def _zip(parts: list[tuple[str, str]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in parts:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            # ODF requires "mimetype" first and uncompressed.
            stored = name == "mimetype"
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buf.getvalue()


_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_OOXML = "http://schemas.openxmlformats.org"
_REL = f"{_OOXML}/officeDocument/2006/relationships"
_PKG_RELS = f"{_OOXML}/package/2006/relationships"
_CORE_TYPE = "application/vnd.openxmlformats-package.core-properties+xml"
_DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
_XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
_SHEET_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"


def _ooxml(title: str, parts: list[tuple[str, str, str]]) -> bytes:
    """An OOXML package: parts are (name, content type or "" for a .rels part, xml); the
    first part is the main one the package relationship points at."""
    overrides = [(name, kind) for name, kind, _ in parts if kind] + [
        ("docProps/core.xml", _CORE_TYPE)
    ]
    types = "".join(
        f'<Override PartName="/{name}" ContentType="{kind}"/>' for name, kind in overrides
    )
    rels_type = "application/vnd.openxmlformats-package.relationships+xml"
    core = (
        f'{_XML}<cp:coreProperties xmlns:cp="{_OOXML}/package/2006/metadata/core-properties"'
        f' xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>{escape(title)}</dc:title>'
        "</cp:coreProperties>"
    )
    content_types = (
        f'{_XML}<Types xmlns="{_OOXML}/package/2006/content-types">'
        f'<Default Extension="rels" ContentType="{rels_type}"/>'
        f'<Default Extension="xml" ContentType="application/xml"/>{types}</Types>'
    )
    package_rels = (
        f'{_XML}<Relationships xmlns="{_PKG_RELS}">'
        f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="{parts[0][0]}"/>'
        f'<Relationship Id="rId2" Type="{_PKG_RELS}/metadata/core-properties"'
        ' Target="docProps/core.xml"/></Relationships>'
    )
    return _zip(
        [
            ("[Content_Types].xml", content_types),
            ("_rels/.rels", package_rels),
            ("docProps/core.xml", core),
            *((name, xml) for name, _, xml in parts),
        ]
    )


def make_docx(title: str, paragraphs: list[str]) -> bytes:
    """A minimal valid Word document: the title (also a core property), then paragraphs."""
    body = "".join(f"<w:p><w:r><w:t>{escape(p)}</w:t></w:r></w:p>" for p in [title, *paragraphs])
    xml = (
        f'{_XML}<w:document xmlns:w="{_OOXML}/wordprocessingml/2006/main">'
        f"<w:body>{body}</w:body></w:document>"
    )
    return _ooxml(title, [("word/document.xml", _DOCX_TYPE, xml)])


def make_xlsx(title: str, rows: list[tuple[str, int]]) -> bytes:
    """A minimal valid one-sheet workbook: a title row, then (label, amount) rows."""

    def row(n: int, label: str, amount: int | None) -> str:
        text = f'<c r="A{n}" t="inlineStr"><is><t>{escape(label)}</t></is></c>'
        number = "" if amount is None else f'<c r="B{n}"><v>{amount}</v></c>'
        return f'<row r="{n}">{text}{number}</row>'

    cells = row(1, title, None) + "".join(row(n, lab, amt) for n, (lab, amt) in enumerate(rows, 2))
    ns = f"{_OOXML}/spreadsheetml/2006/main"
    workbook = (
        f'{_XML}<workbook xmlns="{ns}" xmlns:r="{_REL}"><sheets>'
        '<sheet name="Budget" sheetId="1" r:id="rId1"/></sheets></workbook>'
    )
    workbook_rels = (
        f'{_XML}<Relationships xmlns="{_PKG_RELS}"><Relationship Id="rId1"'
        f' Type="{_REL}/worksheet" Target="worksheets/sheet1.xml"/></Relationships>'
    )
    sheet = f'{_XML}<worksheet xmlns="{ns}"><sheetData>{cells}</sheetData></worksheet>'
    return _ooxml(
        title,
        [
            ("xl/workbook.xml", _XLSX_TYPE, workbook),
            ("xl/_rels/workbook.xml.rels", "", workbook_rels),
            ("xl/worksheets/sheet1.xml", _SHEET_TYPE, sheet),
        ],
    )


def make_odt(title: str, paragraphs: list[str]) -> bytes:
    """A minimal valid OpenDocument text: mimetype first and stored, manifest, meta, content."""
    odt = "application/vnd.oasis.opendocument.text"
    office = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
    manifest_ns = "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"
    entries = [("/", odt), ("content.xml", "text/xml"), ("meta.xml", "text/xml")]
    manifest = f'{_XML}<manifest:manifest xmlns:manifest="{manifest_ns}" manifest:version="1.2">'
    manifest += "".join(
        f'<manifest:file-entry manifest:full-path="{p}" manifest:media-type="{t}"/>'
        for p, t in entries
    )
    text = "".join(f"<text:p>{escape(p)}</text:p>" for p in [title, *paragraphs])
    content = (
        f'{_XML}<office:document-content xmlns:office="{office}" office:version="1.2"'
        ' xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0">'
        f"<office:body><office:text>{text}</office:text></office:body></office:document-content>"
    )
    meta = (
        f'{_XML}<office:document-meta xmlns:office="{office}" office:version="1.2"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"<office:meta><dc:title>{escape(title)}</dc:title></office:meta></office:document-meta>"
    )
    return _zip(
        [
            ("mimetype", odt),
            ("META-INF/manifest.xml", manifest + "</manifest:manifest>"),
            ("meta.xml", meta),
            ("content.xml", content),
        ]
    )


# ---------------------------------------------------------------- documents


@dataclass(frozen=True)
class _Doc:
    body: bytes
    content_type: str
    disposition: str | None = None


_PDF = "application/pdf"
_OCTET = "application/octet-stream"
_DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_ODT = "application/vnd.oasis.opendocument.text"


def _minutes(month: str, year: int = 2024) -> str:
    return f"Board Meeting Minutes – {month} {year}"


@cache
def _documents() -> Mapping[str, _Doc]:
    """Every served document keyed by path_qs; immutable, so shared between apps."""

    def pdf(title: str, kind: str = _PDF, disposition: str | None = None) -> _Doc:
        return _Doc(make_pdf(title), kind, disposition)

    def docx(title: str, *lines: str) -> _Doc:
        return _Doc(make_docx(title, list(lines)), _DOCX)

    def text(body: str, kind: str) -> _Doc:
        return _Doc(body.encode(), kind)

    agenda = ("Present: the Chair, five members, the Clerk.", "Approval of the previous minutes.")
    attachment = 'attachment; filename="minutes-2024-05.pdf"'
    docs = {
        "/files/minutes-2024-01.pdf": pdf(_minutes("January")),
        "/files/MINUTES-2024-02.PDF": pdf(_minutes("February")),
        "/files/minutes-2024-03.pdf?version=2": pdf(_minutes("March") + " (revised)"),
        "/download?id=4": pdf(_minutes("April")),
        "/download?id=5": pdf(_minutes("May"), _OCTET, attachment),
        "/files/minutes-2024-06.pdf": pdf(_minutes("June")),
        "/blob/7": pdf(_minutes("July"), _OCTET),
        "/files/special-minutes-2024-07-15.pdf": pdf("Special " + _minutes("15 July")),
        "/archive/files/minutes-2024-08.docx": docx(_minutes("August"), *agenda),
        "/files/board-minutes-sep.odt": _Doc(make_odt(_minutes("September"), [*agenda]), _ODT),
        "/files/board-minutes-oct.pdf": pdf(_minutes("October")),
        "/files/minutes-2024-11.pdf": pdf(_minutes("November")),
        "/files/minutes-2024-12.pdf": pdf(_minutes("December")),
        "/files/minutes-2023-01.pdf": pdf(_minutes("January", 2023)),
        "/files/minutes-2023-06.pdf": pdf(_minutes("June", 2023)),
        "/files/board-minutes-nov.docx": docx(_minutes("November", 2023), *agenda),
        BUDGET_2024_XLSX: _Doc(make_xlsx("Adopted Budget 2024", [("Parks", 125000)]), _XLSX),
        "/files/budget-2024-summary.csv": text("line,amount\nParks,125000\n", "text/csv"),
        "/files/water-quality-2024.txt": text(
            "Water quality report 2024\nAll good.\n", "text/plain"
        ),
        "/files/privacy-policy.pdf": pdf("Privacy Policy"),
        "/forms/parking-permit.pdf": pdf("Residential Parking Permit Application Form"),
        "/forms/job-application.docx": docx("Job Application Form", "Name:", "Position:"),
        "/files/press-release-library-hours.rtf": text(
            r"{\rtf1\ansi\deff0{\fonttbl{\f0 Helvetica;}}\f0 Press release: new library hours\par}",
            "application/rtf",
        ),
        "/files/recycling-schedule.csv": text("street,day\nMain Street,Monday\n", "text/csv"),
        "/de/protokoll-2024-03.pdf": pdf("Protokoll der Ratssitzung – März 2024"),
        "/fr/proces-verbal-2024-11.pdf": pdf("Procès-verbal du conseil, novembre 2024"),
    }
    docs["/mirror/jan-2024-minutes.pdf"] = docs["/files/minutes-2024-01.pdf"]
    return docs


# ---------------------------------------------------------------- pages


def _html(title: str, body: str, head: str = "", charset: str = "utf-8", lang: str = "en") -> str:
    meta = f'<meta charset="{charset}">' if charset else ""
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}"><head>{meta}<title>{title}</title>{head}</head>'
        f'<body><header><a href="/">Riverton home</a></header><main>{body}</main></body></html>'
    )


_MINUTES_TABLE_2024 = """<h1>Regular board meetings</h1>
<table><tr><th>Meeting</th><th>File</th></tr>
<tr><td>Board Meeting Minutes – January 2024</td>
  <td><a href="../../../../files/minutes-2024-01.pdf">PDF</a></td></tr>
<tr><td>Board Meeting Minutes – February 2024</td>
  <td><a href="http://{host}/files/MINUTES-2024-02.PDF">[PDF]</a></td></tr>
<tr><td>Board Meeting Minutes – March 2024</td>
  <td><a href="//{host}/files/minutes-2024-03.pdf?version=2">Download</a></td></tr>
<tr><td>Board Meeting Minutes – April 2024</td><td><a href="/download?id=4">Download</a></td></tr>
<tr><td>Board Meeting Minutes – May 2024</td><td><a href="/download?id=5">PDF</a></td></tr>
<tr><td>Board Meeting Minutes – June 2024</td>
  <td><a href="/old/minutes-2024-06.pdf">PDF</a></td></tr>
<tr><td>Board Meeting Minutes – July 2024</td><td><a href="/blob/7">[PDF]</a></td></tr>
</table>"""


def _news(n: int) -> str:
    links = "".join(
        f'<a href="{k}">News item {k}</a> ' for k in (n + 1, n - 1, n - 2) if 1 <= k <= NEWS_PAGES
    )
    return f"<h1>News item {n}</h1><p>Road works on street {n} end soon.</p><p>{links}</p>"


_PAGES: Final[Mapping[str, str]] = {
    "/": _html(
        "City of Riverton",
        """<h1 id="main">City of Riverton</h1>
<nav><a href="council/">Council</a> <a href="/services/">Services</a> <a href="/news/">News</a>
<a href="/slow">Live meeting stream</a> <a href="/notice">Council minutes (new location)</a>
<a href="/loop/a">Old document archive</a> <a href="/council/gone/">Former committees</a></nav>
<p><a href="#main">Back to top</a> · <a href="javascript:window.print()">Print</a> ·
<a href="mailto:clerk@riverton.invalid">Email the clerk</a> · <a href="tel:+15550100">Call</a></p>
<map name="languages"><area shape="rect" coords="0,0,40,20" href="/de/" alt="Deutsch">
<area shape="rect" coords="40,0,80,20" href="/fr/" alt="Français"></map>
<h2>Elsewhere</h2><ul>
<li><a href="http://example.org/minutes-2024.pdf">County board meeting minutes 2024</a></li>
<li><a href="https://other.invalid/board/minutes-2024.pdf">Regional board minutes 2024</a></li>
<li><a href="//other.invalid/council/">Neighbouring council</a></li></ul>""",
    ),
    "/council/": _html(
        "Council",
        """<h1>Council</h1><p>The Board of Riverton meets monthly.</p>
<a href="meetings/">Meetings</a> <a href="/archive/">Archive</a> <a href="../services/">Services</a>
""",
    ),
    "/council/meetings/": _html(
        "Council meetings",
        """<h1>Council meetings</h1>
<p><a href="2024/">Current year</a> · <a href="2023/">Previous year</a></p>
<details><summary>Meetings 2024</summary>
  <a href="/files/board-minutes-oct.pdf">Board minutes, October</a></details>
<iframe src="special/" title="Special meetings"></iframe>
<h2>2024</h2><p><a href="/files/board-minutes-sep.odt">Board meeting minutes – September</a></p>
<h2>2023</h2><p><a href="/files/board-minutes-nov.docx">Board meeting minutes – November</a></p>
""",
    ),
    "/council/meetings/special/": _html(
        "Special meetings",
        """<h1>Special meetings</h1>
<a href="/files/special-minutes-2024-07-15.pdf">Special Board Meeting Minutes – 15 July 2024</a>
""",
    ),
    "/council/meetings/2024/": _html(
        "Meetings 2024",
        f"""<h1>Meetings 2024</h1>
<p><a href="regular/">Regular board meetings</a> · <a href="../">All meetings</a></p>
<p><a href="{HUGE_PDF}">Board meeting minutes 2024 – full-year scan (large)</a></p>
<p><a href="/files/minutes-2025-01.pdf">Board meeting minutes – January 2025 (draft)</a></p>
""",
    ),
    "/council/meetings/2024/regular/": _html("Regular board meetings", _MINUTES_TABLE_2024),
    "/council/meetings/2023/": _html(
        "Meetings 2023",
        """<h1>Meetings 2023</h1>
<table><tr><th>Meeting</th><th>File</th></tr>
<tr><td>Board Meeting Minutes – January 2023</td>
  <td><a href="/files/minutes-2023-01.pdf">PDF</a></td></tr>
<tr><td>Board Meeting Minutes – June 2023</td>
  <td><a href="/files/minutes-2023-06.pdf">PDF</a></td></tr></table>""",
    ),
    "/notice": _html(
        "Moved",
        "<p>The council minutes page has moved.</p>",
        head='<meta http-equiv="refresh" content="0; url=/council/moved/">',
    ),
    "/council/moved/": _html(
        "Council minutes",
        """<h1>Council minutes</h1>
<h2>Board Meeting Minutes – November 2024</h2>
<embed src="/files/minutes-2024-11.pdf" type="application/pdf" width="600" height="400">
<h2>Board Meeting Minutes – December 2024</h2>
<object data="/files/minutes-2024-12.pdf" type="application/pdf" width="600" height="400">
  <p>Board Meeting Minutes – December 2024</p></object>""",
    ),
    "/archive/": _html(
        "Minutes archive",
        """<h1>Minutes archive</h1><ul>
<li><a href="minutes-2024-08.docx">Board Meeting Minutes – August 2024 (Word)</a></li>
<li><a href="../../mirror/jan-2024-minutes.pdf">Board Meeting Minutes – January 2024 (copy)</a></li>
</ul>""",
        head='<base href="/archive/files/">',
    ),
    "/services/": _html(
        "Services",
        """<h1>Services</h1><ul>
<li><a href="finance/">Finance and budget</a></li> <li><a href="/privacy/">Privacy</a></li>
<li><a href="/forms/parking-permit.pdf">Residential parking permit application form</a></li>
<li><a href="/forms/job-application.docx">Job application form</a></li>
<li><a href="/files/recycling-schedule.csv">Recycling collection schedule</a></li>
<li><a href="/files/press-release-library-hours.rtf">Press release: library hours</a></li></ul>""",
    ),
    "/services/finance/": _html(
        "Finance",
        """<h1>Finance</h1>
<table><tr><th>Title</th><th>File</th></tr>
<tr><td>Adopted Budget 2024</td><td><a href="/files/budget-2024.xlsx">Download</a></td></tr>
<tr><td>Budget 2024 summary</td><td><a href="/files/budget-2024-summary.csv">CSV</a></td></tr>
<tr><td>Water quality report 2024</td><td><a href="/files/water-quality-2024.txt">TXT</a></td></tr>
</table>""",
    ),
    "/privacy/": _html("Privacy", '<a href="/files/privacy-policy.pdf">Privacy policy (PDF)</a>'),
    "/news/": _html("News", '<h1>News</h1><a href="1">Latest news</a>'),
    "/slow": _html("Live meeting stream", "<p>The stream has ended.</p>"),
    **{f"/news/{n}": _html(f"News item {n}", _news(n)) for n in range(1, NEWS_PAGES + 1)},
}
_DE_PAGE = _html(
    "Sitzungsprotokolle – März 2024",
    "<h1>Sitzungsprotokolle – März 2024</h1>"
    '<a href="protokoll-2024-03.pdf">Protokoll März 2024</a>',
    charset="windows-1252",
    lang="de",
)
_FR_PAGE = _html(
    "Procès-verbaux du conseil",
    '<h1>Procès-verbaux du conseil</h1><a href="proces-verbal-2024-11.pdf">'
    "Procès-verbal de la séance du conseil, novembre 2024</a>",
    charset="",
    lang="fr",
)


# ---------------------------------------------------------------- handlers


def _page(template: str, encoding: str = "utf-8", header_charset: str | None = "utf-8") -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        body = template.replace("{host}", request.host).encode(encoding)
        return web.Response(body=body, content_type="text/html", charset=header_charset)

    return handler


def _redirect(target: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(target)

    return handler


async def _document(request: web.Request) -> web.StreamResponse:
    doc = _documents().get(request.path_qs)
    if doc is None:
        raise web.HTTPNotFound()
    headers = {"Content-Type": doc.content_type}
    if doc.disposition:
        headers["Content-Disposition"] = doc.disposition
    return web.Response(body=doc.body, headers=headers)


async def _slow(request: web.Request) -> web.StreamResponse:
    # Waiting on the shutdown event rather than a bare sleep lets the server close promptly.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(request.app[_STOPPING].wait(), SLOW_SECONDS)
    return await _page(_PAGES["/slow"])(request)


_HUGE_CHUNK = (b"% board meeting minutes 2024, scanned page" + b"." * 981 + b"\n") * 64


async def _huge(request: web.Request) -> web.StreamResponse:
    """HUGE_BYTES of PDF, chunked and without Content-Length, so only counting stops it."""
    response = web.StreamResponse(headers={"Content-Type": _PDF})
    response.enable_chunked_encoding()
    await response.prepare(request)
    head, tail = make_pdf("Board meeting minutes 2024 – full-year scan"), b"%%EOF\n"
    await response.write(head)
    remaining = HUGE_BYTES - len(head) - len(tail)
    while remaining > 0:
        chunk = _HUGE_CHUNK[:remaining]
        await response.write(chunk)
        remaining -= len(chunk)
    await response.write(tail)
    await response.write_eof()
    return response


@web.middleware
async def _count_hits(request: web.Request, handler: Handler) -> web.StreamResponse:
    request.app[HITS][request.path_qs] += 1
    return await handler(request)


def _routes() -> list[tuple[str, Handler]]:
    routes = [(path, _page(template)) for path, template in _PAGES.items() if path != "/slow"]
    routes += [
        ("/de/", _page(_DE_PAGE, "cp1252", None)),
        ("/fr/", _page(_FR_PAGE, "iso-8859-1", "iso-8859-1")),
        ("/slow", _slow),
        (HUGE_PDF, _huge),
        ("/old/minutes-2024-06.pdf", _redirect("/files/minutes-2024-06.pdf")),
        ("/loop/a", _redirect("/loop/b")),
        ("/loop/b", _redirect("/loop/a")),
    ]
    paths = sorted({path_qs.split("?")[0] for path_qs in _documents()})
    return routes + [(path, _document) for path in paths]


def make_docsite() -> web.Application:
    """A fresh Riverton site; ``app[HITS]`` counts requests per path_qs (404s included)."""
    app = web.Application(middlewares=[_count_hits])
    app[HITS] = collections.Counter()
    app[_STOPPING] = asyncio.Event()

    async def stop_slow_requests(app: web.Application) -> None:
        app[_STOPPING].set()

    app.on_shutdown.append(stop_slow_requests)
    for path, handler in _routes():
        app.router.add_get(path, handler)
    return app
