"""Jobs judged by the local model (a fake Ollama on 127.0.0.1), the fallback, and proof that
a job talks to no host but the site and the configured model."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import Daemon, submit, wait_done
from tests.fake_ollama import FakeOllama
from tests.sites import docsite as site

DaemonFactory = Callable[..., Awaitable[Daemon]]
PROMPT = "board meeting minutes from 2024"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def _run(d: Daemon, url: str, **params: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    assert d.client is not None
    job_id = await submit(d.client, url, PROMPT, **params)
    status = await wait_done(d.client, job_id, timeout=90)
    results = await (await d.client.get(f"/scrape/results/{job_id}")).json()
    return status, results


async def test_a_job_judged_by_the_model_reports_its_cost(
    daemon_factory: DaemonFactory, docsite: TestServer, fake: FakeOllama
) -> None:
    d = await daemon_factory(
        relevance={"backend": "ollama", "ollama_host": fake.host, "batch_size": 5},
        crawler={"request_timeout_s": 2.0},
    )
    status, results = await _run(d, str(docsite.make_url("/")), max_depth=10)
    assert status["status"] == "completed", status
    assert status["relevance_backend"] == "ollama"
    assert status["model"] == "qwen2.5:3b"
    calls = len(fake.chats)
    assert status["llm_calls"] == calls > 1
    assert status["input_tokens"] == 120 * calls
    assert status["output_tokens"] == 30 * calls
    meta = results["metadata"]
    assert (meta["relevance_backend"], meta["llm_calls"]) == ("ollama", calls)
    # The plan call and every scoring call carry the user's prompt; the scoring calls carry
    # each candidate's context.
    assert fake.chats[0].is_plan
    assert all(PROMPT in c.user for c in fake.chats)
    assert any("Meetings 2024" in c.user for c in fake.scoring)
    names = [doc["name"] for doc in results["documents"]]
    assert names and any(n.startswith("Judged: ") for n in names)


async def test_auto_falls_back_to_lexical_with_the_reason(
    daemon_factory: DaemonFactory, docsite: TestServer
) -> None:
    host = f"http://127.0.0.1:{_closed_port()}"
    d = await daemon_factory(
        relevance={"backend": "auto", "ollama_host": host}, crawler={"request_timeout_s": 2.0}
    )
    status, results = await _run(d, str(docsite.make_url("/")), max_depth=10)
    assert status["status"] == "completed"
    assert status["relevance_backend"] == "lexical"
    assert status["llm_calls"] == 0
    reasons = [w for w in status["warnings"] if host in w]
    assert len(reasons) == 1
    assert "lexical" in reasons[0]
    found = {site.canonical(d["url"].split(str(docsite.port), 1)[1]) for d in results["documents"]}
    assert found >= site.MINUTES_2024
    assert d.client is not None
    health = await (await d.client.get("/healthz")).json()
    assert health["relevance_backend"] == "lexical"
    assert health["relevance"]["backend"] == "auto"


async def test_auto_says_which_model_to_pull(
    daemon_factory: DaemonFactory, docsite: TestServer, fake: FakeOllama
) -> None:
    fake.models = ["llama3.2:1b"]
    d = await daemon_factory(relevance={"backend": "auto", "ollama_host": fake.host})
    status, _ = await _run(d, str(docsite.make_url("/")), single_page=True)
    assert any("ollama pull qwen2.5:3b" in w for w in status["warnings"])
    assert status["relevance_backend"] == "lexical"


async def test_backend_ollama_fails_the_job_when_no_model_answers(
    daemon_factory: DaemonFactory, docsite: TestServer
) -> None:
    host = f"http://127.0.0.1:{_closed_port()}"
    d = await daemon_factory(relevance={"backend": "ollama", "ollama_host": host})
    status, _ = await _run(d, str(docsite.make_url("/")))
    assert status["status"] == "failed"
    assert host in status["message"]
    assert status["errors"][-1]["error_type"] == "relevance_unavailable"


async def test_a_job_talks_only_to_the_site_and_the_model(
    daemon_factory: DaemonFactory,
    docsite: TestServer,
    fake: FakeOllama,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every TCP connection and every name lookup the process makes is recorded."""
    connections: list[tuple[str, int]] = []
    lookups: list[str] = []
    loop = asyncio.get_running_loop()
    real_connect = loop.create_connection
    real_getaddrinfo = loop.getaddrinfo

    async def create_connection(protocol_factory: Any, host: Any = None, port: Any = None,
                                *args: Any, **kwargs: Any) -> Any:  # fmt: skip
        sock = kwargs.get("sock")
        if sock is not None:  # aiohttp connects the socket itself, then hands it over
            peer_host, peer_port = sock.getpeername()[:2]
            connections.append((str(peer_host), int(peer_port)))
            return await real_connect(protocol_factory, *args, **kwargs)
        connections.append((str(host), int(port or 0)))
        return await real_connect(protocol_factory, host, port, *args, **kwargs)

    async def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        lookups.append(str(host))
        return await real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(loop, "create_connection", create_connection)
    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    real_socket_getaddrinfo = socket.getaddrinfo

    def sync_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        lookups.append(str(host))
        return real_socket_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", sync_getaddrinfo)

    d = await daemon_factory(
        relevance={"backend": "ollama", "ollama_host": fake.host},
        crawler={"request_timeout_s": 2.0},
    )
    assert d.client is not None
    status, _ = await _run(d, str(docsite.make_url("/")), max_depth=10)
    assert status["status"] == "completed"
    fake_port = int(fake.host.rsplit(":", 1)[1])
    allowed = {docsite.port, fake_port, d.client.port}
    assert connections, "the recorder saw nothing: the test would prove nothing"
    assert {port for _, port in connections} <= allowed, connections
    assert {host for host, _ in connections} <= {"127.0.0.1", "localhost"}, connections
    # The site links example.org and other.invalid: never looked up, never contacted.
    assert not [h for h in lookups if h not in ("127.0.0.1", "localhost")], lookups
    assert any(port == fake_port for _, port in connections)
    assert any(port == docsite.port for _, port in connections)


async def test_model_failures_never_hang_a_job(
    daemon_factory: DaemonFactory, aiohttp_server: Callable[..., Awaitable[TestServer]],
    fake: FakeOllama,
) -> None:  # fmt: skip
    """A model that answers slower than its timeout: the job ends, judged lexically."""

    async def page(_: web.Request) -> web.Response:
        return web.Response(
            text='<a href="/minutes-2024.pdf">Board meeting minutes 2024</a>',
            content_type="text/html",
        )

    async def pdf(_: web.Request) -> web.Response:
        return web.Response(body=b"%PDF-1.4\n%minutes\n", content_type="application/pdf")

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/minutes-2024.pdf", pdf)
    server = await aiohttp_server(app, host="127.0.0.1")
    fake.delay_s = 30
    d = await daemon_factory(
        relevance={"backend": "ollama", "ollama_host": fake.host, "request_timeout_s": 0.5}
    )
    loop = asyncio.get_running_loop()
    began = loop.time()
    status, results = await _run(d, str(server.make_url("/")))
    assert loop.time() - began < 15
    assert status["status"] == "completed"
    assert len(results["documents"]) == 1
    assert any("lexical" in w for w in status["warnings"])
