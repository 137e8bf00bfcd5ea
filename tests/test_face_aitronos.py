"""The Aitronos-style face: POST /api/v1/scrape, GET /api/v1/scrape/jobs[/{job_id}], its
status words, error shape, pagination, the no-model rule and the result cache."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from skopd.web.state import STORE
from tests.conftest import Daemon
from tests.face_clients import (
    KEY_A,
    KEY_B,
    KEYS,
    Client,
    aitronos_wait,
    global_node_modules,
    node_runs,
    skop_listing,
    sse_events,
)
from tests.fake_ollama import Call, FakeOllama
from tests.sites.facesite import CATALOG, HITS, RELEASE

A = {"X-API-Key": KEY_A}
DaemonFactory = Callable[..., Awaitable[Daemon]]
SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "price": "number"}}
VIEW_KEYS = {
    "job_id", "status", "url", "extracted_data", "error_message", "metadata", "created_at",
    "completed_at",
}  # fmt: skip
WIDGETS = {f"Widget {n}" for n in range(1, 13)}


async def start(daemon_factory: DaemonFactory, **sections: dict[str, Any]) -> Client:
    d = await daemon_factory(server=KEYS, **sections)
    assert d.client is not None
    return d.client


async def post(
    client: Client, url: str, key: str = KEY_A, **options: Any
) -> tuple[int, dict[str, Any]]:
    body = {"url": url, "schema": SCHEMA, "options": options}
    res = await client.post("/api/v1/scrape", json=body, headers={"X-API-Key": key})
    return res.status, await res.json()


def names(items: list[dict[str, Any]]) -> set[str]:
    return {i["name"] for i in items if "name" in i}


async def assert_error(res: Any, status: int, fragment: str) -> None:
    assert res.status == status, await res.text()
    body = await res.json()
    assert body["success"] is False and set(body) == {"success", "error"}
    assert set(body["error"]) == {"code", "message"}
    assert fragment in body["error"]["message"], body


async def test_pagination_is_followed_from_structured_data(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    client = await start(daemon_factory)
    url = str(facesite.make_url("/products?page=1"))
    status, created = await post(client, url, follow_pagination=True)
    assert status == 202 and set(created) == VIEW_KEYS
    assert created["status"] == "pending" and created["extracted_data"] is None
    assert created["metadata"] is None and created["completed_at"] is None

    data = await aitronos_wait(client, created["job_id"], KEY_A)

    assert set(data) == VIEW_KEYS and data["status"] == "completed" and data["url"] == url
    assert names(data["extracted_data"]) == WIDGETS
    meta = data["metadata"]
    assert set(meta) == {"processing_time", "engine_used", "llm_calls", "cache_hit"}
    assert meta["engine_used"] == "static" and meta["llm_calls"] == 0
    assert meta["cache_hit"] is False and meta["processing_time"] >= 0
    assert datetime.fromisoformat(data["completed_at"]) >= datetime.fromisoformat(
        data["created_at"]
    )
    assert data["error_message"] is None
    assert facesite.app[HITS]["/products"] == 3


async def test_max_items_stops_pagination(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    client = await start(daemon_factory)
    url = str(facesite.make_url("/products?page=1"))
    _, created = await post(client, url, follow_pagination=True, max_items=5)
    data = await aitronos_wait(client, created["job_id"], KEY_A)
    assert len(data["extracted_data"]) == 5
    assert facesite.app[HITS]["/products"] == 2  # page 3 was not needed


async def test_without_pagination_one_page(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    client = await start(daemon_factory)
    _, created = await post(client, str(facesite.make_url("/products?page=1")))
    data = await aitronos_wait(client, created["job_id"], KEY_A)
    assert names(data["extracted_data"]) == {f"Widget {n}" for n in range(1, 5)}
    assert facesite.app[HITS]["/products"] == 1


async def test_no_structured_data_and_no_model_fails_saying_a_model_is_needed(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    client = await start(daemon_factory)
    _, created = await post(client, str(facesite.make_url("/catalog")))
    data = await aitronos_wait(client, created["job_id"], KEY_A)
    assert data["status"] == "failed"
    assert data["extracted_data"] is None and data["metadata"] is None
    assert "local model" in data["error_message"] and "ollama pull" in data["error_message"]


async def test_same_request_within_the_window_is_answered_from_the_cache(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    client = await start(daemon_factory)
    url = str(facesite.make_url("/products?page=1"))
    _, first = await post(client, url, follow_pagination=True)
    done = await aitronos_wait(client, first["job_id"], KEY_A)
    hits = facesite.app[HITS]["/products"]

    status, again = await post(client, url, follow_pagination=True)

    assert status == 200 and again["status"] == "completed"
    assert again["job_id"] != first["job_id"]
    assert again["metadata"]["cache_hit"] is True and again["metadata"]["llm_calls"] == 0
    assert again["extracted_data"] == done["extracted_data"]
    assert facesite.app[HITS]["/products"] == hits  # nothing fetched again
    polled = await aitronos_wait(client, again["job_id"], KEY_A)
    assert polled["metadata"]["cache_hit"] is True
    # Other options, or another key: a new crawl.
    _, other = await post(client, url, follow_pagination=True, max_items=6)
    assert (await aitronos_wait(client, other["job_id"], KEY_A))["metadata"]["cache_hit"] is False
    _, theirs = await post(client, url, key=KEY_B, follow_pagination=True)
    polled = await aitronos_wait(client, theirs["job_id"], KEY_B)
    assert polled["metadata"]["cache_hit"] is False
    assert facesite.app[HITS]["/products"] == hits + 2 + 3


def _age(d: Daemon, job_id: str, by: timedelta) -> None:
    """Moves a stored job's end back in time (what an hour of waiting would do)."""
    with sqlite3.connect(d.cfg.database_path, timeout=10) as db:
        (ended,) = db.execute(
            "SELECT completed_at FROM jobs WHERE job_id = ?", (job_id,)
        ).fetchone()
        earlier = datetime.fromisoformat(ended) - by
        db.execute(
            "UPDATE jobs SET completed_at = ? WHERE job_id = ?",
            (earlier.isoformat().replace("+00:00", "Z"), job_id),
        )
    db.close()


async def test_a_cache_hit_does_not_stretch_the_window(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    """Hits inside the window do not make it start again: once the crawl is older than the
    window, the site is read again, however recent the last hit."""
    d = await daemon_factory(server=KEYS)  # the window: an hour
    client = d.client
    assert client is not None
    store = client.server.app[STORE]
    url = str(facesite.make_url("/products?page=2"))
    _, crawl = await post(client, url)
    await aitronos_wait(client, crawl["job_id"], KEY_A)
    _, hit = await post(client, url)
    assert hit["metadata"]["cache_hit"] is True
    _age(d, crawl["job_id"], timedelta(hours=2))  # the crawl is 2 h old, the hit just made

    status, again = await post(client, url)

    assert status == 202 and again["status"] == "pending"
    data = await aitronos_wait(client, again["job_id"], KEY_A)
    assert data["metadata"]["cache_hit"] is False
    assert facesite.app[HITS]["/products"] == 2
    # The next hit reuses the new crawl, and says so.
    _, next_hit = await post(client, url)
    assert next_hit["metadata"]["cache_hit"] is True
    assert next_hit["extracted_data"] == data["extracted_data"]
    first_output = await store.output(hit["job_id"])
    next_output = await store.output(next_hit["job_id"])
    assert first_output is not None and first_output.cached_from == crawl["job_id"]
    assert next_output is not None and next_output.cached_from == again["job_id"]
    assert facesite.app[HITS]["/products"] == 2


async def test_options_without_effect_are_accepted_and_share_the_cached_answer(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    """llm_mode, wait_for_content and extract_images change nothing in the answer (the
    reference does not say what llm_mode's values mean): any value is accepted, and a request
    differing only in them is answered from the cache."""
    client = await start(daemon_factory)
    url = str(facesite.make_url("/products?page=3"))
    status, first = await post(client, url, llm_mode="structured")
    assert status == 202
    done = await aitronos_wait(client, first["job_id"], KEY_A)
    status, again = await post(
        client, url, llm_mode="auto", wait_for_content=False, extract_images=True
    )
    assert status == 200 and again["metadata"]["cache_hit"] is True
    assert again["extracted_data"] == done["extracted_data"]
    assert facesite.app[HITS]["/products"] == 1


async def test_cache_window_zero_crawls_every_time(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    client = await start(daemon_factory, jobs={"cache_window_s": 0})
    url = str(facesite.make_url("/products?page=2"))
    for _ in range(2):
        _, created = await post(client, url)
        data = await aitronos_wait(client, created["job_id"], KEY_A)
        assert data["metadata"]["cache_hit"] is False
    assert facesite.app[HITS]["/products"] == 2


async def test_sync_waits_for_the_answer(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    client = await start(daemon_factory)
    status, data = await post(client, str(facesite.make_url("/products?page=3")), sync=True)
    assert status == 200 and data["status"] == "completed"
    assert names(data["extracted_data"]) == {f"Widget {n}" for n in range(9, 13)}


async def test_listing_filters_and_pages(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    client = await start(daemon_factory, jobs={"cache_window_s": 0})
    ids = []
    for path in ("/products?page=1", "/products?page=2", "/catalog"):
        _, created = await post(client, str(facesite.make_url(path)))
        await aitronos_wait(client, created["job_id"], KEY_A)
        ids.append(created["job_id"])
    res = await client.get("/api/v1/scrape/jobs", headers=A)
    body = await res.json()
    assert set(body) == {"jobs", "total", "limit", "offset"}
    assert body["total"] == 3 and body["limit"] == 50 and body["offset"] == 0
    assert [j["job_id"] for j in body["jobs"]] == ids[::-1]
    assert all(set(j) == VIEW_KEYS for j in body["jobs"])
    for listed in body["jobs"]:  # each as its own status view shows it
        one = await client.get(f"/api/v1/scrape/jobs/{listed['job_id']}", headers=A)
        assert listed == await one.json()
    res = await client.get("/api/v1/scrape/jobs?status=completed&limit=1&offset=1", headers=A)
    body = await res.json()
    assert body["total"] == 2 and [j["job_id"] for j in body["jobs"]] == [ids[0]]
    failed = await (await client.get("/api/v1/scrape/jobs?status=failed", headers=A)).json()
    assert [j["job_id"] for j in failed["jobs"]] == [ids[2]]
    assert failed["jobs"][0]["error_message"]
    theirs = await (await client.get("/api/v1/scrape/jobs", headers={"X-API-Key": KEY_B})).json()
    assert theirs["total"] == 0 and theirs["jobs"] == []
    for query, fragment in (
        ("status=active", "status: must be one of"),
        ("limit=0", "limit: must be an integer between 1 and 100"),
        ("limit=101", "limit"),
        ("offset=-1", "offset"),
        ("limit=x", "limit"),
    ):
        await assert_error(
            await client.get(f"/api/v1/scrape/jobs?{query}", headers=A), 400, fragment
        )


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"url": "http://a.test/"}, "schema: is required"),
        ({"schema": SCHEMA}, "url: is required"),
        ({"url": "mailto:x@a.test", "schema": SCHEMA}, "url: must be an http"),
        ({"url": "http://a.test/", "schema": {"type": "array"}}, "schema.type"),
        ({"url": "http://a.test/", "schema": {"type": "object"}}, "schema.properties"),
        (
            {"url": "http://a.test/", "schema": {"properties": {"n": {"type": "int64"}}}},
            "schema.properties.n.type",
        ),
        ({"url": "http://a.test/", "schema": SCHEMA, "options": {"max_items": 0}}, "max_items"),
        ({"url": "http://a.test/", "schema": SCHEMA, "options": {"timeout": 301}}, "timeout"),
        (
            {"url": "http://a.test/", "schema": SCHEMA, "options": {"engine_type": "quantum"}},
            "options.engine_type",
        ),
        (
            {
                "url": "http://a.test/",
                "schema": SCHEMA,
                "options": {"date_filter": {"field": "published"}},
            },
            "options.date_filter.field",
        ),
        ({"url": "http://a.test/", "schema": SCHEMA, "options": {"sync": "yes"}}, "options.sync"),
    ],
)
async def test_bad_requests_name_the_field(
    daemon_factory: DaemonFactory, body: dict[str, Any], fragment: str
) -> None:
    client = await start(daemon_factory)
    await assert_error(await client.post("/api/v1/scrape", json=body, headers=A), 400, fragment)


async def test_keys_isolation_and_cancel(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    client = await start(daemon_factory)
    url = str(facesite.make_url("/slow"))
    res = await client.post("/api/v1/scrape", json={"url": url, "schema": SCHEMA})
    await assert_error(res, 401, "missing API key")
    _, created = await post(client, url)
    job_id = created["job_id"]
    for _ in range(200):
        view = await (await client.get(f"/api/v1/scrape/jobs/{job_id}", headers=A)).json()
        if view["status"] == "processing":
            break
        await asyncio.sleep(0.05)
    assert view["status"] == "processing" and view["extracted_data"] is None
    theirs = await client.get(f"/api/v1/scrape/jobs/{job_id}", headers={"X-API-Key": KEY_B})
    await assert_error(theirs, 404, "not found")
    await assert_error(
        await client.get("/api/v1/scrape/jobs/job_nosuchjob", headers=A), 404, "not found"
    )
    # Cancelled through the Skop face, reported in Aitronos's words.
    res = await client.post(f"/scrape/cancel/{job_id}", headers=A)
    assert res.status == 200, await res.text()
    data = await aitronos_wait(client, job_id, KEY_A)
    assert data["status"] == "cancelled" and data["extracted_data"] is None
    assert data["completed_at"] is not None
    facesite.app[RELEASE].set()


async def test_reported_by_skop_listing_event_stream_and_restart(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    first = await daemon_factory(server=KEYS)
    client = first.client
    assert client is not None
    _, created = await post(client, str(facesite.make_url("/products?page=1")))
    job_id = created["job_id"]
    before = await aitronos_wait(client, job_id, KEY_A)
    skop = (await skop_listing(client, KEY_A))[job_id]
    assert skop["status"] == "completed" and skop["total_pages_crawled"] == 1
    names_ = await sse_events(client, job_id, KEY_A)
    assert names_[0] == "status" and names_[-1] == "done" and "page" in names_
    await first.stop()
    second = await daemon_factory(server=KEYS)
    assert second.client is not None
    after = await (await second.client.get(f"/api/v1/scrape/jobs/{job_id}", headers=A)).json()
    assert after == before


AXIOS_SNIPPET = """
const axios = require('axios');

const apiKey = process.env.FREDDY_API_KEY;
const jobId = 'job_abc123def456';

axios.get(`https://api.aitronos.com/api/v1/scrape/jobs/${jobId}`, {
  headers: { 'X-API-Key': apiKey }
})
.then(response => {
  const data = response.data;
  console.log(`Status: ${data.status}`);
  if (data.status === 'completed') {
    console.log(`Extracted ${data.extracted_data.length} items`);
  }
});
"""


def _axios() -> str | None:
    if shutil.which("node") is None:
        return None
    root = global_node_modules()
    if root is None:
        return None
    try:
        node_runs("require('axios')", root)
    except AssertionError:
        return None
    return root


async def test_documented_javascript_snippet(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    """Aitronos's status check, as published (axios), with only the base URL, the key (in
    its environment variable) and the job id changed."""
    root = await asyncio.to_thread(_axios)
    if root is None:
        pytest.skip("node with axios installed globally (npm install -g axios) is not here")
    client = await start(daemon_factory)
    _, created = await post(client, str(facesite.make_url("/products?page=2")))
    await aitronos_wait(client, created["job_id"], KEY_A)
    base = str(client.make_url("/")).rstrip("/")
    script = AXIOS_SNIPPET.replace("https://api.aitronos.com", base).replace(
        "job_abc123def456", created["job_id"]
    )
    out = await asyncio.to_thread(node_runs, script, root, FREDDY_API_KEY=KEY_A)
    assert out.splitlines()[0] == "Status: completed"
    assert out.splitlines()[1].startswith("Extracted ") and out.endswith("items\n")


def model(fake: FakeOllama) -> dict[str, Any]:
    return {"relevance": {"backend": "auto", "ollama_host": fake.host}}


async def test_page_without_structured_data_extracted_by_the_local_model(
    daemon_factory: DaemonFactory, facesite: TestServer, fake: FakeOllama
) -> None:
    client = await start(daemon_factory, **model(fake))

    def items(call: Call) -> dict[str, Any]:
        # A model that reads the cards off the page it was sent.
        return {
            "items": [{"name": n, "price": float(p)} for n, p in CATALOG if f"{p} EUR" in call.page]
        }

    fake.reply = items
    _, created = await post(client, str(facesite.make_url("/catalog")))
    data = await aitronos_wait(client, created["job_id"], KEY_A)
    assert data["status"] == "completed"
    assert data["extracted_data"] == [{"name": n, "price": float(p)} for n, p in CATALOG]
    calls = fake.extractions
    assert data["metadata"]["llm_calls"] == len(calls) >= 1
    schema = calls[0].format["properties"]["items"]["items"]
    assert schema["properties"] == {"name": {"type": "string"}, "price": {"type": "number"}}
    skop = (await skop_listing(client, KEY_A))[created["job_id"]]
    assert skop["llm_calls"] == len(calls) and skop["input_tokens"] > 0


async def test_a_nullable_date_field_is_a_date_string_or_null(
    daemon_factory: DaemonFactory, facesite: TestServer, fake: FakeOllama
) -> None:
    client = await start(daemon_factory, **model(fake))
    fake.reply = lambda call: {
        "items": [
            {"name": n, "released": "2024-03-01" if i == 0 else None}
            for i, (n, p) in enumerate(CATALOG)
            if f"{p} EUR" in call.page
        ]
    }
    schema = {"type": "object", "properties": {"name": "string", "released": ["date", "null"]}}
    res = await client.post(
        "/api/v1/scrape",
        json={"url": str(facesite.make_url("/catalog")), "schema": schema},
        headers=A,
    )
    assert res.status in (200, 201, 202), await res.text()
    data = await aitronos_wait(client, (await res.json())["job_id"], KEY_A)
    assert data["status"] == "completed", data
    assert data["extracted_data"][0] == {"name": CATALOG[0][0], "released": "2024-03-01"}
    assert all(i.get("released") is None for i in data["extracted_data"][1:])
    sent = fake.extractions[0].format["properties"]["items"]["items"]["properties"]["released"]
    assert sent == {"type": ["string", "null"], "format": "date"}
    bad = {"type": "object", "properties": {"when": ["date", "url"]}}
    res = await client.post(
        "/api/v1/scrape",
        json={"url": str(facesite.make_url("/catalog")), "schema": bad},
        headers=A,
    )
    await assert_error(res, 400, "schema.properties.when.type")


async def test_structured_data_needs_no_model_call(
    daemon_factory: DaemonFactory, facesite: TestServer, fake: FakeOllama
) -> None:
    client = await start(daemon_factory, **model(fake))
    _, created = await post(client, str(facesite.make_url("/products?page=1")))
    data = await aitronos_wait(client, created["job_id"], KEY_A)
    assert names(data["extracted_data"]) == {f"Widget {n}" for n in range(1, 5)}
    assert data["metadata"]["llm_calls"] == 0 and fake.extractions == []


async def test_engine_type_chooses_how_pages_are_read(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    client = await start(daemon_factory, jobs={"cache_window_s": 0})
    url = str(facesite.make_url("/products?page=1"))
    for engine, used in (("static", "static"), ("browser", "browser")):
        _, created = await post(client, url, engine_type=engine)
        data = await aitronos_wait(client, created["job_id"], KEY_A)
        assert data["metadata"]["engine_used"] == used
        assert names(data["extracted_data"]) == {f"Widget {n}" for n in range(1, 5)}
