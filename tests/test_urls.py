"""URL joining, de-duplication keys and scope checks."""

from __future__ import annotations

import pytest

from skopd.crawl.urls import (
    file_name_from_url,
    is_route_fragment,
    join_link,
    normalize_url,
    path_allowed,
    route_key,
    same_site,
    site_key,
)

BASE = "https://example.org/council/minutes/index.html?page=2"


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("HTTP://Example.ORG/a", "http://example.org/a"),
        ("http://example.org:80/a", "http://example.org/a"),
        ("https://example.org:443/a", "https://example.org/a"),
        ("https://example.org:8443/a", "https://example.org:8443/a"),
        ("http://example.org:443/a", "http://example.org:443/a"),
        ("https://example.org", "https://example.org/"),
        ("https://example.org?a=1", "https://example.org/?a=1"),
        ("https://example.org/a/./b/../c", "https://example.org/a/c"),
        ("https://example.org/a/b/..", "https://example.org/a/"),
        ("https://example.org/../../x", "https://example.org/x"),
        ("https://example.org/a#section-2", "https://example.org/a"),
        ("https://www.example.org/a", "https://example.org/a"),
        ("https://WWW.example.org./a", "https://example.org/a"),
        ("https://example.org/a%7eb%2fc%c3%a4", "https://example.org/a~b%2Fc%C3%A4"),
        ("https://example.org/März 2024", "https://example.org/M%C3%A4rz%202024"),
        ("https://bücher.example/a", "https://xn--bcher-kva.example/a"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
        ("http://user@example.org:80/x", "http://user@example.org/x"),
        ("mailto:someone@example.org", "mailto:someone@example.org"),
    ],
)
def test_normalize_url(url: str, key: str) -> None:
    assert normalize_url(url) == key


def test_normalize_url_drops_tracking_parameters_case_insensitively() -> None:
    url = (
        "https://example.org/doc?utm_source=mail&UTM_Medium=x&gclid=1&fbclid=2&msclkid=3"
        "&yclid=4&mc_cid=5&mc_eid=6&_ga=7&_gl=8&igshid=9&ref_src=10&id=42"
    )
    assert normalize_url(url) == "https://example.org/doc?id=42"


def test_normalize_url_drops_session_parameters() -> None:
    url = (
        "https://example.org/doc;jsessionid=0A1B2C?PHPSESSID=abc&sid=1&SessionID=2"
        "&ASPSESSIONIDQQGGQRTB=xyz&jsessionid=3&year=2024"
    )
    assert normalize_url(url) == "https://example.org/doc?year=2024"
    assert (
        normalize_url("https://example.org/a;JSESSIONID=x/b.pdf") == "https://example.org/a/b.pdf"
    )


def test_normalize_url_sorts_parameters_stably_and_keeps_blank_values() -> None:
    assert normalize_url("https://example.org/?b=2&a=&c&a=1&&b=1") == (
        "https://example.org/?a=&a=1&b=2&b=1&c"
    )


def test_normalize_url_dedupes_equivalent_spellings() -> None:
    variants = [
        "http://www.example.org/reports/?year=2024&type=pdf",
        "HTTP://example.org:80/reports/./?type=pdf&year=2024#top",
        "http://example.org/reports/?type=pdf&utm_campaign=x&year=2024",
    ]
    assert len({normalize_url(url) for url in variants}) == 1


def test_normalize_url_keeps_distinct_pages_apart() -> None:
    assert normalize_url("https://example.org/a?id=1") != normalize_url(
        "https://example.org/a?id=2"
    )
    assert normalize_url("https://example.org/A") != normalize_url("https://example.org/a")
    assert normalize_url("https://example.org/a") != normalize_url("http://example.org/a")


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("Example.org", "example.org"),
        ("www.example.org", "example.org"),
        ("www.www.example.org", "www.example.org"),
        ("example.org.", "example.org"),
        ("wwwexample.org", "wwwexample.org"),
        ("intranet.example.org", "intranet.example.org"),
    ],
)
def test_site_key(host: str, key: str) -> None:
    assert site_key(host) == key


def test_same_site() -> None:
    assert same_site("https://www.example.org/a", "example.org")
    assert same_site("http://EXAMPLE.org:8080/a", "example.org")
    assert not same_site("https://docs.example.org/a", "example.org")
    assert not same_site("https://example.org.evil.test/a", "example.org")
    assert not same_site("ftp://example.org/a", "example.org")
    assert not same_site("http://[::1/broken", "example.org")


@pytest.mark.parametrize(
    ("href", "url"),
    [
        ("report.pdf", "https://example.org/council/minutes/report.pdf"),
        ("2024/report.pdf", "https://example.org/council/minutes/2024/report.pdf"),
        ("../agenda/", "https://example.org/council/agenda/"),
        ("./a.pdf", "https://example.org/council/minutes/a.pdf"),
        ("../../../../x", "https://example.org/x"),
        ("/files/a.PDF?dl=1", "https://example.org/files/a.PDF?dl=1"),
        ("//cdn.example.net/a.pdf", "https://cdn.example.net/a.pdf"),
        ("http://other.example/a", "http://other.example/a"),
        ("HTTPS://Other.example/a/../b", "HTTPS://Other.example/b"),
        ("?page=3", "https://example.org/council/minutes/index.html?page=3"),
        ("report.pdf#page=4", "https://example.org/council/minutes/report.pdf"),
        ("  \n report.pdf\t ", "https://example.org/council/minutes/report.pdf"),
        ("rep\nort\t.pdf", "https://example.org/council/minutes/report.pdf"),
        ("a\\b.pdf", "https://example.org/council/minutes/a/b.pdf"),
        ("a b.pdf", "https://example.org/council/minutes/a b.pdf"),
    ],
)
def test_join_link_resolves_like_a_browser(href: str, url: str) -> None:
    assert join_link(BASE, href) == url


@pytest.mark.parametrize(
    "href",
    [
        "",
        "   ",
        "#",
        "#minutes-2024",
        " #top",
        "javascript:void(0)",
        "JavaScript:openDoc('a.pdf')",
        " javascript:x",
        "mailto:clerk@example.org",
        "tel:+4930123",
        "data:application/pdf;base64,JVBERi0=",
        "about:blank",
        "ftp://example.org/a.pdf",
        "file:///etc/passwd",
        "//",
        "http://",
        "https:///path-only",
    ],
)
def test_join_link_rejects_what_cannot_be_fetched(href: str) -> None:
    assert join_link(BASE, href) is None


def test_join_link_needs_an_http_base_for_relative_links() -> None:
    assert join_link("about:blank", "a.pdf") is None
    assert join_link("about:blank", "https://example.org/a.pdf") == "https://example.org/a.pdf"
    assert join_link("https://example.org", "a.pdf") == "https://example.org/a.pdf"


def test_path_allowed_without_patterns_allows_everything() -> None:
    assert path_allowed("https://example.org/anything", [], [])


@pytest.mark.parametrize(
    ("url", "include", "exclude", "allowed"),
    [
        ("https://example.org/minutes/2024/a.pdf", ["/minutes/*"], [], True),
        ("https://example.org/news/a.pdf", ["/minutes/*"], [], False),
        ("https://example.org/minutes/2024/a.pdf", [], ["/minutes/*"], False),
        ("https://example.org/minutes/a.pdf", ["/minutes/*"], ["*.pdf"], False),
        ("https://example.org/x/archive/a.pdf", [], ["archive/*"], False),
        ("https://example.org/archive/a.pdf", [], ["archive/*"], False),
        ("https://example.org/x/current/a.pdf", [], ["archive/*"], True),
        ("https://example.org/a/REPORT.PDF", ["*.pdf"], [], False),
        ("https://example.org/a/report.pdf", ["*.pdf"], [], True),
        ("https://example.org/view?doc=minutes", ["*doc=minutes*"], [], True),
        ("https://example.org/M%C3%A4rz/a.pdf", ["/März/*"], [], True),
        ("https://example.org", ["/"], [], True),
    ],
)
def test_path_allowed(url: str, include: list[str], exclude: list[str], allowed: bool) -> None:
    assert path_allowed(url, include, exclude) is allowed


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://example.org/files/Annual%20Report%202024.pdf", "Annual Report 2024.pdf"),
        ("https://example.org/files/a.pdf?download=1#p2", "a.pdf"),
        ("https://example.org/files/a.pdf;jsessionid=1", "a.pdf"),
        ("https://example.org/files/", ""),
        ("https://example.org", ""),
        ("https://example.org/M%C3%A4rz.docx", "März.docx"),
    ],
)
def test_file_name_from_url(url: str, name: str) -> None:
    assert file_name_from_url(url) == name


@pytest.mark.parametrize(
    ("fragment", "route"),
    [
        ("/", True),
        ("/documents/2024", True),
        ("!/minutes", True),
        ("!/", True),
        ("/search?q=budget", True),
        ("", False),
        ("top", False),
        ("section-2", False),
        ("!minutes", False),  # a hashbang without its slash: not a route
        ("!", False),
        ("%2Fdocuments", False),
        (" /documents", False),
    ],
)
def test_is_route_fragment(fragment: str, route: bool) -> None:
    assert is_route_fragment(fragment) is route


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("HTTP://WWW.Example.org:80/app/#/docs/2024", "http://example.org/app/#/docs/2024"),
        ("https://example.org/app/?utm_source=x#!/minutes", "https://example.org/app/#!/minutes"),
        ("https://example.org/app#/Docs/A%20B", "https://example.org/app#/Docs/A%20B"),
        ("https://example.org/app/#/", "https://example.org/app/#/"),
        # Not routes: the same key as normalize_url gives.
        ("https://example.org/app/#section-2", "https://example.org/app/"),
        ("https://example.org/app/#", "https://example.org/app/"),
        ("https://example.org/app/", "https://example.org/app/"),
    ],
)
def test_route_key_keeps_only_route_fragments(url: str, key: str) -> None:
    assert route_key(url) == key
    if "#" not in key:
        assert key == normalize_url(url)
