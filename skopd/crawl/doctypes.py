"""Document types: telling them from URLs, HTTP headers and magic bytes; naming saved files."""

from __future__ import annotations

import re
import struct
import unicodedata
import zlib
from urllib.parse import unquote

KNOWN_TYPES: tuple[str, ...] = (
    "pdf",
    "doc",
    "docx",
    "xls",
    "xlsx",
    "ppt",
    "pptx",
    "odt",
    "ods",
    "odp",
    "rtf",
    "txt",
    "csv",
)

MIME_TYPES: dict[str, str] = {
    "pdf": "application/pdf",
    "doc": "application/msword",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xls": "application/vnd.ms-excel",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "ppt": "application/vnd.ms-powerpoint",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "odt": "application/vnd.oasis.opendocument.text",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "odp": "application/vnd.oasis.opendocument.presentation",
    "rtf": "application/rtf",
    "txt": "text/plain",
    "csv": "text/csv",
}

_KNOWN = frozenset(KNOWN_TYPES)
_MEDIA_TYPES: dict[str, str] = {media: doc_type for doc_type, media in MIME_TYPES.items()} | {
    "application/x-pdf": "pdf",
    "application/acrobat": "pdf",
    "application/x-rtf": "rtf",
    "text/rtf": "rtf",
    "application/csv": "csv",
    "text/comma-separated-values": "csv",
    "application/vnd.msword": "doc",
    "application/x-msexcel": "xls",
    "application/x-excel": "xls",
    "application/mspowerpoint": "ppt",
}
del _MEDIA_TYPES["text/plain"]  # only a file when the server says so, see type_from_headers

_PAGE_EXTENSIONS = frozenset({"html", "htm", "xhtml", "php", "asp", "aspx", "jsp", "cfm", "shtml"})
# Links to these are neither pages nor documents: not worth a request.
_ASSET_EXTENSIONS = frozenset(
    {
        "jpg", "jpeg", "png", "gif", "webp", "svg", "ico", "bmp", "tif", "tiff", "avif",
        "css", "js", "mjs", "json", "woff", "woff2", "ttf", "otf", "eot",
        "mp3", "mp4", "m4a", "wav", "ogg", "webm", "avi", "mov", "mkv", "flv", "wmv",
        "zip", "gz", "tgz", "bz2", "xz", "7z", "rar", "tar", "exe", "msi", "dmg", "iso",
        "apk", "bin", "rss", "atom", "ics", "vcf",
    }
)  # fmt: skip

_DISPOSITION_PARAM = re.compile(
    r";\s*([^\s=;]+)\s*=\s*(\"(?:[^\"\\]|\\.)*\"?|[^;]*)", re.IGNORECASE | re.DOTALL
)
# Only \" and \\ are escapes in practice: Windows paths arrive with single backslashes.
_QUOTED_PAIR = re.compile(r'\\([\\"])')

_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_OLE2_STREAMS = (
    ("WordDocument".encode("utf-16-le"), "doc"),
    ("PowerPoint Document".encode("utf-16-le"), "ppt"),
    ("Workbook".encode("utf-16-le"), "xls"),
    ("Book".encode("utf-16-le"), "xls"),  # Excel 5/95 stream name
)
_ZIP_LOCAL = b"PK\x03\x04"
_ODF_TYPES = {
    b"application/vnd.oasis.opendocument.text": "odt",
    b"application/vnd.oasis.opendocument.spreadsheet": "ods",
    b"application/vnd.oasis.opendocument.presentation": "odp",
}
_OOXML_FOLDERS = (("word/", "docx"), ("xl/", "xlsx"), ("ppt/", "pptx"))
_OOXML_MAIN_PARTS = (
    (b"wordprocessingml.document.main+xml", "docx"),
    (b"spreadsheetml.sheet.main+xml", "xlsx"),
    (b"presentationml.presentation.main+xml", "pptx"),
)
_LEADING_JUNK = b" \t\r\n\x0c\x00"

_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"COM{i}" for i in range(1, 10)}
    | {f"LPT{i}" for i in range(1, 10)}
)
# Extensions that are swapped for the real type rather than kept as part of the name.
_REPLACEABLE_EXTENSIONS = _KNOWN | _PAGE_EXTENSIONS | {"bin", "dat", "tmp", "download", "cgi"}
_DOTS = re.compile(r"\.{2,}")
_UNDERSCORES = re.compile(r"[ _]*_[ _]*")
_SPACES = re.compile(r" {2,}")


def type_from_url(url: str) -> str | None:
    """The document type named by the extension of the URL's last path segment, if known.

    The query and fragment don't count: "/download.jsp?file=a.pdf" is None.
    """
    extension = _extension(url)
    return extension if extension in _KNOWN else None


def looks_like_page(url: str) -> bool:
    """Whether a link is worth fetching as an HTML page.

    True without an extension, with a trailing slash, with a server-page extension and with
    an extension nobody uses for files (".../john.smith"); False for document types and for
    images, scripts, media and archives.
    """
    extension = _extension(url)
    return extension not in _KNOWN and extension not in _ASSET_EXTENSIONS


def _extension(url: str) -> str:
    end = len(url)
    for stop in ("#", "?"):
        index = url.find(stop, 0, end)
        if index != -1:
            end = index
    start = url.find("://", 0, end)
    start = 0 if start == -1 else url.find("/", start + 3, end)
    if start == -1:
        return ""
    segment = url[url.rfind("/", start, end) + 1 : end]
    segment = segment.partition(";")[0]
    dot = segment.rfind(".")
    return segment[dot + 1 :].lower() if dot != -1 else ""


def type_from_headers(
    content_type: str | None, content_disposition: str | None
) -> tuple[str | None, str | None]:
    """(document type, file name) from the Content-Type and Content-Disposition headers.

    The file name comes from Content-Disposition (`filename*=` wins over `filename=`); the
    type from that name's extension, else from the media type. text/plain counts as a "txt"
    document only when Content-Disposition marks an attachment or names a file.
    """
    filename: str | None = None
    attachment = False
    if content_disposition:
        attachment, filename = _parse_disposition(content_disposition)
    if filename:
        extension = filename.rpartition(".")[2].lower() if "." in filename else ""
        if extension in _KNOWN:
            return extension, filename
    media = (content_type or "").partition(";")[0].strip().lower()
    doc_type = _MEDIA_TYPES.get(media)
    if doc_type is None and media == "text/plain" and (attachment or filename):
        doc_type = "txt"
    return doc_type, filename


def _parse_disposition(header: str) -> tuple[bool, str | None]:
    disposition, _, _ = header.partition(";")
    plain: str | None = None
    extended: str | None = None
    for match in _DISPOSITION_PARAM.finditer(";" + header):
        name = match.group(1).lower()
        value = match.group(2).strip()
        if name == "filename*":
            extended = _decode_extended(value.strip('"')) or extended
        elif name == "filename" and plain is None:
            plain = _unquote_param(value)
    name = extended or plain
    if name:
        name = name.replace("\\", "/").rpartition("/")[2].strip()
    return disposition.strip().lower() == "attachment", name or None


def _unquote_param(value: str) -> str:
    if value.startswith('"'):
        value = _QUOTED_PAIR.sub(r"\1", value[1:].removesuffix('"'))
    try:
        if not value.isascii():
            # Servers often send raw UTF-8 bytes, which HTTP clients decode as Latin-1.
            value = value.encode("latin-1").decode("utf-8")
        elif "%" in value:
            # Many CMSs percent-encode the plain form; browsers decode it too.
            value = unquote(value, errors="strict")
    except UnicodeError:
        pass
    return value


def _decode_extended(value: str) -> str | None:
    charset, sep, rest = value.partition("'")
    if not sep:
        return None
    encoded = rest.partition("'")[2]
    try:
        return unquote(encoded, encoding=charset or "utf-8", errors="replace")
    except LookupError:
        return unquote(encoded, errors="replace")


def type_from_magic(head: bytes) -> str | None:
    """The document type told by the first bytes of a body, or None when they cannot tell.

    Text types (txt, csv) have no magic and are never returned.
    """
    start = head[:64].lstrip(_LEADING_JUNK)
    if start.startswith(b"\xef\xbb\xbf"):
        start = start[3:].lstrip(_LEADING_JUNK)
    if start.startswith(b"%PDF-"):
        return "pdf"
    if start.startswith(b"{\\rtf"):
        return "rtf"
    if head.startswith(_OLE2):
        return _ole2_type(head)
    if head.startswith(_ZIP_LOCAL):
        return _zip_type(head)
    return None


def _ole2_type(head: bytes) -> str:
    found = [
        (index, doc_type)
        for name, doc_type in _OLE2_STREAMS
        if (index := _ole2_entry(head, name)) != -1
    ]
    # The document's own main stream is created before the storages of embedded objects.
    return min(found)[1] if found else "doc"


def _ole2_entry(head: bytes, name: bytes) -> int:
    """Offset of the directory entry called `name`; names found in stream data don't count."""
    index = head.find(name, 512)
    while index != -1:
        # Entries are 128 bytes, in sectors after the 512-byte header; names end with a NUL.
        if (index - 512) % 128 == 0 and head[index + len(name) : index + len(name) + 2] == b"\0\0":
            return index
        index = head.find(name, index + 1)
    return -1


def _zip_type(head: bytes) -> str | None:
    position = 0
    while position + 30 <= len(head) and head.startswith(_ZIP_LOCAL, position):
        flags, method, _, _, _, size, _, name_len, extra_len = struct.unpack_from(
            "<HHHHIIIHH", head, position + 6
        )
        data_start = position + 30 + name_len + extra_len
        name = head[position + 30 : position + 30 + name_len]
        data = head[data_start : data_start + size] if size else head[data_start:]
        found = _zip_entry_type(name, method, data)
        if found is not None:
            return found or None
        if flags & 0x08 and size == 0:
            position = head.find(_ZIP_LOCAL, data_start)
            if position == -1:
                return None
        else:
            position = data_start + size
    return None


def _zip_entry_type(name: bytes, method: int, data: bytes) -> str | None:
    """A type, "" when the archive is known not to be a document, None to keep looking."""
    if name == b"mimetype":
        return _ODF_TYPES.get(_inflate(data, method).strip(), "")
    text_name = name.decode("cp437", "replace")
    for folder, doc_type in _OOXML_FOLDERS:
        if text_name.startswith(folder):
            return doc_type
    if name == b"[Content_Types].xml":
        types = _inflate(data, method)
        for part, doc_type in _OOXML_MAIN_PARTS:
            if part in types:
                return doc_type
    return None


def _inflate(data: bytes, method: int) -> bytes:
    if method == 0:
        return data
    if method != 8:
        return b""
    try:
        return zlib.decompressobj(-15).decompress(data, 1 << 16)
    except zlib.error:
        return b""


def safe_filename(name: str, doc_type: str, max_len: int = 120) -> str:
    """A file name that is safe to create in a folder and ends in "." + doc_type.

    Keeps letters of any script, digits, ".", "_", " " and "-"; everything else (path
    separators, "..", control characters, punctuation) becomes "_". Windows device names get
    a "_" prefix, and the result fits in `max_len` UTF-8 bytes.
    """
    suffix = "." + ("".join(filter(str.isalnum, doc_type.lower())) or "bin")
    stem = unicodedata.normalize("NFC", name)
    base, dot, extension = stem.rpartition(".")
    if dot and extension.lower() in _REPLACEABLE_EXTENSIONS:
        stem = base
    stem = "".join(map(_safe_char, _DOTS.sub("_", stem)))
    stem = _SPACES.sub(" ", _UNDERSCORES.sub("_", stem)).strip(" ._")
    if stem.partition(".")[0].upper() in _WINDOWS_RESERVED:
        stem = "_" + stem
    budget = max(max_len - len(suffix.encode()), 1)
    stem = stem.encode()[:budget].decode("utf-8", "ignore").rstrip(" .")
    return (stem or "document") + suffix


def _safe_char(char: str) -> str:
    if char.isascii():
        return char if char.isalnum() or char in "._ -" else "_"
    category = unicodedata.category(char)
    if category == "Zs":
        return " "
    return char if category[0] in "LMN" else "_"
