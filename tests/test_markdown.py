"""A page's main content as Markdown, on realistic pages (tests/sites/pages)."""

from __future__ import annotations

from pathlib import Path

import pytest

from skopd.content.markdown import page_content

PAGES = Path(__file__).parent / "sites" / "pages"
DOCS_URL = "https://grebe.example/docs/start/install.html"
MINUTES_URL = "https://www.lindenau.example/gemeinderat/sitzungen/2024-03-14.html"


@pytest.fixture(scope="module")
def docs() -> str:
    content = page_content((PAGES / "docs_install.html").read_bytes(), DOCS_URL)
    assert content.title == "Installing Grebe — Grebe 4.2 documentation"
    assert content.lang == "en" and content.url == DOCS_URL
    return content.markdown


@pytest.fixture(scope="module")
def minutes() -> str:
    content = page_content((PAGES / "council_minutes.html").read_bytes(), MINUTES_URL)
    assert content.title == "Sitzung des Gemeinderats vom 14. März 2024 | Gemeinde Lindenau"
    assert content.lang == "de"
    return content.markdown


@pytest.mark.parametrize(
    "furniture",
    [
        "cookies",  # cookie banner
        "Accept all",
        "Blog",  # top navigation
        "Search the docs",
        "Quick start](",  # sidebar (the text "quick start" is in the content, the link is not)
        "Configuration",
        "Getting started",  # breadcrumbs and sidebar caption
        "Previous",  # footer buttons
        "Imprint",  # footer
        "Built with Sphinx",
        "¶",  # header permalinks
        "dataLayer",  # scripts
        "logo.svg",
    ],
)
def test_docs_page_furniture_is_gone(docs: str, furniture: str) -> None:
    if furniture == "Quick start](":
        assert "[Quick start](" not in docs and "[quick start](" in docs
        return
    assert furniture not in docs


def test_docs_page_structure_is_kept(docs: str) -> None:
    assert docs.startswith("# Installing Grebe\n")
    assert "\n## Requirements\n" in docs and "\n### From source\n" in docs
    # a GFM table with its header row
    assert "| Platform | Minimum version | Notes |\n| --- | --- | --- |\n" in docs
    assert "| Linux | glibc 2.28 | x86_64 and aarch64 wheels |" in docs
    # fenced code with its language, and a bare <pre> fenced too
    assert "```console\npython3 -m venv .venv\n. .venv/bin/activate\npip install grebe\n```" in docs
    assert "```\npy -m pip install grebe\n```" in docs
    # nested lists, inline code, emphasis, quotes
    assert "2. Install the build tools:\n   - `gcc` or `clang`\n" in docs
    assert "**Python 3.10**" in docs and "*pip*" in docs
    assert "> Tip: add Grebe to your PATH" in docs


def test_links_are_absolute(docs: str, minutes: str) -> None:
    assert "[quick start](https://grebe.example/docs/start/quickstart.html)" in docs
    assert "[download page](https://grebe.example/download/)" in docs
    assert "[PyPI](https://pypi.org/project/grebe/)" in docs
    assert (
        "[Entwurf Fahrplan Linie 12]"
        "(https://www.lindenau.example/gemeinderat/files/fahrplan/entwurf-linie-12.pdf)"
    ) in minutes


def test_news_page_without_semantic_tags(minutes: str) -> None:
    assert minutes.startswith("# Sitzung des Gemeinderats vom 14. März 2024\n")
    for furniture in (
        "Zum Inhalt",
        "Leichte Sprache",
        "Bürgerservice",  # main menu
        "Mitglieder",  # section menu
        "Facebook",  # share bar
        "Bürgerversammlung",  # related news
        "Impressum",
        "Marktplatz 1",
    ):
        assert furniture not in minutes, furniture
    # a table whose header row is made of <td><b>: the first row is the header
    assert "| **TOP** | **Gegenstand** | **Beschluss** |\n| --- | --- | --- |" in minutes
    assert "| 2 | Sanierung Grundschule, Vergabe Dach | angenommen (15:2) |" in minutes
    assert "Die nächste Sitzung findet am 18. April 2024 statt." in minutes


def test_a_list_of_documents_is_content_not_navigation(minutes: str) -> None:
    assert "## Anlagen\n\n- [Haushaltsplan 2024 (PDF)]" in minutes
    assert "[Protokoll (PDF, 412 KB)](https://www.lindenau.example/files/protokolle/" in minutes


def test_article_header_with_title_is_kept() -> None:
    html = """<html><body><nav><a href="/">Home</a> <a href="/a">A</a> <a href="/b">B</a></nav>
    <article><header class="entry-header"><h1>Budget 2025</h1><p>by the treasurer</p></header>
    <p>The budget was adopted on 3 December.</p>
    <footer class="entry-footer">Tags: <a href="/t/1">finance</a></footer></article>
    <footer>Site footer</footer></body></html>"""
    md = page_content(html, "https://town.example/news/budget").markdown
    assert md == "# Budget 2025\n\nby the treasurer\n\nThe budget was adopted on 3 December.\n"


def test_link_lists_in_a_plain_body_are_dropped_but_text_stays() -> None:
    menu = "".join(f'<li><a href="/s{i}">Section {i}</a></li>' for i in range(8))
    html = f"""<html><head><base href="https://cdn.example/base/"></head><body>
    <div class="x"><ul>{menu}</ul></div>
    <h2>Opening hours</h2><p>Monday to Friday, 8:00 to 12:00. <a href="contact">Contact</a></p>
    <p>Hidden <span style="display: none">secret</span>text.</p>
    </body></html>"""
    md = page_content(html, "https://town.example/hours").markdown
    assert "Section 3" not in md and "secret" not in md
    assert "## Opening hours" in md
    assert "[Contact](https://cdn.example/base/contact)" in md


def test_images_with_alt_kept_decorative_dropped() -> None:
    html = """<main><p>Map: <img src="/map.png" alt="Map of the town centre">
    <img src="/spacer.gif"><img src="data:image/png;base64,AAAA" alt="inline"></p></main>"""
    md = page_content(html, "https://town.example/").markdown
    assert md == "Map: ![Map of the town centre](https://town.example/map.png)\n"


def test_empty_and_broken_pages() -> None:
    assert page_content(b"", "https://x.example/").markdown == ""
    assert page_content("   ", "https://x.example/").markdown == ""
    broken = page_content(b"<html><body><h1>Title<p>text <b>bold", "https://x.example/")
    assert broken.title == "Title"
    assert broken.markdown == "# Title\n\ntext **bold**\n"


def test_legacy_charset_is_decoded() -> None:
    html = '<html><head><meta charset="iso-8859-1"></head><body><p>Gebühren für 2024</p>'
    md = page_content(html.encode("latin-1"), "https://x.example/").markdown
    assert md == "Gebühren für 2024\n"


def test_language_from_meta_when_html_has_none() -> None:
    html = '<html><head><meta property="og:locale" content="fr_FR"></head><body><p>Bonjour</p>'
    assert page_content(html, "https://x.example/").lang == "fr-FR"
    assert page_content("<p>Hello</p>", "https://x.example/").lang is None


def test_layout_tables_become_blocks_and_data_tables_stay() -> None:
    html = """<html><body><table width="100%">
    <tr><td colspan="2"><img src="/logo.gif" alt="Town of Oakvale"></td></tr>
    <tr><td valign="top"><a href="/">Home</a><br><a href="/council">Council</a><br>
    <a href="/news">News</a><br><a href="/contact">Contact</a></td>
    <td valign="top"><h1>Council minutes</h1><p>Minutes of the town council.</p>
    <table border="1"><tr><th>Date</th><th>Minutes</th></tr>
    <tr><td>2024-03-14</td><td><a href="/m/2024-03-14.pdf">PDF</a></td></tr></table>
    <p>Older minutes are in the <a href="/archive">archive</a>.</p></td></tr></table>"""
    md = page_content(html, "https://oakvale.example/council/").markdown
    assert "# Council minutes\n\nMinutes of the town council.\n" in md
    assert "| Date | Minutes |\n| --- | --- |\n" in md
    assert "| 2024-03-14 | [PDF](https://oakvale.example/m/2024-03-14.pdf) |" in md
    assert "[archive](https://oakvale.example/archive)" in md
    assert "Contact" not in md and "Home" not in md  # the menu column


def test_code_language_named_on_a_wrapper() -> None:
    html = """<main><div class="highlight-python notranslate"><div class="highlight"><pre>
<span class="k">def</span> <span class="nf">f</span>():
    <span class="k">return</span> 1
</pre></div></div></main>"""
    md = page_content(html, "https://x.example/").markdown
    assert md == "```python\ndef f():\n    return 1\n```\n"


def test_wordpress_post() -> None:
    html = (PAGES / "wordpress_post.html").read_bytes()
    content = page_content(html, "https://oakvale.example/2024/05/road-works/")
    assert content.lang == "en-GB"
    assert content.title == "Road works on Mill Lane from 3 June – Oakvale Parish Council"
    md = content.markdown
    assert md.startswith("# Road works on Mill Lane from 3 June\n\nPosted on 20 May 2024 by")
    assert "## Diversions\n\n- Buses 12 and 14 run via Station Road.\n" in md
    assert "[traffic order (PDF)](https://oakvale.example/wp-content/uploads/2024/05/" in md
    for furniture in (
        "Skip to content",
        "Serving the people",  # masthead
        "Documents",  # menu
        "Share this",
        "Twitter",
        "Posted in",  # entry footer
        "Annual parish meeting",  # post navigation and the recent-posts widget
        "bins",  # comments
        "Archives",
        "WordPress",
    ):
        assert furniture not in md, furniture


def test_page_inside_one_big_form() -> None:
    """ASP.NET WebForms wrap the whole page in a <form>; a list of meetings whose links
    are long titles is the content, the short-label menu is not."""
    html = (PAGES / "aspnet_index.html").read_bytes()
    md = page_content(html, "https://harbour.example/meetings.aspx").markdown
    assert md.startswith("# Board meetings\n\nThe board of the Harbour Authority meets")
    assert (
        "## 2024\n\n- [Board meeting of 12 September 2024: harbour dues and the dredging"
        " contract](https://harbour.example/meetings/meeting.aspx?id=241)\n"
    ) in md
    assert "[archive](https://harbour.example/meetings/archive.aspx)" in md
    for furniture in ("Tenders", "About us", "Quay Street", "Privacy", "logo", "VIEWSTATE"):
        assert furniture not in md, furniture


def test_responsive_classes_do_not_hide_content() -> None:
    html = """<body><div class="col-md-9 hidden-xs"><h1>Fees</h1><p>The fee is 12 euros.</p>
    </div><div class="d-none d-lg-block"><p>Open Monday to Friday.</p></div></body>"""
    md = page_content(html, "https://x.example/").markdown
    assert md == "# Fees\n\nThe fee is 12 euros.\n\nOpen Monday to Friday.\n"


def test_docusaurus_page() -> None:
    html = (PAGES / "docusaurus_config.html").read_bytes()
    md = page_content(html, "https://tern.example/docs/config").markdown
    assert md == (
        "# Configuration\n\nTern reads `tern.toml` from the working directory.\n\n## Keys\n\n"
        "| Key | Type |\n| --- | --- |\n| `port` | integer |\n\n```toml\nport = 8080\n```\n"
    )


def test_mkdocs_material_page() -> None:
    html = (PAGES / "mkdocs_guide.html").read_bytes()
    md = page_content(html, "https://tern.example/guide/").markdown
    assert md.startswith("# Guide\n\nHow to use Tern.\n\n## Usage\n\n")
    assert "```\ntern run\n```" in md and "1. Install\n2. Run" in md
    for furniture in ("Edit", "Search", "A page", "Table of contents", "Previous", "Material"):
        assert furniture not in md, furniture


def test_source_line_breaks_fold_outside_pre() -> None:
    html = "<main><p>one\n   two\nthree</p><pre>keep\n  this\n</pre></main>"
    md = page_content(html, "https://x.example/").markdown
    assert md == "one two three\n\n```\nkeep\n  this\n```\n"


def test_deeply_nested_wrappers_keep_their_text() -> None:
    html = "<body><h1>T</h1>" + "<div>" * 1500 + "<p>deep text</p>" + "</div>" * 1500
    md = page_content(html + "<p>after</p></body>", "https://x.example/").markdown
    assert md == "# T\n\ndeep text\n\nafter\n"


def test_binary_garbage_and_control_characters() -> None:
    noise = bytes(range(256)) * 400
    assert isinstance(page_content(noise, "https://x.example/").markdown, str)
    html = b"<main><p>bell\x07 and\x0b vertical tab</p><a>no href</a></main>"
    assert page_content(html, "https://x.example/").markdown == "bell and vertical tab\n\nno href\n"


def test_a_list_of_short_links_under_a_heading_in_main_is_content() -> None:
    news = "".join(f'<li><a href="/news/{i}">News item {i}</a></li>' for i in range(6))
    sub = '<ul><li><a href="/a">Overview</a></li><li><a href="/b">Archive</a></li>'
    sub += '<li><a href="/c">RSS</a></li></ul>'
    html = f"""<body><nav><a href="/">Home</a></nav><main>{sub}<h1>News</h1>
    <p>The latest news of the parish.</p><ul>{news}</ul></main></body>"""
    md = page_content(html, "https://oakvale.example/news/").markdown
    assert "- [News item 0](https://oakvale.example/news/0)" in md
    assert "- [News item 5](https://oakvale.example/news/5)" in md
    assert "Overview" not in md and "RSS" not in md  # the section menu above the heading


def test_page_builder_blocks_are_content() -> None:
    """Elementor names every block "elementor-widget ..."; WordPress sidebars "widget"."""
    html = """<body><div class="elementor elementor-42"><div class="elementor-element
    elementor-widget elementor-widget-heading"><h2 class="elementor-heading-title">Opening
    hours</h2></div><div class="elementor-element elementor-widget elementor-widget-text-editor">
    <p>Monday to Friday, 8:00 to 12:00.</p></div></div>
    <aside><section class="widget widget_archive"><h2>Archives</h2></section></aside>
    <div class="widget"><p>Sidebar text</p></div></body>"""
    md = page_content(html, "https://x.example/").markdown
    assert md == "## Opening hours\n\nMonday to Friday, 8:00 to 12:00.\n"


def test_consent_managers_are_furniture() -> None:
    html = """<body><div id="CybotCookiebotDialog"><h2>This website uses cookies</h2>
    <p>We use cookies to personalise content.</p></div>
    <div id="onetrust-consent-sdk"><p>Privacy preference centre</p></div>
    <h1>Waste collection</h1><p>Bins are emptied on Tuesdays.</p></body>"""
    md = page_content(html, "https://x.example/").markdown
    assert md == "# Waste collection\n\nBins are emptied on Tuesdays.\n"
