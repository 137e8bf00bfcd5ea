"""Which judge a job gets, and the local model's part in a job.

``Relevance`` is built once per daemon from the ``[relevance]`` settings. For each job,
``for_job`` checks that the model is there and hands out a ``JobRelevance``: the model's
(plan once, score candidates in batches) or the built-in lexical scorer's. The model is the
judge, but never the only one: any candidate it gives no usable answer for keeps its
lexical score, and a candidate the lexical scorer finds dated outside the asked years is
capped whatever the model says.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from typing import Final

import msgspec

from skopd.config import RelevanceConfig
from skopd.relevance.base import Candidate, Scored
from skopd.relevance.lexical import LexicalScorer, date_fit
from skopd.relevance.ollama import (
    ANSWER_TOKENS_PER_CANDIDATE,
    PLAN_SCHEMA,
    PLAN_TOKENS,
    SCORE_SCHEMA,
    ModelError,
    ModelPlan,
    OllamaModel,
    Reply,
    parse_plan,
    parse_scores,
    plan_messages,
    score_messages,
)
from skopd.relevance.query import Query
from skopd.relevance.text import (
    content_word,
    is_generic_word,
    normal,
    words,
)

_EXTRA_TERMS: Final = 16  # each is a group the link priority divides its credit among
_GIVE_UP_AFTER: Final = 3  # failed batches in a row before a job stops asking the model
_VETO_BELOW: Final = 0.5  # lexical date fit: 1 wanted, 0.75 undated, <= 0.3 another date
_NO_PLAN: Final = "the model could not plan the search"
_PARSER: Final = "using the built-in prompt parser"
_USED: Final = "used the lexical score"
_REST: Final = "the rest of this job uses the lexical scorer"


class RelevanceUnavailable(Exception):
    """backend = "ollama" and the model cannot be used: the job fails with this message."""


class Relevance:
    """One per daemon: the configured backend and the model line all jobs share."""

    def __init__(self, settings: RelevanceConfig) -> None:
        """`settings` were validated when the configuration was loaded."""
        self.settings = settings
        self.ollama: OllamaModel | None = None
        if settings.backend != "lexical":
            self.ollama = OllamaModel(
                settings.ollama_host,
                settings.model,
                settings.request_timeout_s,
                settings.max_concurrent_requests,
            )

    async def close(self) -> None:
        if self.ollama is not None:
            await self.ollama.close()

    async def for_job(self, warn: Callable[[str], None]) -> JobRelevance:
        """The judge for a new job. With backend "auto" an absent model is a warning and
        the lexical scorer; with "ollama" it raises RelevanceUnavailable."""
        if self.ollama is None:
            return JobRelevance(warn)
        reason = await self.ollama.unavailable()
        if reason is None:
            s = self.settings
            return JobRelevance(
                warn, self.ollama, batch_size=s.batch_size, max_calls=s.max_llm_calls_per_job
            )
        if self.settings.backend == "ollama":
            raise RelevanceUnavailable(reason)
        joiner = "; " if ": " in reason else ": "
        warn(f"{reason}{joiner}using the built-in lexical scorer")
        return JobRelevance(warn)

    async def health(self) -> dict[str, object]:
        """For /healthz: the configured backend, what a job would get now, and why."""
        s = self.settings
        if self.ollama is None:
            return {
                "backend": s.backend,
                "live": "lexical",
                "model": None,
                "host": None,
                "reason": None,
            }
        reason = await self.ollama.unavailable()
        live = "ollama" if reason is None else "lexical" if s.backend == "auto" else "unavailable"
        return {
            "backend": s.backend,
            "live": live,
            "model": s.model,
            "host": s.ollama_host,
            "reason": reason,
        }


class _NoAnswer(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class JobRelevance:
    """One job's judge; implements the Scorer protocol. Counts the job's model calls and
    tokens, and says each kind of trouble once through ``warn``."""

    def __init__(
        self,
        warn: Callable[[str], None],
        ollama: OllamaModel | None = None,
        *,
        batch_size: int = 20,
        max_calls: int = 200,
        today: datetime.date | None = None,
    ) -> None:
        self.name = "lexical" if ollama is None else "ollama"
        self.model = None if ollama is None else ollama.model
        self.llm_calls = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self._warn = warn
        self._ollama = ollama
        self._batch_size = max(1, batch_size)
        self._max_calls = max_calls
        self._today = today or datetime.date.today()
        self._lexical = LexicalScorer()
        self._warned: set[str] = set()
        self._failures = 0
        self._stopped = False
        # The planned query widens link priority; scoring keeps the prompt's own terms.
        self._planned: Query | None = None
        self._scoring: Query | None = None

    # -- the coordinator --------------------------------------------------

    async def plan(self, query: Query) -> Query:
        """The lexical query widened by the model's synonyms, years, types and section
        words; the query unchanged when there is no model or no usable answer."""
        if self._ollama is None:
            return query
        system, user = plan_messages(query.prompt, self._today)
        try:
            reply = await self._ask(system, user, PLAN_SCHEMA, PLAN_TOKENS)
        except _NoAnswer as exc:
            self._say("plan", f"{_NO_PLAN} ({exc.message}); {_PARSER}")
            return query
        found = parse_plan(reply.content)
        if found is None:
            self._say("plan", f"{_NO_PLAN} (its answer was unusable); {_PARSER}")
            return query
        planned = merge_plan(query, found, self._today)
        self._planned = planned
        self._scoring = msgspec.structs.replace(
            query,
            years=planned.years,
            year_from=planned.year_from,
            year_to=planned.year_to,
            doc_types=planned.doc_types,
        )
        return planned

    # -- the scraper ------------------------------------------------------

    async def score(self, query: Query, candidates: Sequence[Candidate]) -> list[Scored]:
        basis = self._scoring if query is self._planned and self._scoring else query
        scored = await self._lexical.score(basis, candidates)
        if self._ollama is None:
            return scored
        size = self._batch_size
        for start in range(0, len(candidates), size):
            await self._judge(basis, candidates[start : start + size], scored, start)
        return scored

    async def _judge(
        self, basis: Query, batch: Sequence[Candidate], scored: list[Scored], offset: int
    ) -> None:
        """Replace the lexical results of one batch by the model's, where usable."""
        system, user = score_messages(basis.prompt, batch, self._today)
        tokens = ANSWER_TOKENS_PER_CANDIDATE * len(batch) + 64
        try:
            reply = await self._ask(system, user, SCORE_SCHEMA, tokens)
        except _NoAnswer as exc:
            self._say(exc.kind, exc.message)
            return
        verdicts = parse_scores(reply.content, len(batch))
        for number, cand in enumerate(batch, 1):
            verdict = verdicts.get(number)
            if verdict is None:
                continue
            score, name = verdict
            fit = date_fit(basis, cand)
            if fit < _VETO_BELOW:
                score = min(score, fit)
            index = offset + number - 1
            scored[index] = Scored(cand.id, round(score, 4), name or scored[index].name)
        if missing := len(batch) - len(verdicts):
            message = f"the model's answer for {missing} candidates was unusable; {_USED}"
            self._say("unusable", message)

    # -- calls ------------------------------------------------------------

    async def _ask(self, system: str, user: str, schema: dict[str, object], tokens: int) -> Reply:
        """One answer from the model, retrying once after a transient error; raises
        _NoAnswer when the job's budget is spent or the model keeps failing."""
        assert self._ollama is not None
        for attempt in range(2):
            if self._stopped:
                failed = f"model {self.model} failed {_GIVE_UP_AFTER} times in a row"
                raise _NoAnswer("stopped", f"{failed}: {_REST}")
            if self.llm_calls >= self._max_calls:
                spent = f"max_llm_calls_per_job ({self._max_calls}) reached"
                raise _NoAnswer("budget", f"{spent}: {_REST}")
            self.llm_calls += 1
            try:
                reply = await self._ollama.ask(system, user, schema, tokens)
            except ModelError as exc:
                if exc.transient and attempt == 0:
                    continue
                self._failures += 1
                self._stopped = self._failures >= _GIVE_UP_AFTER
                retried = " after a retry" if exc.transient else ""
                failed = f"a call to model {self.model} failed{retried} ({exc})"
                raise _NoAnswer("failed", f"{failed}; {_USED}") from None
            self._failures = 0
            self.input_tokens += reply.input_tokens
            self.output_tokens += reply.output_tokens
            return reply
        raise AssertionError("unreachable")

    def _say(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            self._warn(message)


# ---------------------------------------------------------------- plan and dates


def merge_plan(query: Query, plan: ModelPlan, today: datetime.date) -> Query:
    """Add the model's topics and section words as terms (normalised as the prompt's own,
    so they meet in link priority); take its years and types only where the prompt's own
    parse found none."""
    known = {normal(t) for t in query.terms}
    extra: list[str] = []
    for phrase in (*plan.topics, *plan.sections):
        for unit in _units(phrase):
            if unit not in known:
                known.add(unit)
                extra.append(unit)
    changes: dict[str, object] = {}
    if extra:
        changes["terms"] = (*query.terms, *extra[:_EXTRA_TERMS])
    low, high = plan.year_from, plan.year_to
    if not query.has_year_filter and (low is not None or high is not None):
        if low is not None and high is not None and low > high:
            low, high = high, low
        if (low or 0) <= today.year + 1:
            changes.update(year_from=low, year_to=high)
    if not query.doc_types and plan.doc_types:
        changes["doc_types"] = plan.doc_types
    return msgspec.structs.replace(query, **changes) if changes else query


def _units(phrase: str) -> list[str]:
    """A topic as the lexical planner spells terms: one or two stems make one unit (two
    meet as adjacent words); longer topics count word by word."""
    stems = [
        stem
        for word in words(phrase)
        if not is_generic_word(word) and (stem := content_word(word)) is not None
    ]
    if len(stems) <= 2:
        return [" ".join(stems)] if stems else []
    return stems
