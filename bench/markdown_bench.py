"""Cost of a page's Markdown (page_content) and its chunks, per page (figures, not a test).

.venv/bin/python bench/markdown_bench.py [--rounds N]

Pages: the realistic fixture pages (tests/sites/pages), two of them grown to 20-35 KB
(a long sidebar, more sections with tables, code and lists), and synthetic crawl pages of
bench/sitegen.py. Prints size, CPU microseconds per page_content call, per chunk_markdown call,
and the Markdown's share of the HTML.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from pathlib import Path

from sitegen import _page, _paragraphs

from skopd.content.chunks import chunk_markdown
from skopd.content.markdown import page_content

PAGES = Path(__file__).resolve().parent.parent / "tests" / "sites" / "pages"

SECTION = """
<h2 id="s{n}">Section {n}: configuration of part {n}</h2>
<p>The <code>part{n}</code> block configures the {n}th subsystem. See the
<a href="../ref/part{n}.html">reference</a> and <a href="/faq#p{n}">FAQ</a> for details;
values are read once at start-up and <strong>cannot</strong> be changed later.</p>
<table><thead><tr><th>Key</th><th>Default</th><th>Meaning</th></tr></thead><tbody>
<tr><td><code>size</code></td><td>{n}0</td><td>entries kept in memory</td></tr>
<tr><td><code>timeout</code></td><td>{n}.5</td><td>seconds before giving up</td></tr>
<tr><td><code>mode</code></td><td>"fast"</td><td>one of fast, safe, off</td></tr>
</tbody></table>
<div class="highlight"><pre><code class="language-toml">[part{n}]
size = {n}0
timeout = {n}.5
mode = "fast"
</code></pre></div>
<ul><li>First point about part {n}, with <em>emphasis</em>.</li>
<li>Second point<ul><li>nested detail one</li><li>nested detail two</li></ul></li></ul>
"""


def grown(name: str, sections: int, menu: int) -> bytes:
    html = (PAGES / name).read_text(encoding="utf-8")
    extra = "".join(SECTION.format(n=n) for n in range(sections))
    links = "".join(
        f'<li><a href="/docs/page{i}.html">Page {i} title</a></li>' for i in range(menu)
    )
    html = html.replace("</article>", extra + "</article>", 1)
    html = html.replace('</div>\n<div id="footer">', extra + '</div>\n<div id="footer">', 1)
    html = html.replace("<ul>", f"<ul>{links}", 1)
    return html.encode("utf-8")


def per_call_us(fn: Callable[[], object], rounds: int) -> float:
    """CPU time of this process per call: other processes on the machine do not count."""
    fn()  # warm up
    start = time.process_time()
    for _ in range(rounds):
        fn()
    return (time.process_time() - start) / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    pool = _paragraphs(random.Random(1), 400)
    pages = {path.stem: path.read_bytes() for path in sorted(PAGES.glob("*.html"))}
    pages |= {
        "docs, grown": grown("docs_install.html", 25, 150),
        "minutes, grown": grown("council_minutes.html", 12, 120),
        "sitegen page 7": _page(7, 2000, 1, pool),
        "sitegen page 30": _page(30, 2000, 1, pool),
    }
    url = "https://site.example/docs/start/page.html"
    print(f"{'page':<22}{'KB':>6}{'page_content µs':>17}{'chunks µs':>11}{'md/html':>9}")
    for name, html in pages.items():
        content = page_content(html, url)
        md_us = per_call_us(lambda html=html: page_content(html, url), args.rounds)
        md = content.markdown
        ch_us = per_call_us(lambda md=md: chunk_markdown(md, 2000), args.rounds)
        share = len(content.markdown.encode()) / len(html)
        print(f"{name:<22}{len(html) / 1024:>6.1f}{md_us:>17.0f}{ch_us:>11.0f}{share:>9.2f}")


if __name__ == "__main__":
    main()
