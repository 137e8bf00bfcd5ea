"""The embedded relevance scorer: field-weighted term, phrase, year and type evidence.

A candidate's fields are read in three tiers. The link itself (text, title attribute, file
name) is the strongest; the heading, the enclosing row or paragraph and the document's own
text come next; the page title and URL path last. When the link text says nothing ("PDF",
"Download") the enclosing row usually holds the title, so it is promoted to the first tier.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from typing import Final, NamedTuple
from urllib.parse import unquote

from skopd.relevance.base import Candidate, Scored
from skopd.relevance.query import Plan, Query, plan_for
from skopd.relevance.text import (
    GENERIC,
    SIZE_UNITS,
    content_words,
    is_generic_text,
    is_generic_word,
    kinds_in,
    months_in,
    split_camel,
    words,
    years_in,
)

_FIELD_LIMIT: Final = 600  # context beyond this is the rest of the page, not the row
_DOC_TEXT_LIMIT: Final = 2000
_PHRASE_SHARE: Final = 0.15
_NO_TERMS: Final = 0.5  # relevance when the prompt names only years or types
_IN_RANGE: Final = (1.0, 1.0, 0.9)  # by tier: a date where it was asked for
_OUT_OF_RANGE: Final = (0.08, 0.08, 0.3)  # by tier: only other dates
_UNDATED: Final = 0.75
_FULL: Final = 0.7  # match quality that counts as saying a word (see Plan.matches)
_KIND_MISSING: Final = 0.5
_OTHER_KIND: Final = 0.15
_OTHER_TYPE: Final = 0.5
_UNKNOWN_TYPE: Final = 0.7
_NAME_LIMIT: Final = 200
_CONTEXT_NAME_LIMIT: Final = 150
_SEGMENTS: Final = re.compile(r"\s*(?:\||\t|\n|•|·)\s*")
_FILE_LIKE: Final = re.compile(r"\S+\.[A-Za-z][A-Za-z0-9]{1,4}|\S*_\S*")


class _Field(NamedTuple):
    text: str
    weight: float  # how much a term found here counts
    tier: int  # 0 the link itself, 1 its surroundings, 2 the page; dates decide by tier


def _url_path(url: str) -> str:
    scheme = url.find("://")
    start = url.find("/", scheme + 3) if scheme >= 0 else 0
    return split_camel(url[start:]) if start >= 0 else ""


def _fields(cand: Candidate) -> list[_Field]:
    promoted = is_generic_text(cand.text)
    return [
        _Field(cand.text, 1.0, 0),
        _Field(cand.title, 1.0, 0),
        _Field(split_camel(cand.filename), 1.0, 0),
        _Field(cand.context[:_FIELD_LIMIT], 0.9 if promoted else 0.75, 0 if promoted else 1),
        _Field(cand.heading[:_FIELD_LIMIT], 0.75, 1),
        _Field(cand.doc_text[:_DOC_TEXT_LIMIT], 0.75, 1),
        _Field(cand.page_title[:_FIELD_LIMIT], 0.45, 2),
        _Field(_url_path(cand.url), 0.45, 2),
    ]


def _relevance(plan: Plan, fields: list[_Field]) -> tuple[float, float]:
    """Weighted term coverage blended with phrase matches, and a factor for the kind of
    document: 1 when a kind the prompt names ("minutes") is there, lower when it is missing,
    lowest when the link itself names another kind ("Agenda" for a minutes prompt)."""
    strength = [0.0] * len(plan.groups)
    quality = [0.0] * len(plan.groups)
    wanted_on_link = False
    kinds_on_link: set[int] = set()
    phrase_strength: dict[str, float] = {}
    for field in fields:
        if not field.text:
            continue
        stems = content_words(field.text)
        found, phrases = plan.matches(stems)
        for group, q in found.items():
            strength[group] = max(strength[group], q * field.weight)
            quality[group] = max(quality[group], q)
            wanted_on_link |= field.tier == 0 and plan.groups[group].kind and q >= _FULL
        if field.tier == 0:
            kinds_on_link |= kinds_in(stems)
        for phrase in phrases:
            phrase_strength[phrase] = max(phrase_strength.get(phrase, 0.0), field.weight)
    if not plan.groups:
        return _NO_TERMS, 1.0
    weights = [g.weight for g in plan.groups]
    coverage = sum(w * s for w, s in zip(weights, strength, strict=True)) / sum(weights)
    if plan.phrases:
        phrase_part = sum(phrase_strength.values()) / len(plan.phrases)
        coverage = (1 - _PHRASE_SHARE) * coverage + _PHRASE_SHARE * phrase_part
    wanted = {g.concept for g in plan.groups if g.kind}
    if not wanted:
        return coverage, 1.0
    if kinds_on_link - wanted and not wanted_on_link:
        return coverage, _OTHER_KIND
    kinds = [q for g, q in zip(plan.groups, quality, strict=True) if g.kind]
    return coverage, 1.0 if max(kinds) >= _FULL else _KIND_MISSING


def _date_factor(
    fields: list[_Field], found_in: Callable[[str], set[int]], wanted: Callable[[int], bool]
) -> float:
    """1 for a wanted date, far less when the candidate is dated otherwise, a little less
    when undated; the most specific tier that mentions a date decides."""
    for tier in range(3):
        found: set[int] = set()
        for field in fields:
            if field.tier == tier and field.text:
                found |= found_in(field.text)
        if found:
            hit = any(wanted(v) for v in found)
            return _IN_RANGE[tier] if hit else _OUT_OF_RANGE[tier]
    return _UNDATED


def score_candidate(query: Query, cand: Candidate) -> float:
    """How well a candidate document answers the query, 0..1 (0.1 is the usual threshold)."""
    plan = plan_for(query)
    fields = _fields(cand)
    relevance, kind_factor = _relevance(plan, fields)
    if relevance <= 0.0:
        return 0.0
    score = relevance * kind_factor
    if query.has_year_filter:
        score *= _date_factor(fields, years_in, query.wants_year)
    if query.months:
        score *= _date_factor(fields, months_in, query.months.__contains__)
    if query.doc_types and cand.doc_type not in query.doc_types:
        score *= _UNKNOWN_TYPE if not cand.doc_type else _OTHER_TYPE
    return round(min(score, 1.0), 4)


# ---------------------------------------------------------------- names

_BRACKETED: Final = re.compile(r"\s*[(\[{]([^()\[\]{}]*)[)\]}]")
_EDGE_PUNCT: Final = " \t-–—|·•:,;/"


def _decoration(inner: str) -> bool:
    ws = words(inner)
    return any(w in GENERIC for w in ws) and all(is_generic_word(w) for w in ws)


def _chunk_kind(chunk: str) -> str:
    ws = words(chunk)
    if not ws:
        return "punct"
    if any(w in SIZE_UNITS for w in ws) and all(w in SIZE_UNITS or w.isdigit() for w in ws):
        return "size"
    if all(w in GENERIC for w in ws):
        return "generic"
    if all(w.isdigit() for w in ws):
        return "number"
    return "stop" if all(is_generic_word(w) for w in ws) else "content"


def strip_decorations(text: str) -> str:
    """Drop type and size decorations: "Minutes (PDF, 2 MB)" -> "Minutes",
    "[PDF] Annual report" -> "Annual report", "Download Budget 2024 pdf 1,2 MB" -> "Budget 2024"."""
    text = _BRACKETED.sub(lambda m: "" if _decoration(m.group(1)) else m.group(0), text)
    chunks = text.split()
    previous = ""  # "2" before "MB" is part of the size; "la" before "suite" goes with it
    while chunks:
        kind = _chunk_kind(chunks[-1])
        if (kind == "number" and previous == "size") or (kind == "stop" and previous == "generic"):
            kind = previous
        if kind not in ("punct", "generic", "size"):
            break
        previous = kind
        chunks.pop()
    while chunks and _chunk_kind(chunks[0]) in ("punct", "generic"):
        chunks.pop(0)
    return " ".join(chunks).strip(_EDGE_PUNCT)


_EXTENSION: Final = re.compile(r"\.[A-Za-z0-9]{1,5}$")
_JOINERS: Final = re.compile(r"[_+]+|(?<!\d)-+|-+(?!\d)")
_GLUED: Final = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")


def clean_filename(name: str) -> str:
    """ "minutes_2024-03-12_final.pdf" -> "Minutes 2024-03-12 final"."""
    name = unquote(name.split("?")[0].rstrip("/").rsplit("/", 1)[-1])
    name = _EXTENSION.sub("", name)
    name = " ".join(_GLUED.sub(" ", _JOINERS.sub(" ", name)).split())
    return name[:1].upper() + name[1:]


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(" ,;:-–—")
    return f"{cut}…"


def _meaningful(text: str) -> str:
    stripped = strip_decorations(" ".join(text.split()))
    return "" if is_generic_text(stripped) else stripped


def _context_name(context: str) -> str:
    """The enclosing row minus its "PDF" / "Download" / size cells, dates kept."""
    kept = []
    for segment in _SEGMENTS.split(context[: _FIELD_LIMIT * 2]):
        meaningful = _meaningful(segment)
        if meaningful:
            kept.append(meaningful)
        elif years_in(segment):
            kept.append(strip_decorations(segment))
    if not any(_meaningful(k) for k in kept):
        return ""
    return _shorten(" – ".join(kept), _CONTEXT_NAME_LIMIT)


def _heading_name(cand: Candidate) -> str:
    heading = _meaningful(cand.heading)
    if not heading:
        return ""
    date = strip_decorations(cand.text)  # a bare "12.03.2024" link under its heading
    return f"{heading} – {date}" if years_in(date) and date not in heading else heading


def document_name(cand: Candidate) -> str:
    """A readable document title: link text, title attribute, row, heading, file name."""
    text = _meaningful(cand.text)
    if text and _FILE_LIKE.fullmatch(text):
        text = clean_filename(text)
    name = (
        text
        or _meaningful(cand.title)
        or _context_name(cand.context)
        or _heading_name(cand)
        or _meaningful(clean_filename(cand.filename))
        or _meaningful(clean_filename(cand.url))
        or _meaningful(cand.page_title)
        or "Untitled document"
    )
    name = " ".join(name.split())
    return _shorten(name[:1].upper() + name[1:], _NAME_LIMIT)


def is_ambiguous(cand: Candidate) -> bool:
    """Whether the link says too little about the document to judge it without its text:
    fewer than two descriptive words in the link text, title, row and file name ("PDF" next
    to "DOC-2024-117.pdf"). A section heading alone describes the section, not the file."""
    own = " ".join(
        (
            _meaningful(cand.text),
            _meaningful(cand.title),
            _context_name(cand.context),
            clean_filename(cand.filename),
        )
    )
    described = {w for w in words(own) if not is_generic_word(w) and not _CODE.fullmatch(w)}
    return len(described) < 2


_CODE: Final = re.compile(r"[a-z]{0,3}\d[a-z\d]*|[a-z]{1,3}")


class LexicalScorer:
    """The built-in scorer: no model, no network, deterministic."""

    name: str = "lexical"
    _BATCH: Final = 200  # candidates scored between yields to the event loop

    async def score(self, query: Query, candidates: Sequence[Candidate]) -> list[Scored]:
        out = []
        for i, cand in enumerate(candidates, 1):
            out.append(Scored(cand.id, score_candidate(query, cand), document_name(cand)))
            if i % self._BATCH == 0:
                await asyncio.sleep(0)
        return out
