"""Application shells are told apart from static pages, with the counts the crawler has.

links_found and text_chars come from extract.parse_page on the same HTML, as in a crawl.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from skopd.crawl.extract import parse_page
from skopd.crawl.shell import looks_like_app_shell

PROSE = (
    "The council met on the second Tuesday of the month in the town hall. Members discussed "
    "the budget for the coming year, the repair of the bridge on Mill Road and the new "
    "opening hours of the library. The minutes were approved without changes. "
)
NAV = "".join(
    f'<li><a href="/{slug}/">{slug.replace("-", " ").title()}</a></li>'
    for slug in (
        "council", "meetings", "minutes", "budget", "services", "waste", "parking", "schools",
        "library", "parks", "permits", "jobs", "news", "events", "contact", "about",
        "accessibility", "privacy", "press", "tenders", "maps", "elections", "health",
        "housing", "transport",
    )
)  # fmt: skip


def links(hrefs: Iterable[str]) -> str:
    return "".join(f'<li><a href="{href}">{href.rpartition("/")[2]}</a></li>' for href in hrefs)


def page(head: str, body: str, lang: str = "en") -> bytes:
    return (
        f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">{head}</head>'
        f"<body>{body}</body></html>"
    ).encode()


SHELLS = {
    "create-react-app": page(
        '<link rel="icon" href="/favicon.ico"><link rel="manifest" href="/manifest.json">'
        "<title>Riverton Documents</title>"
        '<script defer="defer" src="/static/js/main.8e2b6c3f.js"></script>'
        '<link href="/static/css/main.f855e6bc.css" rel="stylesheet">',
        '<noscript>You need to enable JavaScript to run this app.</noscript><div id="root"></div>',
    ),
    "vue-cli": page(
        "<title>riverton-portal</title>"
        '<script defer src="/js/chunk-vendors.3c1b7e0a.js"></script>'
        '<script defer src="/js/app.9a1f1c2d.js"></script>',
        "<noscript><strong>We're sorry but riverton-portal doesn't work properly without "
        "JavaScript enabled. Please enable it to continue.</strong></noscript>"
        '<div id="app"></div>',
    ),
    "angular": page(
        '<title>Portal</title><base href="/"><link rel="stylesheet" href="styles.5c1e.css">',
        "<app-root></app-root>"
        '<script src="runtime.a1b2c3.js" type="module"></script>'
        '<script src="polyfills.d4e5f6.js" type="module"></script>'
        '<script src="main.0a9b8c.js" type="module"></script>',
    ),
    "next-client-only": page(
        '<title>Documents</title><script src="/_next/static/chunks/main-4f1e.js" defer></script>',
        '<div id="__next"></div><script id="__NEXT_DATA__" type="application/json">'
        '{"props":{"pageProps":{}},"page":"/docs","query":{},"buildId":"b1",'
        '"nextExport":true,"autoExport":true}</script>',
    ),
    "nuxt": page(
        '<title>Archive</title><link rel="modulepreload" href="/_nuxt/entry.8d2c.js">',
        '<div id="__nuxt"><!--[--><!--]--></div>'
        '<script>window.__NUXT__={serverRendered:false,config:{app:{baseURL:"/"}}}</script>'
        '<script type="module" src="/_nuxt/entry.8d2c.js" crossorigin></script>',
    ),
    "portal-with-server-navigation": page(
        '<title>City of Riverton - Document portal</title><script src="/portal/app.js" defer>'
        "</script>",
        f"<header><nav><ul>{NAV}</ul></nav></header><h1>Document portal</h1>"
        f'<main id="app" class="portal"></main><footer><p>{PROSE}</p></footer>',
    ),
    "angularjs-templates": page(
        '<title>Minutes</title><script src="/lib/angular.min.js"></script>'
        '<script src="/js/minutes.js"></script>',
        '<nav><a href="/">Home</a> <a href="/council/">Council</a> <a href="/contact/">'
        "Contact</a></nav><h1>Minutes</h1><p>All minutes of the council since 2019, newest "
        "first. Use the filter to find a meeting by its date or its subject.</p>"
        '<input ng-model="q" placeholder="Filter">'
        '<ul><li ng-repeat="d in docs | filter:q"><a ng-href="{{d.url}}">{{d.title}}</a>'
        " - {{d.date | date:'longDate'}} ({{d.pages}} pages)</li></ul>",
    ).replace(b"<html ", b'<html ng-app="minutes" '),
    "loading-spinner": page(
        '<title>Loading</title><link rel="stylesheet" href="/boot.css">',
        '<div class="boot"><div class="spinner"></div><p>Loading&hellip;</p></div>'
        '<script src="/bundle.7f3a.js"></script>',
    ),
    "script-redirect": page(
        "<title>Redirecting</title>",
        '<script>location.replace("/app/#/home" + location.search)</script>',
    ),
    "german-noscript": page(
        '<title>Ratsinformationssystem</title><script src="/ris/ris.js" defer></script>',
        "<header><ul>"
        + "".join(
            f'<li><a href="/{slug.lower()}/">{slug}</a></li>'
            for slug in (
                "Startseite",
                "Rat",
                "Ausschüsse",
                "Sitzungen",
                "Vorlagen",
                "Fraktionen",
                "Bürgerservice",
                "Stellen",
                "Presse",
                "Kontakt",
                "Impressum",
                "Datenschutz",
            )
        )
        + "</ul></header><noscript>Bitte aktivieren Sie JavaScript, um das "
        "Ratsinformationssystem zu nutzen.</noscript><h1>Sitzungen und Niederschriften</h1>"
        "<p>Hier finden Sie die Sitzungen des Rates, der Ausschüsse und der Bezirksvertretungen"
        ' mit Tagesordnungen, Vorlagen und Niederschriften.</p><div class="ris"></div>',
        lang="de",
    ),
    "sveltekit": page(
        '<title>Library</title><link href="/_app/immutable/assets/0.c2f1.css" rel="stylesheet">',
        '<div style="display: contents"><script>{ __sveltekit_1u7k = { base: "" };'
        ' Promise.all([import("/_app/immutable/entry/start.4b1d.js"),'
        ' import("/_app/immutable/entry/app.9e3c.js")]).then(([kit, app]) =>'
        " { kit.start(app, document.currentScript.parentElement); }); }</script></div>",
    ).replace(b"<body>", b'<body data-sveltekit-preload-data="hover">'),
    "bundle-after-64kb-of-css": page(
        "<title>Records</title><style>"
        + "".join(f".c{i}{{margin:{i % 7}px;padding:{i % 5}px}}" for i in range(3000))
        + "</style>",
        '<div id="root"></div><script src="/records.js"></script>',
    ),
}

STATIC = {
    "wordpress-article": page(
        "<title>Council approves budget - City of Riverton</title>"
        "<script src='/wp-includes/js/jquery/jquery.min.js?ver=3.7.1' id='jquery-core-js'>"
        "</script><script async src='https://www.googletagmanager.com/gtag/js?id=G-X'>"
        "</script><script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer"
        ".push(arguments)}gtag('js',new Date());gtag('config','G-X');</script>",
        f'<div id="page" class="site"><header><ul>{NAV}</ul></header>'
        f'<main id="main"><article><h1>Council approves budget</h1><p>{PROSE * 8}</p>'
        '<p><a href="/wp-content/uploads/2024/03/budget-2024.pdf">Budget 2024 (PDF)</a></p>'
        f"</article></main><footer><p>{PROSE}</p></footer></div>"
        '<script src="/wp-content/themes/riverton/js/navigation.js?ver=1.2"></script>',
    ),
    "blog-with-disqus": page(
        '<title>Notes from the archive</title><script src="/assets/site.js" defer></script>',
        f"<header><ul>{NAV}</ul></header><article><h1>Notes from the archive</h1>"
        f"<p>{PROSE * 4}</p></article>"
        '<div id="disqus_thread"></div><script>var disqus_config = function () {'
        " this.page.url = location.href; };</script>"
        '<noscript>Please enable JavaScript to view the <a href="https://disqus.com/'
        '?ref_noscript">comments powered by Disqus.</a></noscript>',
    ),
    "next-server-rendered": page(
        '<title>Budget documents</title><script src="/_next/static/chunks/main-4f1e.js" defer>'
        "</script>",
        f'<div id="__next"><header><ul>{NAV}</ul></header><main><h1>Budget documents</h1>'
        f"<p>{PROSE * 3}</p><ul>"
        + "".join(
            f'<li><a href="/docs/budget-{y}.pdf">Budget {y}</a></li>' for y in range(2015, 2025)
        )
        + '</ul></main></div><script id="__NEXT_DATA__" type="application/json">'
        '{"props":{"pageProps":{"docs":10}},"page":"/budget","buildId":"b1"}</script>',
    ),
    "vue-server-rendered": page(
        '<title>Waste collection</title><script src="/js/app.js" defer></script>',
        f'<div id="app" data-server-rendered="true"><header data-v-7ba5bd90><ul>{NAV}</ul>'
        f"</header><main data-v-7ba5bd90><h1>Waste collection</h1><p>{PROSE * 3}</p>"
        '<a href="/files/calendar-2024.pdf" data-v-7ba5bd90>Collection calendar 2024</a>'
        "</main></div>",
    ),
    "drupal-with-tag-manager": page(
        "<title>Parking permits | Riverton</title>"
        '<script src="/core/assets/vendor/jquery/jquery.min.js?v=3.7.1"></script>'
        '<script src="/core/misc/drupal.js?v=10.2"></script>',
        '<noscript><iframe src="https://www.googletagmanager.com/ns.html?id=GTM-ABC123" '
        'height="0" width="0" style="display:none;visibility:hidden"></iframe></noscript>'
        f'<div class="dialog-off-canvas-main-canvas"><header><ul>{NAV}</ul></header>'
        f"<main><h1>Parking permits</h1><p>{PROSE * 3}</p></main></div>",
    ),
    "index-without-scripts": page(
        "<title>Index of /minutes</title>",
        "<h1>Index of /minutes</h1><ul>"
        + "".join(
            f'<li><a href="minutes-2024-{m:02d}.pdf">minutes-2024-{m:02d}.pdf</a></li>'
            for m in range(1, 7)
        )
        + "</ul>",
    ),
    "under-construction": page("<title>Riverton</title>", "<h1>Coming soon</h1>"),
    "short-contact-page": page(
        '<title>Contact</title><script async src="/stats.js"></script>',
        '<nav><a href="/">Home</a> <a href="/council/">Council</a> <a href="/services/">'
        'Services</a> <a href="/news/">News</a></nav><h1>Contact</h1><p>City of Riverton, '
        "Town Hall, 1 Market Square, Riverton. Open Monday to Friday, 8:00 to 16:00. "
        'Telephone 0123 456 789.</p><p><a href="mailto:info@riverton.example">'
        "info@riverton.example</a></p><footer>&copy; City of Riverton. All rights reserved. "
        "Imprint and privacy notice.</footer>",
    ),
    "large-table-scripts-at-end": page(
        "<title>All council documents</title>",
        f"<header><ul>{NAV}</ul></header><table>"
        + "".join(
            f'<tr><td>{d}</td><td><a href="/files/minutes-{d}.pdf">Minutes of {d}</a></td>'
            f"<td>{PROSE[:80]}</td></tr>"
            for d in range(20000, 20400)
        )
        + '</table><script src="/js/bootstrap.bundle.min.js"></script>',
    ),
}


def verdict(html: bytes) -> bool:
    parsed = parse_page(html, "https://riverton.example/page")
    return looks_like_app_shell(html, len(parsed.links), parsed.text_chars)


@pytest.mark.parametrize("name", SHELLS)
def test_application_shells_are_recognised(name: str) -> None:
    assert verdict(SHELLS[name]) is True


@pytest.mark.parametrize("name", STATIC)
def test_static_pages_are_never_flagged(name: str) -> None:
    assert verdict(STATIC[name]) is False


def test_the_counts_decide_when_marks_are_ambiguous() -> None:
    # A Disqus plea on a page with hardly any content of its own: render it.
    html = page(
        '<script src="/site.js"></script>',
        '<p>Short note.</p><a href="/">Home</a><noscript>Please enable JavaScript to view '
        "the comments.</noscript>",
    )
    parsed = parse_page(html, "https://riverton.example/")
    assert looks_like_app_shell(html, len(parsed.links), parsed.text_chars) is True
    assert looks_like_app_shell(html, links_found=40, text_chars=3000) is False
