"""The Skop-compatible HTTP API: every route, every error shape, auth and isolation."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from skopd.web.state import STORE
from tests.conftest import Daemon, submit, wait_done

Client = TestClient[web.Request, web.Application]
PROMPT = "board meeting minutes from 2024"
RELEVANCE_KEYS = {"relevance_backend", "model", "llm_calls", "input_tokens", "output_tokens"}
STATUS_KEYS = RELEVANCE_KEYS | {
    "job_id",
    "status",
    "message",
    "progress",
    "created_at",
    "started_at",
    "completed_at",
    "estimated_completion",
    "current_agent",
    "agents_completed",
    "total_pages_crawled",
    "total_documents_found",
    "is_active",
    "has_errors",
    "errors",
    "warnings",
}
RESULTS_KEYS = {
    "job_id",
    "status",
    "message",
    "documents",
    "metadata",
    "total_documents_found",
    "total_documents_downloaded",
    "total_pages_crawled",
    "success_rate",
    "cost",
    "total_runtime_seconds",
    "runtime_minutes",
    "errors",
    "warnings",
    "has_errors",
    "screenshots",
}
DOCUMENT_KEYS = {
    "document_id",
    "name",
    "url",
    "source_page",
    "document_type",
    "confidence_score",
    "file_size_mb",
    "extracted_at",
    "sha256",
    "download_url",
}


async def assert_error(resp: Any, status: int, fragment: str = "") -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body: dict[str, Any] = await resp.json()
    assert set(body) == {"error", "message", "status_code", "path", "timestamp"}
    assert body["error"] is True
    assert body["status_code"] == status
    assert body["path"] == resp.url.path
    datetime.fromisoformat(body["timestamp"])
    assert fragment in body["message"], body["message"]
    return body


@pytest.fixture
async def site(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> str:
    """A tiny site: a page linking two PDFs, one about the prompt and one not."""
    pdf = b"%PDF-1.4\n% minutes\n" + b"x" * 2000 + b"\n%%EOF\n"

    async def home(_: web.Request) -> web.Response:
        return web.Response(
            text="<html><head><title>Board</title></head><body><h1>Board meetings 2024</h1>"
            '<a href="/minutes-2024-01.pdf">Board meeting minutes January 2024</a>'
            '<a href="/parking.pdf">Parking permit form</a></body></html>',
            content_type="text/html",
        )

    async def minutes(_: web.Request) -> web.Response:
        return web.Response(body=pdf, content_type="application/pdf")

    async def parking(_: web.Request) -> web.Response:
        return web.Response(body=pdf + b"parking", content_type="application/pdf")

    app = web.Application()
    app.router.add_get("/", home)
    app.router.add_get("/minutes-2024-01.pdf", minutes)
    app.router.add_get("/parking.pdf", parking)
    server = await aiohttp_server(app, host="127.0.0.1")
    return str(server.make_url("/"))


async def test_submit_answers_201_with_a_pending_job(client: Client, site: str) -> None:
    resp = await client.post("/scrape/", json={"website": site, "prompt": PROMPT})
    assert resp.status == 201
    body = await resp.json()
    assert set(body) == {"job_id", "status", "message", "created_at", "estimated_completion"}
    assert re.fullmatch(r"job_[a-z0-9]{16}", body["job_id"])
    assert body["status"] == "pending"
    assert datetime.fromisoformat(body["estimated_completion"]) > datetime.fromisoformat(
        body["created_at"]
    )


async def test_a_job_runs_to_completion_with_skop_shapes(client: Client, site: str) -> None:
    job_id = await submit(client, site, PROMPT, confidence_threshold=0.3)
    status = await wait_done(client, job_id)
    assert set(status) == STATUS_KEYS
    assert status["status"] == "completed"
    assert status["agents_completed"] == ["coordinator", "navigator", "scraper"]
    assert status["current_agent"] is None
    assert status["progress"] == 100
    assert status["total_pages_crawled"] == 1
    assert status["total_documents_found"] == 1
    assert status["message"] == "Job completed successfully. Found 1 document(s)."

    resp = await client.get(f"/scrape/results/{job_id}")
    results = await resp.json()
    assert set(results) == RESULTS_KEYS
    assert results["cost"] == 0.0
    assert results["total_documents_downloaded"] == 1
    assert results["success_rate"] == 1.0
    [doc] = results["documents"]
    assert set(doc) == DOCUMENT_KEYS
    assert doc["url"].endswith("/minutes-2024-01.pdf")
    assert doc["source_page"] == site
    assert doc["document_type"] == "pdf"
    assert "January 2024" in doc["name"]
    meta = results["metadata"]
    assert meta["original_website"] == site
    assert meta["original_prompt"] == PROMPT
    assert meta["parameters"]["confidence_threshold"] == 0.3
    assert meta["parameters"]["timeout"] == 1800
    assert meta["final_status"] == "completed"
    assert results["total_runtime_seconds"] >= 0

    file = await client.get(doc["download_url"])
    assert file.status == 200
    assert file.headers["Content-Type"] == "application/pdf"
    assert file.headers["Content-Disposition"].startswith("attachment; filename=")
    assert (await file.read()).startswith(b"%PDF-1.4")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"prompt": PROMPT}, "website: is required"),
        ({"website": "ftp://x.org/", "prompt": PROMPT}, "website: must be an http or https URL"),
        ({"website": "http:///path", "prompt": PROMPT}, "website: must have a host"),
        ({"website": "http://x.org/", "prompt": "short"}, "prompt: must be between 10 and 500"),
        ({"website": "http://x.org/", "prompt": "x" * 501}, "prompt: must be between 10 and 500"),
        ({"website": 5, "prompt": PROMPT}, "website: Expected `str`, got `int`"),
        (
            {"website": "http://x.org/", "prompt": PROMPT, "parameters": {"timeout": 59}},
            "parameters.timeout: must be between 60 and 3600",
        ),
        (
            {"website": "http://x.org/", "prompt": PROMPT, "parameters": {"timeout": "60"}},
            "parameters.timeout: Expected `int`, got `str`",
        ),
        (
            {
                "website": "http://x.org/",
                "prompt": PROMPT,
                "parameters": {"confidence_threshold": 1.5},
            },
            "parameters.confidence_threshold: must be between 0 and 1",
        ),
        (
            {"website": "http://x.org/", "prompt": PROMPT, "parameters": {"max_file_size_mb": 501}},
            "parameters.max_file_size_mb: must be between 1 and 500",
        ),
        (
            {"website": "http://x.org/", "prompt": PROMPT, "parameters": {"file_type": "image"}},
            "parameters.file_type",
        ),
        (
            {
                "website": "http://x.org/",
                "prompt": PROMPT,
                "parameters": {"document_types": ["exe"]},
            },
            "parameters.document_types: unknown type 'exe'",
        ),
        (
            {"website": "http://x.org/", "prompt": PROMPT, "parameters": {"speed": 3}},
            "parameters.speed: unknown field",
        ),
    ],
)
async def test_bad_submissions_name_the_field(
    client: Client, body: dict[str, Any], message: str
) -> None:
    await assert_error(await client.post("/scrape", json=body), 400, message)


async def test_malformed_json_and_oversized_bodies(client: Client) -> None:
    await assert_error(await client.post("/scrape", data=b"{nope"), 400, "body: invalid JSON")
    await assert_error(await client.post("/scrape", data=b""), 400, "body:")
    big = b'{"website": "http://x.org/", "prompt": "' + b"x" * 70000 + b'"}'
    await assert_error(await client.post("/scrape", data=big), 413, "too large")


async def test_unknown_routes_methods_and_jobs(client: Client) -> None:
    await assert_error(await client.get("/nowhere"), 404, "no route")
    await assert_error(await client.get("/scrape/status/job_doesnotexist1"), 404, "not found")
    await assert_error(await client.get("/scrape/results/../../etc"), 404)
    await assert_error(await client.get("/scrape/status/JOB_X"), 404, "not found")
    resp = await client.delete("/scrape/status/job_abc")
    await assert_error(resp, 405, "not allowed")
    assert "GET" in resp.headers["Allow"]


async def test_cancel_a_running_job_then_conflict(client: Client, docsite: TestServer) -> None:
    job_id = await submit(client, str(docsite.make_url("/")), PROMPT)
    resp = await client.post(f"/scrape/cancel/{job_id}")
    assert resp.status == 200
    body = await resp.json()
    assert set(body) == STATUS_KEYS | {"previous_status"}
    assert body["previous_status"] in ("pending", "in_progress")
    assert body["status"] == "cancelled"
    assert body["is_active"] is False
    again = await client.post(f"/scrape/cancel/{job_id}")
    await assert_error(again, 409, "already ended")


async def test_pending_jobs_wait_fifo_and_cancel_at_once(
    daemon_factory: Callable[..., Awaitable[Daemon]], docsite: TestServer
) -> None:
    d = await daemon_factory(jobs={"max_concurrent_jobs": 1, "max_queued_jobs": 2})
    assert d.client is not None
    url = str(docsite.make_url("/"))
    first = await submit(d.client, url, PROMPT)
    second = await submit(d.client, url, PROMPT)
    third = await submit(d.client, url, PROMPT)
    status = await (await d.client.get(f"/scrape/status/{third}")).json()
    assert status["status"] == "pending"
    resp = await d.client.post("/scrape", json={"website": url, "prompt": PROMPT})
    await assert_error(resp, 429, "queue is full")
    assert int(resp.headers["Retry-After"]) > 0
    cancelled = await (await d.client.post(f"/scrape/cancel/{second}")).json()
    assert cancelled["previous_status"] == "pending"
    assert cancelled["started_at"] is None
    for job_id in (first, third):
        await d.client.post(f"/scrape/cancel/{job_id}")


async def test_list_is_newest_first_and_paginates(client: Client, site: str) -> None:
    ids = [await submit(client, site, PROMPT) for _ in range(5)]
    for job_id in ids:
        await wait_done(client, job_id)
    seen: list[str] = []
    cursor = ""
    while True:
        resp = await client.get(f"/scrape/jobs?limit=2&cursor={cursor}")
        assert resp.status == 200
        page = await resp.json()
        assert len(page["jobs"]) <= 2
        seen += [j["job_id"] for j in page["jobs"]]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert seen == list(reversed(ids))
    done = await (await client.get("/scrape/jobs?status=completed")).json()
    assert len(done["jobs"]) == 5
    none = await (await client.get("/scrape/jobs?status=failed")).json()
    assert none == {"jobs": [], "next_cursor": None}
    await assert_error(await client.get("/scrape/jobs?status=done"), 400, "status:")
    await assert_error(await client.get("/scrape/jobs?limit=0"), 400, "limit:")
    await assert_error(await client.get("/scrape/jobs?cursor=!!"), 400, "cursor:")


async def test_delete_removes_rows_and_files(client: Client, site: str) -> None:
    job_id = await submit(client, site, PROMPT)
    await wait_done(client, job_id)
    results = await (await client.get(f"/scrape/results/{job_id}")).json()
    download = results["documents"][0]["download_url"]
    resp = await client.delete(f"/scrape/jobs/{job_id}")
    assert resp.status == 200
    await assert_error(await client.get(f"/scrape/status/{job_id}"), 404)
    await assert_error(await client.get(download), 404)
    await assert_error(await client.delete(f"/scrape/jobs/{job_id}"), 404)


async def test_delete_refuses_an_active_job(client: Client, docsite: TestServer) -> None:
    job_id = await submit(client, str(docsite.make_url("/")), PROMPT)
    await assert_error(await client.delete(f"/scrape/jobs/{job_id}"), 409, "cancel it")
    await client.post(f"/scrape/cancel/{job_id}")


async def test_keys_are_required_and_jobs_isolated(
    daemon_factory: Callable[..., Awaitable[Daemon]], site: str
) -> None:
    d = await daemon_factory(server={"api_keys": ["sk-alice", "sk-bob"]})
    c = d.client
    assert c is not None
    alice = {"Authorization": "Bearer sk-alice"}
    bob = {"X-API-Key": "sk-bob"}
    await assert_error(
        await c.post("/scrape", json={"website": site, "prompt": PROMPT}), 401, "missing API key"
    )
    await assert_error(
        await c.get("/scrape/jobs", headers={"Authorization": "Bearer sk-eve"}), 401, "invalid"
    )
    job_id = await submit(c, site, PROMPT, headers=alice)
    await wait_done(c, job_id, headers=alice)
    results = await (await c.get(f"/scrape/results/{job_id}", headers=alice)).json()
    download = results["documents"][0]["download_url"]
    for method, path in [
        ("GET", f"/scrape/status/{job_id}"),
        ("GET", f"/scrape/results/{job_id}"),
        ("POST", f"/scrape/cancel/{job_id}"),
        ("DELETE", f"/scrape/jobs/{job_id}"),
        ("GET", download),
    ]:
        resp = await c.request(method, path, headers=bob)
        body = await assert_error(resp, 404, "not found")
        assert "alice" not in body["message"]
    assert (await (await c.get("/scrape/jobs", headers=bob)).json())["jobs"] == []
    mine = await (await c.get("/scrape/jobs", headers=alice)).json()
    assert [j["job_id"] for j in mine["jobs"]] == [job_id]
    health = await c.get("/healthz")
    assert health.status == 200


async def test_healthz(client: Client) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    body = await resp.json()
    assert body["database"] == "ok"
    assert body["relevance_backend"] == "lexical"
    assert body["version"]


async def test_restart_answers_the_same(
    daemon_factory: Callable[..., Awaitable[Daemon]], site: str
) -> None:
    d = await daemon_factory(jobs={"max_concurrent_jobs": 1})
    assert d.client is not None
    done = await submit(d.client, site, PROMPT)
    await wait_done(d.client, done)
    before_status = await (await d.client.get(f"/scrape/status/{done}")).json()
    before_results = await (await d.client.get(f"/scrape/results/{done}")).json()
    await d.stop()
    client = await d.start()
    after_status = await (await client.get(f"/scrape/status/{done}")).json()
    after_results = await (await client.get(f"/scrape/results/{done}")).json()
    assert after_status == before_status
    assert after_results == before_results
    file = await client.get(after_results["documents"][0]["download_url"])
    assert file.status == 200


async def test_an_internal_error_is_a_json_500(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = client.server.app[STORE]

    async def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("disk on fire at /var/lib/secret")

    monkeypatch.setattr(store, "list_jobs", broken)
    body = await assert_error(await client.get("/scrape/jobs"), 500, "internal server error")
    assert "/var/lib" not in body["message"]


async def test_ignoring_robots_needs_the_daemons_consent(client: Client) -> None:
    body = {"website": "http://x.org/", "prompt": PROMPT, "parameters": {"respect_robots": False}}
    await assert_error(await client.post("/scrape", json=body), 400, "parameters.respect_robots")
