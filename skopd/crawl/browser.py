"""A shared headless Chromium that renders the pages whose links only JavaScript writes.

One Chromium process serves the daemon: started on the first render (its blocking start in
a thread), started anew after a crash, stopped by close(). Every render gets its own
browser context (own cookies; closing it closes the tab and any popup) and one deadline.

pyppeteer is used as a CDP transport only (connect, sessions). Two of its traits shape this
module: a send future that is cancelled and later answered raises inside its receive loop
and kills the whole connection, so every send is shielded (`_send`); and its Page helpers
cannot be cancelled cleanly, so pages are driven with plain CDP commands.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import msgspec
import pyppeteer  # type: ignore[import-untyped]
from pyppeteer.errors import PyppeteerError  # type: ignore[import-untyped]

from skopd.crawl.proxy import Destinations, ForwardProxy
from skopd.crawl.urls import is_route_fragment

log = logging.getLogger(__name__)

# pyppeteer 2.0 hands websockets 10 a `loop` argument on every connect.
warnings.filterwarnings("ignore", "remove loop argument", DeprecationWarning, r"websockets\.")

RENDERED_CONTENT_TYPE: Final = "text/html; charset=utf-8"  # what Rendered.html is

_FLAGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    "--mute-audio",
    "--hide-scrollbars",
    "--password-store=basic",
    "--use-mock-keychain",
    "--window-size=1280,900",
    # Tabs rendered side by side are background tabs: keep their timers at full speed.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
    # The omnibox popup WebUI and on-device models cost ~150 MB and a renderer each.
    "--disable-features=WebUIOmniboxPopup,WebUIOmniboxAimPopup,OptimizationHints,"
    "OptimizationGuideModelDownloading,OptGuideOnDeviceModel,Translate,MediaRouter",
    "--remote-debugging-port=0",
    # WebRTC would send UDP around the proxy; DNS prefetching would resolve around it.
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--dns-prefetch-disable",
)
# Not loaded when block_resources is on, whatever their URL looks like (/img?id=3, a CDN's
# hashed name): paused by the Fetch domain on their type and failed as blocked.
_BLOCKED_TYPES: Final = ("Image", "Font", "Media")
# Documents are the crawler's to fetch; an <iframe src=x.pdf> would download it whole.
_DOCUMENTS = "pdf doc docx xls xlsx ppt pptx odt ods odp rtf zip".split()
_SOURCE_MAX_BYTES: Final = 2 * 1024 * 1024  # a served HTML larger than this is not handed back

_LAUNCH_TIMEOUT_S: Final = 20.0
_RELAUNCH_AFTER_FAILURE_S: Final = 30.0
_CLOSE_TAB_TIMEOUT_S: Final = 2.0
_EXIT_GRACE_S: Final = 3.0
# Past this (or half the deadline), a parsed page whose `load` never comes is taken as it is.
_LOAD_WAIT_MAX_S: Final = 6.0
_LOAD_IDLE_S: Final = 0.5  # quiet this long after load = settled; outwaits 300 ms timers
_ACTION_IDLE_S: Final = 0.3  # after a scroll or click: observers and throttled handlers
_SETTLE_MAX_S: Final = 2.0
_POLL_S: Final = 0.05
_LONG_REQUEST_S: Final = 2.0  # in flight longer: long-poll, stream or hung tracker; ignored

# Installed before any page script: when did the DOM last gain or lose nodes or links?
_WATCH_JS: Final = """(() => {
  const mark = () => { window.__skopdChanged = performance.now(); };
  mark();
  new MutationObserver(mark).observe(document, {subtree: true, childList: true,
    characterData: true, attributes: true, attributeFilter: ["href", "src", "hidden"]});
})()"""
_SINCE_CHANGE_JS: Final = "performance.now() - (window.__skopdChanged || 0)"
# A link with a fragment comes with its text: [href, text] (the crawler tells which are routes).
_LINKS_JS: Final = """(() => {
  const out = Array.from(document.links, (a) => a.hash.length > 1
    ? [a.href, (a.textContent || a.title || "").replace(/\\s+/g, " ").trim().slice(0, 300)]
    : a.href);
  for (const el of document.querySelectorAll("iframe[src], frame[src], embed[src], object[data]"))
    out.push(el.src || el.data);
  return out.filter((h) => typeof h === "string" || Array.isArray(h));
})()"""
# Scrolls the page and up to ten scrollable boxes to their ends; null if nothing scrolls.
_SCROLL_JS: Final = """(() => {
  const page = document.scrollingElement || document.documentElement;
  const boxes = page && page.scrollHeight > window.innerHeight + 1 ? [page] : [];
  for (const el of document.body ? document.body.querySelectorAll("*") : []) {
    if (boxes.length > 10) break;
    if (el.clientHeight > 0 && el.scrollHeight > el.clientHeight + 16) {
      const y = getComputedStyle(el).overflowY;
      if (y === "auto" || y === "scroll") boxes.push(el);
    }
  }
  let total = 0;
  for (const el of boxes) { el.scrollTop = el.scrollHeight; total += el.scrollHeight; }
  return boxes.length ? total : null;
})()"""
_MORE_LABELS: Final = (
    r"^\W*(?:(?:(?:load|show|view|see|display|get)\s+)?more"
    r"(?:\s+(?:results|items|entries|posts|articles|news|documents|files|events))?"
    r"|next(?:\s+page)?"
    r"|(?:mehr|weitere)(?:\s+(?:laden|anzeigen|ergebnisse|einträge|beiträge|dokumente))?"
    r"|(?:afficher|voir|charger)\s+plus|(?:ver|cargar|mostrar)\s+más"
    r"|(?:carica|mostra)\s+altro|meer\s+(?:laden|tonen)|toon\s+meer)"
    r"(?:\s*\(\d+\))?\W*$"
)
# Clicks the first visible, enabled "load more" control that does not lead to another
# document (a real link is the crawler's to follow); true if one was clicked.
_CLICK_JS: Final = (
    """((pattern) => {
  const wanted = new RegExp(pattern, "iu");
  const dead = (window.__skopdDead ||= new WeakSet());
  const items = document.querySelectorAll(
    'button, a, summary, [role="button"], input[type="button"], input[type="submit"]');
  for (const el of items) {
    if (dead.has(el) || el.disabled || el.getAttribute("aria-disabled") === "true") continue;
    const label = (el.innerText || el.value || el.getAttribute("aria-label") || "")
      .replace(/\\s+/g, " ").trim();
    if (!label || label.length > 40 || !wanted.test(label)) continue;
    if (el.tagName === "A") {
      const href = (el.getAttribute("href") || "").trim();
      if (href && !href.startsWith("#") && !/^javascript:/i.test(href)) continue;
    }
    if (el.type === "submit" && el.form) continue;
    const box = el.getBoundingClientRect();
    if (!box.width || !box.height || getComputedStyle(el).visibility !== "visible") continue;
    window.__skopdLast = el;
    el.scrollIntoView({block: "center"});
    el.click();
    return true;
  }
  return false;
})("""
    + json.dumps(_MORE_LABELS)
    + ")"
)
_DEAD_JS: Final = "window.__skopdLast && window.__skopdDead.add(window.__skopdLast)"
# The DOM as UTF-8 says so itself: its charset declarations are rewritten first, so a reader
# without our Content-Type (a page sink) does not decode it with the page's old encoding.
_HTML_JS: Final = """(() => {
  for (const m of document.querySelectorAll("meta[charset]")) m.setAttribute("charset", "utf-8");
  for (const m of document.querySelectorAll("meta[http-equiv]"))
    if (/^content-type$/i.test(m.httpEquiv)) m.setAttribute("content", "text/html; charset=utf-8");
  return document.documentElement ? document.documentElement.outerHTML : "";
})()"""


class RenderError(Exception):
    """A page could not be rendered: bad URL, browser unavailable, crash or deadline."""


class NotAPage(RenderError):
    """The URL answered with a file to download, not a page."""


class BrowserUnavailable(RenderError):
    """No render can be attempted: disabled, no executable, or Chromium failed to start.

    Its message is "browser unavailable: <reason>", the same for every render refused for
    the same reason (whether it was refused before or after waiting for a tab)."""


class BrowserGone(RenderError):
    """Chromium itself exited during the render (killed, out of memory): not the page's
    doing, so the page may be tried again on the Chromium started after it."""


class Rendered(msgspec.Struct):
    """A rendered page.

    html: the DOM after scripts, scrolls and clicks, UTF-8, its <meta> charset declarations
    saying so (RENDERED_CONTENT_TYPE is its Content-Type).
    links: absolute http(s) URLs without fragment, distinct, in order of appearance, from
    every state the page went through (a "next" button may replace a list).
    routes: the links to client-side routes (`/app/#/docs`, see urls.is_route_fragment),
    with their fragment, as (url, link text), distinct, in order of appearance; their URLs
    without fragment are in `links` too.
    """

    final_url: str
    status: int | None
    html: bytes
    links: list[str]
    screenshot: bytes | None = None
    # The HTML as the server sent it (what a static fetch would have read), when asked for;
    # None if Chromium no longer holds it or it is larger than 2 MB.
    source: bytes | None = None
    routes: list[tuple[str, str]] = msgspec.field(default_factory=list)


class BrowserSettings(Protocol):
    """The `[browser]` section of the configuration."""

    @property
    def enabled(self) -> bool: ...
    @property
    def executable(self) -> str: ...
    @property
    def max_pages(self) -> int: ...
    @property
    def page_timeout_s(self) -> float: ...
    @property
    def block_resources(self) -> bool: ...


class BrowserPool:
    """The daemon's Chromium and at most `max_pages` tabs rendering at once.

    With a `policy`, every connection Chromium makes (page, scripts, XHR, fetch, iframes)
    goes through a ForwardProxy that applies it; without one, Chromium connects by itself.
    """

    def __init__(
        self,
        settings: BrowserSettings,
        *,
        temp_dir: str | None = None,
        policy: Destinations | None = None,
        user_agent: str | None = None,
    ) -> None:
        self._settings = settings
        # Added to Chromium's own User-Agent (without "Headless"), so that sites see who asks.
        self._user_agent = user_agent
        self._temp_dir = temp_dir
        self._proxy = ForwardProxy(policy) if policy is not None else None
        self._slots = asyncio.Semaphore(settings.max_pages)
        self._chromium: _Chromium | None = None
        self._starting: asyncio.Task[_Chromium] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Every process started and not yet reaped, even by a launch nobody awaits any more.
        self._processes = _Processes()
        self._finalizer = weakref.finalize(self, self._processes.kill_all)
        self._closed = False
        self._in_use = 0
        self._launches = 0
        self._crashes = 0
        self._failure: tuple[float, str] | None = None  # last failed launch: when, why

    async def render(
        self,
        url: str,
        *,
        screenshot: bool = False,
        load_more_clicks: int = 5,
        scrolls: int = 5,
        source: bool = False,
    ) -> Rendered:
        """Render `url`; RenderError if it cannot be done within `page_timeout_s`.

        source: also hand back the HTML as served (Rendered.source)."""
        _check_url(url)
        reason = await self.available()
        if reason is not None:
            raise BrowserUnavailable(f"browser unavailable: {reason}")
        async with self._slots:
            self._in_use += 1
            try:
                chromium = await self._current()
                return await self._render_in(
                    chromium, url, _Steps(screenshot, load_more_clicks, scrolls, source)
                )
            finally:
                self._in_use -= 1

    async def available(self) -> str | None:
        """None if renders can be attempted, else why not."""
        if self._closed:
            return "the browser pool is closed"
        if not self._settings.enabled:
            return "disabled in the configuration ([browser] enabled = false)"
        executable = self._settings.executable
        if shutil.which(executable) is None:
            return f"{executable}: no such executable"
        return self._backing_off()

    def _backing_off(self) -> str | None:
        """Why no launch is tried now: the last one failed less than 30 s ago."""
        if self._failure is not None and time.monotonic() - self._failure[0] < (
            _RELAUNCH_AFTER_FAILURE_S
        ):
            return f"Chromium failed to start: {self._failure[1]}"
        return None

    def state(self) -> dict[str, object]:
        chromium = self._chromium
        running = chromium is not None and not chromium.gone.done()
        return {
            "enabled": self._settings.enabled,
            "executable": self._settings.executable,
            "running": running,
            "pid": chromium.process.pid if chromium is not None and running else None,
            "pages_in_use": self._in_use,
            "max_pages": self._settings.max_pages,
            "launches": self._launches,
            "crashes": self._crashes,
            "last_error": self._failure[1] if self._failure else None,
        }

    async def health(self) -> dict[str, object]:
        """What /healthz shows: state is disabled, unavailable, not_launched or running."""
        reason = await self.available()
        state = self.state()
        if not self._settings.enabled:
            label = "disabled"
        elif state["running"]:
            label = "running"
        elif reason is not None:
            label = "unavailable"
        else:
            label = "not_launched"
        profile = self.profile_dir
        processes = 0
        if label == "running" and profile is not None:
            processes = await asyncio.to_thread(_count_marked, _marker(profile))
        return {
            "state": label,
            "reason": reason,
            "pid": state["pid"],
            "processes": processes,
            "pages_in_use": state["pages_in_use"],
            "max_pages": state["max_pages"],
            "launches": state["launches"],
            "crashes": state["crashes"],
            "proxy": self._proxy is not None,
        }

    @property
    def profile_dir(self) -> Path | None:
        """The running Chromium's --user-data-dir (every process of it has it on its cmdline)."""
        return self._chromium.process.profile if self._chromium is not None else None

    async def close(self) -> None:
        """Stop Chromium and every process it left; remove its profile. Idempotent."""
        self._closed = True
        if self._starting is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._starting)
        chromium, self._chromium = self._chromium, None
        if chromium is not None:
            await chromium.stop()
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.to_thread(self._processes.kill_all)
        if self._proxy is not None:
            await self._proxy.close()

    async def _current(self) -> _Chromium:
        if self._closed:
            raise RenderError("the browser pool is closed")
        chromium = self._chromium
        if chromium is not None and not chromium.gone.done():
            return chromium
        if self._starting is None:
            # Renders that waited for a tab while a launch failed do not launch again.
            reason = self._backing_off()
            if reason is not None:
                raise BrowserUnavailable(f"browser unavailable: {reason}")
            self._starting = asyncio.create_task(self._launch())
            self._starting.add_done_callback(_consume)
        try:
            return await asyncio.shield(self._starting)
        except RenderError:
            raise
        except Exception as exc:
            raise BrowserUnavailable(
                f"browser unavailable: Chromium failed to start: {_describe(exc)}"
            ) from exc

    async def _launch(self) -> _Chromium:
        began = time.monotonic()
        try:
            flags: list[str] = []
            if self._proxy is not None:
                # <-loopback> removes Chromium's implicit bypass: loopback goes through too.
                flags += [
                    f"--proxy-server={await self._proxy.start()}",
                    "--proxy-bypass-list=<-loopback>",
                ]
            chromium = await _Chromium.start(
                self._settings.executable, self._temp_dir, self._processes, self._on_gone, flags
            )
        except BaseException as exc:
            self._failure = (time.monotonic(), _describe(exc))
            log.warning("chromium failed to start: %s", _describe(exc))
            raise
        finally:
            self._starting = None
        if self._closed:
            await chromium.stop()
            raise RenderError("the browser pool is closed")
        self._failure = None
        self._launches += 1
        self._chromium = chromium
        log.info(
            "chromium started",
            extra={"pid": chromium.process.pid, "elapsed_s": round(time.monotonic() - began, 2)},
        )
        return chromium

    def _on_gone(self, chromium: _Chromium) -> None:
        if chromium is self._chromium:
            self._chromium = None
        if not chromium.stopping:
            self._crashes += 1
            log.warning("chromium exited unexpectedly", extra={"pid": chromium.process.pid})
        self._spawn(chromium.stop())

    async def _render_in(self, chromium: _Chromium, url: str, steps: _Steps) -> Rendered:
        timeout = self._settings.page_timeout_s
        try:
            async with asyncio.timeout(timeout):
                tab = await self._open_tab(chromium)
                try:
                    return await tab.run(url, steps, timeout)
                finally:
                    await asyncio.shield(self._spawn(self._close_tab(chromium, tab)))
        except TimeoutError:
            raise RenderError(f"{url}: not rendered within {timeout:g} s") from None
        except (PyppeteerError, ConnectionError) as exc:
            if chromium.gone.done() and chromium.lost:
                raise BrowserGone(f"{url}: {chromium.gone.result()}") from exc
            raise RenderError(f"{url}: {_describe(exc)}") from exc

    async def _open_tab(self, chromium: _Chromium) -> _Tab:
        # Opening runs to its end even if the render is cancelled, then closes what it opened:
        # a cancelled CDP call would otherwise leave a tab nobody knows about.
        opening = asyncio.ensure_future(
            _Tab.open(
                chromium,
                block_media=self._settings.block_resources,
                user_agent=_user_agent(chromium.user_agent, self._user_agent),
            )
        )
        try:
            return await asyncio.shield(opening)
        except asyncio.CancelledError:
            opening.add_done_callback(lambda task: self._close_opened(chromium, task))
            raise

    def _close_opened(self, chromium: _Chromium, opening: asyncio.Future[_Tab]) -> None:
        if not opening.cancelled() and opening.exception() is None:
            self._spawn(self._close_tab(chromium, opening.result()))

    async def _close_tab(self, chromium: _Chromium, tab: _Tab) -> None:
        if not await tab.close():
            # A browser that cannot close a tab is wedged: stop it, the next render relaunches.
            self._crashes += 1
            if chromium is self._chromium:
                self._chromium = None
            await chromium.stop()

    def _spawn(self, work: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_consume)
        return task


class _Steps(msgspec.Struct, frozen=True):
    screenshot: bool
    clicks: int
    scrolls: int
    source: bool = False


class _LaunchFailed(Exception):
    pass


class _Process:
    """One Chromium process tree and its temporary folder."""

    def __init__(self, popen: subprocess.Popen[bytes], root: Path) -> None:
        self.popen = popen
        self.root = root
        self.profile = root / "profile"
        self.pid = popen.pid

    def endpoint(self, timeout: float) -> str:
        """The browser's DevTools websocket URL, once Chromium has written it (blocking)."""
        announced = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.popen.poll()
            if status is not None:
                raise _LaunchFailed(f"Chromium exited with status {status}: {self._last_words()}")
            with contextlib.suppress(FileNotFoundError):
                port, _, path = announced.read_text().partition("\n")
                if path.strip():
                    return f"ws://127.0.0.1:{port.strip()}{path.strip()}"
            time.sleep(0.02)
        raise _LaunchFailed(f"Chromium did not open its DevTools port within {timeout:g} s")

    def reap(self, grace: float) -> None:
        """Wait for the browser to exit, then kill whatever is left of it (blocking)."""
        deadline = time.monotonic() + grace
        while not self._exited() and time.monotonic() < deadline:
            time.sleep(0.02)
        # While the leader is not reaped, its process group id cannot be anybody else's:
        # helpers (zygotes, renderers, GPU, network service) all share it. Once reaped (by
        # endpoint()'s poll when Chromium exited early) the id may be reused: its helpers
        # are then found by their --user-data-dir below, never by a signal to the group.
        if self.popen.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait()
        _kill_marked(_marker(self.profile))
        shutil.rmtree(self.root, ignore_errors=True)

    def _exited(self) -> bool:
        if self.popen.returncode is not None:
            return True  # reaped: waitid on its pid could find another child
        try:
            found = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True  # already reaped
        return found is not None

    def _last_words(self) -> str:
        try:
            lines = (self.root / "chromium.log").read_text(errors="replace").splitlines()
        except OSError:
            return "no output"
        return next((line for line in reversed(lines) if line.strip()), "no output")[:300]


class _Processes:
    """The processes a pool started, shared with threads and with its finalizer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[int, _Process] = {}

    def add(self, process: _Process) -> None:
        with self._lock:
            self._live[process.pid] = process

    def reap(self, process: _Process, grace: float) -> None:
        process.reap(grace)
        with self._lock:
            self._live.pop(process.pid, None)

    def kill_all(self) -> None:
        with self._lock:
            left = list(self._live.values())
        for process in left:
            with contextlib.suppress(OSError):
                process.popen.kill()
            self.reap(process, _EXIT_GRACE_S)


def _spawn_chromium(
    executable: str, temp_dir: str | None, processes: _Processes, flags: list[str]
) -> _Process:
    root = Path(tempfile.mkdtemp(prefix=_ROOT_PREFIX, dir=temp_dir))
    (root / "owner").write_text(_process_identity(os.getpid()) or "")
    command = [executable, *_FLAGS, *flags, f"--user-data-dir={root / 'profile'}", "about:blank"]
    try:
        with open(root / "chromium.log", "wb") as output:
            popen = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                start_new_session=True,  # one process group: nothing of it outlives close()
            )
    except OSError:
        shutil.rmtree(root, ignore_errors=True)
        raise
    process = _Process(popen, root)
    processes.add(process)
    return process


class _Chromium:
    """One running Chromium and the CDP connection to it."""

    def __init__(self, process: _Process, browser: Any, processes: _Processes) -> None:
        self.process = process
        self.browser = browser
        self.connection = browser._connection
        self.gone: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.stopping = False
        self.lost = False  # it went away by itself (killed, crashed), not stopped by us
        self.user_agent = ""
        self._processes = processes
        self._stopped: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls,
        executable: str,
        temp_dir: str | None,
        processes: _Processes,
        on_gone: Callable[[_Chromium], None],
        flags: list[str],
    ) -> _Chromium:
        process = await asyncio.to_thread(_spawn_chromium, executable, temp_dir, processes, flags)
        try:
            endpoint = await asyncio.to_thread(process.endpoint, _LAUNCH_TIMEOUT_S)
            async with asyncio.timeout(_LAUNCH_TIMEOUT_S):
                browser = await pyppeteer.connect(browserWSEndpoint=endpoint)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(processes.reap, process, 0))
            raise
        chromium = cls(process, browser, processes)
        try:
            async with asyncio.timeout(_LAUNCH_TIMEOUT_S):
                version = await _send(chromium.connection, "Browser.getVersion")
            chromium.user_agent = str(version.get("userAgent", ""))
        except BaseException:
            await asyncio.shield(chromium.stop())
            raise
        chromium.connection._recv_fut.add_done_callback(_consume)
        browser.on("disconnected", lambda: chromium._disconnected(on_gone))
        return chromium

    async def stop(self) -> None:
        if self._stopped is None:
            self._stopped = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopped)

    async def _stop(self) -> None:
        self.stopping = True
        if not self.gone.done():
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_CLOSE_TAB_TIMEOUT_S):
                    await _send(self.connection, "Browser.close")
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_CLOSE_TAB_TIMEOUT_S):
                await self.connection.dispose()
        await asyncio.to_thread(self._processes.reap, self.process, _EXIT_GRACE_S)

    def _disconnected(self, on_gone: Callable[[_Chromium], None]) -> None:
        if not self.gone.done():
            self.lost = not self.stopping
            reason = "the browser was stopped" if self.stopping else "Chromium exited"
            self.gone.set_result(f"{reason} during the render")
            on_gone(self)


class _Tab:
    """One page being rendered, in a browser context of its own."""

    def __init__(self, chromium: _Chromium, context: str, target: str, session: Any) -> None:
        self._chromium = chromium
        self._context = context
        self._session = session
        self._frame = target  # a page's main frame has its target's id
        self.crashed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._navigating = False
        self._dom_ready = asyncio.Event()
        self._loaded = asyncio.Event()
        self._status: int | None = None
        self._inflight: dict[str, float] = {}
        self._last_network = 0.0
        self._links: dict[str, None] = {}
        self._routes: dict[str, str] = {}  # route link -> its text
        self._soft_end = 0.0
        self._blocked: tuple[str, ...] = ()  # resource types failed on sight
        self._holding = False  # navigations away from the rendered page are aborted
        self._document: str | None = None  # the request id of the main document

    @classmethod
    async def open(cls, chromium: _Chromium, *, block_media: bool, user_agent: str) -> _Tab:
        connection = chromium.connection
        reply = await _send(connection, "Target.createBrowserContext")
        context: str = reply["browserContextId"]
        try:
            await _send(
                connection,
                "Browser.setDownloadBehavior",
                {"behavior": "deny", "browserContextId": context},
            )
            reply = await _send(
                connection,
                "Target.createTarget",
                {"url": "about:blank", "browserContextId": context},
            )
            target: str = reply["targetId"]
            session = await connection.createSession({"targetId": target, "type": "page"})
            tab = cls(chromium, context, target, session)
            tab._blocked = _BLOCKED_TYPES if block_media else ()
            tab._listen()
            patterns = [p for ext in _DOCUMENTS for p in (f"*.{ext}", f"*.{ext}?*")]
            override = {"userAgent": user_agent}
            agent = [_send(session, "Network.setUserAgentOverride", override)] if user_agent else []
            # Paused (and failed) by type: set before the first request, like the rest.
            paused = [tab._intercept()] if tab._blocked else []
            await asyncio.gather(
                *agent,
                *paused,
                _send(session, "Page.enable"),
                _send(session, "Page.setLifecycleEventsEnabled", {"enabled": True}),
                _send(session, "Network.enable"),
                _send(session, "Network.setBlockedURLs", {"urls": patterns}),
                _send(session, "Page.addScriptToEvaluateOnNewDocument", {"source": _WATCH_JS}),
            )
        except BaseException:
            _fire(connection, "Target.disposeBrowserContext", {"browserContextId": context})
            raise
        return tab

    async def close(self) -> bool:
        """Close the tab and its context; False if the browser did not manage to."""
        if self._chromium.gone.done():
            return True
        try:
            async with asyncio.timeout(_CLOSE_TAB_TIMEOUT_S):
                await _send(
                    self._chromium.connection,
                    "Target.disposeBrowserContext",
                    {"browserContextId": self._context},
                )
        except (TimeoutError, PyppeteerError, ConnectionError) as exc:
            if self._chromium.gone.done():
                return True
            log.warning("chromium could not close a tab: %s", _describe(exc))
            return False
        return True

    async def run(self, url: str, steps: _Steps, timeout: float) -> Rendered:
        """The render, cut short with RenderError if the page or the browser crashes."""
        work = asyncio.ensure_future(self._render(url, steps, timeout))
        failures = (self.crashed, self._chromium.gone)
        watched: set[asyncio.Future[Any]] = {work, *failures}
        try:
            await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not work.done():
                work.cancel()
                await asyncio.wait({work})
        if not work.cancelled() and work.exception() is None:
            return work.result()  # finished in the same pass as a crash: it is whole
        if self.crashed.done():
            raise RenderError(f"{url}: {self.crashed.result()}")
        gone = self._chromium.gone
        if gone.done():
            kind = BrowserGone if self._chromium.lost else RenderError
            raise kind(f"{url}: {gone.result()}")
        return work.result()

    async def _render(self, url: str, steps: _Steps, timeout: float) -> Rendered:
        loop = asyncio.get_running_loop()
        began = loop.time()
        # Scrolls and clicks stop early enough to leave time to read the page.
        self._soft_end = began + timeout - max(1.5, 0.2 * timeout)
        await self._navigate(url, began + min(timeout / 2, _LOAD_WAIT_MAX_S))
        await self._settle(_LOAD_IDLE_S)
        await self._collect()
        await self._hold_navigations()
        await self._scroll(steps.scrolls)
        await self._click(steps.clicks)
        html = await self._eval(_HTML_JS)
        await self._collect()
        final_url = await self._eval("location.href")
        shot = await self._screenshot() if steps.screenshot else None
        return Rendered(
            final_url=final_url if isinstance(final_url, str) else url,
            status=self._status,
            html=(html if isinstance(html, str) else "").encode("utf-8", "replace"),
            links=list(self._links),
            routes=list(self._routes.items()),
            screenshot=shot,
            source=await self._source() if steps.source else None,
        )

    async def _source(self) -> bytes | None:
        """The main document's body as the server sent it, from Chromium's buffers."""
        if self._document is None:
            return None
        try:
            reply = await _send(
                self._session, "Network.getResponseBody", {"requestId": self._document}
            )
        except PyppeteerError:
            return None  # evicted, or never kept (a download, an error page)
        body = reply.get("body")
        if not isinstance(body, str):
            return None
        data = base64.b64decode(body) if reply.get("base64Encoded") else body.encode("utf-8")
        return data if len(data) <= _SOURCE_MAX_BYTES else None

    async def _navigate(self, url: str, give_up_load: float) -> None:
        """Open `url`; wait for its load event, or past `give_up_load` for DOMContentLoaded.

        A subresource that never finishes (a tracker behind a firewall) holds back `load`
        for ever; a document that never finishes parsing holds back both: the deadline ends it.
        """
        self._navigating = True
        reply = await _send(self._session, "Page.navigate", {"url": url})
        if reply.get("isDownload"):
            raise NotAPage(f"{url}: a download, not a page")
        if reply.get("errorText"):
            raise RenderError(f"{url}: {reply['errorText']}")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(give_up_load):
                await self._loaded.wait()
        await self._dom_ready.wait()

    async def _settle(self, idle: float = _ACTION_IDLE_S) -> None:
        """Wait until no request is in flight and the DOM has not changed for `idle` s."""
        # What a scroll or click sets off starts a frame later: give it `idle` to show.
        self._last_network = max(self._last_network, time.monotonic())
        loop = asyncio.get_running_loop()
        end = min(loop.time() + _SETTLE_MAX_S, self._soft_end)
        while loop.time() < end:
            if self._network_quiet(time.monotonic(), idle):
                try:
                    since = await self._eval(_SINCE_CHANGE_JS)
                except (RenderError, PyppeteerError):
                    since = None  # a document being replaced: not settled
                if isinstance(since, int | float) and since >= idle * 1000:
                    return
            await asyncio.sleep(_POLL_S)

    def _network_quiet(self, now: float, idle: float) -> bool:
        if now - self._last_network < idle:
            return False
        return all(now - began > _LONG_REQUEST_S for began in self._inflight.values())

    async def _scroll(self, limit: int) -> None:
        previous = None
        for _ in range(limit):
            if asyncio.get_running_loop().time() >= self._soft_end:
                return
            total = await self._eval(_SCROLL_JS)
            if total is None or total == previous:
                return  # nothing to scroll, or the last scroll brought nothing
            previous = total
            await self._settle()
            await self._collect()

    async def _click(self, limit: int) -> None:
        for _ in range(limit):
            if asyncio.get_running_loop().time() >= self._soft_end:
                return
            if not await self._eval(_CLICK_JS):
                return
            known = len(self._links) + len(self._routes)
            await self._settle()
            await self._collect()
            if len(self._links) + len(self._routes) == known:
                await self._eval(_DEAD_JS)  # brought nothing: never click it again

    async def _collect(self) -> None:
        found = await self._eval(_LINKS_JS)
        for entry in found if isinstance(found, list) else ():
            text = None
            if isinstance(entry, list) and len(entry) == 2:
                entry, text = entry
            if isinstance(entry, str) and entry.startswith(("http://", "https://")):
                base, _, fragment = entry.partition("#")
                self._links.setdefault(base, None)
                if isinstance(text, str) and is_route_fragment(fragment):
                    self._routes.setdefault(entry, text)

    async def _hold_navigations(self) -> None:
        # A click or script that would replace the document (or leave the site) is aborted,
        # so what was rendered so far stays to be read.
        self._holding = True
        await self._intercept()

    def _intercept(self) -> Awaitable[Any]:
        """Fetch.enable for the blocked types (and documents, once held): each call replaces
        the patterns before. Only these requests are paused; scripts, XHR and fetch never."""
        types = [*self._blocked, "Document"] if self._holding else list(self._blocked)
        patterns = [
            {"urlPattern": "*", "resourceType": t, "requestStage": "Request"} for t in types
        ]
        return _send(self._session, "Fetch.enable", {"patterns": patterns})

    async def _screenshot(self) -> bytes:
        await self._eval("window.scrollTo(0, 0)")
        reply = await _send(self._session, "Page.captureScreenshot", {"format": "png"})
        return base64.b64decode(reply["data"])

    async def _eval(self, expression: str) -> Any:
        reply = await _send(
            self._session, "Runtime.evaluate", {"expression": expression, "returnByValue": True}
        )
        error = reply.get("exceptionDetails")
        if error:
            raise RenderError(f"page script failed: {error.get('text', 'exception')}")
        return reply.get("result", {}).get("value")

    # Event handlers run inside pyppeteer's receive loop: they must never raise.

    def _listen(self) -> None:
        on = self._session.on
        on("Page.lifecycleEvent", self._on_lifecycle)
        on("Network.requestWillBeSent", self._on_request)
        on("Network.loadingFinished", self._on_request_end)
        on("Network.loadingFailed", self._on_request_end)
        on("Network.responseReceived", self._on_response)
        on("Page.javascriptDialogOpening", self._on_dialog)
        on("Inspector.targetCrashed", self._on_crash)
        on("Fetch.requestPaused", self._on_paused)

    def _on_lifecycle(self, event: dict[str, Any]) -> None:
        if self._navigating and event.get("frameId") == self._frame:
            name = event.get("name")
            if name == "DOMContentLoaded":
                self._dom_ready.set()
            elif name == "load":
                self._dom_ready.set()
                self._loaded.set()

    def _on_request(self, event: dict[str, Any]) -> None:
        now = time.monotonic()
        self._inflight.setdefault(str(event.get("requestId")), now)
        self._last_network = now

    def _on_request_end(self, event: dict[str, Any]) -> None:
        self._inflight.pop(str(event.get("requestId")), None)
        self._last_network = time.monotonic()

    def _on_response(self, event: dict[str, Any]) -> None:
        if event.get("type") == "Document" and event.get("frameId") == self._frame:
            status = event.get("response", {}).get("status")
            self._status = int(status) if isinstance(status, int | float) else None
            self._document = str(event.get("requestId"))

    def _on_dialog(self, _event: dict[str, Any]) -> None:
        _fire(self._session, "Page.handleJavaScriptDialog", {"accept": False})

    def _on_paused(self, event: dict[str, Any]) -> None:
        # Every paused request is answered at once: none waits, none is let through.
        blocked = event.get("resourceType") in self._blocked
        reason = "BlockedByClient" if blocked else "Aborted"
        params = {"requestId": event.get("requestId"), "errorReason": reason}
        _fire(self._session, "Fetch.failRequest", params)

    def _on_crash(self, _event: dict[str, Any]) -> None:
        if not self.crashed.done():
            self.crashed.set_result("the page crashed")


async def _send(target: Any, method: str, params: dict[str, Any] | None = None) -> Any:
    """A CDP command whose future is never cancelled (see the module docstring)."""
    future = target.send(method, params or {})
    future.add_done_callback(_consume)
    reply = await asyncio.shield(future)
    if reply is None:  # pyppeteer's answer to a send on a connection that just closed
        raise ConnectionError(f"{method}: the connection to Chromium is closed")
    return reply


def _fire(target: Any, method: str, params: dict[str, Any]) -> None:
    with contextlib.suppress(PyppeteerError, ConnectionError):
        target.send(method, params).add_done_callback(_consume)


def _consume(future: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen: the caller reports failures its own way."""
    if not future.cancelled():
        future.exception()


def _user_agent(chromium: str, addition: str | None) -> str:
    """Chromium's User-Agent as a desktop Chrome's, plus `addition`; "" keeps Chromium's."""
    if not addition or not chromium:
        return ""
    return f"{chromium.replace('HeadlessChrome/', 'Chrome/')} {addition}"


def _check_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        usable = False
    if not usable:
        raise RenderError(f"{url!r}: only http and https URLs are rendered")


_ROOT_PREFIX = "skopd-chromium-"


def _process_identity(pid: int) -> str | None:
    """'pid start-time' of a live process (start time tells a reused pid apart), else None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else f"{pid} {fields[19]}"


def reap_orphans(temp_dir: str | None = None) -> int:
    """Kill the Chromium of skopd daemons that died without closing it (SIGKILL, OOM kill)
    and remove their folders; the number of folders removed (blocking: reads /proc).

    Chromium runs in its own session so that a pool can kill it as one group; the price is
    that it outlives a daemon killed outright. Each folder names the daemon that made it."""
    removed = 0
    base = Path(temp_dir or tempfile.gettempdir())
    for root in base.glob(f"{_ROOT_PREFIX}*"):
        try:
            owner = (root / "owner").read_text().strip()
        except OSError:
            continue  # not ours to judge: made by an older skopd or being made right now
        pid = owner.partition(" ")[0]
        if pid.isdigit() and _process_identity(int(pid)) == owner:
            continue  # its daemon is alive
        _kill_marked(_marker(root / "profile"))
        # Chromium's singleton socket lives in a folder of its own, found through a link.
        with contextlib.suppress(OSError):
            socket_dir = Path(os.readlink(root / "profile" / "SingletonSocket")).parent
            if socket_dir.name.startswith("org.chromium.Chromium."):
                shutil.rmtree(socket_dir, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
        removed += 1
    return removed


def _marker(profile: Path) -> bytes:
    return f"--user-data-dir={profile}".encode()


def _marked(marker: bytes) -> list[int]:
    """Processes with `marker` among their arguments (blocking: reads /proc).

    Chromium's helpers rewrite their command line as one space-separated string.
    """
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                arguments = f.read().replace(b"\0", b" ") + b" "
        except OSError:
            continue
        if marker + b" " in arguments:
            found.append(int(entry.name))
    return found


def _count_marked(marker: bytes) -> int:
    return len(_marked(marker))


def _kill_marked(marker: bytes) -> None:
    """SIGKILL every process with `marker` among its arguments (blocking)."""
    for _ in range(50):
        found = _marked(marker)
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if not found:
            return
        time.sleep(0.02)


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
