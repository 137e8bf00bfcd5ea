"""The embedded relevance scorer: field-weighted term, phrase, year and type evidence.

A candidate's fields are read in three tiers. The link itself (text, title attribute, file
name) is the strongest; the heading, the enclosing row or paragraph and the document's own
text come next; the page title and URL path last. When the link text says nothing ("PDF",
"Download") the enclosing row usually holds the title, so it is promoted to the first tier.

Every word of a prompt is there for a reason: a candidate must say the kind of document
asked for ("minutes") and more than half of the words that narrow it ("harbour district"),
or it scores far below the threshold however strongly it says the rest.
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
    first_kinds_in,
    is_generic_text,
    is_generic_word,
    kinds_in,
    months_in,
    period_years,
    split_camel,
    words,
    years_in,
)

_FIELD_LIMIT: Final = 600  # context beyond this is the rest of the page, not the row
_DOC_TEXT_LIMIT: Final = 2000
_TITLE_LIMIT: Final = 200  # a field this short is a title: its own years name its period
_PHRASE_SHARE: Final = 0.15
_NO_TERMS: Final = 0.5  # relevance when the prompt names only years or types
_IN_RANGE: Final = (1.0, 1.0, 0.9)  # by tier: a date where it was asked for
_OUT_OF_RANGE: Final = (0.08, 0.08, 0.3)  # by tier: only other dates
_UNDATED: Final = 0.75
_FULL: Final = 0.7  # match quality that counts as saying a word (see Plan.matches)
_FLOOR: Final = 0.02  # the completeness factor when none of the narrowing words is said
_OTHER_KIND: Final = 0.05  # the nearest description names another kind ("Agenda")
_KIND_UNSAID: Final = 0.2  # nothing names a kind: the link may just not say
_KIND_UNSAID_READ: Final = 0.05  # ... not even the document's own first lines
_OTHER_TYPE: Final = 0.08  # asked for spreadsheets, this is a PDF: as bad as another year
_UNKNOWN_TYPE: Final = 0.7
_NAME_LIMIT: Final = 200
_CONTEXT_NAME_LIMIT: Final = 150
_SEGMENTS: Final = re.compile(r"\s*(?:\||\t|\n|•|·)\s*")
_FILE_LIKE: Final = re.compile(r"\S+\.[A-Za-z][A-Za-z0-9]{1,4}|\S*_\S*")
# "allow about 40 minutes": a duration, not the minutes of a meeting.
_DURATION: Final = re.compile(r"\b\d+(?:\s*(?:-|–|to)\s*\d+)?\s*minutes?\b", re.IGNORECASE)


class _Field(NamedTuple):
    text: str
    weight: float  # how much a term found here counts
    tier: int  # 0 the link itself, 1 its surroundings, 2 the page; dates decide by tier
    names: int = 0  # the first of these tiers that names any kind of document says its kind


# Kind tiers: link text and title (or the row of a generic link), file name, row, the
# document's first words, heading, page.
_LINK, _FILE, _ROW, _DOC, _HEADING, _PAGE = range(6)


def _url_path(url: str) -> str:
    scheme = url.find("://")
    start = url.find("/", scheme + 3) if scheme >= 0 else 0
    return split_camel(url[start:]) if start >= 0 else ""


def _fields(cand: Candidate) -> list[_Field]:
    promoted = is_generic_text(cand.text)
    row = _Field(cand.context[:_FIELD_LIMIT], 0.75, 1, _ROW)
    return [
        _Field(cand.text, 1.0, 0, _LINK),
        _Field(cand.title, 1.0, 0, _LINK),
        _Field(split_camel(cand.filename), 1.0, 0, _FILE),
        row._replace(weight=0.9, tier=0, names=_LINK) if promoted else row,
        _Field(cand.heading[:_FIELD_LIMIT], 0.75, 1, _HEADING),
        _Field(cand.doc_text[:_DOC_TEXT_LIMIT], 0.75, 1, _DOC),
        _Field(cand.page_title[:_FIELD_LIMIT], 0.45, 2, _PAGE),
        _Field(_url_path(cand.url), 0.45, 2, _PAGE),
    ]


class _Evidence(NamedTuple):
    strength: list[float]  # per group: the best field weight x match quality
    said: list[bool]  # per group: said fully somewhere (or implied by the kind said)
    phrases: float  # share of the prompt's phrases found, field-weighted
    kind: float  # 1, or lower when another kind or none is named


def _evidence(plan: Plan, fields: list[_Field]) -> _Evidence:
    groups = plan.groups
    strength = [0.0] * len(groups)
    quality = [0.0] * len(groups)
    phrase_strength: dict[str, float] = {}
    read: list[tuple[_Field, list[str], dict[int, float]]] = []
    for field in fields:
        if not field.text:
            continue
        stems = content_words(_without_durations(field.text))
        found, phrases = plan.matches(stems)
        read.append((field, stems, found))
        for index, q in found.items():
            strength[index] = max(strength[index], q * field.weight)
            quality[index] = max(quality[index], q)
        for phrase in phrases:
            phrase_strength[phrase] = max(phrase_strength.get(phrase, 0.0), field.weight)
    said = [q >= _FULL for q in quality]
    for index, group in enumerate(groups):
        # "meeting" in "meeting minutes" describes the kind: said with it, or not at all.
        if (kind := group.implied_by) is not None:
            said[index] = said[kind]
            strength[index] = max(strength[index], strength[kind]) if said[kind] else 0.0
    phrase_share = sum(phrase_strength.values()) / len(plan.phrases) if plan.phrases else 0.0
    return _Evidence(strength, said, phrase_share, _kind_factor(plan, read))


def _without_durations(text: str) -> str:
    # The substring test spares most texts a case-insensitive scan.
    if "inute" not in text and "INUTE" not in text:
        return text
    return _DURATION.sub(" ", text)


def _kind_factor(plan: Plan, read: list[tuple[_Field, list[str], dict[int, float]]]) -> float:
    """1 when the most specific description naming any kind of document names a wanted one,
    low when it names only others ("Agenda" for minutes), lower when nothing names one."""
    wanted = {g.concept for g in plan.groups if g.kind and g.concept is not None}
    if not wanted:
        return 1.0
    for tier in range(_PAGE + 1):
        named: set[int] = set()
        for field, stems, found in read:
            if field.names == tier:
                named |= _kinds(plan, field, stems, found)
        if named:
            return 1.0 if named & wanted else _OTHER_KIND
    has_text = any(field.names == _DOC for field, _, _ in read)
    return _KIND_UNSAID_READ if has_text else _KIND_UNSAID


def _kinds(plan: Plan, field: _Field, stems: list[str], found: dict[int, float]) -> set[int]:
    """The kinds of document one field names; a document's text names its own first."""
    if field.names == _DOC:
        return first_kinds_in(stems)
    kinds = kinds_in(stems)
    for group, q in found.items():  # the prompt's own spelling of a kind, too
        concept = plan.groups[group].concept
        if plan.groups[group].kind and q >= _FULL and concept is not None:
            kinds.add(concept)
    return kinds


def _completeness(share: float) -> float:
    """Near zero up to half of the narrowing words said, then rising to 1 for all."""
    return _FLOOR * (1 + share) + (1 - 2 * _FLOOR) * max(0.0, 2 * share - 1)


def _relevance(plan: Plan, fields: list[_Field], type_said: bool | None) -> float:
    """How strongly the candidate says what it says, times how much of the prompt that is:
    all of the kind and more than half of the narrowing words, or next to nothing.
    ``type_said``: whether it is of the file type asked for (None: none asked, or unknown)."""
    if not plan.groups:
        return _NO_TERMS
    ev = _evidence(plan, fields)
    said_weight = said_strength = 0.0
    narrowing: list[tuple[float, bool]] = []
    for group, strength, said in zip(plan.groups, ev.strength, ev.said, strict=True):
        if said:
            said_weight += group.weight
            said_strength += group.weight * strength
        if not group.kind and group.implied_by is None:
            narrowing.append((group.weight, said))
    if type_said is not None:  # "spreadsheets" is a word of the prompt a file type can say
        narrowing.append((1.0, type_said))
        said_weight += type_said
        said_strength += type_said
    if said_weight <= 0.0:
        return 0.0
    total = sum(w for w, _ in narrowing)
    share = sum(w for w, said in narrowing if said) / total if total else 1.0
    strength = said_strength / said_weight
    if plan.phrases:
        strength = (1 - _PHRASE_SHARE) * strength + _PHRASE_SHARE * ev.phrases
    return strength * _completeness(share) * ev.kind


def _date_factor(
    fields: list[_Field],
    found_in: Callable[[str], set[int]],
    wanted: Callable[[int], bool],
    on_link: Callable[[str], set[int]] | None = None,
) -> float:
    """1 for a wanted date, far less when the candidate is dated otherwise, a little less
    when undated; the most specific tier that mentions a date decides. ``on_link`` reads
    the link's own fields instead of ``found_in`` (they are titles: see period_years)."""
    for tier in range(3):
        read = on_link if tier == 0 and on_link is not None else found_in
        found: set[int] = set()
        for field in fields:
            if field.tier == tier and field.text:
                found |= read(field.text)
        if found:
            hit = any(wanted(v) for v in found)
            return _IN_RANGE[tier] if hit else _OUT_OF_RANGE[tier]
    return _UNDATED


def _title_years(text: str) -> set[int]:
    return period_years(text) if len(text) <= _TITLE_LIMIT else years_in(text)


def date_fit(query: Query, cand: Candidate, fields: list[_Field] | None = None) -> float:
    """The date evidence alone: 1 for a wanted date, 0.75 undated, 0.3 or less for another
    date (the model's scores are capped by it too)."""
    fields = fields if fields is not None else _fields(cand)
    fit = 1.0
    if query.has_year_filter:
        fit *= _date_factor(fields, years_in, query.wants_year, _title_years)
    if query.months:
        fit *= _date_factor(fields, months_in, query.months.__contains__)
    return fit


def score_candidate(query: Query, cand: Candidate) -> float:
    """How well a candidate document answers the query, 0..1 (0.1 is the usual threshold)."""
    plan = plan_for(query)
    fields = _fields(cand)
    type_said = None
    if query.doc_types and cand.doc_type:
        type_said = cand.doc_type in query.doc_types
    score = _relevance(plan, fields, type_said)
    if score <= 0.0:
        return 0.0
    score *= date_fit(query, cand, fields)
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
