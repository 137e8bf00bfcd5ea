"""A fake Ollama on 127.0.0.1: the HTTP API the official client speaks, answering by rules.

``GET /api/tags`` lists ``models``; ``POST /api/chat`` (non-streaming) answers a plan for
plan questions and, for scoring questions, a score per candidate it was sent: the share of
the request's words found in the candidate's text. Extraction questions (any other chat)
get the test's queued ``replies``, else what its ``reply`` function computes, else a rule's
answer: free text gets the page lines holding a word of the instructions, a JSON schema
with an ``items`` list gets one item per Markdown link of the page. Every request is
recorded, with its start and end time and the token counts answered, and test hooks break
answers in the ways a real model can.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from skopd.content.extract import INSTRUCTIONS_MARKER
from skopd.relevance.ollama import CANDIDATES_MARKER

Entries = list[dict[str, Any]]

# The fake model's knowledge: synonyms and the site sections where such documents live.
SYNONYMS: dict[str, list[str]] = {
    "timetables": ["timetable", "bus schedule", "Fahrplan"],
    "minutes": ["minutes", "proceedings", "Protokoll"],
    "budget": ["budget", "Haushalt"],
}
SECTIONS: dict[str, list[str]] = {
    "timetables": ["mobility", "transport"],
    "minutes": ["council", "meetings"],
    "budget": ["finance"],
}
_STOP = frozenset("find the all from for and with of in on show get give me please".split())


@dataclass
class Call:
    path: str
    body: dict[str, Any]
    started: float
    ended: float = 0.0
    tokens: tuple[int, int] = (0, 0)  # prompt_eval_count, eval_count answered

    @property
    def user(self) -> str:
        return str(self.body["messages"][-1]["content"])

    @property
    def system(self) -> str:
        return str(self.body["messages"][0]["content"])

    @property
    def format(self) -> Any:
        return self.body.get("format")

    @property
    def is_plan(self) -> bool:
        fmt = self.format
        return isinstance(fmt, dict) and "topics" in fmt.get("properties", {})

    @property
    def is_scoring(self) -> bool:
        return CANDIDATES_MARKER in self.user

    @property
    def is_extraction(self) -> bool:
        return not self.is_plan and not self.is_scoring

    @property
    def page(self) -> str:
        """The page Markdown an extraction call was sent."""
        head = self.user.rsplit(INSTRUCTIONS_MARKER, 1)[0]
        return head.split(":\n", 1)[1] if ":\n" in head else ""


Reply = str | dict[str, Any] | list[Any]


@dataclass
class FakeOllama:
    models: list[str] = field(default_factory=lambda: ["qwen2.5:3b"])
    calls: list[Call] = field(default_factory=list)
    delay_s: float = 0.0  # before every chat answer
    fail_with: list[int] = field(default_factory=list)  # statuses for the next chat calls
    content: str | None = None  # answer every chat with exactly this
    plan: dict[str, Any] | None = None  # answer plan questions with this
    edit: Callable[[Entries], Entries] | None = None  # change a scoring answer's entries
    tokens: tuple[int, int] = (120, 30)  # prompt_eval_count, eval_count per relevance chat
    replies: list[Reply] = field(default_factory=list)  # the next extraction answers, in order
    reply: Callable[[Call], Reply] | None = None  # an extraction answer computed per call
    cut_at: int | None = None  # extraction answers longer than this many characters are cut
    active: int = 0
    max_active: int = 0  # most chat calls in flight at once
    host: str = ""
    _server: TestServer | None = None
    _closing: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def chats(self) -> list[Call]:
        return [c for c in self.calls if c.path == "/api/chat"]

    @property
    def scoring(self) -> list[Call]:
        return [c for c in self.chats if c.is_scoring]

    @property
    def extractions(self) -> list[Call]:
        return [c for c in self.chats if c.is_extraction]

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/api/tags", self._tags)
        app.router.add_post("/api/chat", self._chat)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        self.host = f"http://127.0.0.1:{self._server.port}"
        return self.host

    async def close(self) -> None:
        self._closing.set()  # slow answers end now rather than after their delay
        if self._server is not None:
            await self._server.close()

    async def _tags(self, request: web.Request) -> web.Response:
        self.calls.append(Call("/api/tags", {}, time.monotonic(), time.monotonic()))
        return web.json_response({"models": [_model_entry(name) for name in self.models]})

    async def _chat(self, request: web.Request) -> web.Response:
        call = Call("/api/chat", await request.json(), time.monotonic())
        self.calls.append(call)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.delay_s:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), self.delay_s)
            return self._answer(call)
        finally:
            self.active -= 1
            call.ended = time.monotonic()

    def _answer(self, call: Call) -> web.Response:
        model = str(call.body.get("model", ""))
        if self.fail_with:
            status = self.fail_with.pop(0)
            return web.json_response({"error": f"fake failure {status}"}, status=status)
        if not any(_same_model(model, m) for m in self.models):
            return web.json_response({"error": f"model '{model}' not found"}, status=404)
        tokens = self.tokens
        done_reason = "stop"
        if self.content is not None:
            content = self.content
        elif call.is_plan:
            content = json.dumps(self.plan if self.plan is not None else plan_for(call.user))
        elif call.is_scoring:
            entries = judge(call.user)
            content = json.dumps({"results": self.edit(entries) if self.edit else entries})
        else:
            answer = self.replies.pop(0) if self.replies else (self.reply or extract)(call)
            content = answer if isinstance(answer, str) else json.dumps(answer)
            if self.cut_at is not None and len(content) > self.cut_at:
                content, done_reason = content[: self.cut_at], "length"
            # Roughly what a tokenizer counts: four characters a token.
            sent = sum(len(m["content"]) for m in call.body["messages"])
            tokens = (sent // 4 + 10, len(content) // 4 + 1)
        call.tokens = tokens
        return web.json_response(
            {
                "model": model,
                "created_at": "2025-06-01T12:00:00.000000Z",
                "message": {"role": "assistant", "content": content},
                "done": True,
                "done_reason": done_reason,
                "total_duration": 1_200_000_000,
                "load_duration": 10_000_000,
                "prompt_eval_count": tokens[0],
                "eval_count": tokens[1],
            }
        )


def _model_entry(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "model": name,
        "modified_at": "2025-05-01T10:00:00.000000Z",
        "size": 1_929_912_432,
        "digest": hashlib.sha256(name.encode()).hexdigest(),
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": "qwen2",
            "families": ["qwen2"],
            "parameter_size": "3.1B",
            "quantization_level": "Q4_K_M",
        },
    }


def _same_model(asked: str, pulled: str) -> bool:
    def full(name: str) -> str:
        return name if ":" in name else f"{name}:latest"

    return full(asked) == full(pulled)


def request_of(user: str) -> str:
    found = re.search(r"^Request: (.*)$", user, re.MULTILINE)
    return found.group(1) if found else ""


def _request_words(user: str) -> list[str]:
    words = re.findall(r"[a-zà-ÿ0-9]+", request_of(user).lower())
    return [w for w in words if w not in _STOP and len(w) > 2]


def plan_for(user: str) -> dict[str, Any]:
    words = _request_words(user)
    years = sorted(int(w) for w in words if re.fullmatch(r"(19|20)\d\d", w))
    return {
        "topics": [s for w in words for s in SYNONYMS.get(w, [w])],
        "year_from": years[0] if years else None,
        "year_to": years[-1] if years else None,
        "document_types": [],
        "sections": [s for w in words for s in SECTIONS.get(w, [])],
    }


def candidates_of(user: str) -> Entries:
    listing: Entries = json.loads(user.split(CANDIDATES_MARKER, 1)[1])
    return listing


def judge(user: str) -> Entries:
    wanted = _request_words(user)
    out = []
    for cand in candidates_of(user):
        text = " ".join(str(v) for k, v in cand.items() if k != "id").lower()
        share = sum(w in text for w in wanted) / max(1, len(wanted))
        name = cand.get("link") or cand.get("file") or "document"
        out.append({"id": cand["id"], "score": round(share, 2), "name": f"Judged: {name}"})
    return out


_MD_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)")


def instructions_of(user: str) -> str:
    """The first line of an extraction call's instructions (the user's prompt)."""
    if INSTRUCTIONS_MARKER not in user:
        return ""
    return user.rsplit(INSTRUCTIONS_MARKER, 1)[1].split("\n", 1)[0]


def extract(call: Call) -> Reply:
    """The rule model's extraction answer (see the module docstring)."""
    fmt = call.format
    if isinstance(fmt, dict) and "items" in fmt.get("properties", {}):
        item = fmt["properties"]["items"]["items"]
        props = item.get("properties", {})
        items = []
        for text, url in _MD_LINK.findall(call.page):
            entry: dict[str, Any] = {}
            for name in props:
                if name in ("name", "title", "text"):
                    entry[name] = text
                elif name in ("url", "link", "href"):
                    entry[name] = url
            if entry:
                items.append(entry)
        return {"items": items}
    words = [w for w in re.findall(r"\w{4,}", instructions_of(call.user).lower())]
    lines = [ln for ln in call.page.splitlines() if any(w in ln.lower() for w in words)]
    if fmt:
        return {"lines": lines}
    return "\n".join(lines) if lines else "NOTHING"
