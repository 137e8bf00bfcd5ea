"""Aitronos's kind: items fitting a JSON schema, from one page and, with
`follow_pagination`, the pages its "next" links lead to, until `max_items`.

Structured data on the page (JSON-LD, microdata, tables) comes first and costs no model
call; otherwise the local model extracts the items; with neither, the job fails saying
that a model is needed."""

from __future__ import annotations

import asyncio
import re
from datetime import date
from typing import Any

from lxml import etree

from skopd.crawl.engine import JobFailed
from skopd.crawl.extract import Link, Page
from skopd.crawl.recorder import Recorder
from skopd.crawl.urls import join_link
from skopd.kinds.runner import MODEL_NEEDED, KindRunner, add_usage
from skopd.kinds.sink import INLINE_BYTES, ContentSink
from skopd.models import ExtractSpec, Job, JobOutput, PageContent

_NEXT_TEXT = re.compile(
    r"^\s*(next( page)?|more|older( posts| entries)?|weiter|nächste( seite)?|suivant(e)?|"
    r"siguiente|volgende|successiv[oa]|›|»|→|>|>>)\s*[›»→>]*\s*$",
    re.IGNORECASE,
)


def rel_next(body: bytes, base: str) -> set[str]:
    """URLs the page marks as its next page with rel="next" (on <a> or <link>)."""
    try:
        root = etree.fromstring(body, etree.HTMLParser(recover=True, no_network=True))
    except (etree.LxmlError, ValueError):
        return set()
    if root is None:
        return set()
    found = set()
    hrefs = root.xpath(
        "//*[self::a or self::link][contains(concat(' ', normalize-space(@rel), ' '), ' next ')]"
        "/@href"
    )
    for href in hrefs if isinstance(hrefs, list) else []:
        url = join_link(base, str(href))
        if url:
            found.add(url.split("#")[0])
    return found


def next_link(page: Page, body: bytes) -> Link | None:
    """The page's link to its next page: rel="next" first, else a link that says "next"."""
    marked = rel_next(body, page.base_url)
    for link in page.links:
        if link.url in marked:
            return link
    for link in page.links:
        if link.tag == "a" and link.text and _NEXT_TEXT.match(link.text):
            return link
    return None


class Items:
    """The chooser of an extract crawl: takes the items of each page, then follows the
    next-page link while items are still wanted."""

    def __init__(self, ctx: KindRunner, spec: ExtractSpec, rec: Recorder) -> None:
        self.ctx = ctx
        self.spec = spec
        self.rec = rec
        self.items: list[Any] = []
        self.output = JobOutput(items=[], engine_used="static")
        self.pages = 0

    async def __call__(self, page: Page, body: bytes, content: PageContent) -> list[Link]:
        first = self.pages == 0
        self.pages += 1
        wanted = self.spec.max_items - len(self.items)
        found = await self._structured(body, page.url)
        if not found:
            found = await self._by_model(content.markdown, wanted, first)
        self.items.extend(found[:wanted])
        self.rec.update(message=f"Extracted {len(self.items)} item(s) from {self.pages} page(s)")
        if not found or not self.spec.follow_pagination or len(self.items) >= self.spec.max_items:
            return []
        if len(body) <= INLINE_BYTES:
            link = next_link(page, body)
        else:
            link = await asyncio.to_thread(next_link, page, body)
        return [link] if link is not None else []

    async def _structured(self, body: bytes, url: str) -> list[Any]:
        from skopd.content.structured import structured_items

        schema = self.spec.schema
        if len(body) <= INLINE_BYTES:
            return structured_items(body, url, schema)
        return await asyncio.to_thread(structured_items, body, url, schema)

    async def _by_model(self, markdown: str, wanted: int, first: bool) -> list[Any]:
        extractor = self.ctx.extractor()
        reason = await extractor.unavailable()
        if reason is not None:
            if first:
                raise JobFailed("model_needed", f"{MODEL_NEEDED}: {reason}")
            return []
        ex = await extractor.extract_items(markdown, self.spec.schema, max_items=wanted)
        add_usage(self.output, ex, self.rec)
        if ex.failed or not isinstance(ex.data, list):
            message = ex.error or "the model gave no usable answer"
            if first:
                raise JobFailed("extraction_failed", f"extraction failed: {message}")
            self.rec.warning(f"extraction of a later page failed: {message}")
            return []
        return list(ex.data)


async def run(ctx: KindRunner, job: Job, rec: Recorder, resumed: bool = False) -> str | None:
    spec = job.spec
    assert isinstance(spec, ExtractSpec)
    if resumed:
        # The items are kept in memory only: the pages are read again from the first, and
        # the answer (and its model calls) is that of the run that completes.
        await ctx.store.clear_pages(job.job_id)
    items = Items(ctx, spec, rec)
    sink = ContentSink(ctx.store, job.job_id, choose=items)
    rec.update(message="Extracting")
    limits = await ctx.rendering(job, rec)
    outcome = await ctx.crawl(job, rec, ctx.lexical(rec), spec.url, sink, **limits).run()
    if outcome.reason == "interrupted":
        return None  # the daemon is stopping; the job starts again at the next start
    if not sink.saved:
        raise JobFailed("not_html", f"{spec.url} is not an HTML page")
    output = items.output
    output.items = date_filtered(items.items, spec.date_filter)[: spec.max_items]
    await ctx.finish(job, rec, output)
    return f"Extracted {len(output.items)} item(s) from {items.pages} page(s)"


def date_filtered(items: list[Any], rule: dict[str, str] | None) -> list[Any]:
    """Items whose `rule["field"]` date is after `after` and before `before` (YYYY-MM-DD);
    items without a readable date are kept out when a filter is asked for."""
    if not rule:
        return items
    field = rule.get("field", "")
    after = _day(rule.get("after"))
    before = _day(rule.get("before"))
    kept = []
    for item in items:
        day = _day(item.get(field)) if isinstance(item, dict) else None
        if day is None:
            continue
        if (after is None or day >= after) and (before is None or day <= before):
            kept.append(item)
    return kept


def _day(value: object) -> date | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None
