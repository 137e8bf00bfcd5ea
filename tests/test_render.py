"""Jobs on pages that need JavaScript, through the daemon, with a real Chromium.

One daemon (and so one Chromium) serves most tests of this module: they share an event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from skopd.config import Config
from skopd.crawl.browser import BrowserPool
from skopd.crawl.netpolicy import AddressPolicy
from skopd.crawl.proxy import PolicyDestinations, Refused
from tests.conftest import Daemon, make_config
from tests.process import SkopdProcess
from tests.sites.docsite import make_docsite
from tests.sites.jsapp import (
    AGENTS,
    CHAIN,
    ENGINES,
    HASH_DOCS,
    HASH_ROUTES,
    HITS,
    INERT,
    JS_ONLY,
    MIXED_PLAIN,
    SHELL_DOCS,
    make_jsapp,
)

CHROMIUM = "/usr/bin/chromium"
PROMPT = "council documents, notices, budget and reports"
Client = TestClient[web.Request, web.Application]

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.filterwarnings("ignore:remove loop argument:DeprecationWarning"),
]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def site() -> AsyncIterator[TestServer]:
    server = TestServer(make_jsapp(), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def daemon(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Client]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (the tests need it)")
    cfg = make_config(
        tmp_path_factory.mktemp("render"), browser={"page_timeout_s": 8.0, "max_pages": 4}
    )
    d = Daemon(cfg)
    client = await d.start()
    yield client
    await d.stop()


def at(site: TestServer, path: str) -> str:
    return str(site.make_url(path))


async def run_job(
    client: Client, website: str, timeout: float = 120.0, **parameters: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Submit, wait for the end; (status, results)."""
    parameters.setdefault("confidence_threshold", 0.0)
    resp = await client.post(
        "/scrape", json={"website": website, "prompt": PROMPT, "parameters": parameters}
    )
    assert resp.status == 201, await resp.text()
    job_id = (await resp.json())["job_id"]
    end = time.monotonic() + timeout
    while True:
        status = await (await client.get(f"/scrape/status/{job_id}")).json()
        if not status["is_active"]:
            break
        assert time.monotonic() < end, f"job still running: {status}"
        await asyncio.sleep(0.1)
    results = await (await client.get(f"/scrape/results/{job_id}")).json()
    return status, results


def found(site: TestServer, results: dict[str, Any]) -> set[str]:
    """Paths of the downloaded documents."""
    base = at(site, "/")[:-1]
    return {doc["url"].removeprefix(base) for doc in results["documents"]}


async def browser_health(client: Client) -> dict[str, Any]:
    health = await (await client.get("/healthz")).json()
    browser: dict[str, Any] = health["browser"]
    return browser


async def page_events(client: Client, job_id: str) -> list[dict[str, Any]]:
    async with client.get(f"/scrape/events/{job_id}") as resp:
        text = await resp.text()
    events = []
    for block in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
        )
        if fields.get("event") == "page":
            events.append(json.loads(fields["data"]))
    return events


# -- auto, never, always ------------------------------------------------------------


async def test_auto_on_a_static_site_never_starts_the_browser(daemon: Client) -> None:
    docsite = TestServer(make_docsite(), host="127.0.0.1")
    await docsite.start_server()
    try:
        before = await browser_health(daemon)
        status, results = await run_job(daemon, str(docsite.make_url("/")))
    finally:
        await docsite.close()

    assert status["status"] == "completed"
    pages = results["metadata"]["pages_by_engine"]
    assert pages["http"] == results["total_pages_crawled"] > 5
    assert pages["browser"] == 0
    assert results["total_documents_downloaded"] > 0
    after = await browser_health(daemon)
    assert after["launches"] == before["launches"]  # Chromium never started for it


async def test_auto_renders_the_pages_scripts_fill(daemon: Client, site: TestServer) -> None:
    status, results = await run_job(daemon, at(site, "/"), max_depth=CHAIN + 1)

    assert status["status"] == "completed", status
    docs = found(site, results)
    # After a timer, after fetch() of JSON, behind "Load more", on a client-side route,
    # after scrolls, and in a chain of shells; plus what the HTML already had.
    assert set(JS_ONLY) <= docs
    assert {"/docs/static-1.pdf", "/docs/more-1.pdf"} <= docs
    assert {f"/docs/chain-{n}.pdf" for n in range(1, CHAIN + 1)} <= docs
    pages = results["metadata"]["pages_by_engine"]
    assert pages["http"] >= 1  # the home page has content of its own
    assert pages["browser"] >= 6
    assert pages["http"] + pages["browser"] == results["total_pages_crawled"]
    timer = next(d for d in results["documents"] if d["url"].endswith("/docs/timer-1.pdf"))
    assert timer["source_page"] == at(site, "/timer")
    assert timer["name"] == "Notice 1"  # the link text of the rendered DOM

    events = await page_events(daemon, results["job_id"])
    engines = {e["url"]: e["engine"] for e in events}
    assert engines[at(site, "/")] == "http"
    assert engines[at(site, "/timer")] == "browser"
    assert engines[at(site, "/spa/docs")] == "browser"  # where the client-side router went
    assert all(e["screenshot_url"] is None for e in events)
    assert results["screenshots"] == []
    health = await browser_health(daemon)
    assert health["state"] == "running" and health["processes"] >= 2
    # Chromium says who it works for: a desktop Chrome's User-Agent plus the crawler's.
    crawler = make_config(Path(".")).crawler.user_agent
    rendering = [a for a in site.app[AGENTS] if a.startswith("Mozilla/") and a.endswith(crawler)]
    assert rendering and all("Headless" not in a for a in rendering)


def engine_hits(site: TestServer, before: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    """Requests per (path, engine) the site answered since `before`."""
    now = site.app[ENGINES]
    return {key: now[key] - before.get(key, 0) for key in now if now[key] > before.get(key, 0)}


async def test_auto_follows_hash_routes_each_rendered_as_a_page(
    daemon: Client, site: TestServer
) -> None:
    before = dict(site.app[ENGINES])
    status, results = await run_job(daemon, at(site, "/hashapp/"))

    assert status["status"] == "completed", status
    # Each document is shown only by a route two levels deep (#/documents/2024, ...).
    assert found(site, results) == set(HASH_DOCS)
    app = at(site, "/hashapp/")
    march = next(d for d in results["documents"] if d["url"].endswith("/hash-march.pdf"))
    assert march["source_page"] == app + "#!/minutes/march"
    assert march["name"] == "Council minutes March"
    # Every route is a page of its own, rendered once; #top and #section-2 are not pages.
    events = await page_events(daemon, results["job_id"])
    assert sorted(e["url"] for e in events) == sorted(app + route for route in HASH_ROUTES)
    assert all(e["engine"] == "browser" and e["status"] == 200 for e in events)
    depths = {e["url"].removeprefix(app): e["depth"] for e in events}
    assert depths["#/documents/2024"] == depths["#!/minutes/march"] == 2
    assert results["metadata"]["pages_by_engine"] == {"http": 0, "browser": len(HASH_ROUTES)}
    # One static fetch (the start page, found to be a shell), then only Chromium asked for
    # the app: a route fetched statically would have read the shell again.
    hits = engine_hits(site, before)
    assert hits[("/hashapp/", "http")] == 1
    assert hits[("/hashapp/", "browser")] == len(HASH_ROUTES)


async def test_pushstate_views_served_as_one_shell_are_each_rendered(
    daemon: Client, site: TestServer
) -> None:
    """A pushState app's server answers every path with the same bytes: the same shell at
    another URL is another view of the app, not a copy whose links are known already. (From
    a plain page, so the host is never rendered straight away: each view is fetched first.)"""
    status, results = await run_job(daemon, at(site, "/records"))

    assert status["status"] == "completed", status
    assert found(site, results) == set(SHELL_DOCS)
    events = await page_events(daemon, results["job_id"])
    rendered = {e["url"] for e in events if e["engine"] == "browser"}
    assert {at(site, path) for path in ("/shell/minutes", "/shell/budget")} <= rendered
    assert not any("same content" in w for w in results["warnings"]), results["warnings"]


async def test_robots_txt_judges_a_route_by_its_path_without_fragment(daemon: Client) -> None:
    # Were the fragment part of the path, "/*minutes" would refuse #!/minutes.
    robots = "User-agent: *\nDisallow: /*documents\nDisallow: /*minutes\n"
    server = TestServer(make_jsapp(robots=robots), host="127.0.0.1")
    await server.start_server()
    app = at(server, "/hashapp/")
    try:
        status, results = await run_job(daemon, app)
        events = await page_events(daemon, results["job_id"])
        docs = found(server, results)
    finally:
        await server.close()

    assert status["status"] == "completed", status
    assert server.app[HITS]["/robots.txt"] == 1
    assert docs == set(HASH_DOCS)
    assert sorted(e["url"] for e in events) == sorted(app + route for route in HASH_ROUTES)
    assert not any("robots" in warning for warning in status["warnings"])


async def test_a_start_page_s_route_is_the_view_rendered(daemon: Client, site: TestServer) -> None:
    route = at(site, "/hashapp/") + "#/documents/2024"
    status, results = await run_job(daemon, route, max_depth=0)

    assert status["status"] == "completed", status
    assert found(site, results) == {"/docs/hash-2024-1.pdf", "/docs/hash-2024-2.pdf"}
    events = await page_events(daemon, results["job_id"])
    assert [(e["url"], e["engine"]) for e in events] == [(route, "browser")]


async def test_fragments_of_a_static_page_are_not_pages(daemon: Client, site: TestServer) -> None:
    """Places on a page (#top), and even route-like fragments (#/archive), of a page read
    as static HTML are that page: nothing more is crawled, and nothing is rendered."""
    before = dict(site.app[ENGINES])
    status, results = await run_job(daemon, at(site, "/anchors"))

    assert status["status"] == "completed", status
    events = await page_events(daemon, results["job_id"])
    assert sorted(e["url"] for e in events) == [at(site, "/anchors"), at(site, "/static")]
    assert results["total_pages_crawled"] == 2
    assert results["metadata"]["pages_by_engine"] == {"http": 2, "browser": 0}
    assert found(site, results) == {"/docs/static-1.pdf", "/docs/static-2.pdf"}
    hits = engine_hits(site, before)
    assert hits[("/anchors", "http")] == hits[("/static", "http")] == 1
    assert not any(engine == "browser" for _, engine in hits)


async def test_never_reads_static_html_only(daemon: Client, site: TestServer) -> None:
    status, results = await run_job(daemon, at(site, "/"), render_js="never")

    assert status["status"] == "completed"
    docs = found(site, results)
    assert {"/docs/static-1.pdf", "/docs/static-2.pdf", "/docs/more-1.pdf"} <= docs
    assert not docs & set(JS_ONLY)
    assert not any(d.startswith("/docs/chain-") for d in docs)
    assert results["metadata"]["pages_by_engine"]["browser"] == 0


async def test_always_renders_even_a_static_page(daemon: Client, site: TestServer) -> None:
    status, results = await run_job(daemon, at(site, "/static"), render_js="always")

    assert status["status"] == "completed"
    assert results["metadata"]["pages_by_engine"] == {"http": 0, "browser": 1}
    assert found(site, results) == {"/docs/static-1.pdf", "/docs/static-2.pdf"}
    assert site.app[HITS]["/img/logo.png"] == 0  # images are blocked


@pytest.mark.parametrize(
    ("value", "fragment"),
    [("sometimes", "parameters.render_js"), (True, "parameters.render_js")],
)
async def test_bad_render_parameters_are_refused(
    daemon: Client, site: TestServer, value: object, fragment: str
) -> None:
    resp = await daemon.post(
        "/scrape",
        json={"website": at(site, "/"), "prompt": PROMPT, "parameters": {"render_js": value}},
    )
    assert resp.status == 400
    assert fragment in (await resp.json())["message"]
    resp = await daemon.post(
        "/scrape",
        json={"website": at(site, "/"), "prompt": PROMPT, "parameters": {"screenshot": "yes"}},
    )
    assert resp.status == 400
    assert "parameters.screenshot" in (await resp.json())["message"]


# -- failures -----------------------------------------------------------------------


async def test_a_page_that_never_loads_is_cut_and_the_job_goes_on(
    daemon: Client, site: TestServer
) -> None:
    began = time.monotonic()
    status, results = await run_job(daemon, at(site, "/stuck"))

    assert status["status"] == "completed"
    [error] = [e for e in results["errors"] if e["error_type"] == "render_failed"]
    assert "not rendered within 8 s" in error["error_message"]
    assert error["is_recoverable"] is True
    assert error["page_url"] == at(site, "/stuck")
    # What the HTML had is still used.
    assert found(site, results) == {"/docs/stuck-1.pdf"}
    assert results["metadata"]["pages_by_engine"] == {"http": 1, "browser": 0}
    assert time.monotonic() - began < 60


async def test_chromium_killed_mid_job_is_relaunched(daemon: Client, site: TestServer) -> None:
    resp = await daemon.post(
        "/scrape",
        json={
            "website": at(site, "/chains/killed/1"),
            "prompt": PROMPT,
            "parameters": {"confidence_threshold": 0.0, "max_depth": CHAIN},
        },
    )
    job_id = (await resp.json())["job_id"]
    end = time.monotonic() + 60
    # The second page's script asked for its list (answered after 0.3 s): its render is on.
    while site.app[HITS]["/api/chain?series=killed&n=2"] == 0:
        assert time.monotonic() < end
        await asyncio.sleep(0.01)
    before = await browser_health(daemon)
    pid = before["pid"]
    assert isinstance(pid, int) and before["pages_in_use"] >= 1
    os.kill(pid, signal.SIGKILL)

    while (await (await daemon.get(f"/scrape/status/{job_id}")).json())["is_active"]:
        assert time.monotonic() < end + 60
        await asyncio.sleep(0.1)
    results = await (await daemon.get(f"/scrape/results/{job_id}")).json()
    assert results["status"] == "completed"
    # Every page's documents, the one cut by the crash included (rendered again by the new
    # Chromium), and no page given up.
    assert found(site, results) == {f"/docs/killed-chain-{n}.pdf" for n in range(1, CHAIN + 1)}
    assert [e for e in results["errors"] if e["error_type"] == "render_failed"] == []
    assert site.app[HITS]["/api/chain?series=killed&n=2"] == 2
    after = await browser_health(daemon)
    assert after["crashes"] == before["crashes"] + 1
    assert after["launches"] == before["launches"] + 1
    assert after["pid"] != pid


async def test_a_render_that_fails_is_not_tried_again(daemon: Client, site: TestServer) -> None:
    """always: the page is rendered directly, cut at the deadline, then read statically;
    its static HTML is not sent to the browser a second time."""
    status, results = await run_job(daemon, at(site, "/to-hang/once"), render_js="always")

    assert status["status"] == "completed"
    assert site.app[HITS]["/never.js?for=once"] == 1  # one render of /hang/once
    [error] = [e for e in results["errors"] if e["error_type"] == "render_failed"]
    assert error["page_url"] == at(site, "/hang/once")
    assert "not rendered within 8 s" in error["error_message"]
    assert found(site, results) == {"/docs/hang-once.pdf"}  # from its static HTML
    assert results["metadata"]["pages_by_engine"] == {"http": 1, "browser": 1}


# -- what each host needs, remembered -------------------------------------------------


def requests_for(site: TestServer, path: str) -> dict[str, int]:
    return {engine: site.app[ENGINES][path, engine] for engine in ("http", "browser")}


async def test_a_host_of_shells_has_its_next_pages_rendered_directly(
    daemon: Client, site: TestServer
) -> None:
    status, results = await run_job(daemon, at(site, "/chains/direct/1"), max_depth=CHAIN)

    assert status["status"] == "completed"
    assert found(site, results) == {f"/docs/direct-chain-{n}.pdf" for n in range(1, CHAIN + 1)}
    # The first shell is fetched, then rendered; the others only rendered.
    assert requests_for(site, "/chains/direct/1") == {"http": 1, "browser": 1}
    for n in range(2, CHAIN + 1):
        assert requests_for(site, f"/chains/direct/{n}") == {"http": 0, "browser": 1}, n
    assert results["metadata"]["pages_by_engine"] == {"http": 0, "browser": CHAIN}


async def test_direct_renders_stop_when_the_host_s_pages_stop_being_shells(
    daemon: Client, site: TestServer
) -> None:
    """Two shells, then plain pages: the first plain pages are rendered directly (the host
    looked like shells), then the host goes back to static fetches and plain pages are
    not rendered at all."""
    status, results = await run_job(daemon, at(site, "/mixed/shell/1"), max_depth=10)

    assert status["status"] == "completed"
    plain = {f"/docs/plain-{n}.pdf" for n in range(1, MIXED_PLAIN + 1)}
    assert found(site, results) == {"/docs/mixed-1.pdf", "/docs/mixed-2.pdf"} | plain
    assert requests_for(site, "/mixed/shell/2") == {"http": 0, "browser": 1}
    assert requests_for(site, "/mixed/plain/1") == {"http": 0, "browser": 1}
    assert requests_for(site, "/mixed/plain/2") == {"http": 0, "browser": 1}
    for n in range(3, MIXED_PLAIN + 1):
        assert requests_for(site, f"/mixed/plain/{n}") == {"http": 1, "browser": 0}, n


async def test_a_host_whose_renders_find_nothing_more_is_left_alone(
    site: TestServer, tmp_path: Path
) -> None:
    # One request at a time to the host (a render holds its slot): each page is fetched
    # once the render before it is judged, so the count is exact.
    cfg = make_config(
        tmp_path, crawler={"per_host_concurrency": 1}, browser={"page_timeout_s": 8.0}
    )
    d = Daemon(cfg)
    client = await d.start()
    try:
        status, results = await run_job(client, at(site, "/inert/1"), max_depth=10)
    finally:
        await d.stop()

    assert status["status"] == "completed"
    assert found(site, results) == {f"/docs/inert-{n}.pdf" for n in range(1, INERT + 1)}
    for n in (1, 2, 3):  # shells, each rendered after its static fetch: nothing more
        assert requests_for(site, f"/inert/{n}") == {"http": 1, "browser": 1}, n
    for n in range(4, INERT + 1):  # still shells, read as static HTML
        assert requests_for(site, f"/inert/{n}") == {"http": 1, "browser": 0}, n
    assert results["metadata"]["pages_by_engine"] == {"http": INERT - 3, "browser": 3}


async def resume_to_the_end(cfg: Config, job_id: str) -> tuple[Any, list[Any]]:
    """Start a daemon on `cfg` and wait for the resumed job: its results and page events."""
    second = Daemon(cfg)
    client = await second.start()
    try:
        end = time.monotonic() + 120
        while (await (await client.get(f"/scrape/status/{job_id}")).json())["is_active"]:
            assert time.monotonic() < end
            await asyncio.sleep(0.1)
        results = await (await client.get(f"/scrape/results/{job_id}")).json()
        return results, await page_events(client, job_id)
    finally:
        await second.stop()


async def test_host_memory_and_screenshots_survive_a_restart(
    site: TestServer, tmp_path: Path
) -> None:
    """A job stopped with the daemon resumes rendering its host's pages directly, and a
    screenshot written but never recorded (the daemon stopped in between) is removed."""
    cfg = make_config(tmp_path, browser={"page_timeout_s": 8.0})
    first = Daemon(cfg)
    client = await first.start()
    try:
        resp = await client.post(
            "/scrape",
            json={
                "website": at(site, "/chains/resume/1"),
                "prompt": PROMPT,
                "parameters": {"confidence_threshold": 0.0, "max_depth": CHAIN, "screenshot": True},
            },
        )
        job_id = (await resp.json())["job_id"]
        end = time.monotonic() + 60
        while site.app[HITS]["/api/chain?series=resume&n=3"] == 0:
            assert time.monotonic() < end
            await asyncio.sleep(0.02)
    finally:
        await first.stop()
    before = dict(site.app[ENGINES])
    orphan = cfg.documents_path / job_id / "screenshots" / "shot_orphan.png"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"\x89PNG\r\n\x1a\n")

    results, _ = await resume_to_the_end(cfg, job_id)

    assert results["status"] == "completed"
    docs = {f"/docs/resume-chain-{n}.pdf" for n in range(1, CHAIN + 1)}
    assert found(site, results) == docs
    after = site.app[ENGINES]
    resumed = {
        key: after[key] - before.get(key, 0)
        for key in after
        if key[0].startswith("/chains/resume/") and after[key] > before.get(key, 0)
    }
    assert resumed and all(engine == "browser" for _, engine in resumed)  # no static fetch
    assert not orphan.exists()
    folder = cfg.documents_path / job_id / "screenshots"
    assert len(list(folder.iterdir())) == len(results["screenshots"]) > 0


async def hash_job_stopped_after_renders(site: TestServer, cfg: Config) -> str:
    """A /hashapp/ job whose daemon is stopped once two renders were asked for: its
    routes found so far are queued in the checkpoint."""
    first = Daemon(cfg)
    client = await first.start()
    try:
        base = dict(site.app[ENGINES])
        resp = await client.post(
            "/scrape",
            json={
                "website": at(site, "/hashapp/"),
                "prompt": PROMPT,
                "parameters": {"confidence_threshold": 0.0},
            },
        )
        job_id: str = (await resp.json())["job_id"]
        end = time.monotonic() + 60
        while engine_hits(site, base).get(("/hashapp/", "browser"), 0) < 2:
            assert time.monotonic() < end
            await asyncio.sleep(0.02)
    finally:
        await first.stop()
    return job_id


async def test_queued_hash_routes_survive_a_restart(site: TestServer, tmp_path: Path) -> None:
    """A job stopped with the daemon after its first renders resumes with its queued routes
    as they were: rendered (never fetched statically), each recorded once."""
    cfg = make_config(tmp_path, browser={"page_timeout_s": 8.0})
    job_id = await hash_job_stopped_after_renders(site, cfg)
    before = dict(site.app[ENGINES])
    results, events = await resume_to_the_end(cfg, job_id)

    assert results["status"] == "completed", results
    assert found(site, results) == set(HASH_DOCS)
    resumed = engine_hits(site, before)
    assert resumed.get(("/hashapp/", "browser"), 0) > 0  # routes queued before were rendered
    assert ("/hashapp/", "http") not in resumed
    urls = [e["url"] for e in events]
    app = at(site, "/hashapp/")
    assert sorted(set(urls)) == sorted(app + route for route in HASH_ROUTES)
    assert len(urls) == len(set(urls))  # no route recorded twice


async def test_queued_hash_routes_without_a_browser_each_say_why(
    site: TestServer, tmp_path: Path
) -> None:
    """Resumed on a daemon with no browser, the routes queued before cannot be read (a
    static fetch would only get the app's shell): each is a render_failed error naming it,
    none is fetched or recorded as a page, and the job ends completed."""
    job_id = await hash_job_stopped_after_renders(
        site, make_config(tmp_path, browser={"page_timeout_s": 8.0})
    )
    before = dict(site.app[ENGINES])
    cfg = make_config(tmp_path, browser={"enabled": False})
    results, events = await resume_to_the_end(cfg, job_id)

    assert results["status"] == "completed", results
    fetched = {path for path, _ in engine_hits(site, before) if path != "/robots.txt"}
    assert fetched == set()  # no page, no route: nothing read in any way
    recorded = {e["url"] for e in events}
    unread = {
        e["page_url"]
        for e in results["errors"]
        if e["error_type"] == "render_failed"
        and "client-side route not rendered" in e["error_message"]
    }
    app = at(site, "/hashapp/")
    assert unread, results["errors"]
    assert all(url.startswith(app + "#") for url in unread)
    assert not unread & recorded
    assert recorded | unread <= {app + route for route in HASH_ROUTES}


async def test_screenshots_are_stored_listed_and_served_after_a_restart(
    site: TestServer, tmp_path: Path
) -> None:
    cfg = make_config(tmp_path, browser={"page_timeout_s": 8.0})
    first = Daemon(cfg)
    client = await first.start()
    try:
        status, results = await run_job(
            client, at(site, "/timer"), screenshot=True, single_page=True
        )
        events = await page_events(client, results["job_id"])
    finally:
        await first.stop()
    assert status["status"] == "completed"
    [shot] = results["screenshots"]
    assert shot["url"] == at(site, "/timer")
    assert shot["size_bytes"] > 1000
    assert [e["screenshot_url"] for e in events] == [shot["download_url"]]

    second = Daemon(cfg)
    client = await second.start()
    try:
        again = await (await client.get(f"/scrape/results/{results['job_id']}")).json()
        assert again["screenshots"] == results["screenshots"]
        resp = await client.get(shot["download_url"])
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "image/png"
        png = await resp.read()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) == shot["size_bytes"]
        missing = await client.get(f"/scrape/screenshots/{results['job_id']}/shot_nope")
        assert missing.status == 404
        deleted = await client.delete(f"/scrape/jobs/{results['job_id']}")
        assert deleted.status == 200
        assert (await client.get(shot["download_url"])).status == 404
    finally:
        await second.stop()


async def test_missing_chromium_auto_warns_and_always_fails(
    site: TestServer, tmp_path: Path
) -> None:
    d = Daemon(make_config(tmp_path, browser={"executable": "/nonexistent/chromium"}))
    client = await d.start()
    try:
        health = await browser_health(client)
        status, results = await run_job(client, at(site, "/"))
        failed, _ = await run_job(client, at(site, "/"), render_js="always")
    finally:
        await d.stop()

    assert health["state"] == "unavailable"
    assert "/nonexistent/chromium: no such executable" in health["reason"]
    assert status["status"] == "completed"
    warnings = [w for w in status["warnings"] if "read as static HTML" in w]
    assert len(warnings) == 1 and "/nonexistent/chromium" in warnings[0]
    assert {"/docs/static-1.pdf", "/docs/more-1.pdf"} <= found(site, results)
    assert results["metadata"]["pages_by_engine"]["browser"] == 0
    assert failed["status"] == "failed"
    assert 'render_js is "always" but the browser is unavailable' in failed["message"]
    assert "/nonexistent/chromium" in failed["message"]


async def test_chromium_that_fails_to_start_gives_one_warning_and_one_launch(
    site: TestServer, tmp_path: Path
) -> None:
    """Several shell pages at once, their renders queued for one tab: one launch is tried
    (within the 30 s back-off), one warning. A job of another face that asks for the
    browser then reads static HTML with its one warning too."""
    launches = tmp_path / "launches"
    broken = tmp_path / "chromium"
    broken.write_text(
        f"#!/bin/sh\necho launch >> {launches}\nsleep 1\necho 'no display' >&2\nexit 1\n"
    )
    broken.chmod(0o755)
    cfg = make_config(tmp_path, browser={"executable": str(broken), "max_pages": 1})
    d = Daemon(cfg)
    client = await d.start()
    try:
        status, results = await run_job(client, at(site, "/"))
        health = await browser_health(client)
        resp = await client.post(
            "/api/scrape", json={"urls": [{"url": at(site, "/timer")}], "screenshot": True}
        )
        assert resp.status == 202, await resp.text()
        face_job = (await resp.json())["jobId"]
        end = time.monotonic() + 60
        while (face := await (await client.get(f"/scrape/status/{face_job}")).json())["is_active"]:
            assert time.monotonic() < end
            await asyncio.sleep(0.1)
    finally:
        await d.stop()

    assert status["status"] == "completed"
    [warning] = [w for w in status["warnings"] if "browser" in w or "Chromium" in w]
    assert warning.startswith("pages that need JavaScript were read as static HTML: ")
    assert "Chromium failed to start" in warning and "no display" in warning
    assert launches.read_text().splitlines() == ["launch"]
    assert health["launches"] == 0 and health["state"] == "unavailable"
    assert results["metadata"]["pages_by_engine"]["browser"] == 0
    assert {"/docs/static-1.pdf", "/docs/more-1.pdf"} <= found(site, results)

    [warning] = [w for w in face["warnings"] if "browser" in w or "Chromium" in w]
    assert warning.startswith("pages were read without a browser (Chromium failed to start")
    assert launches.read_text().splitlines() == ["launch"]


async def test_disabled_browser_is_reported(tmp_path: Path) -> None:
    d = Daemon(make_config(tmp_path, browser={"enabled": False}))
    client = await d.start()
    try:
        health = await browser_health(client)
    finally:
        await d.stop()
    assert health["state"] == "disabled"
    assert "enabled = false" in health["reason"]


# -- Chromium's own requests obey the address policy ------------------------------


def leaky_app(secret: int) -> web.Application:
    """A page whose frames, fetch() and XHR reach for a private service at port `secret`,
    in several spellings; when they are all settled it links /docs/done.pdf."""
    targets = [
        f"http://127.0.0.1:{secret}/fetch",
        f"http://[::ffff:127.0.0.1]:{secret}/mapped",
        f"http://127.1:{secret}/short",
        f"http://2130706433:{secret}/decimal",
        f"https://127.0.0.1:{secret}/tls",
    ]

    async def page(request: web.Request) -> web.Response:
        html = (
            "<!doctype html><html><head><title>Leak</title></head><body><ul id=list></ul>"
            f'<iframe src="http://127.0.0.1:{secret}/frame"></iframe><script>'
            f"const targets = {json.dumps(targets)};"
            "Promise.allSettled(targets.map((t) => fetch(t, {mode: 'no-cors'})))"
            ".then(() => { const x = new XMLHttpRequest();"
            f" x.open('GET', 'http://127.0.0.1:{secret}/xhr');"
            " x.onloadend = () => { const a = document.createElement('a');"
            " a.href = '/docs/done.pdf'; a.textContent = 'Report done (PDF)';"
            " document.getElementById('list').append(a); }; x.send(); });"
            "</script></body></html>"
        )
        return web.Response(text=html, content_type="text/html")

    async def done(request: web.Request) -> web.Response:
        pdf = b"%PDF-1.4\n% done\ntrailer << >>\n%%EOF\n"
        return web.Response(body=pdf, content_type="application/pdf")

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/docs/done.pdf", done)
    return app


class Secret:
    """A private service on 127.0.0.1: every connection to it is counted."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Secret:
        self.server = await asyncio.start_server(self._count, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _count(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.hits.append((await reader.read(200)).decode("latin-1").split("\r\n")[0])
        writer.close()


async def test_chromium_reaches_no_forbidden_address(tmp_path: Path) -> None:
    """The pool with the policy's proxy, and without (the test can fail)."""
    policy = AddressPolicy(False, allowed_hosts=["localhost"])
    async with Secret() as secret:
        page_site = TestServer(leaky_app(secret.port), host="127.0.0.1")
        await page_site.start_server()
        start = f"http://localhost:{page_site.port}/"
        guarded = BrowserPool(
            make_config(tmp_path).browser,
            temp_dir=str(tmp_path),
            policy=PolicyDestinations(policy),
        )
        unguarded = BrowserPool(make_config(tmp_path).browser, temp_dir=str(tmp_path))
        try:
            rendered = await guarded.render(start)
            guarded_hits = list(secret.hits)
            await unguarded.render(start)
        finally:
            await guarded.close()
            await unguarded.close()
            await page_site.close()

    assert start + "docs/done.pdf" in rendered.links  # the page's script ran to its end
    assert guarded_hits == []
    assert secret.hits  # without the proxy, Chromium went straight to it
    destinations = PolicyDestinations(AddressPolicy(False))
    for host in ("localhost", "169.254.169.254", "0x7f.1", "[::1]"):
        with pytest.raises(Refused):
            await destinations.addresses(host, 80)


async def test_a_job_s_renders_reach_no_forbidden_address(tmp_path: Path) -> None:
    """Through the daemon: the site is let in by crawler.allowed_hosts, nothing else is."""
    async with Secret() as secret:
        page_site = TestServer(leaky_app(secret.port), host="127.0.0.1")
        await page_site.start_server()
        d = Daemon(
            make_config(
                tmp_path,
                crawler={"allow_private_networks": False, "allowed_hosts": ["localhost"]},
                browser={"page_timeout_s": 8.0},
            )
        )
        client = await d.start()
        try:
            status, results = await run_job(
                client, f"http://localhost:{page_site.port}/", render_js="always"
            )
        finally:
            await d.stop()
            await page_site.close()

    assert status["status"] == "completed", status
    assert [doc["url"].rpartition("/")[2] for doc in results["documents"]] == ["done.pdf"]
    assert results["metadata"]["pages_by_engine"]["browser"] == 1
    assert secret.hits == []


# -- no Chromium outlives the daemon ------------------------------------------------


def _processes_under(root: int) -> set[int]:
    """`root`'s descendants, through /proc."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    parents[int(entry.name)] = int(f.read().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found: set[int] = set()
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid]
        found.update(children)
        frontier.extend(children)
    return found


def _alive_with(marker: str) -> list[int]:
    """Live (not zombie) processes whose command line mentions `marker`."""
    alive = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if marker.encode() in cmdline:
            alive.append(int(entry.name))
    return alive


def _rendering_daemon(tmp_path: Path) -> tuple[SkopdProcess, Path]:
    """The daemon as a process, and the TMPDIR where its Chromium keeps its files."""
    # Chromium's sockets live in TMPDIR: a path short enough for a socket address.
    chromium_tmp = Path(tempfile.mkdtemp(prefix="skopd-t-"))
    d = SkopdProcess(
        tmp_path,
        '[crawler]\nallow_private_networks = true\n[relevance]\nbackend = "lexical"\n'
        "[browser]\npage_timeout_s = 8.0\n",
        env={"TMPDIR": str(chromium_tmp)},
    )
    return d, chromium_tmp


async def _rendering(d: SkopdProcess, site: TestServer, *, pages_in_use: bool) -> None:
    """Submits a job of JS pages; returns once Chromium runs (and renders, if asked)."""
    async with aiohttp.ClientSession() as http:
        body = {"website": at(site, "/chain/1"), "prompt": PROMPT}
        async with http.post(f"{d.base}/scrape", json=body) as resp:
            assert resp.status == 201
        end = time.monotonic() + 60
        while True:
            async with http.get(f"{d.base}/healthz") as resp:
                browser = (await resp.json())["browser"]
            if browser["state"] == "running" and (not pages_in_use or browser["pages_in_use"] > 0):
                return
            assert time.monotonic() < end, browser
            await asyncio.sleep(0.05)


async def test_sigterm_leaves_no_chromium(site: TestServer, tmp_path: Path) -> None:
    d, chromium_tmp = _rendering_daemon(tmp_path)
    try:
        await d.start()
        await _rendering(d, site, pages_in_use=True)
        assert d.proc is not None
        chromium = _processes_under(d.proc.pid)
        assert len(chromium) >= 2
        code, _ = await d.signal(signal.SIGTERM, within=20)
    finally:
        await d.close()
    assert code == 0
    left = [pid for pid in chromium if _is_live(pid)]
    assert left == []
    assert _alive_with(str(chromium_tmp)) == []
    assert os.listdir(chromium_tmp) == []  # profiles removed
    os.rmdir(chromium_tmp)


async def test_chromium_of_a_killed_daemon_is_stopped_at_the_next_start(
    site: TestServer, tmp_path: Path
) -> None:
    # SIGKILL gives the daemon no chance to close Chromium (its own session, so that it can
    # be killed as one group): the next daemon on the same machine stops it.
    d, chromium_tmp = _rendering_daemon(tmp_path)
    try:
        await d.start()
        await _rendering(d, site, pages_in_use=False)
        orphans = _alive_with(str(chromium_tmp))
        folders = set(os.listdir(chromium_tmp))
        await d.close(signal.SIGKILL)
        assert [pid for pid in orphans if _is_live(pid)] != []  # SIGKILL leaves them
        await d.start()  # the next daemon: same port, config and TMPDIR
        # (The second daemon resumes the job and may start a Chromium of its own.)
        assert [pid for pid in orphans if _is_live(pid)] == []
        assert folders & set(os.listdir(chromium_tmp)) == set()  # profile, singleton socket
    finally:
        await d.close(signal.SIGTERM)
    assert _alive_with(str(chromium_tmp)) == []
    shutil.rmtree(chromium_tmp)


def _is_live(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False
