"""The local-model backend, driven through the real ollama client against a fake Ollama."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import math
import re
import socket
import time
from typing import Any

import pytest

from skopd.config import RelevanceConfig
from skopd.relevance.backend import (
    JobRelevance,
    Relevance,
    RelevanceUnavailable,
)
from skopd.relevance.base import Candidate
from skopd.relevance.lexical import document_name, score_candidate
from skopd.relevance.ollama import model_matches
from skopd.relevance.query import Query, build_query, link_priority
from skopd.relevance.text import normal
from tests.fake_ollama import Entries, FakeOllama, candidates_of, request_of

TODAY = datetime.date(2025, 6, 1)
PROMPT = "find the council minutes 2024"


class Warnings(list[str]):
    def __call__(self, message: str) -> None:
        self.append(message)


async def job_for(
    host: str, warnings: Warnings | None = None, **settings: Any
) -> tuple[Relevance, JobRelevance]:
    relevance = Relevance(RelevanceConfig(ollama_host=host, **settings))
    job = await relevance.for_job(warnings if warnings is not None else Warnings())
    return relevance, job


def minutes(count: int, year: int = 2024) -> list[Candidate]:
    return [
        Candidate(
            id=100 + i,
            url=f"https://town.example/council/minutes-{year}-{i:02d}.pdf",
            text=f"Council minutes {year} no. {i}",
            filename=f"minutes-{year}-{i:02d}.pdf",
            doc_type="pdf",
        )
        for i in range(count)
    ]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# ---------------------------------------------------------------- availability


async def test_auto_without_ollama_warns_once_and_scores_lexically() -> None:
    host = f"http://127.0.0.1:{closed_port()}"
    warnings = Warnings()
    relevance, job = await job_for(host, warnings)
    assert job.name == "lexical" and job.model is None
    assert warnings == [f"no Ollama answered at {host}: using the built-in lexical scorer"]
    query = build_query(PROMPT, TODAY)
    assert await job.plan(query) is query
    cands = minutes(3)
    scored = await job.score(query, cands)
    assert [s.score for s in scored] == [score_candidate(query, c) for c in cands]
    assert len(warnings) == 1
    await relevance.close()


async def test_ollama_mode_without_ollama_fails_the_job() -> None:
    host = f"http://127.0.0.1:{closed_port()}"
    relevance = Relevance(RelevanceConfig(backend="ollama", ollama_host=host))
    with pytest.raises(RelevanceUnavailable) as raised:
        await relevance.for_job(Warnings())
    assert str(raised.value) == f"no Ollama answered at {host}"
    assert (await relevance.health())["live"] == "unavailable"
    await relevance.close()


async def test_missing_model_asks_for_ollama_pull(fake: FakeOllama) -> None:
    fake.models = ["llama3.2:latest"]
    warnings = Warnings()
    relevance, job = await job_for(fake.host, warnings, model="qwen2.5:3b")
    assert job.name == "lexical"
    assert warnings == [
        f"model qwen2.5:3b is not pulled on {fake.host}: run `ollama pull qwen2.5:3b`; "
        "using the built-in lexical scorer"
    ]
    strict = Relevance(RelevanceConfig(backend="ollama", ollama_host=fake.host))
    with pytest.raises(RelevanceUnavailable, match=re.escape("ollama pull qwen2.5:3b")):
        await strict.for_job(Warnings())
    # "llama3.2" is how people name "llama3.2:latest".
    short, job = await job_for(fake.host, model="llama3.2")
    assert job.name == "ollama" and job.model == "llama3.2"
    for r in (relevance, strict, short):
        await r.close()


@pytest.mark.parametrize(
    ("wanted", "pulled", "same"),
    [
        ("qwen2.5:3b", "qwen2.5:3b", True),
        ("llama3.2", "llama3.2:latest", True),
        ("Llama3.2:Latest", "llama3.2:latest", True),
        ("library/llama3.2", "llama3.2:latest", True),
        ("qwen2.5:3b", "qwen2.5:7b", False),
        ("qwen2.5", "qwen2.5:3b", False),
        ("hf.co/org/model:Q4_K_M", "hf.co/org/model:Q4_K_M", True),
    ],
)
def test_model_names_match_as_ollama_matches_them(wanted: str, pulled: str, same: bool) -> None:
    assert model_matches(wanted, pulled) is same


async def test_health(fake: FakeOllama) -> None:
    relevance = Relevance(RelevanceConfig(ollama_host=fake.host))
    assert await relevance.health() == {
        "backend": "auto",
        "live": "ollama",
        "model": "qwen2.5:3b",
        "host": fake.host,
        "reason": None,
    }
    fake.models = []
    health = await relevance.health()
    assert health["live"] == "lexical"
    assert "ollama pull qwen2.5:3b" in str(health["reason"])
    lexical = Relevance(RelevanceConfig(backend="lexical", ollama_host=fake.host))
    assert (await lexical.health())["live"] == "lexical"
    calls = len(fake.calls)
    assert (await lexical.for_job(Warnings())).name == "lexical"
    assert len(fake.calls) == calls  # "lexical" never asks Ollama
    await relevance.close()
    await lexical.close()


# ---------------------------------------------------------------- the plan


async def test_plan_adds_synonyms_and_section_words(fake: FakeOllama) -> None:
    relevance, job = await job_for(fake.host)
    query = build_query("find the bus timetables", TODAY)
    planned = await job.plan(query)
    (call,) = fake.chats
    assert request_of(call.user) == "find the bus timetables"
    assert call.body["stream"] is False
    assert call.body["options"]["temperature"] == 0
    assert call.body["format"]["required"] == [
        "topics", "year_from", "year_to", "document_types", "sections"
    ]  # fmt: skip
    for word in ("Fahrplan", "bus schedule", "mobility", "transport"):
        assert normal(word) in planned.terms
    assert planned.terms[: len(query.terms)] == query.terms
    assert planned.year_from is None and planned.doc_types == ()
    # Section words lead the crawl: a "Mobility" menu link now outranks an unrelated one.
    url, text = "https://town.example/mobility/", "Mobility"
    other = ("https://town.example/sports/", "Sports")
    assert link_priority(query, url, text) == link_priority(query, *other)
    assert link_priority(planned, url, text) > link_priority(planned, *other)
    assert job.llm_calls == 1
    await relevance.close()


async def test_plan_years_and_types_only_where_the_prompt_has_none(fake: FakeOllama) -> None:
    relevance, job = await job_for(fake.host)
    fake.plan = {"topics": ["annual report"], "year_from": 2023, "year_to": 2020,
                 "document_types": ["xlsx"], "sections": []}  # fmt: skip
    planned = await job.plan(build_query("the latest annual reports", TODAY))
    assert (planned.year_from, planned.year_to) == (2020, 2023)
    assert planned.doc_types == ("xlsx",)
    own = build_query("annual reports 2024 as pdf", TODAY)
    planned = await job.plan(own)
    assert (planned.year_from, planned.year_to, planned.doc_types) == (2024, 2024, ("pdf",))
    await relevance.close()


async def test_unusable_plan_keeps_the_lexical_query(fake: FakeOllama) -> None:
    warnings = Warnings()
    relevance, job = await job_for(fake.host, warnings)
    fake.content = "Sure! Here is the plan: topics are minutes"
    query = build_query(PROMPT, TODAY)
    assert await job.plan(query) is query
    assert warnings == [
        "the model could not plan the search (its answer was unusable); "
        "using the built-in prompt parser"
    ]
    await relevance.close()


# ---------------------------------------------------------------- scoring


async def test_batches_carry_the_prompt_and_every_context_field(fake: FakeOllama) -> None:
    relevance, job = await job_for(fake.host, batch_size=20)
    query = build_query(PROMPT, TODAY)
    rich = Candidate(
        id=7,
        url="https://town.example/files/gr-0312.pdf",
        text="PDF",
        title="Open the minutes",
        heading="Council meetings 2024",
        context="12 March 2024 | Minutes of the regular council meeting | PDF 1 MB",
        page_title="Council – Town of Riverton",
        filename="gr-0312.pdf",
        doc_type="pdf",
        doc_text="Town of Riverton. Minutes of the council meeting held on 12 March 2024.",
    )
    cands = [rich, *minutes(44)]
    scored = await job.score(query, cands)
    assert len(fake.scoring) == math.ceil(45 / 20)
    first = fake.scoring[0]
    assert request_of(first.user) == PROMPT
    sent = candidates_of(first.user)[0]
    for value in (rich.url, rich.text, rich.title, rich.heading, rich.context,
                  rich.page_title, rich.filename, rich.doc_text):  # fmt: skip
        assert value in sent.values()
    assert [len(candidates_of(c.user)) for c in fake.scoring] == [20, 20, 5]
    assert [s.id for s in scored] == [c.id for c in cands]
    # The fake judges by the request's words found: the model's scores and names are used.
    assert scored[1].score == 1.0 and scored[1].name == "Judged: Council minutes 2024 no. 0"
    assert scored[0].name == "Judged: PDF"
    await relevance.close()


async def test_long_fields_are_cut_to_keep_a_batch_small(fake: FakeOllama) -> None:
    relevance, job = await job_for(fake.host, batch_size=20)
    huge = [
        Candidate(id=i, url=f"https://town.example/{i}.pdf", text="minutes " * 200,
                  context="row " * 2000, doc_text="text " * 5000, doc_type="pdf")
        for i in range(20)
    ]  # fmt: skip
    await job.score(build_query(PROMPT, TODAY), huge)
    (call,) = fake.scoring
    assert len(call.user) < 26_000  # about 6-7k tokens
    assert all(len(c["link"]) <= 160 for c in candidates_of(call.user))
    await relevance.close()


async def test_token_counts_are_summed(fake: FakeOllama) -> None:
    relevance, job = await job_for(fake.host, batch_size=10)
    fake.tokens = (500, 40)
    query = await job.plan(build_query(PROMPT, TODAY))
    await job.score(query, minutes(25))
    assert job.llm_calls == 4  # one plan, three batches
    assert (job.input_tokens, job.output_tokens) == (4 * 500, 4 * 40)
    await relevance.close()


async def test_outdated_candidates_are_capped_whatever_the_model_says(fake: FakeOllama) -> None:
    relevance, job = await job_for(fake.host)
    query = await job.plan(build_query(PROMPT, TODAY))
    fake.edit = lambda entries: [dict(e, score=0.95) for e in entries]
    current, old = minutes(1, 2024)[0], minutes(1, 2019)[0]
    scored = await job.score(query, [current, old])
    assert scored[0].score == 0.95
    assert scored[1].score < 0.1  # below the default confidence threshold
    await relevance.close()


async def test_invalid_json_falls_back_to_lexical_once(fake: FakeOllama) -> None:
    warnings = Warnings()
    relevance, job = await job_for(fake.host, warnings, batch_size=5)
    query = build_query(PROMPT, TODAY)
    fake.content = '{"results": [{"id": 1, "score": 0.9'
    cands = minutes(8)
    scored = await job.score(query, cands)
    assert [(s.score, s.name) for s in scored] == [
        (score_candidate(query, c), document_name(c)) for c in cands
    ]
    assert warnings == ["the model's answer for 5 candidates was unusable; used the lexical score"]
    await relevance.close()


async def test_partial_and_wrong_entries_fall_back_per_candidate(fake: FakeOllama) -> None:
    warnings = Warnings()
    relevance, job = await job_for(fake.host, warnings)
    query = build_query(PROMPT, TODAY)

    def damage(entries: Entries) -> Entries:
        kept = [e for e in entries if e["id"] not in (2, 3)]  # dropped
        kept[0] = dict(kept[0], score=1.7)  # out of range
        kept[1] = dict(kept[1], score="high")  # not a number
        return [*kept, {"id": 999, "score": 0.9, "name": "ghost"}, {"id": 5, "score": 0.0}]

    fake.edit = damage
    cands = minutes(6)
    scored = await job.score(query, cands)
    lexical = [score_candidate(query, c) for c in cands]
    assert [s.score for s in scored[:5]] == lexical[:5]  # 1: 1.7, 2-3: dropped, 4: "high"
    assert scored[5].score == 1.0 and scored[5].name.startswith("Judged:")
    assert [s.id for s in scored] == [c.id for c in cands]  # id 999 is ignored
    assert warnings == ["the model's answer for 4 candidates was unusable; used the lexical score"]
    await relevance.close()


async def test_a_slow_model_times_out_retries_once_then_lexical(fake: FakeOllama) -> None:
    warnings = Warnings()
    relevance, job = await job_for(fake.host, warnings, request_timeout_s=0.5)
    query = build_query(PROMPT, TODAY)
    fake.delay_s = 30.0
    cands = minutes(3)
    started = time.monotonic()
    scored = await job.score(query, cands)
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 1.6  # two attempts of 0.5 s, not the model's 30 s
    assert len(fake.scoring) == 2
    assert [s.score for s in scored] == [score_candidate(query, c) for c in cands]
    assert warnings == [
        "a call to model qwen2.5:3b failed after a retry (timed out after 0.5 s); "
        "used the lexical score"
    ]
    await relevance.close()


async def test_a_server_error_is_retried_once(fake: FakeOllama) -> None:
    warnings = Warnings()
    relevance, job = await job_for(fake.host, warnings)
    fake.fail_with = [500]
    scored = await job.score(build_query(PROMPT, TODAY), minutes(2))
    assert len(fake.scoring) == 2
    assert all(s.name.startswith("Judged:") for s in scored)
    assert warnings == []
    fake.fail_with = [503, 502]
    await job.score(build_query(PROMPT, TODAY), minutes(2))
    assert len(fake.scoring) == 4
    assert len(warnings) == 1 and "fake failure 502" in warnings[0]
    await relevance.close()


async def test_a_model_removed_mid_job_is_not_retried(fake: FakeOllama) -> None:
    warnings = Warnings()
    relevance, job = await job_for(fake.host, warnings)
    fake.models = []
    await job.score(build_query(PROMPT, TODAY), minutes(2))
    assert len(fake.scoring) == 1
    assert warnings == [
        "a call to model qwen2.5:3b failed (model 'qwen2.5:3b' not found (status code: 404)); "
        "used the lexical score"
    ]
    await relevance.close()


async def test_a_failing_model_is_given_up_for_the_job(fake: FakeOllama) -> None:
    warnings = Warnings()
    relevance, job = await job_for(fake.host, warnings, batch_size=1)
    fake.fail_with = [400] * 100
    await job.score(build_query(PROMPT, TODAY), minutes(10))
    assert len(fake.scoring) == 3
    assert warnings[-1] == (
        "model qwen2.5:3b failed 3 times in a row: the rest of this job uses the lexical scorer"
    )
    await relevance.close()


async def test_max_llm_calls_per_job(fake: FakeOllama) -> None:
    warnings = Warnings()
    relevance, job = await job_for(fake.host, warnings, batch_size=2, max_llm_calls_per_job=3)
    query = await job.plan(build_query(PROMPT, TODAY))
    cands = minutes(10)
    scored = await job.score(query, cands)
    assert job.llm_calls == 3 and len(fake.chats) == 3
    judged = [s.name.startswith("Judged:") for s in scored]
    assert judged == [True] * 4 + [False] * 6
    assert warnings == [
        "max_llm_calls_per_job (3) reached: the rest of this job uses the lexical scorer"
    ]
    await relevance.close()


@pytest.mark.parametrize("limit", [1, 2])
async def test_max_concurrent_requests_spans_jobs(fake: FakeOllama, limit: int) -> None:
    relevance = Relevance(
        RelevanceConfig(ollama_host=fake.host, max_concurrent_requests=limit, batch_size=2)
    )
    jobs = [await relevance.for_job(Warnings()) for _ in range(2)]
    fake.delay_s = 0.05
    query = build_query(PROMPT, TODAY)
    await asyncio.gather(*(job.score(query, minutes(4)) for job in jobs))
    assert len(fake.scoring) == 4
    assert fake.max_active == limit
    spans = sorted((c.started, c.ended) for c in fake.scoring)
    overlapping = any(b[0] < a[1] for a, b in itertools.pairwise(spans))
    assert overlapping is (limit > 1)
    await relevance.close()


async def test_lexical_job_relevance_is_the_lexical_scorer() -> None:
    job = JobRelevance(Warnings())
    query: Query = build_query(PROMPT, TODAY)
    cands = minutes(2, 2019) + minutes(2)
    scored = await job.score(query, cands)
    assert [s.score for s in scored] == [score_candidate(query, c) for c in cands]
    assert (job.name, job.model, job.llm_calls) == ("lexical", None, 0)
