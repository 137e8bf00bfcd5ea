"""The start of a downloaded document's own text, its title and first heading.

The relevance judge reads this to tell a document from its link alone. Every format is read
lazily and stops as soon as ``max_chars`` of text are gathered, from at most ``_MAX_BYTES``
of the file, so a hostile file (a zip bomb, a huge RTF picture) costs bounded work. The work
runs in a thread under a timeout; a thread cannot be killed, so it also checks the deadline
itself between paragraphs and pages and ends soon after the caller has given up.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
import re
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

import msgspec
import pypdf
from lxml import etree

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

_MAX_BYTES: Final = 20 * 1024 * 1024  # read from a file
# XML decompressed from one zip member, per character of text wanted: a few pages of even
# heavily formatted text take a few hundred KB, and lxml builds only ~0.6 M elements a second.
_XML_BYTES_PER_CHAR: Final = 512
_XML_BYTES_MIN: Final = 1024 * 1024
_CHECK_EVERY: Final = 4096  # loop steps between deadline checks
_META_BYTES: Final = 256 * 1024  # docProps/core.xml, meta.xml
_HEADING_LIMIT: Final = 150  # a longer first line is a paragraph, not a heading
_HEADING_LINES: Final = 5  # non-empty lines searched for a heading candidate
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
_SURROGATES: Final = re.compile(r"[\ud800-\udfff]")


class DocText(msgspec.Struct):
    text: str  # whitespace collapsed, at most max_chars
    title: str | None = None  # from the file's metadata, when meaningful
    heading: str | None = None  # first heading, else the first short line


class DocTextError(Exception):
    """The file cannot be read as the type it claims (broken, encrypted, too slow)."""


class _Expired(Exception):
    pass


async def extract_text(
    path: Path,
    doc_type: str,
    *,
    max_chars: int = 4000,
    max_pages: int = 3,
    timeout_s: float = 10.0,
) -> DocText:
    """The first ``max_chars`` characters of text of the first ``max_pages`` pages (or
    slides) of a document. Binary Office formats (doc, xls, ppt) give empty text."""
    deadline = time.monotonic() + timeout_s
    work = asyncio.to_thread(_extract, path, doc_type, max_chars, max_pages, deadline)
    try:
        return await asyncio.wait_for(work, timeout_s)
    except TimeoutError:
        raise DocTextError(
            f"reading the {doc_type} text took longer than {timeout_s:g} s"
        ) from None


def _extract(path: Path, doc_type: str, max_chars: int, max_pages: int, deadline: float) -> DocText:
    reader = _READERS.get(doc_type)
    if reader is None:
        return DocText(text="")
    out = _Text(max_chars, deadline, headings=doc_type not in _TABLES)
    try:
        title = reader(path, out, max_pages)
    except DocTextError:
        raise
    except _Expired:
        raise DocTextError(f"reading the {doc_type} text took too long") from None
    except Exception as exc:  # every library error means the same thing: unreadable
        raise DocTextError(f"unreadable {doc_type} file: {_describe(exc, path)}") from None
    return out.result(clean_title(title))


def _describe(exc: Exception, path: Path) -> str:
    """The library's words, without the file's path: the message is shown to API clients,
    and the path would tell them where the server keeps its files."""
    text = str(exc)
    for where, shown in ((path, "the file"), (path.parent, "the job's folder")):
        for spelling in {str(where), str(where.resolve())}:
            text = text.replace(spelling, shown)
    text = " ".join(text.split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Text:
    """Text blocks (paragraphs, pages, cells) gathered until the limit is reached."""

    def __init__(self, limit: int, deadline: float, *, headings: bool) -> None:
        self.limit = limit
        self.deadline = deadline
        self.parts: list[str] = []
        self.size = 0
        self.heading: str | None = None  # one the format marks as a heading
        self.first_line: str | None = None
        self.lines_left = _HEADING_LINES if headings else 0
        self.headings = headings

    @property
    def full(self) -> bool:
        return self.size >= self.limit

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise _Expired

    def add(self, block: str, *, heading: bool = False) -> bool:
        """Keep a block of text; True once enough text is kept."""
        self.check()
        if self.lines_left:
            self._look_for_first_line(block)
        text = " ".join(_CONTROL.sub(" ", block).split())
        if text:
            if _SURROGATES.search(text):
                text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
            if heading and self.headings and self.heading is None:
                self.heading = _shorten(text)
            self.parts.append(text)
            self.size += len(text) + 1
        return self.full

    def _look_for_first_line(self, block: str) -> None:
        for line in block.splitlines():
            line = " ".join(line.split())
            if not line:
                continue
            self.lines_left -= 1
            if len(line) <= _HEADING_LIMIT and any(c.isalpha() for c in line):
                self.first_line = line
                self.lines_left = 0
            if not self.lines_left:
                return

    def result(self, title: str | None) -> DocText:
        text = " ".join(self.parts)[: self.limit].rstrip()
        heading = self.heading or (self.first_line if self.headings else None)
        return DocText(text=text, title=title, heading=heading)


_Reader = Callable[[Path, _Text, int], str | None]


def _shorten(text: str) -> str:
    return text if len(text) <= _HEADING_LIMIT else text[:_HEADING_LIMIT].rsplit(" ", 1)[0]


# ---------------------------------------------------------------- titles

_TITLE_PREFIX: Final = re.compile(
    r"^\s*microsoft\s+(?:word|excel|powerpoint)\s*-\s*", re.IGNORECASE
)
_TITLE_EXTENSION: Final = re.compile(
    r"\.(?:pdf|docx?|xlsx?|pptx?|od[tsp]|rtf|txt|csv|indd|qxd|tex|html?)$", re.IGNORECASE
)
_EMPTY_TITLES: Final = frozenset(
    "untitled|untitled document|document|document1|doc1|dokument|dokument1|title|titel|"
    "unbenannt|sans titre|sin titulo|sin título|senza titolo|naamloos|presentation|"
    "powerpoint presentation|powerpoint-präsentation|présentation powerpoint|slide 1|"
    "folie 1|book1|mappe1|classeur1|workbook|arbeitsmappe|no title|none|null|word".split("|")
)


def clean_title(raw: str | None) -> str | None:
    """A metadata title worth showing: "Microsoft Word - Minutes 2024.doc" -> "Minutes 2024";
    placeholders ("Untitled", "Document1", "PowerPoint Presentation") -> None."""
    if not raw:
        return None
    title = " ".join(_CONTROL.sub(" ", raw).split())
    title = _TITLE_EXTENSION.sub("", _TITLE_PREFIX.sub("", title)).strip(" -_")
    if not any(c.isalpha() for c in title) or title.casefold() in _EMPTY_TITLES:
        return None
    return title[:300]


# ---------------------------------------------------------------- bounded files


class _CountingRaw(io.FileIO):
    """A file that refuses to be read past ``_MAX_BYTES`` in total, re-reads included."""

    total = 0

    def readinto(self, buffer: WriteableBuffer) -> int:
        count = super().readinto(buffer) or 0
        self.total += count
        if self.total > _MAX_BYTES:
            raise DocTextError(f"reading it needs more than {_MAX_BYTES >> 20} MB")
        return count


def _open(path: Path) -> IO[bytes]:
    """Small files are read at once; big ones (a PDF's index sits at its end) are read
    where the parser seeks, within the byte budget."""
    if path.stat().st_size <= _MAX_BYTES:
        return io.BytesIO(path.read_bytes())
    return io.BufferedReader(_CountingRaw(path, "r"), buffer_size=4096)


class _Capped:
    """A decompressing stream cut at ``limit`` bytes; ``hit`` tells whether it was cut."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self.stream = stream
        self.left = limit
        self.hit = False

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > self.left:
            size = self.left
        data = self.stream.read(size) if size else b""
        self.left -= len(data)
        if self.left <= 0:
            self.hit = True
        return data


def _read_head(path: Path, limit: int) -> tuple[bytes, bool]:
    """The first ``limit`` bytes of a file, and whether there was more."""
    with path.open("rb") as fh:
        data = fh.read(limit + 1)
    return data[:limit], len(data) > limit


# ---------------------------------------------------------------- PDF


def _pdf(path: Path, out: _Text, max_pages: int) -> str | None:
    with _open(path) as fh:
        reader = pypdf.PdfReader(fh)
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")  # owner-password-only PDFs open for reading
            except Exception:
                opened = pypdf.PasswordType.NOT_DECRYPTED
            if opened == pypdf.PasswordType.NOT_DECRYPTED:
                raise DocTextError("the PDF is encrypted")
        title = _pdf_title(reader)
        for index in range(min(max_pages, len(reader.pages))):
            if out.add(reader.pages[index].extract_text()):
                break
    return title


def _pdf_title(reader: pypdf.PdfReader) -> str | None:
    try:
        meta = reader.metadata
        return str(meta.title) if meta is not None and meta.title else None
    except Exception:  # a broken info dictionary costs the title, not the text
        return None


# ---------------------------------------------------------------- zipped XML

_W: Final = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_A: Final = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_S: Final = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_TEXT: Final = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
_DC_TITLE: Final = "{http://purl.org/dc/elements/1.1/}title"
_HEADING_STYLE: Final = re.compile(
    r"heading|title|titel|titre|berschrift|kop|titolo|encabezado", re.IGNORECASE
)
_ODF_SPACES: Final = frozenset({f"{_TEXT}s", f"{_TEXT}tab", f"{_TEXT}line-break"})


def _docx_text(p: etree._Element) -> str:
    return "".join(
        (t.text or "") if t.tag == f"{_W}t" else " "
        for t in p.iter(f"{_W}t", f"{_W}tab", f"{_W}br", f"{_W}cr")
    )


def _docx_heading(p: etree._Element) -> bool:
    style = p.find(f"{_W}pPr/{_W}pStyle")
    return style is not None and bool(_HEADING_STYLE.search(style.get(f"{_W}val") or ""))


def _drawing_text(p: etree._Element) -> str:
    return "".join(
        (t.text or "") if t.tag == f"{_A}t" else " " for t in p.iter(f"{_A}t", f"{_A}br")
    )


def _shared_string(si: etree._Element) -> str:
    return "".join(t.text or "" for t in si.iter(f"{_S}t"))


def _odf_text(el: etree._Element) -> str:
    parts: list[str] = []
    _odf_walk(el, parts)
    return "".join(parts)


def _odf_walk(el: etree._Element, parts: list[str]) -> None:
    if el.tag in _ODF_SPACES:
        parts.append(" ")
    if el.text:
        parts.append(el.text)
    for child in el:
        _odf_walk(child, parts)
        if child.tail:
            parts.append(child.tail)


def _is_odf_heading(el: etree._Element) -> bool:
    return el.tag == f"{_TEXT}h"


def _never(el: etree._Element) -> bool:
    return False


class _Blocks:
    """How one XML format marks its text blocks."""

    def __init__(
        self,
        tags: frozenset[str],
        text: Callable[[etree._Element], str],
        heading: Callable[[etree._Element], bool] = _never,
    ) -> None:
        self.tags = tags
        self.text = text
        self.heading = heading


_DOCX: Final = _Blocks(frozenset({f"{_W}p"}), _docx_text, _docx_heading)
_SLIDES: Final = _Blocks(frozenset({f"{_A}p"}), _drawing_text)
_SHARED: Final = _Blocks(frozenset({f"{_S}si"}), _shared_string)
_ODF: Final = _Blocks(frozenset({f"{_TEXT}p", f"{_TEXT}h"}), _odf_text, _is_odf_heading)


def _read_blocks(archive: zipfile.ZipFile, member: str, blocks: _Blocks, out: _Text) -> bool:
    """Stream one XML member's text blocks into ``out``; True once it is full. Elements are
    dropped as soon as they are read, so memory stays flat however big the member is."""
    with archive.open(member) as stream:
        limit = min(_MAX_BYTES, max(_XML_BYTES_MIN, out.limit * _XML_BYTES_PER_CHAR))
        return _parse_blocks(_Capped(stream, limit), blocks, out)


def _parse_blocks(capped: _Capped, blocks: _Blocks, out: _Text) -> bool:
    depth = 0  # inside a text block, whose children are still needed
    steps = 0
    try:
        for event, el in etree.iterparse(
            capped,
            events=("start", "end"),
            resolve_entities=False,
            no_network=True,
            remove_comments=True,
            remove_pis=True,
        ):
            steps += 1
            if steps % _CHECK_EVERY == 0:
                out.check()
            if el.tag in blocks.tags:
                if event == "start":
                    depth += 1
                    continue
                depth -= 1
                if len(el) or el.text:  # empty paragraphs are common: skip them cheaply
                    text = blocks.text(el)
                    if text and out.add(text, heading=out.heading is None and blocks.heading(el)):
                        return True
            elif event == "start" or depth:
                continue
            _forget(el)
    except etree.XMLSyntaxError:
        if not capped.hit:  # a member cut at the byte cap ends mid-element: keep what we have
            raise
    return out.full


def _forget(el: etree._Element) -> None:
    tail = el.tail  # in mixed content the tail is the parent's text
    el.clear()
    el.tail = tail
    parent = el.getparent()
    if parent is not None:
        while el.getprevious() is not None:
            del parent[0]


def _meta_title(archive: zipfile.ZipFile, member: str) -> str | None:
    if member not in archive.NameToInfo:
        return None
    with archive.open(member) as fh:
        data = fh.read(_META_BYTES)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, recover=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        return None
    if root is None:
        return None
    found = root.find(f".//{_DC_TITLE}")
    return found.text if found is not None else None


def _zipped(member: str | Callable[[zipfile.ZipFile, int], list[str]], blocks: _Blocks) -> _Reader:
    """A reader for a zip-based format: the text members, then the metadata title."""

    def read(path: Path, out: _Text, max_pages: int) -> str | None:
        with _open(path) as fh, zipfile.ZipFile(fh) as archive:
            names = [member] if isinstance(member, str) else member(archive, max_pages)
            for name in names:
                if name in archive.NameToInfo and _read_blocks(archive, name, blocks, out):
                    break
            ooxml = "docProps/core.xml" in archive.NameToInfo
            return _meta_title(archive, "docProps/core.xml" if ooxml else "meta.xml")

    return read


_SLIDE_NAME: Final = re.compile(r"ppt/slides/slide(\d+)\.xml")


def _slides(archive: zipfile.ZipFile, max_pages: int) -> list[str]:
    numbered = [
        (int(m.group(1)), name)
        for name in archive.NameToInfo
        if (m := _SLIDE_NAME.fullmatch(name)) is not None
    ]
    return [name for _, name in sorted(numbered)[:max_pages]]


# ---------------------------------------------------------------- RTF

_RTF_TOKEN: Final = re.compile(
    rb"\\([a-zA-Z]{1,32})(-?\d{1,10})? ?"  # control word and its parameter
    rb"|\\'([0-9a-fA-F]{2})"  # a byte in the document's code page
    rb"|\\([^a-zA-Z])"  # control symbol
    rb"|([{}])"
    rb"|[\r\n]+"
    rb"|([^\\{}\r\n]+)",
    re.DOTALL,
)
_RTF_SKIP: Final = frozenset(
    "fonttbl colortbl stylesheet pict object header headerl headerr headerf footer footerl"
    " footerr footerf footnote listtable listoverridetable revtbl rsidtbl generator xmlnstbl"
    " themedata colorschememapping datastore latentstyles pgdsctbl fldinst filetbl listtext"
    " pntext pntxta pntxtb bkmkstart bkmkend shpinst nonshppict template userprops docvar"
    " xe tc txe falt panose atnid atnauthor annotation mmathPr".split()
)
_RTF_BREAKS: Final = frozenset("par line sect page row".split())
_RTF_CHARS: Final = {
    "tab": " ",
    "cell": " ",
    "emdash": "—",
    "endash": "–",
    "bullet": "•",
    "lquote": "‘",
    "rquote": "’",
    "ldblquote": "“",
    "rdblquote": "”",
    "emspace": " ",
    "enspace": " ",
    "qmspace": " ",
}
_RTF_SYMBOLS: Final = {"~": " ", "_": "-", "-": "", "\\": "\\", "{": "{", "}": "}"}


class _Rtf:
    """A control-word stripper: the visible text of the body, and the \\info title."""

    def __init__(self, out: _Text) -> None:
        self.out = out
        self.codec = "cp1252"
        self.dest = ""  # "" body text, "skip", "info", "title"
        self.uc = 1  # fallback characters that follow each \uN
        self.to_skip = 0
        self.stack: list[tuple[str, int]] = []
        self.group_start = False
        self.para: list[str] = []
        self.title: list[str] = []
        self.pending = bytearray()

    def run(self, data: bytes) -> str | None:
        if not data.startswith(b"{\\rtf"):
            raise DocTextError("not an RTF file")
        pos = steps = 0
        while pos < len(data) and not self.out.full:
            steps += 1
            if steps % _CHECK_EVERY == 0:
                self.out.check()
            match = _RTF_TOKEN.match(data, pos)
            if match is None:  # a lone backslash at the very end
                break
            pos = match.end()
            word, param, hexbyte, symbol, brace, text = match.groups()
            if hexbyte is not None:
                self._bytes(bytes.fromhex(hexbyte.decode()))
            elif text is not None:
                self._bytes(text)
            elif match.lastindex is None:  # a bare line break means nothing in RTF
                continue
            else:
                self._flush()
                if word is not None:
                    pos += self._word(word.decode(), param, data, pos)
                elif symbol is not None:
                    self._symbol(symbol.decode("latin-1"))
                else:
                    self._brace(brace)
            # A destination is named by the first control word of its group.
            self.group_start = brace == b"{"
        self._flush()
        self._end_paragraph()
        return "".join(self.title) or None

    def _bytes(self, chunk: bytes) -> None:
        if self.to_skip:
            cut = min(self.to_skip, len(chunk))
            chunk, self.to_skip = chunk[cut:], self.to_skip - cut
        if self.dest in ("", "title"):
            self.pending += chunk

    def _flush(self) -> None:
        if self.pending:
            self._emit(self.pending.decode(self.codec, "replace"))
            self.pending.clear()

    def _emit(self, text: str) -> None:
        if self.dest == "":
            self.para.append(text)
        elif self.dest == "title":
            self.title.append(text)

    def _end_paragraph(self) -> None:
        if self.para:
            self.out.add("".join(self.para))
            self.para.clear()

    def _brace(self, brace: bytes) -> None:
        self.to_skip = 0
        if brace == b"{":
            self.stack.append((self.dest, self.uc))
        elif self.stack:
            self.dest, self.uc = self.stack.pop()

    def _word(self, word: str, param: bytes | None, data: bytes, pos: int) -> int:
        """Act on a control word; returns how many raw bytes after it to skip (\\bin)."""
        number = int(param) if param is not None else None
        if self.group_start and self.dest != "skip":
            if word == "title" and self.dest == "info":
                self.dest = "title"
                return 0
            if word == "info":
                self.dest = "info"
                return 0
            if word in _RTF_SKIP:
                self.dest = "skip"
                return 0
        if word == "bin" and number:
            return max(0, min(number, len(data) - pos))
        if word == "ansicpg" and number:
            self.codec = _codec(number)
        elif word == "uc" and number is not None:
            self.uc = max(0, number)
        elif word == "u" and number is not None:
            self._emit(chr(number + 65536 if number < 0 else number))
            self.to_skip = self.uc
        elif word in _RTF_BREAKS and self.dest == "":
            self._end_paragraph()
        elif word in _RTF_CHARS:
            self._emit(_RTF_CHARS[word])
        return 0

    def _symbol(self, symbol: str) -> None:
        if symbol == "*" and self.group_start:
            self.dest = "skip"
        elif symbol in ("\n", "\r") and self.dest == "":
            self._end_paragraph()
        elif symbol in _RTF_SYMBOLS:
            self._emit(_RTF_SYMBOLS[symbol])


def _codec(codepage: int) -> str:
    try:
        return codecs.lookup(f"cp{codepage}").name
    except LookupError:
        return "cp1252"


def _rtf(path: Path, out: _Text, max_pages: int) -> str | None:
    data, _ = _read_head(path, _MAX_BYTES)
    return _Rtf(out).run(data)


# ---------------------------------------------------------------- plain text

_BOMS: Final = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode_text(data: bytes, *, cut: bool = False) -> str:
    """Bytes of unknown encoding as text: a BOM, else UTF-8, else cp1252. ``cut`` says the
    bytes are the start of a longer file and may end inside a UTF-8 sequence."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data.decode(codec, "replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if cut and exc.start >= len(data) - 3 and exc.reason == "unexpected end of data":
            return data[: exc.start].decode("utf-8")
    return data.decode("cp1252", "replace")


def _text_head(path: Path, out: _Text) -> str:
    # Enough bytes for the limit even in UTF-8 with generous whitespace.
    data, cut = _read_head(path, min(_MAX_BYTES, out.limit * 16 + 4096))
    return decode_text(data, cut=cut)


def _txt(path: Path, out: _Text, max_pages: int) -> str | None:
    for line in _lines(_text_head(path, out)):
        if out.add(line):
            break
    return None


def _lines(text: str) -> Iterator[str]:
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        yield text[start:end]
        start = end + 1


def _csv(path: Path, out: _Text, max_pages: int) -> str | None:
    text = _text_head(path, out)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            text[:8192], delimiters=",;\t|"
        )
    except csv.Error:
        dialect = csv.excel
    for row in csv.reader(io.StringIO(text, newline=""), dialect):
        cells = [" ".join(cell.split()) for cell in row]
        if out.add(" | ".join(c for c in cells if c)):
            break
    return None


def _no_text(path: Path, out: _Text, max_pages: int) -> str | None:
    return None  # binary Office formats: no cheap, dependency-free reader


_TABLES: Final = frozenset({"csv", "xls", "xlsx", "ods"})
_READERS: Final[dict[str, _Reader]] = {
    "pdf": _pdf,
    "docx": _zipped("word/document.xml", _DOCX),
    "xlsx": _zipped("xl/sharedStrings.xml", _SHARED),
    "pptx": _zipped(_slides, _SLIDES),
    "odt": _zipped("content.xml", _ODF),
    "ods": _zipped("content.xml", _ODF),
    "odp": _zipped("content.xml", _ODF),
    "rtf": _rtf,
    "txt": _txt,
    "csv": _csv,
    "doc": _no_text,
    "xls": _no_text,
    "ppt": _no_text,
}

# The types whose text can be read (binary Office formats give none).
TEXT_TYPES: Final = frozenset(t for t, reader in _READERS.items() if reader is not _no_text)
