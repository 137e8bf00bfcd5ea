"""The aiohttp application: state opened and closed in `cleanup_ctx`, middlewares, routes."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractResolver

from skopd.config import Config
from skopd.crawl.browser import BrowserPool, reap_orphans
from skopd.crawl.fetch import Downloader
from skopd.crawl.proxy import PolicyDestinations
from skopd.events import EventBus
from skopd.fanout import Fanout
from skopd.jobs import Scheduler
from skopd.relevance.backend import Relevance
from skopd.store import Store
from skopd.web import aitronos, docscraper, middleware, spidra, sse
from skopd.web.routes import routes
from skopd.web.state import BROWSER, BUS, CONFIG, DOWNLOADER, FANOUT, RELEVANCE, SCHEDULER, STORE
from skopd.web.tokens import TokenSigner

STATIC_DIR = Path(__file__).parent / "static"
RESOLVER: web.AppKey[AbstractResolver] = web.AppKey("resolver", AbstractResolver)

log = logging.getLogger("skopd.web")


async def _resources(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    store = Store(cfg.database_path)
    await store.open()
    downloader = Downloader(cfg.crawler, app.get(RESOLVER))
    await downloader.start()
    relevance = Relevance(cfg.relevance)
    reaped = await asyncio.to_thread(reap_orphans)
    if reaped:
        log.warning("stopped the Chromium of %d daemon(s) that ended without closing it", reaped)
    # Launched on the first page that needs it; its requests pass the crawler's address policy.
    browser = BrowserPool(
        cfg.browser,
        policy=PolicyDestinations(downloader.policy, app.get(RESOLVER)),
        user_agent=cfg.crawler.user_agent,
    )
    scheduler = Scheduler(cfg, store, app[BUS], downloader, relevance, browser)
    app[STORE] = store
    app[BROWSER] = browser
    app[DOWNLOADER] = downloader
    app[RELEVANCE] = relevance
    app[SCHEDULER] = scheduler
    await scheduler.start()
    try:
        yield
    finally:
        await scheduler.close()
        await browser.close()  # after the jobs: no render left; no Chromium outlives us
        await relevance.close()
        await downloader.close()
        await store.close()


def make_app(cfg: Config, resolver: AbstractResolver | None = None) -> web.Application:
    """`resolver` replaces the system resolver for the crawler (tests map names with it)."""
    app = web.Application(
        middlewares=[middleware.errors, middleware.drain, middleware.auth],
        client_max_size=cfg.server.max_request_bytes,
    )
    app[CONFIG] = cfg
    if resolver is not None:
        app[RESOLVER] = resolver
    app[middleware.API_KEYS] = cfg.server.api_keys
    app[middleware.MAX_BYTES] = cfg.server.max_request_bytes
    app[middleware.SIGNER_KEY] = TokenSigner()
    app[middleware.DRAIN] = middleware.Drain()
    app[middleware.ERROR_SHAPES] = (
        (spidra.ERRORS, spidra.error_body),
        (aitronos.ERRORS, aitronos.error_body),
        (docscraper.ERRORS, docscraper.error_body),
    )
    app[BUS] = EventBus()
    app[FANOUT] = Fanout(sse.MAX_UNSENT_BYTES)
    app[sse.STREAMS] = weakref.WeakSet()
    app.cleanup_ctx.append(_resources)
    app.on_shutdown.append(sse.close_streams)
    app.on_cleanup.append(sse.stop_fanout)
    app.add_routes(sse.routes)
    app.add_routes(routes)
    # The other faces, on the same scheduler and store; Aitronos's /jobs routes before the
    # documentation scraper's /{session_id} routes, which would match them too.
    app.add_routes(spidra.routes)
    app.add_routes(aitronos.routes)
    app.add_routes(docscraper.routes)
    app.router.add_get("/", dashboard)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
    return app


async def dashboard(_: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})
