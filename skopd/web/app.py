"""The aiohttp application: state opened and closed in `cleanup_ctx`, middlewares, routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from skopd.config import Config
from skopd.crawl.fetch import Downloader
from skopd.jobs import Scheduler
from skopd.relevance.lexical import LexicalScorer
from skopd.store import Store
from skopd.web import middleware
from skopd.web.routes import routes
from skopd.web.state import CONFIG, DOWNLOADER, SCHEDULER, SCORER, STORE


async def _resources(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    store = Store(cfg.database_path)
    await store.open()
    downloader = Downloader(cfg.crawler)
    await downloader.start()
    scorer = LexicalScorer()
    scheduler = Scheduler(cfg, store, downloader, scorer)
    app[STORE] = store
    app[DOWNLOADER] = downloader
    app[SCORER] = scorer
    app[SCHEDULER] = scheduler
    await scheduler.start()
    try:
        yield
    finally:
        await scheduler.close()
        await downloader.close()
        await store.close()


def make_app(cfg: Config) -> web.Application:
    app = web.Application(
        middlewares=[middleware.errors, middleware.auth],
        client_max_size=cfg.server.max_request_bytes,
    )
    app[CONFIG] = cfg
    app[middleware.API_KEYS] = cfg.server.api_keys
    app[middleware.MAX_BYTES] = cfg.server.max_request_bytes
    app.cleanup_ctx.append(_resources)
    app.add_routes(routes)
    return app
