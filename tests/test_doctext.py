"""Document text: real small files of every supported type, built here, read back."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import pypdf
import pytest

from skopd.relevance.doctext import DocTextError, clean_title, decode_text, extract_text


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------- PDF


def _pdf_string(text: str) -> bytes:
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return b"(" + escaped.encode("cp1252") + b")"


def make_pdf(pages: list[list[str]], title: str | None = None) -> bytes:
    """A minimal valid PDF, written by hand: one Helvetica text line per entry."""
    font = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b"", font]
    kids = []
    for lines in pages:
        ops = b"BT /F1 12 Tf 14 TL 72 720 Td " + b" ".join(
            _pdf_string(t) + b" Tj T*" for t in lines
        )
        ops += b" ET"
        content = b"<< /Length %d >>\nstream\n%s\nendstream" % (len(ops), ops)
        objects.append(content)
        kids.append(len(objects) + 1)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R"
            b" /Resources << /Font << /F1 3 0 R >> >> >>" % (len(objects))
        )
    refs = b" ".join(b"%d 0 R" % k for k in kids)
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (refs, len(kids))
    info = b""
    if title is not None:
        objects.append(b"<< /Title " + _pdf_string(title) + b" >>")
        info = b" /Info %d 0 R" % len(objects)
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\n" % (len(objects) + 1, info)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def encrypted(pdf: bytes, user_password: str) -> bytes:
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password, owner_password="owner", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


MINUTES_PDF = make_pdf(
    [
        ["Board Meeting Minutes", "Held on 12 March 2024 (regular session)"],
        ["Second page: budget resolution adopted"],
    ],
    title="Microsoft Word - Minutes 2024-03.doc",
)


async def test_pdf_text_title_and_heading(tmp_path: Path) -> None:
    doc = await extract_text(write(tmp_path, "m.pdf", MINUTES_PDF), "pdf")
    assert doc.text == (
        "Board Meeting Minutes Held on 12 March 2024 (regular session) "
        "Second page: budget resolution adopted"
    )
    assert doc.title == "Minutes 2024-03"
    assert doc.heading == "Board Meeting Minutes"


async def test_pdf_reads_only_the_first_pages(tmp_path: Path) -> None:
    doc = await extract_text(write(tmp_path, "m.pdf", MINUTES_PDF), "pdf", max_pages=1)
    assert "March 2024" in doc.text
    assert "Second page" not in doc.text


async def test_text_is_cut_at_max_chars(tmp_path: Path) -> None:
    pdf = make_pdf([[f"Line {i} of the annual report" for i in range(40)]])
    doc = await extract_text(write(tmp_path, "r.pdf", pdf), "pdf", max_chars=100)
    assert len(doc.text) <= 100
    assert doc.text.startswith("Line 0 of the annual report Line 1")


@pytest.mark.parametrize(
    "data",
    [
        MINUTES_PDF[: len(MINUTES_PDF) // 3],
        b"%PDF-1.4\nthis is not a pdf at all\n%%EOF\n",
        b"<html><body>Not found</body></html>",
        b"",
    ],
    ids=["truncated", "garbage", "html", "empty"],
)
async def test_broken_pdf_is_a_doctext_error(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(DocTextError):
        await extract_text(write(tmp_path, "x.pdf", data), "pdf")


async def test_encrypted_pdf_is_a_doctext_error(tmp_path: Path) -> None:
    path = write(tmp_path, "secret.pdf", encrypted(MINUTES_PDF, "secret"))
    with pytest.raises(DocTextError, match="encrypted"):
        await extract_text(path, "pdf")


async def test_pdf_with_only_an_owner_password_is_read(tmp_path: Path) -> None:
    doc = await extract_text(write(tmp_path, "locked.pdf", encrypted(MINUTES_PDF, "")), "pdf")
    assert "Board Meeting Minutes" in doc.text


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Microsoft Word - Protokoll 2024.docx", "Protokoll 2024"),
        ("Microsoft PowerPoint - Jahresbericht.pptx", "Jahresbericht"),
        ("  Budget   2025 ", "Budget 2025"),
        ("Untitled", None),
        ("untitled document", None),
        ("Document1", None),
        ("PowerPoint Presentation", None),
        ("Microsoft Word - Document1", None),
        ("1234", None),
        ("", None),
        (None, None),
    ],
)
def test_metadata_titles_are_cleaned(raw: str | None, clean: str | None) -> None:
    assert clean_title(raw) == clean


# ---------------------------------------------------------------- zipped XML

W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
CORE = (
    '<?xml version="1.0"?><cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/'
    'package/2006/metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/">'
    "<dc:title>{title}</dc:title></cp:coreProperties>"
)


def make_zip(members: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in members.items():
            archive.writestr(name, body)
    return buffer.getvalue()


def docx_paragraph(text: str, style: str | None = None) -> str:
    props = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
    runs = "".join(f"<w:r><w:t xml:space='preserve'>{part}</w:t></w:r>" for part in text.split("|"))
    return f"<w:p>{props}{runs}</w:p>"


def make_docx(paragraphs: list[str], title: str | None = None, style: str = "Heading1") -> bytes:
    body = docx_paragraph(paragraphs[0], style) + "".join(map(docx_paragraph, paragraphs[1:]))
    members: dict[str, str | bytes] = {
        "[Content_Types].xml": "<Types/>",
        "word/document.xml": f"<w:document {W}><w:body>{body}<w:sectPr/></w:body></w:document>",
    }
    if title is not None:
        members["docProps/core.xml"] = CORE.format(title=title)
    return make_zip(members)


async def test_docx_paragraphs_title_and_heading(tmp_path: Path) -> None:
    docx = make_docx(
        ["Sitzungsprotokoll", "Gemeinderat, |Sitzung vom 5. März 2024", "Top 1: Haushalt"],
        title="Protokoll GR 2024-03",
        style="berschrift1",  # a German Word file's style id for "Überschrift 1"
    )
    doc = await extract_text(write(tmp_path, "p.docx", docx), "docx")
    assert doc.text == "Sitzungsprotokoll Gemeinderat, Sitzung vom 5. März 2024 Top 1: Haushalt"
    assert doc.title == "Protokoll GR 2024-03"
    assert doc.heading == "Sitzungsprotokoll"


async def test_docx_heading_falls_back_to_the_first_short_line(tmp_path: Path) -> None:
    docx = make_docx(["A" * 400, "Annual report 2023", "Text"], style="Normal")
    doc = await extract_text(write(tmp_path, "r.docx", docx), "docx")
    assert doc.heading == "Annual report 2023"
    assert doc.title is None


async def test_docx_that_is_not_a_zip_is_a_doctext_error(tmp_path: Path) -> None:
    with pytest.raises(DocTextError):
        await extract_text(write(tmp_path, "x.docx", b"PK\x03\x04 broken"), "docx")


async def test_huge_docx_stays_bounded(tmp_path: Path) -> None:
    """Zip bombs: 30 MB of text paragraphs, 60 MB of empty ones, in a small file; reading
    stops at the text limit or the byte budget, quickly."""
    path = tmp_path / "bomb.docx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            member.write(f"<w:document {W}><w:body>".encode())
            chunk = (docx_paragraph("Minutes of the meeting") * 1000).encode()
            for _ in range(300):
                member.write(chunk)
        with archive.open("word/empty.xml", "w", force_zip64=True) as member:
            member.write(f"<w:document {W}><w:body>".encode())
            for _ in range(100):
                member.write(b"<w:p/>" * 100_000)
    assert path.stat().st_size < 1024 * 1024
    # CPU time, not wall time: other processes may share the machine.
    started = time.process_time()
    doc = await extract_text(path, "docx", max_chars=1000)
    assert time.process_time() - started < 1.0
    assert 900 <= len(doc.text) <= 1000
    assert doc.text.startswith("Minutes of the meeting Minutes")

    with zipfile.ZipFile(path) as archive:
        empty = make_zip({"word/document.xml": archive.read("word/empty.xml")})
    started = time.process_time()
    doc = await extract_text(write(tmp_path, "empty.docx", empty), "docx")
    assert time.process_time() - started < 3.0
    assert doc.text == ""


ODF_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"'
)


async def test_odt_text_title_and_heading(tmp_path: Path) -> None:
    content = (
        f"<office:document-content {ODF_NS}><office:body><office:text>"
        "<text:p>Ville de Riverton</text:p>"
        "<text:h text:outline-level='1'>Procès-verbal du conseil</text:h>"
        "<text:p>Séance<text:s/>du <text:span>3 avril</text:span> 2024"
        "<text:note><text:note-body><text:p>note</text:p></text:note-body></text:note>"
        "<text:tab/>ordre du jour</text:p>"
        "</office:text></office:body></office:document-content>"
    )
    meta = (
        '<office:document-meta xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/"><office:meta>'
        "<dc:title>PV conseil avril 2024</dc:title></office:meta></office:document-meta>"
    )
    odt = make_zip({"mimetype": "application/vnd.oasis.opendocument.text",
                    "content.xml": content, "meta.xml": meta})  # fmt: skip
    doc = await extract_text(write(tmp_path, "pv.odt", odt), "odt")
    assert doc.text == (
        "Ville de Riverton Procès-verbal du conseil note Séance du 3 avril 2024 ordre du jour"
    )
    assert doc.title == "PV conseil avril 2024"
    assert doc.heading == "Procès-verbal du conseil"


async def test_xlsx_shared_strings_and_title(tmp_path: Path) -> None:
    strings = (
        '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        "<si><t>Budget 2025</t></si><si><r><t>Ein</t></r><r><t>nahmen</t></r></si>"
        "<si><t>Ausgaben</t></si></sst>"
    )
    xlsx = make_zip({"xl/sharedStrings.xml": strings,
                     "docProps/core.xml": CORE.format(title="Haushalt 2025")})  # fmt: skip
    doc = await extract_text(write(tmp_path, "b.xlsx", xlsx), "xlsx")
    assert doc.text == "Budget 2025 Einnahmen Ausgaben"
    assert doc.title == "Haushalt 2025"
    assert doc.heading is None  # a spreadsheet's first cell is a column header, not a heading


async def test_pptx_slides_in_order_up_to_max_pages(tmp_path: Path) -> None:
    def slide(text: str) -> str:
        return (
            '<p:sld xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"'
            ' xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main">'
            f"<a:p><a:r><a:t>{text}</a:t></a:r></a:p></p:sld>"
        )

    pptx = make_zip({f"ppt/slides/slide{n}.xml": slide(f"Slide {n} text") for n in (10, 2, 1, 3)})
    doc = await extract_text(write(tmp_path, "s.pptx", pptx), "pptx", max_pages=3)
    assert doc.text == "Slide 1 text Slide 2 text Slide 3 text"
    assert doc.heading == "Slide 1 text"


# ---------------------------------------------------------------- RTF, TXT, CSV

RTF = (
    rb"{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0\fswiss Arial;}}{\colortbl;\red0\green0\blue0;}"
    rb"{\info{\title Protokoll M\'e4rz}{\author Clerk}}"
    rb"{\*\generator Writer}\pard\plain\f0\fs24 Sitzung im M\'e4rz 2024\par "
    rb"Beschl\'fcsse: Stra\'dfenbau {\b genehmigt}\tab Kosten \u8364? 5000\par"
    rb"{\pict\pngblip 89504e470d0a1a0a0000000d49484452}"
    rb"{\field{\*\fldinst HYPERLINK http://x}{\fldrslt Link}}\par}"
)


async def test_rtf_text_escapes_and_title(tmp_path: Path) -> None:
    doc = await extract_text(write(tmp_path, "p.rtf", RTF), "rtf")
    assert doc.text == "Sitzung im März 2024 Beschlüsse: Straßenbau genehmigt Kosten € 5000 Link"
    assert doc.title == "Protokoll März"
    assert doc.heading == "Sitzung im März 2024"


async def test_rtf_uses_its_code_page(tmp_path: Path) -> None:
    rtf = rb"{\rtf1\ansi\ansicpg1251 \'cf\'f0\'ee\'f2\'ee\'ea\'ee\'eb 2024\par}"
    doc = await extract_text(write(tmp_path, "r.rtf", rtf), "rtf")
    assert doc.text == "Протокол 2024"


async def test_rtf_that_is_not_rtf_is_a_doctext_error(tmp_path: Path) -> None:
    with pytest.raises(DocTextError):
        await extract_text(write(tmp_path, "r.rtf", b"%PDF-1.4"), "rtf")


async def test_txt_in_cp1252(tmp_path: Path) -> None:
    data = "Sitzungsprotokoll\r\n\r\nBeschlüsse für März – Straßen\r\n".encode("cp1252")
    doc = await extract_text(write(tmp_path, "p.txt", data), "txt")
    assert doc.text == "Sitzungsprotokoll Beschlüsse für März – Straßen"
    assert doc.heading == "Sitzungsprotokoll"
    assert doc.title is None


@pytest.mark.parametrize(
    ("data", "text"),
    [
        ("\ufeffÜbersicht".encode(), "Übersicht"),
        ("Übersicht".encode("utf-16"), "Übersicht"),
        ("Übersicht".encode(), "Übersicht"),
        ("Übersicht".encode("cp1252"), "Übersicht"),
    ],
)
def test_text_decoding(data: bytes, text: str) -> None:
    assert decode_text(data) == text


def test_a_utf8_file_cut_inside_a_character_stays_utf8() -> None:
    data = "Straße Mä".encode()[:-1]  # the read stopped inside "ä"
    assert decode_text(data, cut=True) == "Straße M"


async def test_long_utf8_txt_is_not_mistaken_for_cp1252(tmp_path: Path) -> None:
    data = ("Größe " * 20_000).encode()
    doc = await extract_text(write(tmp_path, "big.txt", data), "txt", max_chars=50)
    assert doc.text.startswith("Größe Größe")
    assert len(doc.text) <= 50


async def test_csv_rows(tmp_path: Path) -> None:
    data = 'Datum;Titel;Datei\n2024-03-12;"Protokoll; Sitzung";p.pdf\n'.encode("cp1252")
    doc = await extract_text(write(tmp_path, "l.csv", data), "csv")
    assert doc.text == "Datum | Titel | Datei 2024-03-12 | Protokoll; Sitzung | p.pdf"
    assert doc.heading is None


async def test_binary_office_formats_give_empty_text(tmp_path: Path) -> None:
    doc = await extract_text(write(tmp_path, "o.doc", b"\xd0\xcf\x11\xe0" + b"\0" * 600), "doc")
    assert doc.text == ""


async def test_timeout_is_a_doctext_error(tmp_path: Path) -> None:
    path = write(tmp_path, "big.txt", b"word " * 200_000)
    with pytest.raises(DocTextError, match="took longer"):
        await extract_text(path, "txt", max_chars=1_000_000, timeout_s=0.0)
