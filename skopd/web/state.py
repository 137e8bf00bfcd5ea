"""Typed application state shared by the routes."""

from __future__ import annotations

from aiohttp import web

from skopd.config import Config
from skopd.crawl.browser import BrowserPool
from skopd.crawl.fetch import Downloader
from skopd.events import EventBus
from skopd.fanout import Fanout
from skopd.jobs import Scheduler
from skopd.relevance.backend import Relevance
from skopd.store import Store

CONFIG: web.AppKey[Config] = web.AppKey("config", Config)
STORE: web.AppKey[Store] = web.AppKey("store", Store)
SCHEDULER: web.AppKey[Scheduler] = web.AppKey("scheduler", Scheduler)
DOWNLOADER: web.AppKey[Downloader] = web.AppKey("downloader", Downloader)
RELEVANCE: web.AppKey[Relevance] = web.AppKey("relevance", Relevance)
BUS: web.AppKey[EventBus] = web.AppKey("bus", EventBus)
BROWSER: web.AppKey[BrowserPool] = web.AppKey("browser", BrowserPool)
FANOUT: web.AppKey[Fanout] = web.AppKey("fanout", Fanout)
