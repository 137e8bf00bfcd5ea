"""Telling document types from URLs, headers and magic bytes; naming saved files."""

from __future__ import annotations

import io
import struct
import zipfile

import pytest

from skopd.crawl.doctypes import (
    KNOWN_TYPES,
    MIME_TYPES,
    looks_like_page,
    safe_filename,
    type_from_headers,
    type_from_magic,
    type_from_url,
)

OOXML_TYPES = '<Types><Override PartName="/{part}" ContentType="{ctype}"/></Types>'
OOXML_MAIN = {
    "docx": ("word/document.xml", "wordprocessingml.document.main+xml"),
    "xlsx": ("xl/workbook.xml", "spreadsheetml.sheet.main+xml"),
    "pptx": ("ppt/presentation.xml", "presentationml.presentation.main+xml"),
}


def zip_bytes(entries: list[tuple[str, bytes]], *, streamed: bool = False) -> bytes:
    """A real zip archive; `streamed` writes it like a server streaming it (data descriptors)."""
    buffer = io.BytesIO()

    class Unseekable(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data: bytes) -> int:  # type: ignore[override]
            return buffer.write(data)

    target: io.IOBase = Unseekable() if streamed else buffer
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:  # type: ignore[arg-type]
        for name, data in entries:
            method = zipfile.ZIP_STORED if name == "mimetype" else zipfile.ZIP_DEFLATED
            archive.writestr(name, data, compress_type=method)
    return buffer.getvalue()


def ooxml(doc_type: str, *, streamed: bool = False) -> bytes:
    part, ctype = OOXML_MAIN[doc_type]
    content_types = OOXML_TYPES.format(part=part, ctype="application/vnd.x-" + ctype)
    return zip_bytes(
        [
            ("[Content_Types].xml", content_types.encode()),
            ("_rels/.rels", b"<Relationships/>"),
            (part, b"<document/>" * 50),
        ],
        streamed=streamed,
    )


def odf(mimetype: str) -> bytes:
    return zip_bytes([("mimetype", mimetype.encode()), ("content.xml", b"<office:document/>")])


def ole2(*stream_names: str, data: bytes = b"") -> bytes:
    """A compound file header, a data sector, and a directory sector naming the streams."""
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1".ljust(512, b"\0")
    data_sector = data.ljust(512, b"\0")
    directory = b""
    for name in ("Root Entry", *stream_names):
        encoded = name.encode("utf-16-le") + b"\0\0"
        directory += encoded.ljust(64, b"\0") + struct.pack("<H", len(encoded)).ljust(64, b"\0")
    return header + data_sector + directory.ljust(512, b"\0")


def test_every_known_type_has_a_mime_type() -> None:
    assert set(MIME_TYPES) == set(KNOWN_TYPES)
    assert MIME_TYPES["pdf"] == "application/pdf"
    assert MIME_TYPES["docx"].endswith("wordprocessingml.document")


@pytest.mark.parametrize(
    ("url", "doc_type"),
    [
        ("https://example.org/a/report.pdf", "pdf"),
        ("https://example.org/A/REPORT.PDF?x=1", "pdf"),
        ("https://example.org/a/minutes.Docx#page=2", "docx"),
        ("https://example.org/a/budget.xlsx?download=true&name=x.html", "xlsx"),
        ("https://example.org/a/data.csv", "csv"),
        ("https://example.org/a/notes.txt;jsessionid=1", "txt"),
        ("https://example.org/a/slides.odp", "odp"),
        ("/relative/letter.rtf", "rtf"),
        ("https://example.org/download.jsp?file=report.pdf", None),
        ("https://example.org/a/page.html", None),
        ("https://example.org/a/", None),
        ("https://example.org", None),
        ("https://example.pdf", None),
        ("https://example.org/a.pdf/view", None),
        ("https://example.org/image.png", None),
    ],
)
def test_type_from_url(url: str, doc_type: str | None) -> None:
    assert type_from_url(url) == doc_type


@pytest.mark.parametrize(
    ("url", "page"),
    [
        ("https://example.org/council/minutes", True),
        ("https://example.org/council/", True),
        ("https://example.org", True),
        ("https://example.org/index.html", True),
        ("https://example.org/INDEX.HTM", True),
        ("https://example.org/view.php?id=3", True),
        ("https://example.org/default.aspx", True),
        ("https://example.org/page.asp", True),
        ("https://example.org/page.jsp", True),
        ("https://example.org/page.cfm", True),
        ("https://example.org/page.shtml", True),
        ("https://example.org/page.xhtml", True),
        ("https://example.org/download.php?file=a.pdf", True),
        ("https://example.org/people/jane.doe", True),
        ("https://example.org/report.pdf", False),
        ("https://example.org/budget.XLSX", False),
        ("https://example.org/logo.png", False),
        ("https://example.org/app.js", False),
        ("https://example.org/backup.zip", False),
    ],
)
def test_looks_like_page(url: str, page: bool) -> None:
    assert looks_like_page(url) is page


@pytest.mark.parametrize(
    ("content_type", "disposition", "expected"),
    [
        ("application/pdf", None, ("pdf", None)),
        ("Application/PDF; charset=binary", None, ("pdf", None)),
        ("application/msword", None, ("doc", None)),
        ("application/vnd.ms-excel", None, ("xls", None)),
        ("application/vnd.ms-powerpoint", None, ("ppt", None)),
        (MIME_TYPES["docx"], None, ("docx", None)),
        (MIME_TYPES["xlsx"], None, ("xlsx", None)),
        (MIME_TYPES["pptx"], None, ("pptx", None)),
        ("application/vnd.oasis.opendocument.text", None, ("odt", None)),
        ("application/vnd.oasis.opendocument.spreadsheet", None, ("ods", None)),
        ("application/vnd.oasis.opendocument.presentation", None, ("odp", None)),
        ("application/rtf", None, ("rtf", None)),
        ("text/rtf", None, ("rtf", None)),
        ("text/csv; charset=utf-8", None, ("csv", None)),
        ("text/html; charset=utf-8", None, (None, None)),
        ("text/plain", None, (None, None)),
        ("text/plain", "attachment", ("txt", None)),
        ("text/plain", "inline; filename=readme", ("txt", "readme")),
        ("application/octet-stream", None, (None, None)),
        (None, None, (None, None)),
        ("", "", (None, None)),
    ],
)
def test_type_from_content_type(
    content_type: str | None, disposition: str | None, expected: tuple[str | None, str | None]
) -> None:
    assert type_from_headers(content_type, disposition) == expected


@pytest.mark.parametrize(
    ("disposition", "expected"),
    [
        ('attachment; filename="Minutes 2024-03.pdf"', ("pdf", "Minutes 2024-03.pdf")),
        ("attachment; filename=Minutes_2024.docx", ("docx", "Minutes_2024.docx")),
        ("attachment; filename=Annual Report.xlsx", ("xlsx", "Annual Report.xlsx")),
        ('attachment;filename="a;b.pdf";size=100', ("pdf", "a;b.pdf")),
        ('attachment; filename="say \\"hi\\".rtf"', ("rtf", 'say "hi".rtf')),
        (
            "attachment; filename=\"fallback.pdf\"; filename*=UTF-8''Protokoll%20M%C3%A4rz.pdf",
            ("pdf", "Protokoll März.pdf"),
        ),
        ("attachment; filename*=utf-8''%E4%BC%9A%E8%AD%B0.docx", ("docx", "会議.docx")),
        ("attachment; filename*=iso-8859-1'de'M%E4rz.pdf", ("pdf", "März.pdf")),
        ("ATTACHMENT; FILENAME=REPORT.PDF", ("pdf", "REPORT.PDF")),
        ('attachment; filename="C:\\Users\\clerk\\report.pdf"', ("pdf", "report.pdf")),
        ('attachment; filename="../../etc/report.pdf"', ("pdf", "report.pdf")),
        ('attachment; filename="MÃ¤rz.pdf"', ("pdf", "März.pdf")),
        ('attachment; filename="Protokoll%20M%C3%A4rz.pdf"', ("pdf", "Protokoll März.pdf")),
        ('attachment; filename="100%_sure.pdf"', ("pdf", "100%_sure.pdf")),
        ('attachment; filename="caf%E9.pdf"', ("pdf", "caf%E9.pdf")),
        ('attachment; filename="unterminated.pdf', ("pdf", "unterminated.pdf")),
        ("attachment; filename*=nonsense.pdf; filename=ok.pdf", ("pdf", "ok.pdf")),
        ("attachment; filename*=bogus-charset''a.pdf", ("pdf", "a.pdf")),
        ('filename="no-type.pdf"', ("pdf", "no-type.pdf")),
        ("attachment; filename=", (None, None)),
        ("attachment;;;=;filename", (None, None)),
        ('"', (None, None)),
    ],
)
def test_type_from_content_disposition(
    disposition: str, expected: tuple[str | None, str | None]
) -> None:
    assert type_from_headers("application/octet-stream", disposition) == expected


def test_filename_extension_wins_over_media_type() -> None:
    assert type_from_headers("application/pdf", 'attachment; filename="data.csv"') == (
        "csv",
        "data.csv",
    )
    assert type_from_headers("application/pdf", 'attachment; filename="scan.jpeg"') == (
        "pdf",
        "scan.jpeg",
    )


@pytest.mark.parametrize(
    ("head", "doc_type"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "pdf"),
        (b"\xef\xbb\xbf%PDF-1.4", "pdf"),
        (b"\r\n  %PDF-1.4", "pdf"),
        (b"{\\rtf1\\ansi\\deff0 hello}", "rtf"),
        (b"<!DOCTYPE html><html>%PDF-1.4", None),
        (b"PK\x03\x04", None),
        (b"", None),
        (b"Date,Amount\n2024-01-01,3\n", None),
        (b"plain text notes", None),
    ],
)
def test_type_from_magic_simple_signatures(head: bytes, doc_type: str | None) -> None:
    assert type_from_magic(head) == doc_type


@pytest.mark.parametrize("doc_type", ["docx", "xlsx", "pptx"])
def test_type_from_magic_ooxml(doc_type: str) -> None:
    assert type_from_magic(ooxml(doc_type)[:8192]) == doc_type
    assert type_from_magic(ooxml(doc_type, streamed=True)[:8192]) == doc_type


@pytest.mark.parametrize(
    ("doc_type", "part"),
    [("docx", "word/document.xml"), ("xlsx", "xl/workbook.xml"), ("pptx", "ppt/slides/s1.xml")],
)
def test_type_from_magic_ooxml_by_folder_name(doc_type: str, part: str) -> None:
    archive = zip_bytes([("_rels/.rels", b"<Relationships/>"), (part, b"<x/>")])
    assert type_from_magic(archive) == doc_type


def test_type_from_magic_does_not_guess_an_unknown_zip() -> None:
    content_types_only = zip_bytes([("[Content_Types].xml", b"<Types/>")])
    assert type_from_magic(content_types_only) is None
    plain = zip_bytes([("keyword/notes.txt", b"word/ xl/ ppt/"), ("photos/a.jpg", b"x")])
    assert type_from_magic(plain) is None
    epub = zip_bytes([("mimetype", b"application/epub+zip"), ("word/x.xml", b"")])
    assert type_from_magic(epub) is None


@pytest.mark.parametrize(
    ("mimetype", "doc_type"),
    [
        ("application/vnd.oasis.opendocument.text", "odt"),
        ("application/vnd.oasis.opendocument.spreadsheet", "ods"),
        ("application/vnd.oasis.opendocument.presentation", "odp"),
        ("application/vnd.oasis.opendocument.graphics", None),
    ],
)
def test_type_from_magic_odf(mimetype: str, doc_type: str | None) -> None:
    assert type_from_magic(odf(mimetype)) == doc_type


@pytest.mark.parametrize(
    ("streams", "doc_type"),
    [
        (("1Table", "WordDocument", "\x05SummaryInformation"), "doc"),
        (("Workbook", "\x05SummaryInformation"), "xls"),
        (("Book",), "xls"),
        (("Current User", "PowerPoint Document", "Pictures"), "ppt"),
        (("Workbook", "MBD0001", "WordDocument"), "xls"),
        (("SomethingElse",), "doc"),
    ],
)
def test_type_from_magic_ole2(streams: tuple[str, ...], doc_type: str) -> None:
    assert type_from_magic(ole2(*streams)) == doc_type


def test_type_from_magic_ole2_ignores_names_inside_stream_data() -> None:
    text = "see the Workbook attached".encode("utf-16-le")
    assert type_from_magic(ole2("WordDocument", data=text)) == "doc"
    assert type_from_magic(ole2(data=b"\0" * 6 + "Workbook".encode("utf-16-le"))) == "doc"


def test_type_from_magic_never_says_text() -> None:
    for head in (b"a,b,c\n1,2,3\n", b"Just some notes.\n", b"\xff\xfeh\x00i\x00"):
        assert type_from_magic(head) not in ("txt", "csv")


@pytest.mark.parametrize(
    ("name", "doc_type", "expected"),
    [
        ("Minutes 2024-03-12.pdf", "pdf", "Minutes 2024-03-12.pdf"),
        ("Minutes.PDF", "pdf", "Minutes.pdf"),
        ("minutes", "pdf", "minutes.pdf"),
        ("minutes.docx", "pdf", "minutes.pdf"),
        ("download.php", "xlsx", "download.xlsx"),
        ("Sitzung 3.4.2024", "pdf", "Sitzung 3.4.2024.pdf"),
        ("../../etc/passwd", "pdf", "etc_passwd.pdf"),
        ("/abs/path/report.pdf", "pdf", "abs_path_report.pdf"),
        ("C:\\Users\\x\\report.pdf", "pdf", "C_Users_x_report.pdf"),
        ("rep\x00ort\x07.pdf", "pdf", "rep_ort.pdf"),
        (".hidden.pdf", "pdf", "hidden.pdf"),
        ("...", "pdf", "document.pdf"),
        ("", "docx", "document.docx"),
        ("%$#@!.pdf", "pdf", "document.pdf"),
        ("a  b   c.pdf", "pdf", "a b c.pdf"),
        ("a__b???c.pdf", "pdf", "a_b_c.pdf"),
        ("Protokoll – März: Entwurf?.pdf", "pdf", "Protokoll_März_Entwurf.pdf"),
        ("会議録 2024年.pdf", "pdf", "会議録 2024年.pdf"),
        ("Протокол заседания.docx", "docx", "Протокол заседания.docx"),
        ("evil\u202etxt.pdf", "pdf", "evil_txt.pdf"),
        ("CON.pdf", "pdf", "_CON.pdf"),
        ("con", "pdf", "_con.pdf"),
        ("lpt1.report.pdf", "pdf", "_lpt1.report.pdf"),
        ("CONTRACT.pdf", "pdf", "CONTRACT.pdf"),
        ("report.PDF", "PDF", "report.pdf"),
    ],
)
def test_safe_filename(name: str, doc_type: str, expected: str) -> None:
    assert safe_filename(name, doc_type) == expected


def test_safe_filename_composes_unicode() -> None:
    decomposed = "Ma\u0308rz.pdf"
    assert safe_filename(decomposed, "pdf") == "M\u00e4rz.pdf"


@pytest.mark.parametrize("stem", ["x" * 500, "ä" * 500, "会" * 500, "a" * 119 + "会" * 10])
def test_safe_filename_fits_the_byte_budget_without_cutting_characters(stem: str) -> None:
    name = safe_filename(stem + ".pdf", "pdf")
    assert len(name.encode()) <= 120
    assert name.endswith(".pdf")
    assert name.removesuffix(".pdf") and stem.startswith(name.removesuffix(".pdf"))
    assert len(safe_filename(stem, "docx", max_len=40).encode()) <= 40


def test_safe_filename_results_stay_inside_the_folder() -> None:
    for name in ["../x", "..", "/", "a/../../b", "\\\\server\\share\\f", "~/.ssh/id_rsa", "\n"]:
        safe = safe_filename(name, "pdf")
        assert "/" not in safe and "\\" not in safe and ".." not in safe
        assert not safe.startswith(".")
