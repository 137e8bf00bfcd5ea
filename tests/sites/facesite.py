"""A small product-and-documentation website ("Acme Widgets") for the other API faces.

``make_facesite()`` returns a fresh aiohttp app; ``app[HITS]`` counts requests per path.

  /article                 an article page (title, headings, paragraphs, a list)
  /products?page=1..3      JSON-LD ItemList of 4 products each (name, price, url); pages 1-2
                           link the next one with rel="next" and the text "Next"
  /catalog                 product cards in plain HTML, no structured data (a model's job)
  /docs/                   the Widgetron manual: links its chapters, the blog, login, pricing
  /docs/install/           -> /docs/install/linux/, /docs/config/
  /docs/install/linux/, /docs/config/, /docs/api/, /docs/api/auth/   chapters
  /blog/, /blog/launch-party  not documentation;  /login, /pricing  junk
  /hashdocs/               a docsify-like manual: a shell whose script renders the view of
                           location.hash from HASH_DOCS, with a sidebar of #/... links (and
                           #/login); #/guide/install links its own heading (?id=requirements)
  /broken                  500
  /manual.pdf              a PDF document (not an HTML page)
  /slow                    answers once ``app[RELEASE]`` is set (at most SLOW_MAX_S later)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler

HITS: Final = web.AppKey[collections.Counter[str]]("facesite_hits")
RELEASE: Final = web.AppKey[asyncio.Event]("facesite_release")
SLOW_MAX_S: Final = 20

PRODUCTS: Final = [
    {"name": f"Widget {n}", "price": 10.0 + n, "sku": f"W-{n:03d}"} for n in range(1, 13)
]
PER_PAGE: Final = 4
CATALOG: Final = [("Sprocket Deluxe", "19.99"), ("Gear Mini", "4.50"), ("Cog Max", "7.25")]

DOC_PAGES: Final = {
    "/docs/": (
        "Widgetron Documentation",
        "Welcome to the Widgetron manual. Widgetron assembles widgets from parts.",
        ["/docs/install/", "/docs/config/", "/docs/api/", "/blog/", "/login", "/pricing"],
    ),
    "/docs/install/": (
        "Installing Widgetron",
        "Widgetron runs on Linux and macOS. Download the package and unpack it.",
        ["/docs/install/linux/", "/docs/config/", "/docs/"],
    ),
    "/docs/install/linux/": (
        "Installing Widgetron on Linux",
        "Use the tarball: tar xf widgetron.tar.gz; then run ./widgetron --init.",
        ["/docs/install/", "/docs/"],
    ),
    "/docs/config/": (
        "Configuring Widgetron",
        "The configuration file widgetron.toml holds the parts catalogue and the port.",
        ["/docs/api/", "/docs/"],
    ),
    "/docs/api/": (
        "Widgetron API Reference",
        "The HTTP API lists widgets at /widgets and creates them with POST /widgets.",
        ["/docs/api/auth/", "/docs/"],
    ),
    "/docs/api/auth/": (
        "Widgetron API Authentication",
        "Every API request carries a token in the Authorization header.",
        ["/docs/api/", "/docs/"],
    ),
}
OTHER_PAGES: Final = {
    "/blog/": ("Acme Blog", "News from Acme.", ["/blog/launch-party"]),
    "/blog/launch-party": ("Our launch party", "Cake and music were had.", ["/blog/"]),
    "/login": ("Log in", "Enter your password.", []),
    "/pricing": ("Pricing", "Plans start at 5 EUR.", []),
}

# The views of /hashdocs/ by route: (sidebar text, title, text). "" is the page without one.
HASH_DOCS: Final = {
    "": ("Home", "Widgetron Manual", "Widgetron assembles widgets from parts, read this first."),
    "/guide/install": (
        "Installation",
        "Installing Widgetron",
        "Unpack sprocket-kit.tar.gz and run ./widgetron --bootstrap on the host.",
    ),
    "/guide/configure": (
        "Configuration",
        "Configuring Widgetron",
        "The file gearbox.toml names the parts catalogue and the listening port.",
    ),
    "/reference/api": (
        "API reference",
        "Widgetron API",
        "GET /cogs lists the cogs; POST /cogs adds one with its torque.",
    ),
    "/changelog": (
        "Changelog",
        "Widgetron Changelog",
        "Version 2.1 renamed the flange option and fixed the ratchet report.",
    ),
    "/login": ("Log in", "Log in", "Enter your password to reach the parts store."),
}
# The pages a docs crawl of /hashdocs/ saves (the start page, then its routes but #/login).
HASH_SAVED: Final = ["/hashdocs/"] + [
    f"/hashdocs/#{route}" for route in HASH_DOCS if route not in ("", "/login")
]
_HASH_SHELL: Final = """<!doctype html><html lang='en'><head><meta charset='utf-8'>
<title>Widgetron Manual</title></head><body><div id="app">Loading...</div><script>
const VIEWS = %s;
function show() {
  const route = location.hash.replace(/^#/, "").split("?")[0];
  const view = VIEWS[route === "/" ? "" : route] || ["", "Not found", "No such page."];
  let extra = "";
  if (route === "/guide/install") {
    extra = '<h2 id="requirements">Requirements</h2><p>A 64-bit host.</p>'
      + '<p><a href="#/guide/install?id=requirements">Requirements</a></p>';
  }
  const nav = Object.entries(VIEWS).map(([r, v]) =>
    '<li><a href="#' + (r || "/") + '">' + v[0] + "</a></li>").join("");
  document.title = view[1];
  document.getElementById("app").innerHTML = "<aside><ul>" + nav + "</ul></aside><main><h1>"
    + view[1] + "</h1><p>" + view[2] + "</p>" + extra + "</main>";
}
addEventListener("hashchange", show);
show();
</script></body></html>"""


async def hashdocs(_: web.Request) -> web.Response:
    return web.Response(text=_HASH_SHELL % json.dumps(HASH_DOCS), content_type="text/html")


_LINK_TEXT: Final = {
    "/docs/": "Manual home",
    "/docs/install/": "Installation",
    "/docs/install/linux/": "Linux",
    "/docs/config/": "Configuration",
    "/docs/api/": "API reference",
    "/docs/api/auth/": "Authentication",
    "/blog/": "Blog",
    "/blog/launch-party": "Launch party",
    "/login": "Log in",
    "/pricing": "Pricing",
}


def _page(title: str, body: str, head: str = "") -> web.Response:
    html = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
        f"{head}</head><body><nav><a href='/'>Acme</a></nav><main>{body}</main>"
        "<footer>© Acme Widgets</footer></body></html>"
    )
    return web.Response(text=html, content_type="text/html")


async def article(_: web.Request) -> web.Response:
    return _page(
        "How widgets are made",
        "<h1>How widgets are made</h1><p>Widgets are pressed from recycled steel.</p>"
        "<h2>Steps</h2><ul><li>Melt</li><li>Press</li><li>Polish</li></ul>"
        "<p>Each widget weighs 120 grams.</p>",
    )


async def handbook(_: web.Request) -> web.Response:
    """A long page: twelve sections of about 400 characters each."""
    body = "<h1>Widget handbook</h1>" + "".join(
        f"<h2>Chapter {n}</h2><p>"
        + f"Chapter {n} explains how widgets of series {n} are fitted, tested and kept. " * 5
        + "</p>"
        for n in range(1, 13)
    )
    return _page("Widget handbook", body)


async def products(request: web.Request) -> web.Response:
    try:
        page = int(request.query.get("page", "1"))
    except ValueError:
        page = 1
    pages = len(PRODUCTS) // PER_PAGE
    items = PRODUCTS[(page - 1) * PER_PAGE : page * PER_PAGE]
    data = {
        "@context": "https://schema.org",
        "@type": "ItemList",
        "itemListElement": [
            {
                "@type": "ListItem",
                "position": i + 1,
                "item": {
                    "@type": "Product",
                    "name": p["name"],
                    "sku": p["sku"],
                    "offers": {"@type": "Offer", "price": p["price"], "priceCurrency": "EUR"},
                },
            }
            for i, p in enumerate(items)
        ],
    }
    head = f"<script type='application/ld+json'>{json.dumps(data)}</script>"
    nav = ""
    if page < pages:
        head += f"<link rel='next' href='/products?page={page + 1}'>"
        nav = f"<a rel='next' href='/products?page={page + 1}'>Next</a>"
    cards = "".join(f"<div class='product'><h3>{p['name']}</h3></div>" for p in items)
    return _page(f"Products, page {page}", f"<h1>Products</h1>{cards}{nav}", head)


async def catalog(_: web.Request) -> web.Response:
    cards = "".join(
        f"<div class='card'><h3>{name}</h3><span class='cost'>{price} EUR</span></div>"
        for name, price in CATALOG
    )
    return _page("Catalog", f"<h1>Catalog</h1>{cards}")


async def pages(request: web.Request) -> web.Response:
    path = request.path
    title, text, links = DOC_PAGES.get(path) or OTHER_PAGES[path]
    nav = "".join(f"<li><a href='{href}'>{_LINK_TEXT[href]}</a></li>" for href in links)
    body = f"<h1>{title}</h1><p>{text}</p><h2>See also</h2><ul>{nav}</ul>"
    return _page(title, body)


async def slow(request: web.Request) -> web.Response:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(request.app[RELEASE].wait(), SLOW_MAX_S)
    return _page("Slow page", "<h1>Slow page</h1><p>Finally here.</p>")


async def broken(_: web.Request) -> web.Response:
    return web.Response(status=500, text="oops")


async def manual(_: web.Request) -> web.Response:
    pdf = b"%PDF-1.4\n% Widgetron manual\n" + b"x" * 2000 + b"\n%%EOF\n"
    return web.Response(body=pdf, content_type="application/pdf")


@web.middleware
async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
    request.app[HITS][request.path] += 1
    return await handler(request)


def make_facesite() -> web.Application:
    app = web.Application(middlewares=[count])
    app[HITS] = collections.Counter()
    app[RELEASE] = asyncio.Event()
    app.router.add_get("/article", article)
    app.router.add_get("/handbook", handbook)
    app.router.add_get("/products", products)
    app.router.add_get("/catalog", catalog)
    app.router.add_get("/broken", broken)
    app.router.add_get("/manual.pdf", manual)
    app.router.add_get("/slow", slow)
    app.router.add_get("/hashdocs/", hashdocs)
    for path in (*DOC_PAGES, *OTHER_PAGES):
        app.router.add_get(path, pages)
    return app
