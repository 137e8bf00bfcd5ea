"""Markdown cut into chunks a reader or a model can take one at a time.

A chunk is one section (a heading and what follows it up to the next heading); a section
longer than the bound is cut between paragraphs, a paragraph longer than it between lines,
and a line longer than it wherever it must. Headings inside fenced code are not headings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

import msgspec


class Chunk(msgspec.Struct, frozen=True):
    index: int
    heading: str  # the heading path, e.g. "Install > Linux"; "" before the first heading
    text: str


_HEADING: Final = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_FENCE: Final = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_MIN_CHARS: Final = 50


def chunk_markdown(markdown: str, max_chars: int = 2000) -> list[Chunk]:
    """Chunks of at most `max_chars` characters, in document order, none empty."""
    max_chars = max(_MIN_CHARS, max_chars)
    chunks: list[Chunk] = []
    for heading, section in _sections(markdown):
        for piece in _bounded(section, max_chars):
            if piece.strip():
                chunks.append(Chunk(index=len(chunks), heading=heading, text=piece))
    return chunks


def _sections(markdown: str) -> Iterator[tuple[str, str]]:
    """(heading path, section text) for each section, the heading line included."""
    path: list[tuple[int, str]] = []
    lines: list[str] = []
    fence: str | None = None
    current = ""
    for line in markdown.splitlines():
        opener = _FENCE.match(line)
        if fence is not None:
            if opener and opener.group(1)[0] == fence[0] and len(opener.group(1)) >= len(fence):
                fence = None
            lines.append(line)
            continue
        if opener:
            fence = opener.group(1)
            lines.append(line)
            continue
        found = _HEADING.match(line)
        if found:
            if "\n".join(lines).strip():
                yield current, "\n".join(lines).strip("\n")
            lines = []
            level = len(found.group(1))
            while path and path[-1][0] >= level:
                path.pop()
            path.append((level, _plain(found.group(2))))
            current = " > ".join(title for _, title in path if title)
        lines.append(line)
    if "\n".join(lines).strip():
        yield current, "\n".join(lines).strip("\n")


def _plain(title: str) -> str:
    """A heading's text without Markdown links and emphasis."""
    title = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", title)
    return " ".join(title.replace("**", "").replace("`", "").split())


def _bounded(text: str, max_chars: int) -> Iterator[str]:
    if len(text) <= max_chars:
        yield text
        return
    yield from _pack(_paragraphs(text), "\n\n", max_chars)


def _paragraphs(text: str) -> list[str]:
    """Blank-line separated blocks, a fenced code block kept as one."""
    blocks: list[str] = []
    current: list[str] = []
    fence: str | None = None
    for line in text.splitlines():
        opener = _FENCE.match(line)
        if fence is None and opener:
            fence = opener.group(1)
        elif fence is not None and opener and opener.group(1)[0] == fence[0]:
            fence = None
        if fence is None and not line.strip():
            if current:
                blocks.append("\n".join(current))
            current = []
        else:
            current.append(line)
    if current:
        blocks.append("\n".join(current))
    return blocks


def _pack(parts: list[str], joiner: str, max_chars: int) -> Iterator[str]:
    """Consecutive parts joined while they fit; a part too long on its own is cut finer."""
    current = ""
    for part in parts:
        if len(part) > max_chars:
            if current:
                yield current
                current = ""
            if joiner == "\n\n":
                yield from _split_block(part, max_chars)
            else:
                yield from _hard(part, max_chars)
            continue
        candidate = f"{current}{joiner}{part}" if current else part
        if len(candidate) <= max_chars:
            current = candidate
        else:
            yield current
            current = part
    if current:
        yield current


def _split_block(block: str, max_chars: int) -> Iterator[str]:
    """A block too long for one chunk, cut between lines; a fenced code block is cut into
    fenced pieces, so that each chunk is still valid Markdown."""
    lines = block.split("\n")
    opener = _FENCE.match(lines[0])
    if opener is None or len(lines) < 3:
        yield from _pack(lines, "\n", max_chars)
        return
    head = lines[0]
    close = opener.group(1)
    body = lines[1:-1] if _FENCE.match(lines[-1]) else lines[1:]
    room = max_chars - len(head) - len(close) - 2
    if room < _MIN_CHARS // 2:
        yield from _pack(lines, "\n", max_chars)
        return
    for piece in _pack(body, "\n", room):
        yield f"{head}\n{piece}\n{close}"


def _hard(line: str, max_chars: int) -> Iterator[str]:
    """A line longer than the bound, cut at the last space before it when there is one."""
    while len(line) > max_chars:
        cut = line.rfind(" ", max_chars // 2, max_chars)
        cut = cut if cut > 0 else max_chars
        yield line[:cut]
        line = line[cut:].lstrip(" ")
    if line:
        yield line
