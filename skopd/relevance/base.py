"""The seam between the crawl engine and whatever judges documents (lexical, Ollama)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from skopd.relevance.query import Query


class Candidate(msgspec.Struct):
    """A document link and everything the crawler saw around it."""

    id: int  # the engine's id, echoed back in Scored
    url: str
    text: str = ""  # link text: "", "PDF", "[PDF]", a file name or a real title
    title: str = ""  # title attribute
    heading: str = ""  # nearest heading / summary / caption, may be "A / B"
    context: str = ""  # enclosing row / list item / paragraph text
    page_title: str = ""  # <title> of the page that links it
    filename: str = ""  # from the URL or Content-Disposition
    doc_type: str = ""  # "pdf", "docx", ...
    doc_text: str = ""  # start of the document's own text, when known


class Scored(msgspec.Struct):
    id: int
    score: float  # 0..1
    name: str  # clean human-readable document name


class Scorer(Protocol):
    name: str  # "lexical" / "ollama"

    async def score(self, query: Query, candidates: Sequence[Candidate]) -> list[Scored]: ...
