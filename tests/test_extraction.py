"""Prompt-driven extraction (skopd/content/extract.py) through the real ollama client against
the fake Ollama."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from skopd.config import RelevanceConfig
from skopd.content.extract import Extraction, Extractor, split_windows
from skopd.relevance.backend import Relevance
from tests.fake_ollama import Call, FakeOllama, instructions_of
from tests.test_ollama import closed_port

PAGE = """# Council meetings

The council meets monthly in the town hall.

## 2024

- [Minutes 14 March 2024](https://town.example/files/minutes-2024-03-14.pdf)
- [Minutes 18 April 2024](https://town.example/files/minutes-2024-04-18.pdf)

## Contact

Town hall, Market Square 1. Phone 01234 5678.
"""

ITEM = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "url": {"type": "string"}},
    "required": ["name", "url"],
}


@pytest.fixture
async def extractor(fake: FakeOllama) -> AsyncIterator[Extractor]:
    ex = Extractor(RelevanceConfig(ollama_host=fake.host))
    yield ex
    await ex.close()


@contextlib.asynccontextmanager
async def extractor_for(host: str, **settings: Any) -> AsyncIterator[Extractor]:
    ex = Extractor(RelevanceConfig(ollama_host=host, **settings))
    try:
        yield ex
    finally:
        await ex.close()


def long_page(sections: int) -> str:
    parts = ["# Archive\n\nAll minutes of the council, by year."]
    for n in range(sections):
        year = 2000 + n
        links = "\n".join(
            f"- [Minutes {year}-{m:02d}](https://town.example/files/m-{year}-{m:02d}.pdf)"
            for m in range(1, 13)
        )
        parts.append(f"## {year}\n\nThe meetings of {year}, each with its minutes.\n\n{links}")
    return "\n\n".join(parts) + "\n"


def sums(ex: Extraction, calls: list[Call]) -> None:
    assert ex.llm_calls == len(calls)
    assert ex.input_tokens == sum(c.tokens[0] for c in calls) > 0
    assert ex.output_tokens == sum(c.tokens[1] for c in calls) > 0


async def test_markdown_answer_for_a_prompt(fake: FakeOllama, extractor: Extractor) -> None:
    ex = await extractor.extract(PAGE, "What is the phone number?")
    assert not ex.failed and ex.error is None
    assert ex.content == "Town hall, Market Square 1. Phone 01234 5678."
    call = fake.extractions[0]
    assert call.format is None  # free text: no JSON constraint
    assert instructions_of(call.user) == "What is the phone number?"
    assert "## Contact" in call.page
    sums(ex, fake.extractions)


async def test_no_prompt_is_the_page_itself(fake: FakeOllama, extractor: Extractor) -> None:
    ex = await extractor.extract(PAGE, None)
    assert ex.content == PAGE and not ex.failed and ex.llm_calls == 0
    assert fake.chats == []


async def test_json_output_without_schema(fake: FakeOllama, extractor: Extractor) -> None:
    fake.replies = [{"phone": "01234 5678", "address": "Market Square 1"}]
    ex = await extractor.extract(PAGE, "contact details", output="json")
    assert ex.data == {"phone": "01234 5678", "address": "Market Square 1"}
    assert ex.content is not None and json.loads(ex.content) == ex.data
    assert fake.extractions[0].format == "json"


async def test_json_under_a_schema_is_checked_and_repaired(
    fake: FakeOllama, extractor: Extractor
) -> None:
    schema = {
        "type": "object",
        "properties": {"meetings": {"type": "integer"}, "phone": {"type": "string"}},
        "required": ["meetings"],
    }
    fake.replies = [{"meetings": "2", "phone": "01234 5678", "chatter": "ignored"}]
    ex = await extractor.extract(PAGE, "how many meetings", schema=schema, output="json")
    assert ex.data == {"meetings": 2, "phone": "01234 5678"}
    assert fake.extractions[0].format == schema


async def test_schema_items(fake: FakeOllama, extractor: Extractor) -> None:
    ex = await extractor.extract_items(PAGE, {"type": "array", "items": ITEM})
    assert ex.data == [
        {
            "name": "Minutes 14 March 2024",
            "url": "https://town.example/files/minutes-2024-03-14.pdf",
        },
        {
            "name": "Minutes 18 April 2024",
            "url": "https://town.example/files/minutes-2024-04-18.pdf",
        },
    ]
    assert ex.content is not None and json.loads(ex.content) == ex.data
    fmt = fake.extractions[0].format
    assert fmt["properties"]["items"]["items"] == ITEM


async def test_items_that_break_the_schema_are_dropped(
    fake: FakeOllama, extractor: Extractor
) -> None:
    fake.replies = [
        {"items": [{"name": "A", "url": "https://a.example/"}, {"name": "no url"}, {"url": 5}]}
    ]
    ex = await extractor.extract_items(PAGE, ITEM)
    assert ex.data == [{"name": "A", "url": "https://a.example/"}]
    assert not ex.failed and ex.llm_calls == 1


async def test_long_page_is_cut_into_calls_and_merged(fake: FakeOllama) -> None:
    page = long_page(12)
    async with extractor_for(fake.host, extract_context_chars=2000) as ex_:
        ex = await ex_.extract_items(page, ITEM, max_items=1000)
    calls = fake.extractions
    assert len(calls) == ex.parts > 3
    assert all(len(c.page) <= 2000 for c in calls)
    assert ex.data is not None and len(ex.data) == 12 * 12  # every link of every part, once
    assert len({d["url"] for d in ex.data}) == 144
    sums(ex, calls)
    assert not ex.truncated


async def test_items_from_parts_are_deduplicated(fake: FakeOllama) -> None:
    fake.reply = lambda call: {"items": [{"name": "Same", "url": "https://s.example/"}]}
    async with extractor_for(fake.host, extract_context_chars=2000) as ex_:
        ex = await ex_.extract_items(long_page(6), ITEM)
    assert ex.llm_calls > 1
    assert ex.data == [{"name": "Same", "url": "https://s.example/"}]


async def test_max_items_stops_asking(fake: FakeOllama) -> None:
    async with extractor_for(fake.host, extract_context_chars=2000) as ex_:
        ex = await ex_.extract_items(long_page(12), ITEM, max_items=20)
    assert ex.data is not None and len(ex.data) == 20
    assert ex.llm_calls < ex.parts  # no call once enough items were found


async def test_markdown_parts_are_joined(fake: FakeOllama) -> None:
    async with extractor_for(fake.host, extract_context_chars=2000) as ex_:
        ex = await ex_.extract(long_page(8), "list the meetings of 2001 and 2006")
    assert ex.content is not None
    assert "The meetings of 2001" in ex.content and "The meetings of 2006" in ex.content
    assert "NOTHING" not in ex.content
    assert ex.llm_calls == ex.parts > 1


async def test_json_objects_from_parts_are_merged(fake: FakeOllama) -> None:
    replies = iter(
        [
            {"title": "Archive", "years": [2000, 2001], "contact": None},
            {"title": "", "years": [2001, 2002], "contact": "town hall"},
        ]
    )
    fake.reply = lambda call: next(replies, {})
    async with extractor_for(fake.host, extract_context_chars=2000) as ex_:
        ex = await ex_.extract(long_page(3), "summary", output="json")
    assert ex.llm_calls == ex.parts == 2
    assert ex.data == {"title": "Archive", "years": [2000, 2001, 2002], "contact": "town hall"}


async def test_calls_are_bounded(fake: FakeOllama) -> None:
    async with extractor_for(fake.host, extract_context_chars=2000, extract_max_calls=3) as ex_:
        ex = await ex_.extract_items(long_page(12), ITEM, max_items=1000)
    assert ex.llm_calls == len(fake.extractions) == 3
    assert ex.truncated and not ex.failed
    assert ex.data is not None and len(ex.data) > 0


async def test_invalid_json_is_asked_again(fake: FakeOllama, extractor: Extractor) -> None:
    fake.replies = ["{not json", {"items": [{"name": "A", "url": "https://a.example/"}]}]
    ex = await extractor.extract_items(PAGE, ITEM)
    assert not ex.failed
    assert ex.data == [{"name": "A", "url": "https://a.example/"}]
    assert ex.llm_calls == 2
    sums(ex, fake.extractions)


async def test_invalid_twice_fails_with_the_reason(fake: FakeOllama, extractor: Extractor) -> None:
    fake.replies = ["{not json", "still not json"]
    ex = await extractor.extract_items(PAGE, ITEM)
    assert ex.failed and ex.content is None and ex.data is None
    assert ex.error is not None and "invalid answer" in ex.error and "not JSON" in ex.error
    assert ex.llm_calls == 2
    sums(ex, fake.extractions)


async def test_schema_mismatch_twice_fails(fake: FakeOllama, extractor: Extractor) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    fake.replies = [{"n": "many"}, {"m": 1}]
    ex = await extractor.extract(PAGE, "count", schema=schema)
    assert ex.failed
    assert ex.error is not None and "does not match the schema" in ex.error
    assert "missing required 'n'" in ex.error
    assert ex.llm_calls == 2


async def test_model_error_is_retried_once(fake: FakeOllama, extractor: Extractor) -> None:
    fake.fail_with = [503]
    ex = await extractor.extract(PAGE, "Give the phone number")
    assert not ex.failed and ex.content is not None and "01234 5678" in ex.content
    assert ex.llm_calls == 2


async def test_slow_model_times_out_and_fails(fake: FakeOllama) -> None:
    fake.delay_s = 5.0
    async with extractor_for(fake.host, request_timeout_s=0.3) as ex_:
        ex = await ex_.extract(PAGE, "Give the phone number")
    assert ex.failed and ex.error is not None and "timed out" in ex.error
    assert ex.llm_calls == 2  # a timeout may pass: asked again once


async def test_model_not_pulled(fake: FakeOllama) -> None:
    fake.models = ["llama3.2:1b"]
    async with extractor_for(fake.host, model="qwen2.5:3b") as ex_:
        assert not await ex_.available()
        ex = await ex_.extract_items(PAGE, ITEM)
    assert ex.failed and ex.llm_calls == 0 and fake.chats == []
    assert ex.error is not None
    assert ex.error.startswith("no local model available")
    assert f"start Ollama at {fake.host} and `ollama pull qwen2.5:3b`" in ex.error


async def test_no_ollama_running() -> None:
    host = f"http://127.0.0.1:{closed_port()}"
    async with extractor_for(host) as ex_:
        assert not await ex_.available()
        ex = await ex_.extract(PAGE, "anything", output="json")
    assert ex.failed and ex.content is None
    assert ex.error == (
        f"no local model available (no Ollama answered at {host}): start Ollama at {host}"
        " and `ollama pull qwen2.5:3b`"
    )


async def test_lexical_backend_never_asks(fake: FakeOllama) -> None:
    async with extractor_for(fake.host, backend="lexical") as ex_:
        assert not await ex_.available()
        ex = await ex_.extract(PAGE, "anything")
    assert ex.failed and fake.calls == []
    assert ex.error is not None and 'relevance.backend is "lexical"' in ex.error


async def test_availability_is_cached_briefly(fake: FakeOllama, extractor: Extractor) -> None:
    for _ in range(3):
        assert await extractor.available()
    assert len([c for c in fake.calls if c.path == "/api/tags"]) == 1


def test_windows_cut_between_sections_and_keep_headings() -> None:
    page = long_page(10)
    windows = split_windows(page, 1500)
    assert len(windows) > 1
    assert all(len(w) <= 1500 for w in windows)
    assert all(w.lstrip().startswith(("#", "[")) for w in windows)
    # every line of the page is in exactly one window, in order
    lines: list[Any] = [ln for w in windows for ln in w.splitlines() if ln.startswith("- [")]
    assert lines == [ln for ln in page.splitlines() if ln.startswith("- [")]


async def test_schema_is_in_the_text_the_model_reads(
    fake: FakeOllama, extractor: Extractor
) -> None:
    schema = {"type": "object", "properties": {"phone": {"type": "string"}}}
    fake.replies = [{"phone": "01234 5678"}]
    await extractor.extract(PAGE, "the phone number", schema=schema)
    await extractor.extract_items(PAGE, ITEM)
    first, second = fake.extractions
    assert 'Answer schema: {"type":"object","properties":{"phone":' in first.user
    assert 'Item schema: {"type":"object","properties":{"name":' in second.user


async def test_a_long_prompt_leaves_the_page_less_room(fake: FakeOllama) -> None:
    prompt = "Extract the minutes. " + "Be careful with the dates. " * 400  # ~10,800 chars
    async with extractor_for(fake.host, extract_context_chars=6000) as ex_:
        ex = await ex_.extract(long_page(4), prompt)
    assert not ex.failed and ex.llm_calls > 1
    for call in fake.extractions:
        assert len(instructions_of(call.user)) <= 4000  # the prompt is clipped
        assert len(call.user) <= 6000 + 200  # page + instructions stay near the budget


async def test_an_empty_page_needs_no_model(fake: FakeOllama, extractor: Extractor) -> None:
    assert (await extractor.extract("  \n", "anything")).content == ""
    items = await extractor.extract_items("", ITEM)
    assert items.data == [] and items.content == "[]" and not items.failed
    as_json = await extractor.extract("", "anything", output="json")
    assert as_json.failed and as_json.error == "the page has no text"
    assert fake.chats == []


async def test_a_shared_model_line_is_left_open(fake: FakeOllama) -> None:
    settings = RelevanceConfig(ollama_host=fake.host)
    relevance = Relevance(settings)
    try:
        ex_ = Extractor(settings, relevance.ollama)
        await ex_.close()
        assert relevance.ollama is not None
        warnings: list[str] = []
        job = await relevance.for_job(warnings.append)
        assert job.name == "ollama" and warnings == []  # the client still works
        again = await Extractor(settings, relevance.ollama).extract(PAGE, "What is the phone?")
        assert again.content is not None and "01234 5678" in again.content
    finally:
        await relevance.close()


async def test_time_is_bounded_and_the_rest_left_out(fake: FakeOllama) -> None:
    fake.delay_s = 0.4
    async with extractor_for(fake.host, extract_context_chars=2000, extract_timeout_s=1) as ex_:
        ex = await ex_.extract_items(long_page(12), ITEM, max_items=1000)
    assert not ex.failed and ex.truncated
    assert 1 <= ex.llm_calls < ex.parts
    assert ex.data is not None and len(ex.data) >= 12
    assert any("ran out of time (1 s)" in w for w in ex.warnings)


async def test_a_part_without_a_valid_answer_is_a_warning(fake: FakeOllama) -> None:
    answers = iter(["nonsense", "nonsense"])
    fake.reply = lambda call: next(answers, {"items": [{"name": "B", "url": "https://b/"}]})
    async with extractor_for(fake.host, extract_context_chars=2000) as ex_:
        ex = await ex_.extract_items(long_page(3), ITEM)
    assert ex.parts == 2 and ex.llm_calls == 3
    assert not ex.failed and ex.error is None
    assert ex.data == [{"name": "B", "url": "https://b/"}]
    assert ex.warnings == [
        "the local model gave an invalid answer (part 1 of 2): not JSON ('nonsense')"
    ]


async def test_the_calls_limit_is_a_warning(fake: FakeOllama) -> None:
    async with extractor_for(fake.host, extract_context_chars=2000, extract_max_calls=2) as ex_:
        ex = await ex_.extract(long_page(12), "list the meetings of 2001")
    assert ex.truncated and ex.llm_calls == 2
    assert ex.warnings[0].startswith("the page needs ")
    assert "more than relevance.extract_max_calls (2)" in ex.warnings[0]


@pytest.mark.parametrize(
    ("answer", "content"),
    [
        ("```markdown\n# Phone\n\n01234 5678\n```", "# Phone\n\n01234 5678"),
        ("```\nphone --call 01234\n```", "```\nphone --call 01234\n```"),  # code stays code
        ("  NOTHING.  ", ""),
    ],
)
async def test_markdown_answers_are_read_as_meant(
    fake: FakeOllama, extractor: Extractor, answer: str, content: str
) -> None:
    fake.replies = [answer]
    ex = await extractor.extract(PAGE, "phone")
    assert not ex.failed and ex.content == content


async def test_fenced_json_and_nested_lists_are_repaired(
    fake: FakeOllama, extractor: Extractor
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "meetings": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"year": {"type": "integer"}, "count": {"type": "integer"}},
                    "required": ["year"],
                },
            }
        },
        "required": ["meetings"],
    }
    fake.replies = ['```json\n{"meetings": [{"year": "2024", "count": "2", "x": 1}]}\n```']
    ex = await extractor.extract(PAGE, "meetings per year", schema=schema)
    assert not ex.failed, ex.error
    assert ex.data == {"meetings": [{"year": 2024, "count": 2}]}
    assert ex.llm_calls == 1


async def test_instructions_come_after_the_page(fake: FakeOllama, extractor: Extractor) -> None:
    await extractor.extract(PAGE, "What is the phone number?")
    user = fake.extractions[0].user
    assert user.startswith("Page:\n# Council meetings\n")
    assert user.endswith("\n\nInstructions: What is the phone number?")


def sections_of(text: str, count: int) -> str:
    return "\n\n".join(f"## {n}\n\n{text}" for n in range(count))


async def test_chinese_pages_get_smaller_windows(fake: FakeOllama) -> None:
    latin = sections_of("The council meets every month in the town hall. " * 10, 10)
    chinese = sections_of("议会每月在市政厅开会。" * 45, 10)
    assert abs(len(latin) - len(chinese)) < 300  # about the same number of characters
    async with extractor_for(fake.host, extract_context_chars=8000) as ex_:
        one = await ex_.extract(latin, "the meetings")
        several = await ex_.extract(chinese, "the meetings")
    assert one.llm_calls == 1
    assert several.llm_calls >= 2  # a Chinese character is about a token, not a quarter


async def test_model_gone_between_check_and_call(fake: FakeOllama, extractor: Extractor) -> None:
    assert await extractor.available()
    fake.models = []  # removed (`ollama rm`) after the check: the chat answers 404
    ex = await extractor.extract(PAGE, "What is the phone number?")
    assert ex.failed and ex.llm_calls == 1  # not transient: not asked again
    assert ex.error is not None and ex.error.startswith("the local model failed: ")
    assert "not found" in ex.error


async def test_an_unusable_schema_is_refused_before_any_call(
    fake: FakeOllama, extractor: Extractor
) -> None:
    ex = await extractor.extract(PAGE, "x", schema={"type": "object", "properties": []})
    assert ex.failed and ex.error == "schema.properties: must be an object"
    items = await extractor.extract_items(PAGE, {"type": "array", "items": {"type": "strnig"}})
    assert items.failed and items.error == "schema.items.type: unknown type 'strnig'"
    assert fake.chats == []


async def test_a_cut_json_answer_is_not_asked_again(fake: FakeOllama, extractor: Extractor) -> None:
    fake.cut_at = 60  # as if relevance.extract_answer_tokens were reached
    ex = await extractor.extract_items(PAGE, ITEM)
    assert ex.failed and ex.llm_calls == 1
    assert ex.error == (
        "the answer reached 2048 tokens and was cut (relevance.extract_answer_tokens)"
    )


async def test_a_cut_markdown_answer_is_kept_with_a_warning(
    fake: FakeOllama, extractor: Extractor
) -> None:
    fake.cut_at = 20
    ex = await extractor.extract(PAGE, "What is the phone number?")
    assert not ex.failed and ex.content == "Town hall, Market Sq"
    assert ex.warnings == ["the answer reached 2048 tokens and was cut"]
