"""Talking to a local Ollama: the client, the two questions we ask, and reading the answers.

Two questions: the coordinator's plan (what the prompt asks for, in words a site would use)
and the scraper's judgement (a score and a name for each candidate of a batch). Both are
non-streaming chat calls under a JSON schema at temperature 0. Answers are read leniently:
whatever part of an answer is usable is used, the rest is left to the lexical scorer.
"""

from __future__ import annotations

import asyncio
import datetime
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

import httpx
import msgspec
import ollama

from skopd.crawl.doctypes import KNOWN_TYPES
from skopd.relevance.base import Candidate

CHECK_TIMEOUT_S: Final = 3.0  # for /api/tags: a live Ollama answers it at once
CONNECT_TIMEOUT_S: Final = 3.0
# One context size for both questions: a different num_ctx makes Ollama reload the model.
CONTEXT_TOKENS: Final = 8192
CANDIDATES_MARKER: Final = "Candidates (JSON):"


# ---------------------------------------------------------------- the client


class ModelError(Exception):
    """One call to the model failed; ``transient`` says a retry may succeed."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class Reply(msgspec.Struct, frozen=True):
    content: str
    input_tokens: int
    output_tokens: int
    cut: bool = False  # the answer reached max_tokens (done_reason "length")


def _canonical(name: str) -> str:
    name = name.strip().casefold()
    for prefix in ("registry.ollama.ai/library/", "registry.ollama.ai/", "library/"):
        name = name.removeprefix(prefix)
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def model_matches(wanted: str, pulled: str) -> bool:
    """Ollama's own name matching: "llama3.2" is "llama3.2:latest"."""
    return _canonical(wanted) == _canonical(pulled)


class OllamaModel:
    """One daemon's line to one model: the client, and the bound on calls in flight that
    every job shares (a local model answers one request at a time anyway)."""

    def __init__(
        self, host: str, model: str, request_timeout_s: float, max_concurrent_requests: int
    ) -> None:
        self.host = host
        self.model = model
        self.timeout_s = request_timeout_s
        self.gate = asyncio.Semaphore(max_concurrent_requests)
        self.client = ollama.AsyncClient(
            host=host, timeout=httpx.Timeout(request_timeout_s, connect=CONNECT_TIMEOUT_S)
        )

    async def close(self) -> None:
        await self.client.close()  # type: ignore[no-untyped-call]

    async def unavailable(self) -> str | None:
        """Why the model cannot be used now, or None when it can."""
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                listing = await self.client.list()
        except (ConnectionError, httpx.HTTPError, TimeoutError):
            return f"no Ollama answered at {self.host}"
        except Exception as exc:  # a 5xx, or something that is not Ollama on that port
            return f"Ollama at {self.host} gave an unusable model list ({_brief(exc)})"
        if not any(m.model and model_matches(self.model, m.model) for m in listing.models):
            return (
                f"model {self.model} is not pulled on {self.host}: run `ollama pull {self.model}`"
            )
        return None

    async def ask(
        self, system: str, user: str, schema: Mapping[str, Any] | None, max_tokens: int
    ) -> Reply:
        """One chat call; raises ModelError. The timeout starts once a slot is free.

        With a `schema` the answer is JSON under it; with {} any JSON; with None free text.
        """
        answer_format: Literal["json"] | dict[str, Any] | None = None
        if schema is not None:
            answer_format = dict(schema) if schema else "json"
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        options = {"temperature": 0, "num_ctx": CONTEXT_TOKENS, "num_predict": max_tokens}
        async with self.gate:
            try:
                async with asyncio.timeout(self.timeout_s):
                    answer = await self.client.chat(
                        model=self.model,
                        messages=messages,
                        format=answer_format,
                        options=options,
                        stream=False,
                    )
            except (TimeoutError, httpx.TimeoutException):
                raise ModelError(f"timed out after {self.timeout_s:g} s", transient=True) from None
            except ollama.ResponseError as exc:
                transient = exc.status_code >= 500
                raise ModelError(_brief(exc), transient=transient) from None
            except (ConnectionError, httpx.TransportError) as exc:
                raise ModelError(f"connection failed: {_brief(exc)}", transient=True) from None
            except Exception as exc:  # an answer that is not Ollama's shape
                raise ModelError(_brief(exc), transient=False) from None
        return Reply(
            content=answer.message.content or "",
            input_tokens=answer.prompt_eval_count or 0,
            output_tokens=answer.eval_count or 0,
            cut=answer.done_reason == "length",
        )


def _brief(exc: Exception) -> str:
    text = " ".join(str(exc).split())[:200]
    return text or type(exc).__name__


def _decode(content: str) -> object:
    try:
        return msgspec.json.decode(content)
    except msgspec.DecodeError:
        return None


# ---------------------------------------------------------------- the plan

PLAN_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "topics": {"type": "array", "items": {"type": "string"}},
        "year_from": {"type": ["integer", "null"]},
        "year_to": {"type": ["integer", "null"]},
        "document_types": {"type": "array", "items": {"type": "string", "enum": KNOWN_TYPES}},
        "sections": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["topics", "year_from", "year_to", "document_types", "sections"],
}
PLAN_TOKENS: Final = 512
_PLAN_SYSTEM: Final = (
    "You plan the search of a document crawler. A user asks, in any language, for documents"
    " on one website. Answer with JSON only.\n"
    "topics: the kinds of document and the subjects asked for, each as one to three words,"
    " with their usual synonyms, both in the request's language and in English"
    " (at most 12).\n"
    "year_from, year_to: the range of years the documents should be from, or null when the"
    " request does not limit the time.\n"
    "document_types: file formats, only when the request names them (spreadsheets: xls,"
    " xlsx, ods, csv; Word files: doc, docx, odt, rtf; slides: ppt, pptx, odp); else [].\n"
    "sections: single words likely in the menu labels or URL paths of the pages that list"
    " such documents, in the website's language and English (at most 8)."
)


class ModelPlan(msgspec.Struct, frozen=True):
    topics: tuple[str, ...] = ()
    year_from: int | None = None
    year_to: int | None = None
    doc_types: tuple[str, ...] = ()
    sections: tuple[str, ...] = ()


def plan_messages(prompt: str, today: datetime.date) -> tuple[str, str]:
    return _PLAN_SYSTEM, f"Today is {today.isoformat()}.\nRequest: {prompt}"


def parse_plan(content: str) -> ModelPlan | None:
    """The usable part of a plan answer; None when there is none."""
    raw = _decode(content)
    if not isinstance(raw, dict):
        return None
    plan = ModelPlan(
        topics=_strings(raw.get("topics"), 12),
        year_from=_year(raw.get("year_from")),
        year_to=_year(raw.get("year_to")),
        doc_types=tuple(t for t in _strings(raw.get("document_types"), 13) if t in KNOWN_TYPES),
        sections=_strings(raw.get("sections"), 8),
    )
    return plan if plan != ModelPlan() or _is_plan_shaped(raw) else None


def _is_plan_shaped(raw: dict[Any, Any]) -> bool:
    return "topics" in raw or "sections" in raw


def _strings(value: object, limit: int) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    found = [" ".join(v.split())[:80] for v in value if isinstance(v, str)]
    return tuple(dict.fromkeys(v for v in found if v))[:limit]


def _year(value: object) -> int | None:
    return value if type(value) is int and 1900 <= value <= 2100 else None


# ---------------------------------------------------------------- the judgement

SCORE_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "results": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "score": {"type": "number", "minimum": 0, "maximum": 1},
                    "name": {"type": "string"},
                },
                "required": ["id", "score", "name"],
            },
        }
    },
    "required": ["results"],
}
_SCORE_SYSTEM: Final = (
    "You are the relevance judge of a document crawler. A user asked for documents on a"
    " website; for each candidate document you get what the crawler saw: the link text"
    " (link), its title attribute, the url, the file name, the file type, the nearest heading,"
    " the table row or paragraph around the link (row), the page title (page) and sometimes"
    " the start of the document's own text (document_start).\n"
    "Answer with JSON only: for every candidate id, a score from 0 to 1 for how surely it is"
    " a document the user asked for (1: certainly; 0.5: plausible; below 0.1: not what was"
    " asked, e.g. another kind of document, another subject, or dated outside the years"
    " asked for), and name: the document's human-readable title taken from what you see,"
    " without file type, size or words like 'download'."
)
# Characters per field, then per candidate and per batch: a batch stays near 6k tokens,
# inside CONTEXT_TOKENS with the instructions and the answer.
_FIELDS: Final = (
    ("link", "text", 160),
    ("title_attribute", "title", 160),
    ("url", "url", 200),
    ("file", "filename", 100),
    ("type", "doc_type", 8),
    ("heading", "heading", 160),
    ("row", "context", 320),
    ("page", "page_title", 120),
    ("document_start", "doc_text", 500),
)
_CANDIDATE_CHARS: Final = 1200
_BATCH_CHARS: Final = 22_000
ANSWER_TOKENS_PER_CANDIDATE: Final = 48


def score_messages(
    prompt: str, candidates: Sequence[Candidate], today: datetime.date
) -> tuple[str, str]:
    """The judge's question; candidates are numbered 1..n in the order given."""
    budget = min(_CANDIDATE_CHARS, _BATCH_CHARS // max(1, len(candidates)))
    items = [_candidate_item(i, c, budget) for i, c in enumerate(candidates, 1)]
    listing = msgspec.json.encode(items).decode()
    return _SCORE_SYSTEM, (
        f"Today is {today.isoformat()}.\nRequest: {prompt}\n{CANDIDATES_MARKER}\n{listing}"
    )


def _candidate_item(number: int, cand: Candidate, budget: int) -> dict[str, object]:
    item: dict[str, object] = {"id": number}
    texts = {key: _clip(getattr(cand, attr), limit) for key, attr, limit in _FIELDS}
    over = sum(map(len, texts.values())) - budget
    for key in ("document_start", "row", "heading"):  # the longest and most expendable
        if over <= 0:
            break
        kept = max(0, len(texts[key]) - over)
        over -= len(texts[key]) - kept
        texts[key] = _clip(texts[key], kept)
    item.update((key, text) for key, text in texts.items() if text)
    return item


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0] + "…" if limit > 1 else ""


def parse_scores(content: str, count: int) -> dict[int, tuple[float, str]]:
    """Usable (score, name) per candidate number 1..count; unknown numbers, repeats,
    scores outside 0..1 and non-numbers are left out."""
    raw = _decode(content)
    entries = raw.get("results") if isinstance(raw, dict) else raw
    found: dict[int, tuple[float, str]] = {}
    if not isinstance(entries, list):
        return found
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        number, score, name = entry.get("id"), entry.get("score"), entry.get("name")
        if type(number) is not int or not 1 <= number <= count or number in found:
            continue
        if isinstance(score, bool) or not isinstance(score, int | float):
            continue
        if not (math.isfinite(score) and 0 <= score <= 1):
            continue
        clean = " ".join(name.split())[:200] if isinstance(name, str) else ""
        found[number] = (float(score), clean)
    return found
