"""A JavaScript application ("Riverton Portal") whose document links only scripts write.

``make_jsapp()`` returns a fresh aiohttp app; ``app[HITS]`` counts requests per ``path_qs``,
``app[AGENTS]`` holds the User-Agent headers seen, ``app[ENGINES]`` counts requests per
``(path_qs, "browser" | "http")`` (Chromium's User-Agent has "Chrome/", the crawler's not).
Plain inline JavaScript, no external resources. ``EXPECTED[path]`` lists the links a
render of ``path`` must find; none of them is in the HTML the server sends.

  /static       plain HTML, no script: /docs/static-1.pdf, /docs/static-2.pdf and an
                <img src="/img/logo.png"> (a render that blocks images never asks for it)
  /timer        a setTimeout of 300 ms writes /docs/timer-1.pdf
  /fetch        fetch("/api/fetch") (answered after 100 ms) writes /docs/fetch-1..3.pdf
  /more         /docs/more-1.pdf; each click on "Load more" fetches the next item:
                /docs/more-2.pdf, then /docs/more-3.pdf and the button goes (two clicks).
                Before it, a "Show more" button whose handler tries to leave the site
                (location.href = OFFSITE) and a real link "Next" to OFFSITE
  /spa/, /spa/* one shell for every route; at /spa/ the router pushState()s to /spa/docs
                after 100 ms; /spa/docs renders /docs/route-1.pdf, /docs/route-2.pdf
  /shell/, /shell/*  one shell (the same bytes) for every path, as servers of pushState apps
                answer: its script shows the view of location.pathname; /shell/ links
                /shell/minutes and /shell/budget, whose views link SHELL_DOCS
  /records      plain HTML, no script: links /shell/minutes and /shell/budget (a site
                half static, half app: its host never goes straight to the browser)
  /hashapp/     a hash-routed app: one URL, its script shows the view of location.hash (an
                empty hash is replaced by "#/") and shows it again on each hashchange.
                #/ links #/documents, #!/minutes, #top and #section-2 (places on the
                page); #/documents links #/documents/2024 and #/documents/2023, whose views
                link HASH_DOCS' /docs/hash-2024-*.pdf and /docs/hash-2023-1.pdf;
                #!/minutes links #!/minutes/march, which links /docs/hash-march.pdf.
                Unknown routes show "Not found"
  /anchors      plain HTML, no script: links to places on itself (#top, #section-2), to
                a route-like #/archive, to /static#minutes and /static#/minutes
  /lazy         a 3,000 px list; an IntersectionObserver at its end fetches one more
                batch per scroll: /docs/lazy-1.pdf, /docs/lazy-2.pdf, /docs/lazy-3.pdf
  /alert        alert() and confirm() (which block scripts until answered), then
                /docs/alert-1.pdf
  /stuck        /docs/stuck-1.pdf, then a synchronous <script src="/never.js"> that is never
                answered: neither DOMContentLoaded nor load ever fires
  /tracker      an async <script src="/never.js">: parsed (DOMContentLoaded writes
                /docs/tracker-1.pdf) but `load` never fires
  /latin        served as ISO-8859-1 (header and <meta>): "Protokolle März"; a script
                writes /docs/latin-1.pdf, "Sitzung März"
  /moved        302 to /static
  /silent       never answers, not even with headers
  /             the portal's home, plain HTML without a script: links to /static, /timer,
                /fetch, /more, /spa/, /lazy and /chain/1
  /chain/N      N = 1..CHAIN: a shell linking /chain/N+1 in its HTML; its script fetches
                /api/chain?n=N (answered after 0.3 s) and writes /docs/chain-N.pdf
  /chains/S/N   N = 1..CHAIN: the chain of series S, apart from every other series' (its
                own counts): its script fetches /api/chain?series=S&n=N and writes
                /docs/S-chain-N.pdf; its HTML links /chains/S/N+1
  /mixed/shell/N  N = 1, 2: a shell whose script writes /docs/mixed-N.pdf and a link to the
                next page (/mixed/shell/2, then /mixed/plain/1); nothing in its HTML
  /mixed/plain/N  N = 1..MIXED_PLAIN: plain HTML, no script, linking /docs/plain-N.pdf and
                /mixed/plain/N+1
  /inert/N      N = 1..INERT: a shell (empty <div id="root">, a script that writes nothing)
                whose HTML links /inert/N+1 and /docs/inert-N.pdf: a render finds no more
  /hang/T       /docs/hang-T.pdf, then <script src="/never.js?for=T">: never loads (each
                render asks for that script once; a static fetch never does)
  /to-hang/T    plain HTML linking /hang/T
  /media        an <img> at /picture?id=3 and at /photo.JPG, a font at /typeface?f=1, a
                <video> at /clip?v=1 (none has a blockable extension), and a script that
                fetch()es /api/fetch and writes its links (as /fetch does)
  /docs/*.pdf   a small PDF of its own (distinct bytes per name)
/never.js and /silent are held open until the app shuts down.
"""

from __future__ import annotations

import asyncio
import base64
import collections
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler

HITS: Final = web.AppKey[collections.Counter[str]]("jsapp_hits")
ENGINES: Final = web.AppKey[collections.Counter[tuple[str, str]]]("jsapp_engines")
AGENTS: Final = web.AppKey[set[str]]("jsapp_agents")  # User-Agent headers seen
_STOPPING: Final = web.AppKey[asyncio.Event]("jsapp_stopping")

OFFSITE: Final = "http://127.0.0.1:9/elsewhere"  # the discard port: nothing answers
EXPECTED: Final = {
    "/static": ["/docs/static-1.pdf", "/docs/static-2.pdf"],
    "/timer": ["/docs/timer-1.pdf"],
    "/fetch": ["/docs/fetch-1.pdf", "/docs/fetch-2.pdf", "/docs/fetch-3.pdf"],
    "/more": ["/docs/more-1.pdf", "/docs/more-2.pdf", "/docs/more-3.pdf"],
    "/spa/": ["/docs/route-1.pdf", "/docs/route-2.pdf"],
    "/lazy": ["/docs/lazy-1.pdf", "/docs/lazy-2.pdf", "/docs/lazy-3.pdf"],
    "/tracker": ["/docs/tracker-1.pdf"],
    "/alert": ["/docs/alert-1.pdf"],
}
# The documents of /hashapp/, each shown only by a route two levels deep.
HASH_DOCS: Final = sorted(
    {
        "/docs/hash-2024-1.pdf",
        "/docs/hash-2024-2.pdf",
        "/docs/hash-2023-1.pdf",
        "/docs/hash-march.pdf",
    }
)
# The routes a crawl of /hashapp/ renders (#/ is where the app sends an empty hash).
HASH_ROUTES: Final = (
    "#/",
    "#/documents",
    "#!/minutes",
    "#/documents/2024",
    "#/documents/2023",
    "#!/minutes/march",
)
# What a crawl of /shell/ finds: each only in the view of its own path.
SHELL_DOCS: Final = ("/docs/shell-minutes-2024.pdf", "/docs/shell-budget-2024.pdf")
CHAIN: Final = 8
MIXED_PLAIN: Final = 6
INERT: Final = 6
# The documents only a browser finds from the home page (EXPECTED less /static and /more's
# first item, which the HTML has).
JS_ONLY: Final = sorted(
    {doc for path in ("/timer", "/fetch", "/more", "/spa/", "/lazy") for doc in EXPECTED[path]}
    - {"/docs/more-1.pdf"}
)
_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
# Writes <li><a href=...>title</a></li> into #list; shared by the pages below.
_ADD = """<script>
function addLink(href, title) {
  const li = document.createElement("li");
  const a = document.createElement("a");
  a.href = href; a.textContent = title;
  li.append(a); document.getElementById("list").append(li);
}
</script>"""


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{title}</title>"
        f"</head><body><h1>{title}</h1>{body}</body></html>"
    )


_PAGES: Final = {
    "/": _page(
        "Riverton Portal",
        "<p>Welcome to the portal of the town of Riverton.</p><ul>"
        + "".join(
            f'<li><a href="{href}">{title}</a></li>'
            for href, title in (
                ("/static", "Council minutes"),
                ("/timer", "Notices"),
                ("/fetch", "Budget"),
                ("/more", "Archive"),
                ("/spa/", "Documents portal"),
                ("/lazy", "News"),
                ("/chain/1", "Reports"),
            )
        )
        + "</ul>",
    ),
    "/static": _page(
        "Council minutes",
        '<img src="/img/logo.png" alt="Riverton"><ul id="list">'
        '<li><a href="/docs/static-1.pdf">Minutes January</a></li>'
        '<li><a href="/docs/static-2.pdf">Minutes February</a></li></ul>',
    ),
    "/timer": _page(
        "Notices",
        '<ul id="list"></ul>'
        + _ADD
        + '<script>setTimeout(() => addLink("/docs/timer-1.pdf", "Notice 1"), 300);</script>',
    ),
    "/fetch": _page(
        "Budget",
        '<ul id="list"></ul>'
        + _ADD
        + """<script>
fetch("/api/fetch").then((r) => r.json())
  .then((items) => items.forEach((i) => addLink(i.href, i.title)));
</script>""",
    ),
    "/more": _page(
        "Archive",
        f'<ul id="list"><li><a href="/docs/more-1.pdf">Item 1</a></li></ul>'
        f'<p><a href="{OFFSITE}">Next</a></p>'
        '<button id="away" type="button">Show more</button>'
        '<button id="more" type="button">Load more</button>'
        + _ADD
        + f"""<script>
let page = 1;
document.getElementById("away").onclick = () => {{ location.href = "{OFFSITE}"; }};
document.getElementById("more").onclick = async (event) => {{
  const button = event.currentTarget;
  page += 1;
  const item = await (await fetch("/api/more?page=" + page)).json();
  addLink(item.href, item.title);
  if (page >= 3) button.remove();
}};
</script>""",
    ),
    "/spa/": _page(
        "Portal",
        '<nav><a href="/spa/about">About</a></nav><div id="app"></div>'
        + """<script>
const views = {
  "/spa/docs": '<h2>Documents</h2><ul><li><a href="/docs/route-1.pdf">Plan</a></li>'
    + '<li><a href="/docs/route-2.pdf">Report</a></li></ul>',
  "/spa/about": "<p>About the portal.</p>",
};
function show() {
  document.getElementById("app").innerHTML = views[location.pathname] || "<p>Welcome</p>";
}
show();
if (location.pathname === "/spa/") {
  setTimeout(() => { history.pushState({}, "", "/spa/docs"); show(); }, 100);
}
addEventListener("popstate", show);
</script>""",
    ),
    "/records": _page(
        "Town records",
        "<p>"
        + "The records of the town council, kept since 1901. " * 8
        + '</p><ul><li><a href="/shell/minutes">Council minutes</a></li>'
        '<li><a href="/shell/budget">Budget</a></li></ul>',
    ),
    "/shell/": _page(
        "Town records",
        '<div id="app"></div>'
        + """<script>
const views = {
  "/shell/": '<ul><li><a href="/shell/minutes">Council minutes</a></li>'
    + '<li><a href="/shell/budget">Budget</a></li></ul>',
  "/shell/minutes": '<a href="/docs/shell-minutes-2024.pdf">Council minutes 2024</a>',
  "/shell/budget": '<a href="/docs/shell-budget-2024.pdf">Budget 2024</a>',
};
document.getElementById("app").innerHTML = views[location.pathname] || "<p>Not found</p>";
</script>""",
    ),
    "/hashapp/": _page(
        "Records",
        '<div id="view"></div>'
        + """<script>
const views = {
  "/": [["#/documents", "Documents"], ["#!/minutes", "Council minutes"],
    ["#top", "Back to top"], ["#section-2", "About the records"]],
  "/documents": [["#/documents/2024", "Documents 2024"], ["#/documents/2023", "Documents 2023"],
    ["#/", "Home"]],
  "/documents/2024": [["/docs/hash-2024-1.pdf", "Budget 2024"],
    ["/docs/hash-2024-2.pdf", "Annual report 2024"], ["#/documents", "All documents"]],
  "/documents/2023": [["/docs/hash-2023-1.pdf", "Budget 2023"], ["#/", "Home"]],
  "!/minutes": [["#!/minutes/march", "Minutes of March"], ["#/", "Home"]],
  "!/minutes/march": [["/docs/hash-march.pdf", "Council minutes March"]],
};
function show() {
  const view = views[location.hash.slice(1)];
  const root = document.getElementById("view");
  root.textContent = "";
  if (!view) { root.textContent = "Not found"; return; }
  const list = document.createElement("ul");
  for (const [href, title] of view) {
    const a = document.createElement("a");
    a.href = href; a.textContent = title;
    const li = document.createElement("li"); li.append(a); list.append(li);
  }
  root.append(list);
}
if (!location.hash) location.replace("#/");
show();
addEventListener("hashchange", show);
</script>""",
    ),
    "/anchors": _page(
        "Council archive",
        '<p id="top">'
        + "The archive keeps the council's minutes and reports of past years. " * 20
        + '</p><ul><li><a href="#section-2">Where the records are</a></li>'
        '<li><a href="#/archive">Archive</a></li>'
        '<li><a href="/static#minutes">Minutes</a></li>'
        '<li><a href="/static#/minutes">Minutes (app)</a></li></ul>'
        '<h2 id="section-2">Where the records are</h2><p>'
        + "Older records are kept at the town hall. " * 20
        + '</p><p><a href="#top">Back to top</a></p>',
    ),
    "/lazy": _page(
        "News",
        '<ul id="list"></ul><div id="end">Loading…</div>'
        + _ADD
        + """<script>
function filler(count) {
  for (let i = 0; i < count; i++) {
    const li = document.createElement("li");
    li.style.height = "60px"; li.textContent = "Story";
    document.getElementById("list").append(li);
  }
}
filler(50);
let batch = 0, busy = false;
new IntersectionObserver(async (entries) => {
  if (!entries[0].isIntersecting || busy || batch >= 3) return;
  busy = true; batch += 1;
  const item = await (await fetch("/api/lazy?batch=" + batch)).json();
  addLink(item.href, item.title); filler(50);
  busy = false;
  if (batch >= 3) document.getElementById("end").textContent = "The end";
}).observe(document.getElementById("end"));
</script>""",
    ),
    "/alert": _page(
        "Welcome",
        '<ul id="list"></ul>'
        + _ADD
        + """<script>
alert("Welcome to the portal");
if (!confirm("Accept cookies?")) addLink("/docs/alert-1.pdf", "Cookie-free archive");
</script>""",
    ),
    "/stuck": _page(
        "Stuck",
        '<ul id="list"><li><a href="/docs/stuck-1.pdf">Stuck 1</a></li></ul>'
        '<script src="/never.js"></script><p>Never parsed</p>',
    ),
    "/tracker": _page(
        "Tracked",
        '<ul id="list"></ul>'
        + _ADD
        + """<script async src="/never.js"></script><script>
document.addEventListener("DOMContentLoaded",
  () => addLink("/docs/tracker-1.pdf", "Tracker 1"));
</script>""",
    ),
}


def make_jsapp(robots: str | None = None) -> web.Application:
    """The app; with `robots`, /robots.txt answers that text (else 404)."""
    app = web.Application(middlewares=[_count])
    app[HITS] = collections.Counter()
    app[ENGINES] = collections.Counter()
    app[AGENTS] = set()
    app[_STOPPING] = asyncio.Event()
    app.on_shutdown.append(_release)
    app.router.add_get("/spa/{route:.*}", _spa)
    app.router.add_get("/hashapp/", _html)
    app.router.add_get("/shell/{route:.*}", _shell)
    if robots is not None:

        async def robots_txt(request: web.Request) -> web.Response:
            return web.Response(text=robots, content_type="text/plain")

        app.router.add_get("/robots.txt", robots_txt)
    app.router.add_get("/api/fetch", _api_fetch)
    app.router.add_get("/api/more", _api_more)
    app.router.add_get("/api/lazy", _api_lazy)
    app.router.add_get("/never.js", _never)
    app.router.add_get("/silent", _never)
    app.router.add_get("/moved", _moved)
    app.router.add_get("/latin", _latin)
    app.router.add_get("/img/logo.png", _logo)
    app.router.add_get("/chain/{n}", _chain)
    app.router.add_get("/chains/{series}/{n}", _chain)
    app.router.add_get("/api/chain", _api_chain)
    app.router.add_get("/mixed/shell/{n}", _mixed_shell)
    app.router.add_get("/mixed/plain/{n}", _mixed_plain)
    app.router.add_get("/inert/{n}", _inert)
    app.router.add_get("/hang/{tag}", _hang)
    app.router.add_get("/to-hang/{tag}", _to_hang)
    app.router.add_get("/media", _media)
    for path in ("/picture", "/photo.JPG", "/typeface", "/clip"):
        app.router.add_get(path, _logo)
    app.router.add_get("/docs/{name}", _doc)
    app.router.add_get("/", _html)
    app.router.add_get("/{page}", _html)
    return app


@web.middleware
async def _count(request: web.Request, handler: Handler) -> web.StreamResponse:
    request.app[HITS][request.path_qs] += 1
    engine = "browser" if "Chrome/" in request.headers.get("User-Agent", "") else "http"
    request.app[ENGINES][request.path_qs, engine] += 1
    request.app[AGENTS].add(request.headers.get("User-Agent", ""))
    return await handler(request)


async def _release(app: web.Application) -> None:
    app[_STOPPING].set()


_LATIN: Final = (
    '<!doctype html><html lang=de><head><meta charset="iso-8859-1"><title>Protokolle März'
    '</title></head><body><h1>Protokolle März</h1><ul id="list"></ul>'
    + _ADD
    + '<script>addLink("/docs/latin-1.pdf", "Sitzung März");</script></body></html>'
)


async def _latin(request: web.Request) -> web.Response:
    return web.Response(
        body=_LATIN.encode("iso-8859-1"), content_type="text/html", charset="iso-8859-1"
    )


async def _html(request: web.Request) -> web.Response:
    body = _PAGES.get(request.path)
    if body is None:
        raise web.HTTPNotFound(text="no such page")
    return web.Response(text=body, content_type="text/html")


async def _shell(request: web.Request) -> web.Response:
    return web.Response(text=_PAGES["/shell/"], content_type="text/html")


async def _spa(request: web.Request) -> web.Response:
    return web.Response(text=_PAGES["/spa/"], content_type="text/html")


async def _api_fetch(request: web.Request) -> web.Response:
    await asyncio.sleep(0.1)
    items = [{"href": f"/docs/fetch-{n}.pdf", "title": f"Budget {n}"} for n in (1, 2, 3)]
    return web.json_response(items)


async def _api_more(request: web.Request) -> web.Response:
    page = int(request.query.get("page", "2"))
    return web.json_response({"href": f"/docs/more-{page}.pdf", "title": f"Item {page}"})


async def _api_lazy(request: web.Request) -> web.Response:
    await asyncio.sleep(0.05)
    batch = int(request.query.get("batch", "1"))
    return web.json_response({"href": f"/docs/lazy-{batch}.pdf", "title": f"Story {batch}"})


async def _never(request: web.Request) -> web.Response:
    await request.app[_STOPPING].wait()
    return web.Response(text="", content_type="text/javascript")


async def _moved(request: web.Request) -> web.Response:
    raise web.HTTPFound("/static")


async def _logo(request: web.Request) -> web.Response:
    return web.Response(body=_PNG, content_type="image/png")


async def _chain(request: web.Request) -> web.Response:
    n = int(request.match_info["n"])
    series = request.match_info.get("series")
    if not 1 <= n <= CHAIN:
        raise web.HTTPNotFound(text="no such page")
    base, api = (
        (f"/chains/{series}/", f"/api/chain?series={series}&n={n}")
        if series
        else (
            "/chain/",
            f"/api/chain?n={n}",
        )
    )
    following = f'<a href="{base}{n + 1}">Report {n + 1}</a>' if n < CHAIN else ""
    body = _page(
        f"Report {n}",
        f'<p>{following}</p><ul id="list"></ul>'
        + _ADD
        + f"""<script>
fetch("{api}").then((r) => r.json()).then((i) => addLink(i.href, i.title));
</script>""",
    )
    return web.Response(text=body, content_type="text/html")


async def _api_chain(request: web.Request) -> web.Response:
    await asyncio.sleep(0.3)
    n = int(request.query.get("n", "1"))
    series = request.query.get("series")
    name = f"{series}-chain-{n}" if series else f"chain-{n}"
    return web.json_response({"href": f"/docs/{name}.pdf", "title": f"Report {n} (PDF)"})


async def _mixed_shell(request: web.Request) -> web.Response:
    n = int(request.match_info["n"])
    if n not in (1, 2):
        raise web.HTTPNotFound(text="no such page")
    following = "/mixed/shell/2" if n == 1 else "/mixed/plain/1"
    body = (
        '<!doctype html><html><head><title>Mixed</title></head><body><div id="app"></div>'
        + _ADD.replace('getElementById("list")', 'getElementById("app")')
        + f"""<script>
addLink("/docs/mixed-{n}.pdf", "Mixed report {n}"); addLink("{following}", "Next");
</script></body></html>"""
    )
    return web.Response(text=body, content_type="text/html")


async def _mixed_plain(request: web.Request) -> web.Response:
    n = int(request.match_info["n"])
    if not 1 <= n <= MIXED_PLAIN:
        raise web.HTTPNotFound(text="no such page")
    following = f'<li><a href="/mixed/plain/{n + 1}">Next</a></li>' if n < MIXED_PLAIN else ""
    body = _page(
        f"Plain report {n}",
        "<p>" + "The council published its report in full. " * 30 + "</p>"
        f'<ul><li><a href="/docs/plain-{n}.pdf">Plain report {n}</a></li>{following}</ul>',
    )
    return web.Response(text=body, content_type="text/html")


async def _inert(request: web.Request) -> web.Response:
    n = int(request.match_info["n"])
    if not 1 <= n <= INERT:
        raise web.HTTPNotFound(text="no such page")
    following = f'<a href="/inert/{n + 1}">Next</a>' if n < INERT else ""
    body = _page(
        f"Inert {n}",
        f'<p><a href="/docs/inert-{n}.pdf">Inert report {n}</a> {following}</p>'
        '<div id="root"></div><script>document.title = "Inert";</script>',
    )
    return web.Response(text=body, content_type="text/html")


async def _hang(request: web.Request) -> web.Response:
    tag = request.match_info["tag"]
    body = _page(
        "Hanging",
        f'<ul><li><a href="/docs/hang-{tag}.pdf">Hanging report</a></li></ul>'
        f'<script src="/never.js?for={tag}"></script><p>Never parsed</p>',
    )
    return web.Response(text=body, content_type="text/html")


async def _to_hang(request: web.Request) -> web.Response:
    tag = request.match_info["tag"]
    body = _page("Index", f'<p>Reports.</p><a href="/hang/{tag}">Hanging reports</a>')
    return web.Response(text=body, content_type="text/html")


_MEDIA_PAGE: Final = _page(
    "Gallery",
    "<style>@font-face { font-family: Riverton; src: url(/typeface?f=1); }"
    " body { font-family: Riverton, sans-serif; }</style>"
    '<img src="/picture?id=3" alt="A"><img src="/photo.JPG" alt="B">'
    '<video src="/clip?v=1" autoplay muted preload="auto"></video><ul id="list"></ul>'
    + _ADD
    + """<script>
fetch("/api/fetch").then((r) => r.json())
  .then((items) => items.forEach((i) => addLink(i.href, i.title)));
</script>""",
)


async def _media(request: web.Request) -> web.Response:
    return web.Response(text=_MEDIA_PAGE, content_type="text/html")


async def _doc(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if not name.endswith(".pdf"):
        raise web.HTTPNotFound(text="no such document")
    body = (
        b"%PDF-1.4\n% " + name.encode() + b"\n1 0 obj << /Type /Catalog >> endobj\n"
        b"trailer << /Root 1 0 R >>\n%%EOF\n"
    )
    return web.Response(body=body, content_type="application/pdf")
