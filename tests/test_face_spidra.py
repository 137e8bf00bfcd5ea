"""The Spidra-style face: POST /api/scrape, GET /api/scrape/{jobId}, its status words,
error shape and fallbacks, on the one scheduler, store and event stream."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from yarl import URL

from tests.conftest import Daemon, submit, wait_done
from tests.face_clients import (
    KEY_A,
    KEY_B,
    KEYS,
    Client,
    JobFailedError,
    node_runs,
    skop_listing,
    spidra_wait_for_result,
    sse_events,
)
from tests.fake_ollama import FakeOllama
from tests.sites.facesite import RELEASE

A = {"x-api-key": KEY_A}
DaemonFactory = Callable[..., Awaitable[Daemon]]


async def start(daemon_factory: DaemonFactory, **sections: dict[str, Any]) -> Client:
    d = await daemon_factory(server=KEYS, **sections)
    assert d.client is not None
    return d.client


async def post(client: Client, body: Any, key: str = KEY_A) -> tuple[int, dict[str, Any]]:
    res = await client.post("/api/scrape", json=body, headers={"x-api-key": key})
    return res.status, await res.json()


async def assert_spidra_error(res: Any, status: int, fragment: str) -> None:
    assert res.status == status, await res.text()
    body = await res.json()
    assert body == {"status": "error", "message": body["message"]}
    assert fragment in body["message"], body


async def test_polling_loop_gets_pages_as_markdown(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    client = await start(daemon_factory)
    urls = [{"url": str(facesite.make_url("/article"))}, {"url": str(facesite.make_url("/docs/"))}]
    status, created = await post(client, {"urls": urls})
    assert status == 202 and created["status"] == "waiting"
    job_id = created["jobId"]

    result = await spidra_wait_for_result(client, job_id, KEY_A)

    assert set(result) == {"content", "data", "screenshots", "ai_extraction_failed", "stats"}
    assert "Widgets are pressed from recycled steel." in result["content"]
    assert "Welcome to the Widgetron manual" in result["content"]
    first, second = result["data"]
    assert set(first) == {"url", "title", "markdownContent", "success", "screenshotUrl"}
    assert first["url"] == urls[0]["url"] and second["url"] == urls[1]["url"]
    assert first["title"] == "How widgets are made"
    assert first["markdownContent"].startswith("# How widgets are made")
    assert "- Polish" in first["markdownContent"]
    assert first["success"] is True and first["screenshotUrl"] is None
    assert result["screenshots"] == [] and result["ai_extraction_failed"] is False
    stats = result["stats"]
    assert set(stats) == {
        "durationMs", "captchaSolvedCount", "inputTokens", "outputTokens", "totalTokens"
    }  # fmt: skip
    assert stats["durationMs"] >= 0 and stats["totalTokens"] == 0
    res = await client.get(f"/api/scrape/{job_id}", headers=A)
    body = await res.json()
    assert body["progress"] == {"message": "Scrape completed successfully", "progress": 1}
    assert body["error"] is None and body["status"] == "completed"


async def test_waiting_active_and_failed(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    client = await start(daemon_factory, jobs={"max_concurrent_jobs": 1})
    _, slow = await post(client, {"urls": [{"url": str(facesite.make_url("/slow"))}]})
    _, broken = await post(client, {"urls": [{"url": str(facesite.make_url("/broken"))}]})
    views: dict[str, Any] = {}
    for _ in range(400):
        views = {
            name: await (await client.get(f"/api/scrape/{job['jobId']}", headers=A)).json()
            for name, job in (("slow", slow), ("broken", broken))
        }
        if views["slow"]["status"] == "active":
            break
        await asyncio.sleep(0.05)
    assert views["slow"]["status"] == "active"
    assert views["slow"]["result"] is None and views["slow"]["error"] is None
    assert 0 <= views["slow"]["progress"]["progress"] < 1
    assert views["broken"]["status"] == "waiting"
    assert views["broken"]["progress"]["message"] == "Job queued"
    facesite.app[RELEASE].set()
    await spidra_wait_for_result(client, slow["jobId"], KEY_A)
    with pytest.raises(JobFailedError) as failed:
        await spidra_wait_for_result(client, broken["jobId"], KEY_A)
    assert "Failed to scrape" in str(failed.value) and "HTTP 500" in str(failed.value)
    body = await (await client.get(f"/api/scrape/{broken['jobId']}", headers=A)).json()
    assert body["status"] == "failed" and body["result"] is None


async def test_one_page_failing_of_two_completes_with_its_success_false(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    client = await start(daemon_factory)
    urls = [str(facesite.make_url("/article")), str(facesite.make_url("/broken"))]
    _, created = await post(client, {"urls": [{"url": u} for u in urls]})
    result = await spidra_wait_for_result(client, created["jobId"], KEY_A)
    ok, bad = result["data"]
    assert ok["success"] is True and bad["success"] is False
    assert bad["url"] == urls[1] and bad["markdownContent"] == ""
    assert "recycled steel" in result["content"]


async def test_prompt_without_a_model_falls_back_to_markdown(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    """No model (lexical backend): the job completes with the raw Markdown, flagged."""
    client = await start(daemon_factory)
    url = str(facesite.make_url("/article"))
    _, created = await post(
        client, {"urls": [{"url": url}], "prompt": "How much does a widget weigh?"}
    )
    result = await spidra_wait_for_result(client, created["jobId"], KEY_A)
    assert result["ai_extraction_failed"] is True
    assert result["content"].startswith("# How widgets are made")
    assert result["stats"]["inputTokens"] == 0
    listing = await skop_listing(client, KEY_A)
    warnings = listing[created["jobId"]]["warnings"]
    assert any("AI extraction failed" in w for w in warnings), warnings


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "urls: is required"),
        ({"urls": []}, "urls: must list between 1 and 5"),
        ({"urls": [{"url": f"http://a.test/{i}"} for i in range(6)]}, "urls: must list"),
        ({"urls": [{"url": "ftp://a.test/"}]}, "urls[0].url: must be an http"),
        ({"urls": [{"url": "http://a.test/"}], "output": "xml"}, "output: must be"),
        ({"urls": [{"url": "http://a.test/", "actions": [{"type": "click"}]}]}, "actions"),
        ({"urls": "http://a.test/"}, "urls: Expected `array`"),
    ],
)
async def test_bad_requests_name_the_field(
    daemon_factory: DaemonFactory, body: dict[str, Any], fragment: str
) -> None:
    client = await start(daemon_factory)
    res = await client.post("/api/scrape", json=body, headers=A)
    await assert_spidra_error(res, 400, fragment)


async def test_keys_and_isolation(daemon_factory: DaemonFactory, facesite: TestServer) -> None:
    client = await start(daemon_factory)
    url = str(facesite.make_url("/article"))
    res = await client.post("/api/scrape", json={"urls": [{"url": url}]})
    await assert_spidra_error(res, 401, "missing API key")
    res = await client.post(
        "/api/scrape", json={"urls": [{"url": url}]}, headers={"x-api-key": "x"}
    )
    await assert_spidra_error(res, 401, "invalid API key")
    _, created = await post(client, {"urls": [{"url": url}]})
    await spidra_wait_for_result(client, created["jobId"], KEY_A)
    # Another key's job is exactly as absent as a job that never existed.
    theirs = await client.get(f"/api/scrape/{created['jobId']}", headers={"x-api-key": KEY_B})
    await assert_spidra_error(theirs, 404, "Scrape not found")
    missing = await client.get("/api/scrape/job_doesnotexist", headers={"x-api-key": KEY_B})
    await assert_spidra_error(missing, 404, "Scrape not found")
    assert created["jobId"] not in await skop_listing(client, KEY_B)
    # A Skop job is not a Spidra scrape.
    skop_id = await submit(client, url, "widget production articles", headers=A)
    await assert_spidra_error(
        await client.get(f"/api/scrape/{skop_id}", headers=A), 404, "Scrape not found"
    )


async def test_reported_by_skop_listing_and_event_stream(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    client = await start(daemon_factory)
    _, created = await post(client, {"urls": [{"url": str(facesite.make_url("/article"))}]})
    job_id = created["jobId"]
    await spidra_wait_for_result(client, job_id, KEY_A)
    skop = (await skop_listing(client, KEY_A))[job_id]
    assert skop["status"] == "completed" and skop["total_pages_crawled"] == 1
    status = await wait_done(client, job_id, headers=A)
    assert status["status"] == "completed"
    names = await sse_events(client, job_id, KEY_A)
    assert names[0] == "status" and names[-1] == "done" and "page" in names


async def test_finished_job_answers_the_same_after_a_restart(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    first = await daemon_factory(server=KEYS)
    assert first.client is not None
    _, created = await post(first.client, {"urls": [{"url": str(facesite.make_url("/article"))}]})
    await spidra_wait_for_result(first.client, created["jobId"], KEY_A)
    before = await (await first.client.get(f"/api/scrape/{created['jobId']}", headers=A)).json()
    await first.stop()
    second = await daemon_factory(server=KEYS)
    assert second.client is not None
    after = await (await second.client.get(f"/api/scrape/{created['jobId']}", headers=A)).json()
    assert after == before


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
async def test_documented_javascript_polling_snippet(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    """Spidra's waitForResult, as published, with only the base URL and key changed."""
    client = await start(daemon_factory)
    _, created = await post(client, {"urls": [{"url": str(facesite.make_url("/article"))}]})
    base = str(client.make_url("/api")).rstrip("/")
    snippet = SPIDRA_SNIPPET.replace("https://api.spidra.io/api", base).replace(
        "YOUR_API_KEY", KEY_A
    )
    script = snippet + (
        f"\nwaitForResult('{created['jobId']}').then(r => console.log(JSON.stringify(r)))"
    )
    out = await asyncio.to_thread(node_runs, script)
    assert '"success":true' in out and "recycled steel" in out


SPIDRA_SNIPPET = """
async function waitForResult(jobId) {
  while (true) {
    const res = await fetch(`https://api.spidra.io/api/scrape/${jobId}`, {
      headers: { 'x-api-key': 'YOUR_API_KEY' }
    });
    const data = await res.json();

    if (data.status === 'completed') return data.result;
    if (data.status === 'failed') throw new Error(data.error);

    await new Promise(r => setTimeout(r, 3000));
  }
}
"""


def model(fake: FakeOllama) -> dict[str, Any]:
    return {"relevance": {"backend": "auto", "ollama_host": fake.host}}


async def test_prompt_answered_by_the_local_model(
    daemon_factory: DaemonFactory, facesite: TestServer, fake: FakeOllama
) -> None:
    client = await start(daemon_factory, **model(fake))
    url = str(facesite.make_url("/article"))
    _, created = await post(
        client, {"urls": [{"url": url}], "prompt": "How much does each widget weigh?"}
    )
    result = await spidra_wait_for_result(client, created["jobId"], KEY_A)
    assert result["ai_extraction_failed"] is False
    calls = fake.extractions
    assert calls and "recycled steel" in calls[0].page  # the page's Markdown was asked about
    # The rule model answers the page lines that hold a word of the question.
    assert "Each widget weighs 120 grams." in result["content"]
    assert "Polish" not in result["content"]
    assert result["data"][0]["markdownContent"].count("Polish") == 1
    stats = result["stats"]
    assert stats["inputTokens"] == sum(c.tokens[0] for c in calls) > 0
    assert stats["outputTokens"] == sum(c.tokens[1] for c in calls) > 0
    assert stats["totalTokens"] == stats["inputTokens"] + stats["outputTokens"]
    skop = (await skop_listing(client, KEY_A))[created["jobId"]]
    assert skop["llm_calls"] == len(calls) and skop["input_tokens"] == stats["inputTokens"]


async def test_what_the_extraction_left_out_is_a_job_warning(
    daemon_factory: DaemonFactory, facesite: TestServer, fake: FakeOllama
) -> None:
    # A page longer than one model window, and a budget of one call: the answer covers the
    # first window, and the job says the rest was left out.
    sections = model(fake)
    sections["relevance"].update(extract_context_chars=1000, extract_max_calls=1)
    client = await start(daemon_factory, **sections)
    url = str(facesite.make_url("/handbook"))
    _, created = await post(client, {"urls": [{"url": url}], "prompt": "How are widgets tested?"})
    result = await spidra_wait_for_result(client, created["jobId"], KEY_A)
    assert len(fake.extractions) == 1
    assert result["stats"]["inputTokens"] == fake.extractions[0].tokens[0]
    warnings = (await skop_listing(client, KEY_A))[created["jobId"]]["warnings"]
    assert any(
        w.startswith("extraction: ") and "extract_max_calls (1)" in w and "left out" in w
        for w in warnings
    ), warnings


async def test_json_output_under_a_schema(
    daemon_factory: DaemonFactory, facesite: TestServer, fake: FakeOllama
) -> None:
    client = await start(daemon_factory, **model(fake))
    fake.replies = [{"weight_grams": 120}]
    schema = {
        "type": "object",
        "properties": {"weight_grams": {"type": "number"}},
        "required": ["weight_grams"],
    }
    _, created = await post(
        client,
        {
            "urls": [{"url": str(facesite.make_url("/article"))}],
            "prompt": "the weight of a widget",
            "output": "json",
            "schema": schema,
        },
    )
    result = await spidra_wait_for_result(client, created["jobId"], KEY_A)
    assert result["content"] == {"weight_grams": 120}
    assert result["ai_extraction_failed"] is False
    assert fake.extractions[0].format == schema


async def test_unusable_model_answers_fall_back_to_markdown(
    daemon_factory: DaemonFactory, facesite: TestServer, fake: FakeOllama
) -> None:
    client = await start(daemon_factory, **model(fake))
    fake.replies = ["no JSON here", "nor here", "nor here either"]
    schema = {"type": "object", "properties": {"w": {"type": "number"}}, "required": ["w"]}
    _, created = await post(
        client,
        {
            "urls": [{"url": str(facesite.make_url("/article"))}],
            "prompt": "the weight of a widget",
            "output": "json",
            "schema": schema,
        },
    )
    result = await spidra_wait_for_result(client, created["jobId"], KEY_A)
    assert result["ai_extraction_failed"] is True
    assert result["content"].startswith("# How widgets are made")
    assert result["stats"]["inputTokens"] > 0  # the failed calls cost tokens all the same


async def test_screenshot_of_each_page_rendered_in_the_browser(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    client = await start(daemon_factory)
    url = str(facesite.make_url("/article"))
    _, created = await post(client, {"urls": [{"url": url}], "screenshot": True})
    result = await spidra_wait_for_result(client, created["jobId"], KEY_A)
    shot = result["data"][0]["screenshotUrl"]
    assert shot.startswith(str(client.make_url("/scrape/screenshots/")))
    assert result["screenshots"] == [shot]
    assert "recycled steel" in result["data"][0]["markdownContent"]
    res = await client.get(URL(shot).path, headers=A)
    assert res.status == 200 and res.content_type == "image/png"
    assert (await res.read()).startswith(b"\x89PNG")
    res = await client.get(URL(shot).path, headers={"x-api-key": KEY_B})
    assert res.status == 404


async def test_screenshot_without_a_browser_reads_static_html(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    client = await start(daemon_factory, browser={"enabled": False})
    url = str(facesite.make_url("/article"))
    _, created = await post(client, {"urls": [{"url": url}], "screenshot": True})
    result = await spidra_wait_for_result(client, created["jobId"], KEY_A)
    assert result["data"][0]["success"] is True and result["data"][0]["screenshotUrl"] is None
    assert result["screenshots"] == []
    warnings = (await skop_listing(client, KEY_A))[created["jobId"]]["warnings"]
    assert any("without a browser" in w for w in warnings), warnings


async def test_each_failed_page_says_why(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    """A page that answers 500, one that times out and a PDF: the job's error gives each
    page's own reason, each URL once."""
    client = await start(daemon_factory, crawler={"request_timeout_s": 2.0})
    paths = ["/broken", "/slow", "/manual.pdf"]
    urls = [str(facesite.make_url(p)) for p in paths]
    _, created = await post(client, {"urls": [{"url": u} for u in urls]})
    with pytest.raises(JobFailedError) as failed:
        await spidra_wait_for_result(client, created["jobId"], KEY_A)
    facesite.app[RELEASE].set()
    error = str(failed.value)
    parts = error.split("; ")
    assert len(parts) == 3, error
    for url, part in zip(urls, parts, strict=True):
        assert part.startswith(f"Failed to scrape {url} — "), error
        assert part.count(url) == 1, error
    broken, slow, pdf = (p.split(" — ", 1)[1] for p in parts)
    assert broken == "answered HTTP 500"
    assert "timed out" in slow and "HTML page" not in slow
    assert pdf == "a PDF document, not an HTML page"
    # A page failing among pages that worked: the reason is in the job's errors.
    _, mixed = await post(
        client, {"urls": [{"url": str(facesite.make_url("/article"))}, {"url": urls[0]}]}
    )
    await spidra_wait_for_result(client, mixed["jobId"], KEY_A)
    skop = await (await client.get(f"/scrape/status/{mixed['jobId']}", headers=A)).json()
    assert any(
        e["page_url"] == urls[0] and "HTTP 500" in e["error_message"] for e in skop["errors"]
    ), skop["errors"]
