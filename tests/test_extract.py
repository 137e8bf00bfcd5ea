"""Parsing pages into titles, text sizes and links with their surrounding words."""

from __future__ import annotations

import codecs
from concurrent.futures import ThreadPoolExecutor

import pytest

from skopd.crawl.extract import Link, Page, parse_page

URL = "https://example.org/council/index.html"


def parse(html: str, url: str = URL, content_type: str | None = None) -> Page:
    return parse_page(html.encode("utf-8"), url, content_type)


def described(html: str) -> Page:
    page = parse(html)
    page.describe(page.links)
    return page


def link_to(page: Page, url: str) -> Link:
    matches = [link for link in page.links if link.url == url]
    assert len(matches) == 1, [link.url for link in page.links]
    return matches[0]


def urls(page: Page) -> list[str]:
    return [link.url for link in page.links]


# Links and where they point


def test_links_are_absolute_in_document_order() -> None:
    page = parse(
        """<p><a href="minutes/2024.pdf">a</a> <a href="/files/b.docx">b</a>
        <a href="//cdn.example.net/c.xlsx">c</a> <a href="https://other.example/d">d</a>
        <a href="../e/">e</a> <a href="?page=2">f</a></p>"""
    )
    assert urls(page) == [
        "https://example.org/council/minutes/2024.pdf",
        "https://example.org/files/b.docx",
        "https://cdn.example.net/c.xlsx",
        "https://other.example/d",
        "https://example.org/e/",
        "https://example.org/council/index.html?page=2",
    ]


def test_base_href_is_honoured_and_resolved_against_the_page() -> None:
    page = parse(
        """<html><head><base href="/archive/2023/"><base href="https://wrong.example/">
        </head><body><a href="minutes.pdf">m</a></body></html>"""
    )
    assert page.base_url == "https://example.org/archive/2023/"
    assert urls(page) == ["https://example.org/archive/2023/minutes.pdf"]


def test_base_href_applies_to_links_before_it() -> None:
    page = parse('<a href="a.pdf">a</a><base href="https://files.example.org/docs/">')
    assert urls(page) == ["https://files.example.org/docs/a.pdf"]


def test_unusable_base_href_falls_back_to_the_page_url() -> None:
    page = parse('<base href="javascript:void(0)"><a href="a.pdf">a</a>')
    assert page.base_url == URL
    assert urls(page) == ["https://example.org/council/a.pdf"]


def test_fragments_are_removed_and_the_rest_kept_as_given() -> None:
    page = parse('<a href="Report%20A.PDF?dl=1&amp;v=2#page=3">r</a>')
    assert urls(page) == ["https://example.org/council/Report%20A.PDF?dl=1&v=2"]


def test_unfetchable_links_are_skipped() -> None:
    page = parse(
        """<a href="javascript:void(0)">js</a> <a href="mailto:clerk@example.org">mail</a>
        <a href="tel:+4930123">call</a> <a href="#top">top</a> <a href="">empty</a>
        <a href="data:text/plain,hi">data</a> <a>no href</a> <a href="ftp://x.org/a">ftp</a>
        <a href="keep.pdf">keep</a>"""
    )
    assert urls(page) == ["https://example.org/council/keep.pdf"]


def test_every_link_source_is_found_with_its_tag() -> None:
    page = parse(
        """<html><head><meta http-equiv="Refresh" content="0; URL='/moved/'"></head><body>
        <a href="a.pdf">a</a>
        <map><area href="area.pdf" alt="Floor plan"></map>
        <iframe src="/frame/viewer.html"></iframe>
        <embed src="embedded.pdf"><object data="object.pdf"></object>
        </body></html>"""
    )
    assert [(link.url, link.tag) for link in page.links] == [
        ("https://example.org/moved/", "meta"),
        ("https://example.org/council/a.pdf", "a"),
        ("https://example.org/council/area.pdf", "area"),
        ("https://example.org/frame/viewer.html", "iframe"),
        ("https://example.org/council/embedded.pdf", "embed"),
        ("https://example.org/council/object.pdf", "object"),
    ]
    assert link_to(page, "https://example.org/council/area.pdf").text == "Floor plan"


def test_frameset_pages_give_their_frames() -> None:
    page = parse(
        """<html><frameset cols="20%,80%"><frame src="nav.html"><frame src="main.html">
        </frameset></html>"""
    )
    assert [(link.url, link.tag) for link in page.links] == [
        ("https://example.org/council/nav.html", "frame"),
        ("https://example.org/council/main.html", "frame"),
    ]


@pytest.mark.parametrize(
    ("content", "target"),
    [
        ("0; url=https://example.org/new/", "https://example.org/new/"),
        ("5;URL=next.html", "https://example.org/council/next.html"),
        ('0; url="quoted.html"', "https://example.org/council/quoted.html"),
        ("0;url = spaced.html ", "https://example.org/council/spaced.html"),
        ("0, /comma.html", "https://example.org/comma.html"),
    ],
)
def test_meta_refresh_targets(content: str, target: str) -> None:
    page = parse(f"<meta http-equiv='refresh' content='{content}'>")
    assert [(link.url, link.tag) for link in page.links] == [(target, "meta")]


def test_meta_refresh_without_a_url_is_no_link() -> None:
    page = parse('<meta http-equiv="refresh" content="30"><meta name="refresh" content="0;a">')
    assert page.links == []


def test_links_in_scripts_and_templates_are_ignored() -> None:
    page = parse(
        """<script>document.write('<a href="script.pdf">x</a>')</script>
        <template><a href="template.pdf">t</a></template>
        <noscript><a href="noscript.pdf">no js</a></noscript>"""
    )
    assert urls(page) == ["https://example.org/council/noscript.pdf"]


# Link texts


def test_link_text_collapses_whitespace_and_includes_image_alt() -> None:
    page = parse(
        """<a href="a.pdf">  Annual
        report <b>2024</b>\t</a> <a href="b.pdf"><img src="i.png" alt="Budget 2024"></a>
        <a href="c.pdf" title="  Council   minutes ">PDF</a>"""
    )
    assert [(link.text, link.title) for link in page.links] == [
        ("Annual report 2024", ""),
        ("Budget 2024", ""),
        ("PDF", "Council minutes"),
    ]


def test_link_text_is_capped() -> None:
    page = parse(f'<a href="a.pdf">{"word " * 200}</a>')
    assert len(page.links[0].text) == 300


def test_duplicate_links_are_merged_with_their_texts() -> None:
    page = parse(
        """<ul><li><a href="report.pdf">Annual report 2024</a>
        <a href="report.pdf#page=1">[PDF]</a> <a href="report.pdf">annual REPORT 2024</a>
        <a href="report.pdf"><img src="pdf.png"></a></li>
        <li><a href="other.pdf" title="">Other</a><a href="other.pdf" title="Second">x</a></li>
        </ul>"""
    )
    assert urls(page) == [
        "https://example.org/council/report.pdf",
        "https://example.org/council/other.pdf",
    ]
    assert page.links[0].text == "Annual report 2024 | [PDF]"
    assert page.links[1].title == "Second"


def test_duplicate_merge_keeps_the_first_links_text_first() -> None:
    page = parse('<a href="r.pdf">[PDF]</a> <a href="r.pdf">Minutes of 3 March 2024</a>')
    assert page.links[0].text == "[PDF] | Minutes of 3 March 2024"


# Headings


def test_heading_is_the_nearest_preceding_heading() -> None:
    page = described(
        """<h1>Council</h1><h2>Minutes 2023</h2><p><a href="a.pdf">March</a></p>
        <h2>Minutes 2024</h2><div><p>intro</p><ul><li><a href="b.pdf">May</a></li></ul></div>
        <h3>Budget</h3><a href="c.pdf">Plan</a>"""
    )
    assert [link.heading for link in page.links] == ["Minutes 2023", "Minutes 2024", "Budget"]


def test_a_link_before_any_heading_has_none() -> None:
    assert described('<a href="a.pdf">a</a><h2>Later</h2>').links[0].heading == ""


def test_a_link_that_is_a_heading_gets_the_heading_before_it() -> None:
    page = described('<h2>Minutes 2024</h2><h3><a href="march.pdf">March meeting</a></h3>')
    assert page.links[0].heading == "Minutes 2024"


def test_details_summary_is_joined_with_the_section_heading() -> None:
    page = described(
        """<h2>Meetings</h2>
        <details><summary>Board minutes 2024</summary>
          <ul><li><a href="jan.pdf">January</a></li></ul></details>
        <details><summary><a href="all-2023.html">Board minutes 2023</a></summary></details>"""
    )
    assert page.links[0].heading == "Board minutes 2024 / Meetings"
    assert page.links[1].heading == "Meetings"


def test_heading_inside_details_is_more_specific_than_its_summary() -> None:
    page = described(
        """<details><summary>Archive 2024</summary><h4>Budget committee</h4>
        <a href="b.pdf">Minutes</a></details>"""
    )
    assert page.links[0].heading == "Budget committee / Archive 2024"


def test_table_caption_is_the_heading_of_its_rows() -> None:
    page = described(
        """<h2>Documents</h2><table><caption>Sessions 2024</caption>
        <tr><td>12 March</td><td><a href="m.pdf">Minutes</a></td></tr></table>
        <table><tr><td><a href="n.pdf">No caption</a></td></tr></table>"""
    )
    assert page.links[0].heading == "Sessions 2024 / Documents"
    assert page.links[1].heading == "Documents"


def test_definition_list_term_is_the_heading_of_its_description() -> None:
    page = described(
        """<h2>Archive</h2><dl><dt>2023</dt><dd><a href="a.pdf">Minutes</a></dd>
        <dd><a href="b.pdf">Agenda</a></dd><dt>2024</dt><dd><a href="c.pdf">Minutes</a></dd>
        <div><dt>2025</dt><dd><a href="d.pdf">Plan</a></dd></div>
        <dt><a href="e.html">2026</a></dt></dl>"""
    )
    assert [link.heading for link in page.links] == [
        "2023 / Archive",
        "2023 / Archive",
        "2024 / Archive",
        "2025 / Archive",
        "Archive",
    ]


def test_fieldset_legend_is_a_heading() -> None:
    page = described('<fieldset><legend>Downloads 2024</legend><a href="a.pdf">A</a></fieldset>')
    assert page.links[0].heading == "Downloads 2024"


def test_nested_containers_join_most_specific_first() -> None:
    page = described(
        """<h1>Town hall</h1><details><summary>2024</summary>
        <table><caption>Planning board</caption><tr><td><a href="a.pdf">A</a></td></tr>
        </table></details>"""
    )
    assert page.links[0].heading == "Planning board / 2024 / Town hall"


def test_heading_is_capped() -> None:
    page = described(f'<h2>{"long " * 100}</h2><a href="a.pdf">a</a>')
    assert len(page.links[0].heading) == 200


# Context


def test_context_of_a_table_link_is_the_whole_row() -> None:
    page = described(
        """<table><tr><th>Date</th><th>Title</th><th>File</th></tr>
        <tr><td>12.03.2024</td><td>Minutes of the budget session</td>
            <td><a href="m.pdf">PDF</a> <a href="m.docx">DOCX</a></td></tr>
        <tr><td>19.03.2024</td><td>Agenda</td><td><a href="a.pdf">PDF</a></td></tr></table>"""
    )
    assert link_to(page, "https://example.org/council/m.pdf").context == (
        "12.03.2024 Minutes of the budget session PDF DOCX"
    )
    assert link_to(page, "https://example.org/council/a.pdf").context == "19.03.2024 Agenda PDF"


@pytest.mark.parametrize(
    ("html", "context"),
    [
        (
            '<ul><li>Budget 2024 <a href="x.pdf">(PDF, 2 MB)</a></li></ul>',
            "Budget 2024 (PDF, 2 MB)",
        ),
        ('<dl><dt>2024</dt><dd>Plan: <a href="x.pdf">download</a></dd></dl>', "Plan: download"),
        ('<p>The <a href="x.pdf">minutes</a> were approved.</p>', "The minutes were approved."),
        (
            '<figure><a href="x.pdf"><img alt="Map"></a><figcaption>Zone B</figcaption></figure>',
            "Map Zone B",
        ),
        (
            '<div>Download the <span><a href="x.pdf">report</a></span> here</div>',
            "Download the report here",
        ),
    ],
)
def test_context_is_the_enclosing_row_like_block(html: str, context: str) -> None:
    assert described(html).links[0].context == context


def test_context_of_a_link_in_a_long_block_is_a_window_around_it() -> None:
    filler = " ".join(f"word{i}" for i in range(300))
    page = described(f'<div>{filler} <a href="x.pdf">Minutes 12 March 2024</a> {filler}</div>')
    context = page.links[0].context
    assert len(context) <= 400
    assert "Minutes 12 March 2024" in context
    assert context.split()[0].startswith("word") and context.split()[-1].startswith("word")


def test_each_link_in_a_long_block_gets_its_own_window() -> None:
    items = "".join(
        f'<a href="m{i}.pdf">Minutes {i}</a> session {i} text text text<br>' for i in range(60)
    )
    page = described(f"<div>{items}</div>")
    assert "Minutes 3 session 3" in page.links[3].context
    assert "Minutes 55 session 55" in page.links[55].context
    assert "Minutes 3 " not in page.links[55].context


# Describing only the links a crawler keeps

SECTIONS = """<h1>Town hall</h1><p>Intro <a href="news.html">News</a></p>
<details><summary>2024</summary><table><caption>Planning board</caption>
<tr><td>12 March</td><td><a href="a.pdf">Minutes</a></td></tr></table></details>
<h2>Budget</h2><ul><li>Draft <a href="b.pdf">plan</a></li></ul>"""


def test_links_have_no_heading_or_context_until_described() -> None:
    page = parse(SECTIONS)
    assert [(link.heading, link.context) for link in page.links] == [("", "")] * 3
    assert [link.text for link in page.links] == ["News", "Minutes", "plan"]


def test_describe_fills_only_the_given_links() -> None:
    page = parse(SECTIONS)
    news, minutes, plan = page.links
    page.describe([plan, minutes])
    assert (minutes.heading, minutes.context) == (
        "Planning board / 2024 / Town hall",
        "12 March Minutes",
    )
    assert (plan.heading, plan.context) == ("Budget", "Draft plan")
    assert (news.heading, news.context) == ("", "")


def test_describing_the_first_link_alone_ignores_what_follows() -> None:
    page = parse(SECTIONS)
    page.describe(page.links[:1])
    assert (page.links[0].heading, page.links[0].context) == ("Town hall", "Intro News")


def test_a_repeated_link_is_described_where_it_first_appears() -> None:
    page = parse('<h2>Agendas</h2><p>See <a href="x.pdf">x</a></p><h2>Minutes</h2><a href="x.pdf">')
    page.describe(page.links)
    assert (page.links[0].heading, page.links[0].context) == ("Agendas", "See x")


def test_a_described_or_released_page_cannot_be_described_again() -> None:
    page = parse(SECTIONS)
    page.describe(page.links[:1])
    with pytest.raises(RuntimeError):
        page.describe(page.links[1:])
    released = parse(SECTIONS)
    released.release()
    with pytest.raises(RuntimeError):
        released.describe(released.links)
    assert [link.context for link in released.links] == ["", "", ""]


def test_links_of_another_page_are_refused() -> None:
    page = parse(SECTIONS)
    other = parse('<a href="elsewhere.pdf">x</a>')
    with pytest.raises(ValueError, match=r"elsewhere\.pdf"):
        page.describe(other.links)


def test_text_chars_read_before_release_stays_readable() -> None:
    page = parse("<body><p>Five chars: abcde</p></body>")
    assert page.text_chars == len("Five chars: abcde")
    page.release()
    assert page.text_chars == len("Five chars: abcde")
    unread = parse("<p>x</p>")
    unread.describe(unread.links)
    with pytest.raises(RuntimeError):
        _ = unread.text_chars


def test_a_page_parsed_in_a_thread_is_described_in_another() -> None:
    with ThreadPoolExecutor(1) as pool:
        page = pool.submit(parse, SECTIONS).result()
    page.describe(page.links)
    assert [link.heading for link in page.links] == [
        link.heading for link in described(SECTIONS).links
    ]
    assert page.links[2].context == "Draft plan"


# Page fields


def test_title_lang_and_text_size() -> None:
    page = parse(
        """<html lang="de"><head><title> Rat  der Stadt </title>
        <style>body { color: red }</style><script>var big = "x".repeat(1000);</script></head>
        <body><h1>Sitzungen</h1><p>Hier finden Sie Protokolle.</p></body></html>"""
    )
    assert (page.title, page.lang) == ("Rat der Stadt", "de")
    assert page.text_chars == len("Sitzungen") + len("Hier finden Sie Protokolle.")


def test_title_falls_back_to_the_first_h1() -> None:
    page = parse("<svg><title>icon</title></svg><h1>Board <em>minutes</em></h1><h1>Other</h1>")
    assert page.title == "Board minutes"


def test_a_javascript_shell_has_little_text() -> None:
    page = parse(
        """<html><head><title>App</title><script src="/app.js"></script></head>
        <body><div id="root"></div><noscript>You need to enable JavaScript to run this app.
        </noscript><script>window.__STATE__ = {"a": "lots of data here"}</script></body></html>"""
    )
    assert page.text_chars == 0


def test_links_below_hundreds_of_unclosed_tags_are_found() -> None:
    page = parse("<p>" + "<font size=2>old site " * 400 + '<a href="deep.pdf">Deep</a>')
    assert urls(page) == ["https://example.org/council/deep.pdf"]
    assert page.links[0].text == "Deep"


def test_page_url_is_kept() -> None:
    page = parse("<p>x</p>", url="https://example.org/a?b=1")
    assert (page.url, page.base_url) == ("https://example.org/a?b=1", "https://example.org/a?b=1")


@pytest.mark.parametrize(
    "body",
    [b"", b"   ", b"\x00\x00\x00", b"\x89PNG\r\n\x1a\n\x00\x00", b"%PDF-1.4\n\xff\xfe\xfd", b"<"],
)
def test_empty_or_garbage_bodies_give_a_page_without_links(body: bytes) -> None:
    page = parse_page(body, URL, "text/html")
    assert page.links == []
    assert page.url == URL


# Encodings

TITLE = "Protokoll der Sitzung – März 2024"


@pytest.mark.parametrize("charset", ["windows-1252", "iso-8859-1", "ISO-8859-1", "latin1"])
def test_single_byte_pages_declared_in_meta_charset(charset: str) -> None:
    html = f'<html><head><meta charset="{charset}"><title>{TITLE}</title></head></html>'
    assert parse_page(html.encode("cp1252"), URL).title == TITLE


def test_single_byte_page_declared_in_http_equiv() -> None:
    html = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">'
        f'<title>{TITLE}</title></head><body><a href="m.pdf">{TITLE}</a></body></html>'
    )
    page = parse_page(html.encode("cp1252"), URL, "text/html")
    assert page.title == TITLE
    assert page.links[0].text == TITLE


def test_shift_jis_page_declared_in_meta() -> None:
    html = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">'
        "<title>議事録 2024年3月</title></head><body><h2>会議録</h2>"
        '<a href="gijiroku.pdf">第1回 定例会</a></body></html>'
    )
    page = parse_page(html.encode("shift_jis"), URL)
    page.describe(page.links)
    assert page.title == "議事録 2024年3月"
    assert (page.links[0].text, page.links[0].heading) == ("第1回 定例会", "会議録")


def test_header_charset_overrides_meta() -> None:
    html = f'<html><head><meta charset="iso-8859-1"><title>{TITLE}</title></head></html>'
    assert parse_page(html.encode("utf-8"), URL, "text/html; charset=UTF-8").title == TITLE
    assert parse_page(html.encode("cp1252"), URL, 'text/html;charset="windows-1252"').title == (
        TITLE
    )


def test_undeclared_pages_are_utf8_else_windows_1252() -> None:
    html = f"<html><head><title>{TITLE}</title></head></html>"
    assert parse_page(html.encode("utf-8"), URL).title == TITLE
    assert parse_page(html.encode("cp1252"), URL).title == TITLE


def test_unknown_charsets_are_ignored() -> None:
    html = f'<html><head><meta charset="no-such-charset"><title>{TITLE}</title></head></html>'
    assert parse_page(html.encode("utf-8"), URL, "text/html; charset=bogus").title == TITLE


@pytest.mark.parametrize(
    ("bom", "codec"),
    [(codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (b"", "utf-8")],
)
def test_byte_order_marks(bom: bytes, codec: str) -> None:
    html = f"<html><head><title>{TITLE}</title></head><body><a href='a.pdf'>A</a></body></html>"
    page = parse_page(bom + html.encode(codec), URL)
    assert page.title == TITLE
    assert urls(page) == ["https://example.org/council/a.pdf"]


@pytest.mark.parametrize(
    ("prefix", "content_type"),
    [(codecs.BOM_UTF16_LE, None), (b"", "text/html; charset=utf-16le")],
)
def test_utf16_pages_of_ascii_characters(prefix: bytes, content_type: str | None) -> None:
    html = "<title>Minutes</title><a href='a.pdf'>A</a>"
    page = parse_page(prefix + html.encode("utf-16-le"), URL, content_type)
    assert (page.title, urls(page)) == ("Minutes", ["https://example.org/council/a.pdf"])


def test_invalid_bytes_in_a_utf8_page_do_not_lose_the_page() -> None:
    html = f"<title>{TITLE}</title><a href='a.pdf'>Caf\udcffé</a>"
    body = html.encode("utf-8", "surrogateescape")
    page = parse_page(body, URL, "text/html; charset=utf-8")
    assert page.title == TITLE
    assert page.links[0].text == "Caf\ufffdé"
