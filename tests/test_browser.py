"""The rendering engine against a real Chromium and the fixture JavaScript site."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from skopd.crawl.browser import BrowserPool, Rendered, RenderError
from skopd.crawl.extract import parse_page
from tests.sites.jsapp import EXPECTED, HITS, OFFSITE, make_jsapp

CHROMIUM = "/usr/bin/chromium"

pytestmark = pytest.mark.filterwarnings("ignore:remove loop argument:DeprecationWarning")


@dataclass(frozen=True)
class Settings:
    enabled: bool = True
    executable: str = CHROMIUM
    max_pages: int = 4
    page_timeout_s: float = 10.0
    block_resources: bool = True


PoolFactory = Callable[..., BrowserPool]


@pytest.fixture
async def site() -> AsyncIterator[TestServer]:
    server = TestServer(make_jsapp(), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def pools(tmp_path: Path) -> AsyncIterator[PoolFactory]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (the tests need it)")
    made: list[BrowserPool] = []

    def factory(**changes: object) -> BrowserPool:
        pool = BrowserPool(Settings(**changes), temp_dir=str(tmp_path))  # type: ignore[arg-type]
        made.append(pool)
        return pool

    yield factory
    for pool in made:
        await pool.close()


async def warm(pool: BrowserPool, site: TestServer) -> None:
    """Launch Chromium by a first render (a loaded machine may need a retry at a short deadline)."""
    for attempt in range(3):
        try:
            await pool.render(url(site, "/static"))
            return
        except RenderError:
            if attempt == 2:
                raise


def url(site: TestServer, path: str) -> str:
    return str(site.make_url(path))


def our_processes(profile: Path, kind: str = "") -> list[int]:
    """Live processes started with this --user-data-dir (and --type=kind), through /proc.

    Chromium's helpers rewrite their command line as one space-separated string.
    """
    marker = f"--user-data-dir={profile} ".encode()
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                    arguments = f.read().replace(b"\0", b" ") + b" "
            except OSError:
                continue
            if marker in arguments and f"--type={kind}".encode() in arguments:
                found.append(int(entry.name))
    return found


def leftovers(temp_dir: Path) -> list[Path]:
    """Chromium folders (profile, log) still in the pool's temp_dir."""
    return list(temp_dir.glob("skopd-chromium-*"))


async def open_tabs(pool: BrowserPool) -> int:
    """Page targets of the pool's Chromium, asked through its DevTools HTTP endpoint."""
    assert pool.profile_dir is not None
    port = (pool.profile_dir / "DevToolsActivePort").read_text().split()[0]
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/json/list") as resp,
    ):
        targets = await resp.json()
    return sum(1 for t in targets if t["type"] == "page")


async def until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "condition not reached"
        await asyncio.sleep(0.02)


# Where each page ends up: /spa/ routes itself to /spa/docs; /more's "Show more" tries to
# leave the site and must not (the page stays, its items load).
FINAL = {
    "/timer": "/timer",
    "/fetch": "/fetch",
    "/more": "/more",
    "/spa/": "/spa/docs",
    "/alert": "/alert",  # alert() and confirm() are answered (dismissed), not left blocking
}


@pytest.mark.parametrize("path", [*FINAL, "/lazy"])
async def test_links_written_by_scripts_are_found(
    pools: PoolFactory, site: TestServer, path: str
) -> None:
    rendered = await pools().render(url(site, path))

    wanted = [url(site, p) for p in EXPECTED[path]]
    assert [link for link in rendered.links if link in wanted] == wanted
    html = rendered.html.decode()
    for p in EXPECTED[path]:
        assert f'href="{p}"' in html  # in the rendered DOM, not only in the link list
    assert rendered.status == 200
    assert rendered.final_url == url(site, FINAL.get(path, path))
    if path == "/more":
        assert OFFSITE in rendered.links  # a real link is listed, never clicked


async def test_static_page_screenshot_and_blocked_images(
    pools: PoolFactory, site: TestServer
) -> None:
    pool = pools()
    rendered = await pool.render(url(site, "/static"), screenshot=True)
    missing = await pool.render(url(site, "/nowhere"))
    moved = await pool.render(url(site, "/moved"))

    assert rendered.links == [url(site, p) for p in EXPECTED["/static"]]
    assert rendered.screenshot is not None
    assert rendered.screenshot.startswith(b"\x89PNG\r\n\x1a\n")
    assert site.app[HITS]["/img/logo.png"] == 0
    assert missing.status == 404
    assert missing.screenshot is None
    assert (moved.final_url, moved.status) == (url(site, "/static"), 200)


async def test_rendered_html_says_it_is_utf8(pools: PoolFactory, site: TestServer) -> None:
    """A page served in ISO-8859-1: its rendered DOM reads right without a Content-Type."""
    rendered = await pools().render(url(site, "/latin"))

    page = parse_page(rendered.html, rendered.final_url)  # as a page sink reads it
    assert page.title == "Protokolle März"
    [link] = page.links
    assert (link.url, link.text) == (url(site, "/docs/latin-1.pdf"), "Sitzung März")


async def test_images_fonts_and_media_are_blocked_by_type_not_by_name(
    pools: PoolFactory, site: TestServer
) -> None:
    """None of them has an extension a URL pattern would catch; the page's fetch() of JSON
    goes through all the same."""
    media = ("/picture?id=3", "/photo.JPG", "/typeface?f=1", "/clip?v=1")
    rendered = await pools().render(url(site, "/media"))

    assert url(site, "/docs/fetch-3.pdf") in rendered.links
    assert site.app[HITS]["/api/fetch"] == 1
    assert {path: site.app[HITS][path] for path in media} == dict.fromkeys(media, 0)

    # The same page with blocking off: the browser does ask for them.
    rendered = await pools(block_resources=False).render(url(site, "/media"))
    assert url(site, "/docs/fetch-3.pdf") in rendered.links
    assert site.app[HITS]["/picture?id=3"] == 1 and site.app[HITS]["/photo.JPG"] == 1
    assert site.app[HITS]["/typeface?f=1"] == 1 and site.app[HITS]["/clip?v=1"] >= 1


@pytest.mark.parametrize("path", ["/stuck", "/silent"])
async def test_never_loading_page_is_cut_at_the_deadline(
    pools: PoolFactory, site: TestServer, path: str
) -> None:
    pool = pools(page_timeout_s=3.0)
    await warm(pool, site)  # the launch is not part of a render's deadline
    tabs = await open_tabs(pool)

    began = time.monotonic()
    with pytest.raises(RenderError, match="not rendered within 3 s"):
        await pool.render(url(site, path))
    assert 3.0 <= time.monotonic() - began < 15.0  # cut at the deadline, not hanging
    assert await open_tabs(pool) == tabs
    assert pool.state()["pages_in_use"] == 0


async def test_hanging_subresource_renders_what_was_parsed(
    pools: PoolFactory, site: TestServer
) -> None:
    pool = pools(page_timeout_s=3.0)
    await warm(pool, site)  # the launch is not part of a render's deadline

    began = time.monotonic()
    rendered = await pool.render(url(site, "/tracker"))
    # `load` never came: after half the deadline the parsed page was taken as it was.
    assert time.monotonic() - began >= 1.5
    assert url(site, "/docs/tracker-1.pdf") in rendered.links


async def test_killed_chromium_fails_the_render_and_the_next_relaunches(
    pools: PoolFactory, site: TestServer
) -> None:
    pool = pools()
    await warm(pool, site)  # the launch is not part of a render's deadline
    first = pool.state()["pid"]
    profile = pool.profile_dir
    assert isinstance(first, int) and profile is not None

    render = asyncio.ensure_future(pool.render(url(site, "/stuck")))
    await until(lambda: site.app[HITS]["/never.js"] == 1)
    os.kill(first, signal.SIGKILL)
    began = time.monotonic()
    with pytest.raises(RenderError, match="Chromium exited"):
        await render
    assert time.monotonic() - began < 2.0

    rendered = await pool.render(url(site, "/fetch"))
    assert url(site, "/docs/fetch-3.pdf") in rendered.links
    state = pool.state()
    assert state["launches"] == 2 and state["crashes"] == 1
    assert state["pid"] != first
    await until(lambda: not our_processes(profile) and not profile.exists())


async def test_crashed_page_fails_its_render_and_the_browser_carries_on(
    pools: PoolFactory, site: TestServer
) -> None:
    pool = pools()
    render = asyncio.ensure_future(pool.render(url(site, "/stuck")))
    await until(lambda: site.app[HITS]["/never.js"] == 1)
    assert pool.profile_dir is not None
    for pid in our_processes(pool.profile_dir, kind="renderer"):
        os.kill(pid, signal.SIGKILL)  # the page's renderer, a spare one, the blank tab's
    with pytest.raises(RenderError, match="the page crashed"):
        await render

    rendered = await pool.render(url(site, "/fetch"))
    assert url(site, "/docs/fetch-3.pdf") in rendered.links
    assert pool.state()["launches"] == 1 and pool.state()["crashes"] == 0


async def test_cancelled_render_leaves_no_tab(pools: PoolFactory, site: TestServer) -> None:
    pool = pools()
    await warm(pool, site)  # the launch is not part of a render's deadline
    tabs = await open_tabs(pool)

    render = asyncio.ensure_future(pool.render(url(site, "/stuck")))
    await until(lambda: site.app[HITS]["/never.js"] == 1)
    assert await open_tabs(pool) == tabs + 1
    render.cancel()
    with pytest.raises(asyncio.CancelledError):
        await render
    await until(lambda: pool.state()["pages_in_use"] == 0)
    assert await open_tabs(pool) == tabs

    # cancelled while its tab is still being opened
    render = asyncio.ensure_future(pool.render(url(site, "/static")))
    await asyncio.sleep(0.01)
    render.cancel()
    with pytest.raises(asyncio.CancelledError):
        await render
    await asyncio.sleep(1.0)
    assert await open_tabs(pool) == tabs


async def test_close_leaves_no_process_and_no_profile(
    pools: PoolFactory, site: TestServer, tmp_path: Path
) -> None:
    pool = pools()
    await warm(pool, site)  # the launch is not part of a render's deadline
    profile = pool.profile_dir
    assert profile is not None
    assert len(our_processes(profile)) >= 4  # browser, zygotes, renderer, services...

    render = asyncio.ensure_future(pool.render(url(site, "/stuck")))
    await until(lambda: site.app[HITS]["/never.js"] == 1)
    await pool.close()

    with pytest.raises(RenderError):
        await render
    assert our_processes(profile) == []
    assert leftovers(tmp_path) == []
    assert pool.state()["running"] is False
    await pool.close()  # twice is fine
    with pytest.raises(RenderError, match="closed"):
        await warm(pool, site)  # the launch is not part of a render's deadline


async def test_renders_in_flight_are_bounded_by_max_pages(
    pools: PoolFactory, site: TestServer
) -> None:
    pool = pools(max_pages=2)
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, int(str(pool.state()["pages_in_use"])))
            await asyncio.sleep(0.01)

    watcher = asyncio.ensure_future(watch())
    paths = ["/timer", "/fetch", "/spa/", "/static", "/more"]
    results: list[Rendered] = await asyncio.gather(*(pool.render(url(site, p)) for p in paths))
    watcher.cancel()

    assert peak == 2
    for path, rendered in zip(paths, results, strict=True):
        assert url(site, EXPECTED[path][-1]) in rendered.links


async def test_launch_does_not_stall_the_event_loop(pools: PoolFactory, site: TestServer) -> None:
    pool = pools()
    gaps: list[float] = []

    async def tick() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = asyncio.ensure_future(tick())
    await warm(pool, site)  # the launch is not part of a render's deadline
    ticker.cancel()
    assert pool.state()["launches"] == 1
    assert max(gaps) < 0.2  # a launch on the loop blocks it ~0.4 s


async def test_unusable_browser_is_reported_and_never_launched(tmp_path: Path) -> None:
    disabled = BrowserPool(Settings(enabled=False))
    missing = BrowserPool(Settings(executable=str(tmp_path / "no-chromium")))
    for pool, reason in ((disabled, "disabled"), (missing, "no such executable")):
        assert reason in (await pool.available() or "")
        with pytest.raises(RenderError, match=reason):
            await pool.render("http://127.0.0.1:1/")
        assert pool.state()["launches"] == 0
        await pool.close()


async def test_chromium_that_fails_to_start_says_why(tmp_path: Path) -> None:
    broken = tmp_path / "chromium"
    broken.write_text(
        "#!/bin/sh\necho 'error while loading shared libraries: libnss3.so' >&2\nexit 127\n"
    )
    broken.chmod(0o755)
    pool = BrowserPool(Settings(executable=str(broken)), temp_dir=str(tmp_path))

    with pytest.raises(RenderError, match="status 127: error while loading shared libraries"):
        await pool.render("http://127.0.0.1:1/")
    assert "libnss3" in (await pool.available() or "")
    assert pool.state()["last_error"]
    assert leftovers(tmp_path) == []
    await pool.close()


@pytest.mark.parametrize(
    "bad", ["file:///etc/passwd", "javascript:alert(1)", "http://", "ftp://x/"]
)
async def test_only_http_urls_are_rendered(bad: str) -> None:
    pool = BrowserPool(Settings())
    with pytest.raises(RenderError, match="only http and https"):
        await pool.render(bad)
    assert pool.state()["launches"] == 0
    await pool.close()
