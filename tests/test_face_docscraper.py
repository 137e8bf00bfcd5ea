"""The documentation-scraper-style face: sessions, POST/GET /api/v1/scrape/{session_id}/scrape,
saved pages' chunks, its status words, finish reasons and error shape."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import shutil
import subprocess
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import Daemon
from tests.face_clients import KEY_A, KEY_B, KEYS, Client, docs_wait, skop_listing, sse_events
from tests.fake_ollama import Call, FakeOllama
from tests.sites.facesite import DOC_PAGES, HASH_DOCS, HASH_SAVED, HITS, RELEASE

A = {"X-API-Key": KEY_A}
DaemonFactory = Callable[..., Awaitable[Daemon]]


async def start(daemon_factory: DaemonFactory, **sections: dict[str, Any]) -> Client:
    d = await daemon_factory(server=KEYS, **sections)
    assert d.client is not None
    return d.client


async def scrape(
    client: Client, session: str, body: dict[str, Any], key: str = KEY_A
) -> tuple[int, dict[str, Any]]:
    res = await client.post(
        f"/api/v1/scrape/{session}/scrape", json=body, headers={"X-API-Key": key}
    )
    return res.status, await res.json()


def body(site: TestServer, **extra: Any) -> dict[str, Any]:
    return {
        "starterLinks": [str(site.make_url("/docs/"))],
        "applicationName": "Widgetron",
        **extra,
    }


async def assert_error(res: Any, status: int, fragment: str) -> None:
    assert res.status == status, await res.text()
    got = await res.json()
    assert set(got) == {"error"} and set(got["error"]) == {"code", "message"}
    assert fragment in got["error"]["message"], got


async def test_crawl_saves_the_relevant_documentation_pages(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    client = await start(daemon_factory)
    session = str(uuid.uuid4())
    status, created = await scrape(client, session, body(facesite))
    assert status == 200 and set(created) == {"jobId"}
    uuid.UUID(created["jobId"])

    data = await docs_wait(client, session, KEY_A)

    assert data["jobId"] == created["jobId"] and data["status"] == "finished"
    assert set(data) == {
        "jobId", "status", "createdAt", "startedAt", "updatedAt", "progress", "result"
    }  # fmt: skip
    assert data["progress"] == {
        "stage": "finished",
        "message": "Scraping completed successfully",
        "completedIterations": len(DOC_PAGES),
        "totalIterations": 50,
    }
    result = data["result"]
    assert result["finishReason"] == "no_more_links"
    saved = {url.removeprefix(str(facesite.make_url(""))) for url in result["savedPages"]}
    assert saved == set(DOC_PAGES)  # not the blog, the login or the pricing page
    assert result["savedPagesCount"] == len(DOC_PAGES)
    page = result["savedPages"][str(facesite.make_url("/docs/install/linux/"))]
    assert page["title"] == "Installing Widgetron on Linux" and page["chunks"] >= 1
    datetime.fromisoformat(page["scrapedAt"])
    assert result["pageChunksCount"] == sum(p["chunks"] for p in result["savedPages"].values())
    assert facesite.app[HITS]["/blog/"] == 0 and facesite.app[HITS]["/login"] == 0
    created_at = datetime.fromisoformat(data["createdAt"])
    assert created_at <= datetime.fromisoformat(data["updatedAt"])
    # The same, asked for by its id.
    by_id = await docs_wait(client, session, KEY_A, created["jobId"])
    assert by_id == data


async def test_saved_page_chunks(daemon_factory: DaemonFactory, facesite: TestServer) -> None:
    client = await start(daemon_factory)
    session = str(uuid.uuid4())
    _, created = await scrape(client, session, body(facesite))
    await docs_wait(client, session, KEY_A)
    url = str(facesite.make_url("/docs/config/"))
    res = await client.get(f"/api/v1/scrape/{session}/pages", params={"url": url}, headers=A)
    assert res.status == 200, await res.text()
    page = await res.json()
    assert page["jobId"] == created["jobId"] and page["url"] == url
    assert page["title"] == "Configuring Widgetron"
    text = "\n".join(c["text"] for c in page["chunks"])
    assert "widgetron.toml" in text
    assert [c["index"] for c in page["chunks"]] == list(range(len(page["chunks"])))
    res = await client.get(
        f"/api/v1/scrape/{session}/pages",
        params={"url": str(facesite.make_url("/blog/")), "jobId": created["jobId"]},
        headers=A,
    )
    await assert_error(res, 404, "was not saved")
    await assert_error(
        await client.get(f"/api/v1/scrape/{session}/pages", headers=A), 400, "url: is required"
    )


async def test_max_iterations_limits_the_saved_pages(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    client = await start(daemon_factory)
    session = str(uuid.uuid4())
    await scrape(client, session, body(facesite, maxIterations=2))
    data = await docs_wait(client, session, KEY_A)
    assert data["result"]["finishReason"] == "max_iterations"
    assert data["result"]["savedPagesCount"] == 2
    assert data["progress"]["completedIterations"] == 2
    assert data["progress"]["totalIterations"] == 2


async def test_latest_job_of_the_session_and_not_found(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    client = await start(daemon_factory)
    session = str(uuid.uuid4())
    _, first = await scrape(client, session, body(facesite, maxIterations=1))
    await docs_wait(client, session, KEY_A)
    _, second = await scrape(client, session, body(facesite, maxIterations=3))
    latest = await docs_wait(client, session, KEY_A)
    assert latest["jobId"] == second["jobId"] != first["jobId"]
    older = await docs_wait(client, session, KEY_A, first["jobId"])
    assert older["result"]["savedPagesCount"] == 1
    unknown = str(uuid.uuid4())
    res = await client.get(f"/api/v1/scrape/{session}/scrape?jobId={unknown}", headers=A)
    assert res.status == 200 and await res.json() == {"jobId": unknown, "status": "not_found"}
    # A job of another session is not found through this one.
    other = str(uuid.uuid4())
    _, elsewhere = await scrape(client, other, body(facesite, maxIterations=1))
    res = await client.get(f"/api/v1/scrape/{session}/scrape?jobId={elsewhere['jobId']}", headers=A)
    assert (await res.json())["status"] == "not_found"
    # Without a jobId there is no job to report: an unknown session is a 404, and so is a
    # session with no job (one whose first scrape was refused by a full queue).
    empty = str(uuid.uuid4())
    res = await client.get(f"/api/v1/scrape/{empty}/scrape", headers=A)
    await assert_error(res, 404, f"No scrape job found for session {empty}")
    res = await client.get(
        f"/api/v1/scrape/{empty}/pages", params={"url": "http://a.test/"}, headers=A
    )
    await assert_error(res, 404, "not found")
    # With one, an unknown session's job does not exist either.
    res = await client.get(f"/api/v1/scrape/{empty}/scrape?jobId={first['jobId']}", headers=A)
    assert res.status == 200 and await res.json() == {
        "jobId": first["jobId"],
        "status": "not_found",
    }


async def test_failed_job_lists_its_errors(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    client = await start(daemon_factory)
    session = str(uuid.uuid4())
    await scrape(
        client,
        session,
        {"starterLinks": [str(facesite.make_url("/broken"))], "applicationName": "Widgetron"},
    )
    data = await docs_wait(client, session, KEY_A)
    assert data["status"] == "failed" and "result" not in data
    assert data["progress"]["stage"] == "failed"
    assert len(data["errors"]) == 1 and "HTTP 500" in data["errors"][0]


async def test_identical_input_reuses_the_stored_result_unless_skip_cache(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    client = await start(daemon_factory)
    first = str(uuid.uuid4())
    await scrape(client, first, body(facesite, maxIterations=3))
    done = await docs_wait(client, first, KEY_A)
    hits = sum(facesite.app[HITS].values())
    second = str(uuid.uuid4())
    _, again = await scrape(client, second, body(facesite, maxIterations=3))
    reused = await docs_wait(client, second, KEY_A)
    assert reused["jobId"] == again["jobId"] != done["jobId"]
    assert reused["result"]["savedPages"] == done["result"]["savedPages"]
    assert sum(facesite.app[HITS].values()) == hits
    url = next(iter(reused["result"]["savedPages"]))
    res = await client.get(f"/api/v1/scrape/{second}/pages", params={"url": url}, headers=A)
    assert res.status == 200
    third = str(uuid.uuid4())
    await scrape(client, third, body(facesite, maxIterations=3, skipCache=True))
    await docs_wait(client, third, KEY_A)
    assert sum(facesite.app[HITS].values()) > hits


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"applicationName": "W"}, "starterLinks: is required"),
        (
            {"starterLinks": ["http://a.test/"], "applicationName": "W" * 201},
            "applicationName: must be at most 200 characters",
        ),
        ({"starterLinks": [], "applicationName": "W"}, "starterLinks: must list"),
        ({"starterLinks": ["nope"], "applicationName": "W"}, "starterLinks[0]"),
        (
            {"starterLinks": ["http://a.test/"], "applicationName": "W", "maxIterations": 0},
            "maxIterations",
        ),
    ],
)
async def test_bad_requests_name_the_field(
    daemon_factory: DaemonFactory, payload: dict[str, Any], fragment: str
) -> None:
    client = await start(daemon_factory)
    res = await client.post(f"/api/v1/scrape/{uuid.uuid4()}/scrape", json=payload, headers=A)
    await assert_error(res, 400, fragment)


async def test_sessions_belong_to_their_key(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    client = await start(daemon_factory)
    await assert_error(
        await client.post("/api/v1/scrape/not-a-uuid/scrape", json=body(facesite), headers=A),
        400,
        "session_id: must be a UUID",
    )
    session = str(uuid.uuid4())
    res = await client.post(f"/api/v1/scrape/{session}/scrape", json=body(facesite))
    await assert_error(res, 401, "missing API key")
    _, created = await scrape(client, session, body(facesite, maxIterations=1))
    await docs_wait(client, session, KEY_A)
    b = {"X-API-Key": KEY_B}
    await assert_error(
        await client.get(f"/api/v1/scrape/{session}/scrape", headers=b), 404, "No scrape job found"
    )
    res = await client.get(f"/api/v1/scrape/{session}/scrape?jobId={created['jobId']}", headers=b)
    assert res.status == 200
    assert await res.json() == {"jobId": created["jobId"], "status": "not_found"}
    status, _ = await scrape(client, session, body(facesite), key=KEY_B)
    assert status == 404


async def test_reported_by_skop_listing_event_stream_and_restart(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    first = await daemon_factory(server=KEYS)
    client = first.client
    assert client is not None
    session = str(uuid.uuid4())
    _, created = await scrape(client, session, body(facesite, maxIterations=3))
    before = await docs_wait(client, session, KEY_A)
    job_id = created["jobId"]
    skop = (await skop_listing(client, KEY_A))[job_id]
    assert skop["status"] == "completed" and skop["total_pages_crawled"] == 3
    names = await sse_events(client, job_id, KEY_A)
    assert names[0] == "status" and names[-1] == "done" and names.count("page") == 3
    res = await client.get(f"/scrape/status/{job_id}", headers=A)
    assert (await res.json())["status"] == "completed"
    await first.stop()
    second = await daemon_factory(server=KEYS)
    assert second.client is not None
    after = await docs_wait(second.client, session, KEY_A)
    assert after == before


async def test_with_the_local_model_the_plan_steers_the_crawl(
    daemon_factory: DaemonFactory, facesite: TestServer, fake: FakeOllama
) -> None:
    client = await start(daemon_factory, relevance={"backend": "auto", "ollama_host": fake.host})
    session = str(uuid.uuid4())
    _, created = await scrape(client, session, body(facesite))
    data = await docs_wait(client, session, KEY_A)
    assert data["status"] == "finished"
    saved = {url.removeprefix(str(facesite.make_url(""))) for url in data["result"]["savedPages"]}
    assert saved == set(DOC_PAGES)
    plans = [c for c in fake.chats if c.is_plan]
    assert plans and "Widgetron" in plans[0].user
    skop = (await skop_listing(client, KEY_A))[created["jobId"]]
    assert skop["relevance_backend"] == "ollama" and skop["llm_calls"] >= 1


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_documented_curl_requests(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    """The document's two example requests, as published (no key: an open loopback daemon),
    with only the base URL, session and job ids changed."""
    d = await daemon_factory()
    client = d.client
    assert client is not None
    session = str(uuid.uuid4())
    res = await client.post(f"/api/v1/scrape/{session}/scrape", json=body(facesite))
    job_id = (await res.json())["jobId"]
    await docs_wait(client, session, "")
    base = str(client.make_url("")).rstrip("/")
    for command in CURL_EXAMPLES:
        line = (
            command.replace("https://api.example.com", base)
            .replace("550e8400-e29b-41d4-a716-446655440000", session)
            .replace("9b3e7f12-8c4a-43d9-b5e2-1a9c8f7d6e5b", job_id)
        )
        done = await asyncio.to_thread(
            subprocess.run,
            [*shlex.split(line), "-s"],
            capture_output=True,
            timeout=30,
            env={"PATH": "/usr/bin:/bin"},  # no proxy settings: the daemon is on loopback
        )
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        assert answer["jobId"] == job_id and answer["status"] == "finished"
        assert answer["result"]["savedPagesCount"] == len(DOC_PAGES)


CURL_EXAMPLES = (
    'curl "https://api.example.com/api/v1/scrape/550e8400-e29b-41d4-a716-446655440000/scrape"',
    'curl "https://api.example.com/api/v1/scrape/550e8400-e29b-41d4-a716-446655440000/scrape'
    '?jobId=9b3e7f12-8c4a-43d9-b5e2-1a9c8f7d6e5b"',
)


async def test_the_model_judges_the_links_the_words_do_not_decide(
    daemon_factory: DaemonFactory, facesite: TestServer, fake: FakeOllama
) -> None:
    client = await start(daemon_factory, relevance={"backend": "auto", "ollama_host": fake.host})
    shown: list[list[str]] = []

    def pick(call: Call) -> dict[str, Any]:
        # A model that finds the blog relevant (the words alone would not follow it).
        listing = re.findall(r"^(\d+)\. \[([^\]]*)\]\(([^)]+)\)$", call.page, re.MULTILINE)
        shown.append([url for _, _, url in listing])
        return {"relevant": [int(n) for n, text, _ in listing if text == "Blog"]}

    fake.reply = pick
    session = str(uuid.uuid4())
    _, created = await scrape(client, session, body(facesite))
    data = await docs_wait(client, session, KEY_A)
    saved = {url.removeprefix(str(facesite.make_url(""))) for url in data["result"]["savedPages"]}
    assert saved == set(DOC_PAGES) | {"/blog/"}
    asked = {url.removeprefix(str(facesite.make_url(""))) for urls in shown for url in urls}
    assert {"/blog/", "/pricing", "/blog/launch-party"} <= asked
    assert "/login" not in asked and "/docs/config/" not in asked  # decided by the words
    assert facesite.app[HITS]["/pricing"] == 0 and facesite.app[HITS]["/blog/launch-party"] == 0
    questions = [c for c in fake.extractions if "documentation of Widgetron" in c.user]
    assert len(questions) == len(shown) >= 2
    skop = (await skop_listing(client, KEY_A))[created["jobId"]]
    assert skop["llm_calls"] >= len(questions) + 1  # and the plan


async def test_without_an_application_name_the_starter_links_steer(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    """applicationName is optional: the crawl keeps to the starter link's folder."""
    client = await start(daemon_factory)
    session = str(uuid.uuid4())
    status, created = await scrape(
        client, session, {"starterLinks": [str(facesite.make_url("/docs/"))]}
    )
    assert status == 200, created
    data = await docs_wait(client, session, KEY_A)
    assert data["status"] == "finished" and data["result"]["finishReason"] == "no_more_links"
    saved = {url.removeprefix(str(facesite.make_url(""))) for url in data["result"]["savedPages"]}
    assert saved == set(DOC_PAGES)
    assert facesite.app[HITS]["/blog/"] == 0 and facesite.app[HITS]["/login"] == 0


async def test_saved_page_of_a_session_without_a_job_is_a_clear_404(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    """A session whose only scrape was refused (full queue) has no job: GET .../pages says
    so instead of naming a job "None"."""
    d = await daemon_factory(server=KEYS, jobs={"max_concurrent_jobs": 1, "max_queued_jobs": 1})
    client = d.client
    assert client is not None
    slow = {"starterLinks": [str(facesite.make_url("/slow"))]}
    try:
        for _ in range(2):  # one running, one queued: the queue is full
            status, _ = await scrape(client, str(uuid.uuid4()), slow)
            assert status == 200
        for _ in range(200):
            status, _ = await scrape(client, session := str(uuid.uuid4()), body(facesite))
            if status == 429:
                break
            await asyncio.sleep(0.05)
        assert status == 429
        res = await client.get(
            f"/api/v1/scrape/{session}/pages",
            params={"url": str(facesite.make_url("/docs/"))},
            headers=A,
        )
        await assert_error(res, 404, f"No scrape job found for session {session}")
        assert "None" not in (await res.json())["error"]["message"]
    finally:
        facesite.app[RELEASE].set()


async def saved_texts(client: Client, session: str, result: dict[str, Any]) -> dict[str, str]:
    """Each saved page's chunks (GET .../pages?url=), joined, by its URL."""
    texts = {}
    for url in result["savedPages"]:
        res = await client.get(f"/api/v1/scrape/{session}/pages", params={"url": url}, headers=A)
        assert res.status == 200, await res.text()
        page = await res.json()
        assert page["url"] == url
        texts[url] = "\n".join(c["text"] for c in page["chunks"])
    return texts


def views_in(text: str) -> list[str]:
    """The routes of /hashdocs/ whose own text `text` holds (the sidebar names them all)."""
    return [route for route, (_, _, own) in HASH_DOCS.items() if own in text]


async def test_a_hash_routed_manual_saves_each_route_as_its_own_page(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    """A docsify-like manual is one URL whose script shows the view of location.hash: the
    docs job renders it and saves each route it judges relevant (not #/login) as a page of
    its own, listed under its URL with the route; the #/ view and a heading's
    ?id= anchor show content already saved and are not saved again."""
    client = await start(daemon_factory)
    session = str(uuid.uuid4())
    starter = str(facesite.make_url("/hashdocs/"))
    await scrape(client, session, {"starterLinks": [starter], "applicationName": "Widgetron"})
    data = await docs_wait(client, session, KEY_A)
    assert data["status"] == "finished", data
    result = data["result"]
    root = str(facesite.make_url(""))
    saved = [url.removeprefix(root) for url in result["savedPages"]]
    assert saved[0] == "/hashdocs/" and sorted(saved) == sorted(HASH_SAVED)
    texts = await saved_texts(client, session, result)
    for url, text in texts.items():
        route = url.removeprefix(starter).removeprefix("#")
        assert views_in(text) == [route], (url, text)
    assert result["pageChunksCount"] == sum(p["chunks"] for p in result["savedPages"].values())
    assert facesite.app[HITS]["/hashdocs/"] >= len(HASH_SAVED)  # each route rendered


async def test_a_starter_link_naming_a_route_renders_that_view_first(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    client = await start(daemon_factory)
    session = str(uuid.uuid4())
    starter = str(facesite.make_url("/hashdocs/")) + "#/reference/api"
    await scrape(client, session, {"starterLinks": [starter], "applicationName": "Widgetron"})
    data = await docs_wait(client, session, KEY_A)
    assert data["status"] == "finished", data
    result = data["result"]
    assert next(iter(result["savedPages"])) == starter
    texts = await saved_texts(client, session, result)
    assert views_in(texts[starter]) == ["/reference/api"]
    # Every view but #/login saved once, whichever URL showed the home view first.
    views = sorted(route for text in texts.values() for route in views_in(text))
    assert views == sorted(route for route in HASH_DOCS if route != "/login")
