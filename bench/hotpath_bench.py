"""Per-call cost of the crawl's hot functions (figures, not a test).

.venv/bin/python bench/hotpath_bench.py
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable

from skopd.crawl.traps import TrapGuard
from skopd.crawl.urls import normalize_url
from skopd.relevance.base import Candidate
from skopd.relevance.lexical import document_name, score_candidate
from skopd.relevance.query import build_query, link_priority

HOST = "https://town.example"


def per_call_us(fn: Callable[[], int]) -> float:
    start = time.perf_counter()
    calls = fn()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    query = build_query("find all board meeting minutes from 2024", datetime.date(2025, 6, 1))
    links = [
        (f"{HOST}/{section}/{i // 7}/item-{i}-road-works-on-main-street", f"News item {i}")
        for i in range(5000)
        for section in ("news", "council/meetings")
    ]

    def priorities() -> int:
        for url, text in links:
            link_priority(query, url, text)
        return len(links)

    def normalize() -> int:
        for url, _ in links:
            normalize_url(url + "?utm_source=x&b=2&a=1")
        return len(links)

    candidates = [
        Candidate(id=1, url=f"{HOST}/files/minutes-2024-03.pdf", text="PDF",
                  context="Board meeting minutes, 12 March 2024", heading="Meetings 2024"),
        Candidate(id=2, url=f"{HOST}/files/privacy.pdf", text="Privacy policy"),
        Candidate(id=3, url=f"{HOST}/de/jb.pdf", text="[PDF]", title="Jahresbericht 2022",
                  context="Der Jahresbericht 2022 der Gemeinde mit allen Zahlen. " * 6),
    ]  # fmt: skip

    def scoring() -> int:
        for _ in range(300):
            for c in candidates:
                score_candidate(query, c)
                document_name(c)
        return 300 * len(candidates)

    trap_urls = [f"http://h/section/{i}/page-{i}.html?page={i % 50}" for i in range(20_000)]
    trap_keys = [normalize_url(u) for u in trap_urls]

    def trap_checks() -> int:
        guard = TrapGuard(2048, year_now=2025)
        for url, key in zip(trap_urls, trap_keys, strict=True):
            guard.page_link(url, key, True)
        return len(trap_urls)

    print(f"link_priority (distinct links)      {per_call_us(priorities):8.1f} µs/call")
    print(f"normalize_url (distinct, tracking)  {per_call_us(normalize):8.1f} µs/call")
    print(f"score_candidate + document_name     {per_call_us(scoring):8.1f} µs/candidate")
    print(f"TrapGuard.page_link (distinct)      {per_call_us(trap_checks):8.1f} µs/link")


if __name__ == "__main__":
    main()
