"""build_query: what a prompt asks for; link_priority: which page links to follow first."""

from __future__ import annotations

import datetime

import pytest

from skopd.relevance.query import Query, build_query, link_priority

TODAY = datetime.date(2025, 6, 1)
SHEETS = {"xls", "xlsx", "ods", "csv"}
WORDPROC = {"doc", "docx", "odt", "rtf"}
SLIDES = {"ppt", "pptx", "odp"}


@pytest.mark.parametrize(
    ("prompt", "years", "year_from", "year_to"),
    [
        ("find all board meeting minutes from 2024", (2024,), 2024, 2024),
        ("minutes in 2024", (2024,), 2024, 2024),
        ("minutes of the year 2024", (2024,), 2024, 2024),
        ("annual financial reports since 2020", (2020,), 2020, None),
        ("minutes after 2019", (2019,), 2020, None),
        ("minutes 2020 onwards", (2020,), 2020, None),
        ("minutes from 2020 on", (2020,), 2020, None),
        ("budget 2020+", (2020,), 2020, None),
        ("budget documents between 2019 and 2021", (2019, 2021), 2019, 2021),
        ("minutes 2019-2021", (2019, 2021), 2019, 2021),
        ("minutes 2019–2021", (2019, 2021), 2019, 2021),
        ("minutes 2019 to 2021", (2019, 2021), 2019, 2021),
        ("minutes from 2020 to 2022", (2020, 2022), 2020, 2022),
        ("budget 2023/24", (2023,), 2023, 2024),
        ("minutes before 2010", (2010,), None, 2009),
        ("minutes until 2015", (2015,), None, 2015),
        ("minutes 2015 and earlier", (2015,), None, 2015),
        ("agenda last year", (2024,), 2024, 2024),
        ("agenda this year", (2025,), 2025, 2025),
        ("pdfs from the last 3 years", (2022, 2025), 2022, 2025),
        # German, French, Dutch, Spanish
        ("Sitzungsprotokolle des Gemeinderats 2023", (2023,), 2023, 2023),
        ("Protokolle seit 2020", (2020,), 2020, None),
        ("Protokolle vor 2010", (2010,), None, 2009),
        ("Protokolle zwischen 2019 und 2021", (2019, 2021), 2019, 2021),
        ("Protokolle von 2019 bis 2021", (2019, 2021), 2019, 2021),
        ("Protokolle letztes Jahr", (2024,), 2024, 2024),
        ("procès-verbaux depuis 2020", (2020,), 2020, None),
        ("procès-verbaux avant 2010", (2010,), None, 2009),
        ("procès-verbaux entre 2019 et 2021", (2019, 2021), 2019, 2021),
        ("procès-verbaux de 2019 à 2021", (2019, 2021), 2019, 2021),
        ("procès-verbaux de l'année dernière", (2024,), 2024, 2024),
        ("notulen sinds 2020", (2020,), 2020, None),
        ("actas entre 2019 y 2021", (2019, 2021), 2019, 2021),
        # several separate years stay separate, no year means no filter
        ("minutes 2019, 2021 and 2023", (2019, 2021, 2023), None, None),
        ("board meeting minutes", (), None, None),
    ],
)
def test_year_phrases(
    prompt: str, years: tuple[int, ...], year_from: int | None, year_to: int | None
) -> None:
    query = build_query(prompt, TODAY)
    assert (query.years, query.year_from, query.year_to) == (years, year_from, year_to)


@pytest.mark.parametrize(
    ("prompt", "inside", "outside"),
    [
        ("minutes from 2024", [2024], [2023, 2025]),
        ("minutes since 2020", [2020, 2031], [2019]),
        ("minutes before 2010", [1999, 2009], [2010]),
        ("minutes between 2019 and 2021", [2019, 2020, 2021], [2018, 2022]),
        ("minutes 2019 and 2021", [2019, 2021], [2020]),
        ("minutes", [1950, 2024], []),
    ],
)
def test_wanted_years(prompt: str, inside: list[int], outside: list[int]) -> None:
    query = build_query(prompt, TODAY)
    assert all(query.wants_year(y) for y in inside)
    assert not any(query.wants_year(y) for y in outside)


def test_relative_years_follow_today() -> None:
    assert build_query("minutes last year", datetime.date(2031, 1, 5)).years == (2030,)
    assert build_query("minutes this year", datetime.date(2031, 1, 5)).year_from == 2031


@pytest.mark.parametrize(
    ("prompt", "types"),
    [
        ("annual financial reports since 2020 as spreadsheets", SHEETS),
        ("budget in Excel", SHEETS),
        ("all PDFs of the council", {"pdf"}),
        ("minutes pdf", {"pdf"}),
        ("word documents about planning", WORDPROC),
        ("budget hearing as PowerPoint", SLIDES),
        ("pptx files from 2024", SLIDES),
        ("population figures as csv", {"csv"}),
        ("board meeting minutes", set()),
    ],
)
def test_type_words(prompt: str, types: set[str]) -> None:
    query = build_query(prompt, TODAY)
    assert set(query.doc_types) == types
    assert not set(query.terms) & {
        "pdf",
        "excel",
        "spreadsheet",
        "powerpoint",
        "pptx",
        "csv",
        "word",
    }


@pytest.mark.parametrize(
    "prompt", ["presentations from the annual meeting", "conference slides", "Präsentationen 2024"]
)
def test_presentations_are_searched_for_not_a_file_type(prompt: str) -> None:
    # Slides are published as PDFs as often as not: the word is a term, not a type filter.
    query = build_query(prompt, TODAY)
    assert query.doc_types == ()
    assert {"presentation", "prasentation", "slide"} <= set(query.terms)


def test_terms_are_content_words_folded_and_stemmed() -> None:
    query = build_query("Find all the Board Meetings' Minutes from 2024, please", TODAY)
    assert {"board", "meeting"} <= set(query.terms)
    assert not {"find", "all", "the", "from", "please", "2024"} & set(query.terms)
    assert "board meeting" in query.phrases
    # minutes / Minute / MINUTES normalise to one term
    assert len({build_query(p).terms[0] for p in ("minutes", "Minute", "MINUTES")}) == 1


@pytest.mark.parametrize(
    ("prompt", "translation"),
    [
        ("board meeting minutes", "protokoll"),
        ("Sitzungsprotokolle des Gemeinderats", "minut"),
        ("procès-verbaux du conseil municipal", "notul"),
        ("agenda of the council", "tagesordnung"),
        ("Haushalt 2024", "budget"),
        ("annual reports", "jahresbericht"),
        ("amtliche Bekanntmachungen", "public notic"),  # one phrase, one meaning
        ("public notices", "bekanntmachung"),
        ("arrêtés municipaux", "order"),
        ("planning applications", "antrag"),
    ],
)
def test_document_words_bring_translations(prompt: str, translation: str) -> None:
    assert translation in build_query(prompt, TODAY).terms


def test_terms_are_accent_folded() -> None:
    query = build_query("procès-verbaux du conseil municipal 2024", TODAY)
    assert all(term.isascii() for term in query.terms)
    assert not {"du", "de", "la"} & set(query.terms)


def test_months_are_read_but_not_terms() -> None:
    query = build_query("Protokoll März 2024", TODAY)
    assert query.months == (3,)
    assert "marz" not in query.terms
    assert build_query("documents that may mention minutes", TODAY).months == ()


# ---------------------------------------------------------------- link priority

HOST = "https://www.riverton.example"


def _rank(query: Query, links: list[tuple[str, str]]) -> list[float]:
    return [link_priority(query, HOST + path, text) for path, text in links]


def test_links_toward_the_wanted_year_and_topic_come_first() -> None:
    query = build_query("find all board meeting minutes from 2024", TODAY)
    right, topic, neutral, wrong_year, shop = _rank(
        query,
        [
            ("/council/meetings/2024/", "2024"),
            ("/council/meetings/", "Meetings"),
            ("/about-us/", "About us"),
            ("/council/meetings/2023/", "2023"),
            ("/shop/cart", "Cart"),
        ],
    )
    assert right > topic > neutral > wrong_year > shop
    assert shop < 0.1
    assert link_priority(query, "mailto:clerk@riverton.example", "Email") == 0.0


@pytest.mark.parametrize(
    ("prompt", "good", "plain"),
    [
        ("Sitzungsprotokolle des Gemeinderats", "/politik/gemeinderat/protokolle/", "/kultur/"),
        ("budget 2024", "/finanzen/haushaltsplaene/", "/kultur/"),  # a German compound
        ("procès-verbaux du conseil municipal", "/mairie/conseil-municipal/", "/tourisme/"),
        ("annual reports", "/about/annual-reports/", "/about/history/"),
        ("board meeting minutes", "/news/?page=2", "/news/"),  # listings continue
        ("board meeting minutes", "/documents/", "/events/"),  # where documents live
    ],
)
def test_link_priority_prefers_promising_paths(prompt: str, good: str, plain: str) -> None:
    query = build_query(prompt, TODAY)
    assert link_priority(query, HOST + good, "") > link_priority(query, HOST + plain, "")


def test_link_text_counts_like_the_path() -> None:
    query = build_query("board meeting minutes from 2024", TODAY)
    assert link_priority(query, HOST + "/p/123", "Minutes 2024") > link_priority(
        query, HOST + "/p/123", "Opening hours"
    )


def test_link_priority_stays_in_range() -> None:
    query = build_query("board meeting minutes protokoll agenda documents 2024", TODAY)
    text = "Board meeting minutes agenda documents archive next page 2024"
    for url in (HOST + "/minutes/agenda/meetings/board/2024/documents/?page=2", "javascript:x()"):
        assert 0.0 <= link_priority(query, url, text) <= 1.0
