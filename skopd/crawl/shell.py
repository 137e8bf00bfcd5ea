"""Telling a JavaScript application shell from a page whose HTML already holds its content.

A shell is what a single-page application serves before its scripts run: an empty mount
point, a bundle, maybe a <noscript> plea. Only a browser can see its links. The test runs
on every HTML page of a crawl: a page with text and links of its own costs two regex
passes over its first 64 KB; the other checks run only for pages that are nearly empty.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

_HEAD: Final = 64 * 1024
_TAIL: Final = 16 * 1024  # bundles are often loaded at the end of the body

_THIN_TEXT: Final = 200  # visible characters: a heading and a sentence
_THIN_LINKS: Final = 10
_FEW_LINKS: Final = 5  # below this, a framework's marks say the links are yet to come
# Below this, a <noscript> asking for JavaScript speaks for the page, not for a widget on it.
_SPARSE_TEXT: Final = 1000

# <script> tags that hold data, not code.
_DATA_SCRIPT: Final = re.compile(
    rb"\btype\s*=\s*[\"']?(?:application/(?:ld\+)?json|text/(?:x-)?template|importmap"
    rb"|speculationrules|text/html)"
)
# The element an application mounts into, still empty (or holding only comments).
_EMPTY_MOUNT: Final = re.compile(
    rb"id\s*=\s*[\"']?(?:root|app|__next|__nuxt|___gatsby|q-app|svelte|app-root|main-app"
    rb"|react-root|vue-app|spa-root|application)[\"']?(?=[\s>])[^>]*>"
    rb"\s*(?:<!--.*?-->\s*)*</(?:div|main|section|span)\s*>",
    re.DOTALL,
)
_EMPTY_ELEMENT_MOUNT: Final = re.compile(  # <app-root></app-root>, <riverton-app></...>
    rb"-(?:app|root)(?:\s[^>]*)?>\s*</[a-z][a-z0-9]*-(?:app|root)\s*>"
)
# Marks frameworks leave in the HTML they serve (server-rendered pages have them too).
_MARKS: Final = (
    b"__next_data__",
    b"window.__nuxt__",
    b'id="__nuxt"',
    b"ng-version=",
    b' ng-app="',
    b" ng-app ",
    b" ng-app>",
    b" ng-controller=",
    b"data-reactroot",
    b"data-server-rendered",
    b'id="___gatsby"',
    b"data-sveltekit",
    b"__sveltekit",
    b"__remixcontext",
    b"__initial_state__",
)
_VUE_SCOPE: Final = re.compile(rb"data-v-[0-9a-f]{8}\b")
# A <noscript> asking for JavaScript: "enable JavaScript", "JavaScript is required",
# "Bitte aktivieren Sie JavaScript", "JavaScript doit être activé"...
_ASKS: Final = (
    rb"(?:enabl|activ|aktiv|turn\s+on|requir|need|without|habilit|einschalt|erforderlich"
    rb"|ben\xc3\xb6tig|n\xc3\xa9cessaire|necesari|nodig|vereist|sans|ohne)"
)
_PLEA: Final = re.compile(
    _ASKS + rb"\w*\W+(?:\w+\W+){0,4}?javascript|javascript\W+(?:\w+\W+){0,4}?" + _ASKS
)
_NOSCRIPT_READ: Final = 600  # bytes of one <noscript>
_NOSCRIPTS_READ: Final = 8  # the plea comes early; tracking pixels may follow by hundreds


def looks_like_app_shell(
    html: bytes, links_found: int | Callable[[], int], text_chars: int | Callable[[], int]
) -> bool:
    """True if the static `html` looks like a shell that scripts fill in.

    links_found: the http(s) links parsed from it; text_chars: its visible text characters
    (extract.Page.links and .text_chars), or functions computing them, called only when the
    answer depends on them (never for a page without a script). A page without a script
    that runs is never a shell; with one, it is if it has no link at all; or almost no text
    and few links; or an empty mount point (<div id="root"></div>, <app-root></app-root>...);
    or a framework's marks and fewer than 5 links (server-rendered Next or Nuxt pages have
    the marks too); or a <noscript> asking for JavaScript and under 1,000 characters of text
    (a blog post with a comments widget has the plea too).
    """
    if not _runs_script(html):
        return False
    links_found = _count(links_found)
    head = html[:_HEAD]
    if links_found == 0 or _has_empty_mount(head):
        return True
    low = head.lower()
    if links_found >= _THIN_LINKS:
        # Only a plea on a page with little text is left: the text counted only then.
        return _pleads_for_javascript(low) and _count(text_chars) < _SPARSE_TEXT
    text = _count(text_chars)
    if text >= _SPARSE_TEXT and links_found >= _FEW_LINKS:
        return False  # content of its own, and no empty mount point
    if text < _THIN_TEXT:
        return True
    if links_found < _FEW_LINKS and _has_marks(low):
        return True
    return text < _SPARSE_TEXT and _pleads_for_javascript(low)


def _count(text_chars: int | Callable[[], int]) -> int:
    return text_chars if isinstance(text_chars, int) else text_chars()


def _runs_script(html: bytes) -> bool:
    if _has_code_script(html[:_HEAD].lower()):
        return True
    return len(html) > _HEAD and _has_code_script(html[max(_HEAD, len(html) - _TAIL) :].lower())


def _has_code_script(low: bytes) -> bool:
    start = low.find(b"<script")
    while start != -1:
        end = low.find(b">", start)
        if end == -1:
            return False
        if _DATA_SCRIPT.search(low, start, end) is None:
            return True
        start = low.find(b"<script", end)
    return False


def _has_empty_mount(head: bytes) -> bool:
    # Case-sensitive on purpose: ids are, and application shells write lowercase HTML.
    return _EMPTY_MOUNT.search(head) is not None or _EMPTY_ELEMENT_MOUNT.search(head) is not None


def _has_marks(low: bytes) -> bool:
    if any(mark in low for mark in _MARKS):
        return True
    return b"data-v-" in low and _VUE_SCOPE.search(low) is not None


def _pleads_for_javascript(low: bytes) -> bool:
    if b"javascript" not in low:
        return False
    start = low.find(b"<noscript")
    for _ in range(_NOSCRIPTS_READ):
        if start == -1:
            break
        end = low.find(b"</noscript", start, start + _NOSCRIPT_READ)
        stop = end if end != -1 else start + _NOSCRIPT_READ
        if _PLEA.search(low, start, stop) is not None:
            return True
        start = low.find(b"<noscript", stop)
    return False
