"""Prompt-driven extraction from page Markdown with the local model.

The page is cut between sections into windows that fit the model's context
(``extract_context_chars``, fewer characters for CJK text), each window is one chat call
(the page, then the instructions), and the answers are merged: Markdown parts joined, JSON
objects merged key by key, items concatenated without repeats. A JSON answer that does not
decode or does not fit the schema is asked again once (unless Ollama cut it at
``extract_answer_tokens``); a window still without a valid answer is left out with a
warning, and when no window gave one the extraction has ``failed`` with the reason. Calls
(``extract_max_calls``, retries included) and time (``extract_timeout_s``) are bounded, and
token counts are summed. The Extractor never raises for a model problem: callers decide what
to return instead (Spidra-style jobs return the raw Markdown, schema jobs the page's own
structured data).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import Any, Final, Literal

import msgspec

from skopd.config import RelevanceConfig
from skopd.content.chunks import chunk_markdown
from skopd.content.fields import coerce, item_schema
from skopd.content.schema import SchemaError, check_schema, violation
from skopd.relevance.ollama import ModelError, OllamaModel

_CHECK_TTL_S: Final = 5.0  # how long an availability answer is trusted
INSTRUCTIONS_MARKER: Final = "\n\nInstructions: "  # between the page and the instructions
_NOTHING: Final = "NOTHING"
_ITEMS_KEY: Final = "items"
_MD_SYSTEM: Final = (
    "You extract information from a web page given as Markdown, following the user's"
    " instructions. Use only what the page states; keep names, numbers, dates and links"
    " exactly as written. Answer in Markdown, without preamble. The page may come in parts:"
    f" when this part holds nothing the instructions ask for, answer exactly {_NOTHING}."
)
_JSON_SYSTEM: Final = (
    "You extract information from a web page given as Markdown, following the user's"
    " instructions. Use only what the page states; keep names, numbers, dates and links"
    " exactly as written. Answer with JSON only. The page may come in parts: leave out or"
    " set to null what this part does not state."
)
_ITEMS_SYSTEM: Final = (
    "You extract items from a web page given as Markdown. Answer with JSON only: an object"
    f' whose "{_ITEMS_KEY}" list holds one object per item the page lists, with the fields'
    " of the schema, values taken exactly as the page states them (links as absolute URLs)."
    f' Leave out fields the page does not state. When there are none, "{_ITEMS_KEY}" is [].'
    " The page may come in parts: extract the items of this part only."
)


class Extraction(msgspec.Struct):
    content: str | None  # Markdown text, or JSON text when output == "json"
    data: Any = None  # parsed JSON (output json) or list of items (schema item extraction)
    failed: bool = False  # model unavailable / invalid answer
    error: str | None = None
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    truncated: bool = False  # calls or time ran out before the page's end: the rest left out
    parts: int = 0  # windows the page was cut into (and asked about)
    warnings: list[str] = msgspec.field(default_factory=list)  # parts left out or cut, and why


class _Invalid(Exception):
    """An answer that decoded but cannot be used; worth one retry."""


class Extractor:
    """One per daemon. Uses the relevance settings' Ollama host and model; with
    ``relevance.backend = "lexical"`` no model is ever asked and every extraction fails
    with a message saying a local model is needed."""

    def __init__(self, settings: RelevanceConfig, model: OllamaModel | None = None) -> None:
        """`model` shares an existing line to the model (its client and its bound on calls
        in flight); without one the Extractor opens its own."""
        self.settings = settings
        self._owned = model is None and settings.backend != "lexical"
        self.model = model
        if self._owned:
            self.model = OllamaModel(
                settings.ollama_host,
                settings.model,
                settings.request_timeout_s,
                settings.max_concurrent_requests,
            )
        self._checked: tuple[float, str | None] | None = None

    async def close(self) -> None:
        if self._owned and self.model is not None:
            await self.model.close()

    async def available(self) -> bool:
        return await self.unavailable() is None

    async def unavailable(self) -> str | None:
        """Why extraction cannot use a model now (a message for the user), or None."""
        s = self.settings
        hint = f"start Ollama at {s.ollama_host} and `ollama pull {s.model}`"
        if self.model is None:
            return (
                'no local model available: relevance.backend is "lexical"; set it to "auto",'
                f" {hint}"
            )
        now = time.monotonic()
        if self._checked is None or now - self._checked[0] > _CHECK_TTL_S:
            reason = await self.model.unavailable()
            self._checked = (now, reason)
        reason = self._checked[1]
        return None if reason is None else f"no local model available ({reason}): {hint}"

    async def extract(
        self,
        markdown: str,
        prompt: str | None,
        *,
        schema: dict[str, Any] | None = None,
        output: Literal["markdown", "json"] = "markdown",
    ) -> Extraction:
        """The prompt's answer from the page. A schema means a JSON answer under it,
        whatever `output` says. Without prompt and schema the Markdown is the content."""
        as_json = output == "json" or schema is not None
        problem = _schema_problem(schema)
        if problem:
            return Extraction(content=None, failed=True, error=problem)
        if not (prompt and prompt.strip()) and schema is None:
            if not as_json:
                return Extraction(content=markdown)
            prompt = "Extract the page's main information as JSON."
        if not markdown.strip():
            if not as_json:
                return Extraction(content="")
            return Extraction(content=None, failed=True, error="the page has no text")
        instructions = _clip(prompt or "Extract the data the schema describes.")
        if not as_json:
            run = _Run(self, _MD_SYSTEM, instructions, None, _read_markdown)
            parts = await run.over(markdown)
            texts = [p for p in parts if isinstance(p, str) and p]
            return run.result(parts, "\n\n".join(texts) if parts else None, None)
        answer_schema: dict[str, Any] = schema if schema is not None else {}
        if schema is not None:
            # Ollama constrains the answer to the schema; the model reads it from the text.
            instructions += f"\nAnswer schema: {_schema_text(schema)}"
        run = _Run(self, _JSON_SYSTEM, instructions, answer_schema, _json_reader(answer_schema))
        parts = await run.over(markdown)
        merged = _merge_objects(parts) if parts else None
        content = msgspec.json.encode(merged).decode() if parts else None
        return run.result(parts, content, merged)

    async def extract_items(
        self,
        markdown: str,
        schema: dict[str, Any],
        *,
        prompt: str | None = None,
        max_items: int = 100,
    ) -> Extraction:
        """The items the page lists, each a dict under the item schema (`schema` itself,
        or its ``items`` when it is an array schema); at most `max_items`."""
        problem = _schema_problem(schema)
        if problem:
            return Extraction(content=None, failed=True, error=problem)
        item = item_schema(schema)
        wrapper = {
            "type": "object",
            "properties": {_ITEMS_KEY: {"type": "array", "items": item}},
            "required": [_ITEMS_KEY],
        }
        if not markdown.strip():
            return Extraction(content="[]", data=[])
        instructions = _clip(prompt or "Extract every item.")
        run = _Run(
            self,
            _ITEMS_SYSTEM,
            f"{instructions}\nItem schema: {_schema_text(item)}",
            wrapper,
            _items_reader(item),
            enough=lambda parts: len(_unique(parts)) >= max_items,
        )
        parts = await run.over(markdown)
        items = _unique(parts)[: max(0, max_items)] if parts else None
        content = msgspec.json.encode(items).decode() if items is not None else None
        return run.result(parts, content, items)


_Reader = Callable[[str], Any]
_STOP: Final = object()  # no more calls for this extraction
_PROMPT_CHARS: Final = 4000  # of the user's instructions sent to the model
_SCHEMA_CHARS: Final = 4000
_MIN_WINDOW: Final = 1000


def _schema_problem(schema: dict[str, Any] | None) -> str | None:
    if schema is None:
        return None
    try:
        check_schema(schema)
    except SchemaError as exc:
        return str(exc)
    return None


def _token_weight(text: str, sample: int = 20_000) -> float:
    """Tokens per character relative to Latin text: ~1 for alphabets, up to 3 for Chinese,
    Japanese and Korean (a character is about a token there, four are in English)."""
    head = text[:sample]
    wide = sum(1 for ch in head if ch >= "\u2e80")
    return 1 + 2 * wide / max(1, len(head))


def _clip(text: str, limit: int = _PROMPT_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _schema_text(schema: dict[str, Any]) -> str:
    return _clip(msgspec.json.encode(schema).decode(), _SCHEMA_CHARS)


@dataclasses.dataclass
class _Run:
    """One extraction: what is asked and how answers are read; then the windows, the calls
    made, the tokens spent, the last error and the parts left out."""

    extractor: Extractor
    system: str
    instructions: str
    schema: dict[str, Any] | None
    read: _Reader
    enough: Callable[[list[Any]], bool] | None = None  # stop asking once this holds
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    error: str | None = None
    truncated: bool = False
    windows: int = 0
    deadline: float = 0.0
    warnings: list[str] = dataclasses.field(default_factory=list)

    async def over(self, markdown: str) -> list[Any]:
        """The usable answer of each window, in page order; [] when there is none."""
        reason = await self.extractor.unavailable()
        if reason is not None:
            self.error = reason
            return []
        s = self.extractor.settings
        self.deadline = asyncio.get_running_loop().time() + s.extract_timeout_s
        # The instructions share the context with the page; scripts with more tokens per
        # character (CJK) get fewer characters.
        room = s.extract_context_chars / _token_weight(markdown) - len(self.instructions)
        room = max(_MIN_WINDOW, int(room))
        windows = split_windows(markdown, room)
        if len(windows) > s.extract_max_calls:
            self.warnings.append(
                f"the page needs {len(windows)} model calls, more than"
                f" relevance.extract_max_calls ({s.extract_max_calls}): its end was left out"
            )
            windows = windows[: s.extract_max_calls]
            self.truncated = True
        self.windows = len(windows)
        answers: list[Any] = []
        for number, window in enumerate(windows, 1):
            found = await self._window(window, number, len(windows))
            if found is _STOP:
                self.truncated = True
                break
            if found is None:
                if self.error and len(windows) > 1:
                    self.warnings.append(self.error)
                continue
            answers.append(found)
            if self.enough is not None and self.enough(answers):
                break
        return answers

    async def _window(self, window: str, number: int, count: int) -> Any:
        """The usable answer for one window; None when there is none, _STOP when the
        calls or the time of this extraction are spent."""
        s = self.extractor.settings
        model = self.extractor.model
        assert model is not None
        part = f" (part {number} of {count})" if count > 1 else ""
        # The instructions come last: nearest to the answer, and kept should Ollama cut
        # an over-long prompt (it drops the start).
        user = f"Page{part}:\n{window}{INSTRUCTIONS_MARKER}{self.instructions}"
        for attempt in range(2):
            left = self.deadline - asyncio.get_running_loop().time()
            if self.calls >= s.extract_max_calls or left <= 0:
                self._spent(s, left <= 0)
                return _STOP
            self.calls += 1
            try:
                async with asyncio.timeout(left):
                    reply = await model.ask(self.system, user, self.schema, s.extract_answer_tokens)
            except TimeoutError:
                self._spent(s, True)
                return _STOP
            except ModelError as exc:
                self.error = f"the local model failed{part}: {exc}"
                if not exc.transient:
                    return None
                continue
            self.input_tokens += reply.input_tokens
            self.output_tokens += reply.output_tokens
            cut = f"the answer{part} reached {s.extract_answer_tokens} tokens and was cut"
            try:
                found = self.read(reply.content)
            except _Invalid as exc:
                if reply.cut:  # asking again gives the same cut answer
                    self.error = f"{cut} (relevance.extract_answer_tokens)"
                    return None
                again = "; asked again" if attempt == 0 else ""
                self.error = f"the local model gave an invalid answer{part}: {exc}{again}"
                continue
            if reply.cut:
                self.warnings.append(cut)
            return found
        return None

    def _spent(self, s: RelevanceConfig, timed_out: bool) -> None:
        if timed_out:
            message = f"the extraction ran out of time ({s.extract_timeout_s:g} s)"
        else:
            message = f"the extraction used all of its {s.extract_max_calls} model calls"
        self.error = message
        self.warnings.append(f"{message}: the rest of the page was left out")

    def result(self, parts: list[Any], content: str | None, data: Any) -> Extraction:
        failed = not parts
        error = self.error if failed else None
        if failed and error is None:
            error = "the local model gave no usable answer"
        return Extraction(
            content=None if failed else content,
            data=None if failed else data,
            failed=failed,
            error=error,
            llm_calls=self.calls,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            truncated=self.truncated,
            parts=self.windows,
            warnings=list(dict.fromkeys(self.warnings)) if not failed else [],
        )


def split_windows(markdown: str, max_chars: int) -> list[str]:
    """The Markdown as consecutive windows of at most `max_chars`, cut between sections."""
    if len(markdown) <= max_chars:
        return [markdown] if markdown.strip() else []
    windows: list[str] = []
    current = ""
    for chunk in chunk_markdown(markdown, max_chars):
        text = chunk.text
        if chunk.heading and not text.lstrip().startswith("#"):
            text = f"[{chunk.heading}]\n{text}"  # a section cut in two keeps its heading
            if len(text) > max_chars:
                text = chunk.text
        joined = f"{current}\n\n{text}" if current else text
        if len(joined) <= max_chars:
            current = joined
        else:
            windows.append(current)
            current = text
    if current:
        windows.append(current)
    return windows


# ---------------------------------------------------------------- reading answers


def _read_markdown(content: str) -> str:
    text = _unfence(_unfence(content.strip(), "markdown", False), "md", False)
    if not text:
        raise _Invalid("an empty answer")
    return "" if text.strip(" .`*\"'") == _NOTHING else text


def _unfence(text: str, language: str, bare: bool) -> str:
    """An answer wrapped whole in one ```language fence (or a bare ``` one, when `bare`),
    unwrapped."""
    if not (text.startswith("```") and text.endswith("```") and "\n" in text):
        return text
    first, rest = text.split("\n", 1)
    info = first[3:].strip().lower()
    if not (info == language or (bare and not info)) or "```" in rest[:-3]:
        return text
    return rest[:-3].strip()


def _decode(content: str) -> Any:
    try:
        return msgspec.json.decode(_unfence(content.strip(), "json", True).encode())
    except msgspec.DecodeError:
        snippet = " ".join(content.split())[:80]
        raise _Invalid(f"not JSON ({snippet!r})") from None


def _json_reader(schema: dict[str, Any]) -> _Reader:
    def read(content: str) -> Any:
        value = _decode(content)
        if schema:
            value = _conform(value, schema)
            problem = violation(value, schema)
            if problem:
                raise _Invalid(f"does not match the schema ({problem})")
        return value

    return read


def _items_reader(item: dict[str, Any]) -> _Reader:
    def read(content: str) -> list[Any]:
        value = _decode(content)
        entries = value.get(_ITEMS_KEY) if isinstance(value, dict) else value
        if not isinstance(entries, list):
            raise _Invalid(f'no "{_ITEMS_KEY}" list')
        kept: list[Any] = []
        problem = None
        for entry in entries:
            entry = _conform(entry, item)
            problem = violation(entry, item) or problem
            if violation(entry, item) is None:
                kept.append(entry)
        if entries and not kept:
            raise _Invalid(f"no item matches the schema ({problem})")
        return kept

    return read


def _conform(value: Any, schema: dict[str, Any]) -> Any:
    """Small repairs a model's JSON often needs: "12" for 12, a lone value for a list.
    Properties the schema does not know are dropped, nulls for optional ones too."""
    props = schema.get("properties")
    if not isinstance(value, dict) or not isinstance(props, dict):
        return value
    required = set(schema.get("required") or [])
    out: dict[str, Any] = {}
    for name, sub in props.items():
        if name not in value:
            continue
        raw = value[name]
        if raw is None and name not in required:
            continue
        fixed = _conform(raw, sub) if isinstance(sub, dict) else raw
        inner = sub.get("items") if isinstance(sub, dict) else None
        if isinstance(fixed, list) and isinstance(inner, dict):
            fixed = [_conform(entry, inner) for entry in fixed]
        if isinstance(sub, dict) and violation(fixed, sub) is not None:
            repaired = coerce(fixed, sub)
            fixed = repaired if repaired is not None else fixed
        out[name] = fixed
    return out


# ---------------------------------------------------------------- merging


def _unique(parts: list[Any]) -> list[Any]:
    seen: set[bytes] = set()
    out: list[Any] = []
    for part in parts:
        for entry in part:
            key = msgspec.json.encode(entry, order="sorted")
            if key not in seen:
                seen.add(key)
                out.append(entry)
    return out


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _merge_objects(parts: list[Any]) -> Any:
    """One JSON value from the answers of several windows: objects merged key by key
    (the first non-empty value wins, lists are concatenated without repeats), lists
    concatenated; anything else is the first answer."""
    merged = parts[0]
    for part in parts[1:]:
        merged = _merge(merged, part)
    return merged


def _merge(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for key, value in b.items():
            out[key] = value if key not in out or _empty(out[key]) else _merge(out[key], value)
        return out
    if isinstance(a, list) and isinstance(b, list):
        return _unique([a, b])
    return b if _empty(a) else a
