"""The built-in scorer: ranking realistic candidates, and naming them."""

from __future__ import annotations

import datetime

import pytest

from skopd.relevance.base import Candidate, Scorer
from skopd.relevance.lexical import LexicalScorer, document_name, score_candidate
from skopd.relevance.query import Query, build_query

TODAY = datetime.date(2025, 6, 1)
THRESHOLD = 0.1  # the default confidence threshold: at or above it a document is downloaded
GENERIC_TEXTS = ["PDF", "[PDF]", "pdf (2 MB)", "Download", "here", "click here",
                 "Herunterladen", "Télécharger"]  # fmt: skip


def cand(url: str = "https://riverton.example/files/doc.pdf", **fields: str) -> Candidate:
    """A candidate whose file name and type follow its URL unless given."""
    name = url.split("?")[0].rsplit("/", 1)[-1]
    fields.setdefault("filename", name)
    fields.setdefault("doc_type", name.rsplit(".", 1)[-1].lower() if "." in name else "")
    return Candidate(id=0, url=url, **fields)


def score(prompt: str, candidate: Candidate) -> float:
    return score_candidate(build_query(prompt, TODAY), candidate)


def assert_ranked(prompt: str, ranked: list[Candidate]) -> list[float]:
    scores = [score(prompt, c) for c in ranked]
    assert scores == sorted(scores, reverse=True), list(zip(scores, ranked, strict=True))
    assert len(set(scores)) == len(scores), "equal scores hide the order"
    return scores


# ---------------------------------------------------------------- ranking

MINUTES_2024 = cand(
    "https://riverton.example/files/minutes-2024-03.pdf",
    text="Board meeting minutes – 12 March 2024",
    page_title="Council meetings",
)
MINUTES_IN_TABLE = cand(
    "https://riverton.example/files/minutes-2024-01.pdf",
    text="PDF",
    context="Board Meeting Minutes – January 2024 PDF",
    page_title="Regular board meetings",
)
MINUTES_UNDER_HEADING = cand(
    "https://riverton.example/files/board-minutes-oct.pdf",
    text="Board minutes, October",
    heading="Meetings 2024",
    page_title="Council meetings",
)
MINUTES_UNDATED = cand(
    "https://riverton.example/files/minutes.pdf",
    text="Minutes of the board meeting",
    page_title="Council meetings",
)
AGENDA_2024 = cand(
    "https://riverton.example/files/agenda-2024-03.pdf",
    text="Agenda – Board meeting 12 March 2024",
)
MINUTES_2023 = cand(
    "https://riverton.example/files/minutes-2023-03.pdf",
    text="Board meeting minutes – 14 March 2023",
    page_title="Council meetings",
)
MINUTES_2023_BY_HEADING = cand(
    "https://riverton.example/files/board-minutes-nov.docx",
    text="Board meeting minutes – November",
    heading="2023",
    page_title="Council meetings",
)
WATER_2024 = cand(
    "https://riverton.example/files/water-quality-2024.txt",
    text="TXT",
    context="Water quality report 2024 TXT",
    page_title="Finance",
)
PRIVACY = cand(
    "https://riverton.example/files/privacy-policy.pdf",
    text="Privacy policy (PDF)",
    page_title="Privacy",
)


def test_board_minutes_2024_ranking() -> None:
    prompt = "find all board meeting minutes from 2024"
    scores = assert_ranked(
        prompt,
        [MINUTES_2024, MINUTES_IN_TABLE, MINUTES_UNDER_HEADING, MINUTES_UNDATED, AGENDA_2024],
    )
    assert scores[0] >= 0.7
    assert all(s >= THRESHOLD for s in scores[:4])
    assert scores[-1] < scores[0] / 4  # an agenda is not the minutes
    for wrong in (MINUTES_2023, MINUTES_2023_BY_HEADING, WATER_2024, PRIVACY):
        assert score(prompt, wrong) < THRESHOLD, wrong


def test_the_same_documents_for_2023_swap_places() -> None:
    prompt = "board meeting minutes from 2023"
    assert score(prompt, MINUTES_2023) >= 0.7
    assert score(prompt, MINUTES_2023_BY_HEADING) >= 0.7
    for wrong in (MINUTES_2024, MINUTES_IN_TABLE, MINUTES_UNDER_HEADING):
        assert score(prompt, wrong) < THRESHOLD


def test_german_council_minutes() -> None:
    prompt = "Sitzungsprotokolle des Gemeinderats 2023"
    right = cand(text="Niederschrift über die Sitzung des Gemeinderates vom 14.03.2023")
    in_sentence = cand(
        text="hier",
        context="Das Protokoll der Gemeinderatssitzung vom 5. Februar 2023 finden Sie hier",
    )
    committee = cand(text="Sitzungsprotokoll Bauausschuss 2023")
    assert_ranked(prompt, [right, in_sentence, committee])
    assert score(prompt, right) >= 0.7
    assert score(prompt, cand(text="Protokoll Gemeinderat 12.03.2022")) < THRESHOLD
    assert score(prompt, cand(text="Impressum", page_title="Gemeinde – Gemeinderat")) < THRESHOLD


def test_french_council_minutes() -> None:
    prompt = "procès-verbaux du conseil municipal 2024"
    right = cand(
        text="Télécharger",
        context="Procès-verbal du conseil municipal du 12.03.2024 Télécharger (PDF, 350 Ko)",
    )
    compte_rendu = cand(text="Compte rendu de la séance du conseil – mars 2024")
    assert_ranked(prompt, [right, compte_rendu])
    assert score(prompt, right) >= 0.7
    wrong_year = cand(text="Procès-verbal du conseil municipal du 12.03.2023")
    agenda = cand(text="Ordre du jour du conseil municipal 2024")
    for wrong in (wrong_year, agenda, cand(text="Plan de la ville", page_title="Mairie")):
        assert score(prompt, wrong) < THRESHOLD


def test_translations_count_as_the_same_document_kind() -> None:
    english = cand(text="Minutes of the municipal council, 12 March 2024")
    assert score("procès-verbaux du conseil municipal 2024", english) >= 0.5
    assert score("Protokolle 2024", english) >= 0.5


def test_budget_range_and_compounds() -> None:
    prompt = "budget documents between 2019 and 2021"
    inside = [
        cand(text="budget_2020.pdf"),
        cand(text="Haushaltsplan 2019/2020"),
        cand(text="[PDF]", title="Presupuesto municipal 2021"),
        cand(text="Multi-year budget 2018-2022"),
    ]
    for c in inside:
        assert score(prompt, c) >= 0.5, c
    assert score(prompt, cand(text="Budget 2022")) < THRESHOLD
    assert score(prompt, cand(text="Budget 2017")) < THRESHOLD


# ---------------------------------------------------------------- years


@pytest.mark.parametrize(
    "dated",
    [
        cand(text="Minutes 2024-03-12"),
        cand(text="Minutes 12.03.2024"),
        cand(text="Minutes 03/2024"),
        cand(text="minutes_20240312.pdf"),
        cand("https://riverton.example/f/minutes_20240312.pdf", text="PDF"),
        cand(text="Minutes", context="Meeting of 12.03.2024"),
        cand(text="Minutes", heading="2024"),
        cand(text="Minutes FY2023/24"),
    ],
)
def test_every_date_form_is_read(dated: Candidate) -> None:
    assert score("minutes from 2024", dated) >= 0.5
    assert score("minutes from 2022", dated) < THRESHOLD


def test_undated_ranks_between_right_and_wrong_year() -> None:
    prompt = "minutes 2024"
    right, undated, wrong = (cand(text=t) for t in ("Minutes 2024", "Minutes", "Minutes 2023"))
    assert_ranked(prompt, [right, undated, wrong])
    assert score(prompt, undated) >= THRESHOLD


def test_the_link_outranks_its_surroundings_on_dates() -> None:
    # The link names 2023; the page it sits on is titled 2024.
    linked = cand(text="Minutes 2023", page_title="Meetings 2024")
    assert score("minutes 2024", linked) < THRESHOLD
    assert score("minutes 2023", linked) >= 0.7


def test_month_named_in_the_prompt() -> None:
    prompt = "Protokoll März 2024"
    assert_ranked(
        prompt,
        [
            cand(text="Protokoll März 2024"),
            cand(text="Protokoll 2024"),
            cand(text="Protokoll 12.04.2024"),
        ],
    )
    assert score(prompt, cand(text="Protokoll 12.04.2024")) < THRESHOLD


# ---------------------------------------------------------------- generic link texts


@pytest.mark.parametrize("generic", GENERIC_TEXTS)
@pytest.mark.parametrize(
    "evidence",
    [
        {"context": "Board meeting minutes – 12 March 2024"},
        {"title": "Board meeting minutes 12 March 2024"},
        {"heading": "Board meeting minutes 2024"},
        {"filename": "board-meeting-minutes-2024-03-12.pdf"},
    ],
)
def test_generic_link_text_finds_evidence_elsewhere(generic: str, evidence: dict[str, str]) -> None:
    prompt = "board meeting minutes from 2024"
    bare = cand("https://riverton.example/download?id=7", text=generic, filename="", doc_type="pdf")
    found = cand("https://riverton.example/download?id=7", text=generic, doc_type="pdf", **evidence)
    assert score(prompt, bare) < THRESHOLD
    assert score(prompt, found) >= 0.5
    assert document_name(found).lower() not in {"pdf", "[pdf]", "download", "here", ""}


# ---------------------------------------------------------------- types and evidence


def test_asked_for_file_type_filters_the_others() -> None:
    prompt = "annual financial reports since 2020 as spreadsheets"
    sheet = cand("https://riverton.example/f/afr-2021.xlsx", text="Annual financial report 2021")
    untyped = cand("https://riverton.example/f/afr-2021", text="Annual financial report 2021")
    pdf = cand("https://riverton.example/f/afr-2021.pdf", text="Annual financial report 2021")
    scores = assert_ranked(prompt, [sheet, untyped, pdf])
    assert scores[0] >= 0.7
    assert scores[1] >= THRESHOLD > scores[2]  # a type is unknown only rarely: let it through


def test_presentations_are_a_kind_of_document_not_a_file_type() -> None:
    prompt = "investor presentations 2024"
    assert build_query(prompt, TODAY).doc_types == ()
    as_pdf = cand(
        "https://riverton.example/ir/q1-2024-results.pptx.pdf",
        text="Slides",
        context="Q1 2024 investor presentation – 25 April 2024",
    )
    assert score(prompt, as_pdf) >= 0.5
    careers = cand(text="Careers fair presentation (spring 2024)")
    assert score(prompt, careers) < THRESHOLD  # a presentation, not to investors


def test_more_evidence_scores_higher() -> None:
    # Each candidate says everything the next one says, and more.
    assert_ranked(
        "board meeting minutes from 2024",
        [
            cand(text="Board meeting minutes 2024"),
            cand(text="Board minutes 2024"),
            cand(text="Minutes 2024", page_title="Board"),
            cand(text="Minutes 2024"),
            cand(text="Minutes"),
        ],
    )


def test_unrelated_documents_stay_below_the_threshold() -> None:
    prompt = "find all board meeting minutes from 2024"
    for text in ("Residential parking permit application form", "Press release: library hours",
                 "Recycling collection schedule 2024", "Job application form"):  # fmt: skip
        assert score(prompt, cand(text=text, page_title="Services")) < THRESHOLD


def test_prompt_with_only_years_and_types() -> None:
    prompt = "all PDFs from 2024"
    assert score(prompt, cand(text="Report 2024")) >= 0.5
    assert score(prompt, cand(text="Anything at all, 2024")) >= 0.5
    for wrong in (cand("https://riverton.example/f/table.xlsx", text="Table 2024"),
                  cand(text="Report 2023")):  # fmt: skip
        assert score(prompt, wrong) < THRESHOLD, wrong


def test_scores_are_deterministic_and_bounded() -> None:
    query = build_query("board meeting minutes agenda budget 2024 pdf", TODAY)
    loud = cand(
        text="Board meeting minutes agenda budget 2024 " * 20,
        title="Board meeting minutes 2024",
        context="Board meeting minutes 2024 " * 50,
        heading="Board meeting minutes 2024",
        page_title="Board meeting minutes 2024",
        doc_text="Board meeting minutes 2024 " * 200,
    )
    first = score_candidate(query, loud)
    assert 0.0 <= first <= 1.0
    assert all(score_candidate(query, loud) == first for _ in range(3))
    assert score_candidate(query, cand()) == score_candidate(query, cand())


def test_hand_built_query_works() -> None:
    query = Query(prompt="Minutes", terms=("Minutes",), years=(2024,))
    assert score_candidate(query, cand(text="Minutes 2024")) > score_candidate(
        query, cand(text="Minutes 2023")
    )


def test_doc_text_counts_when_known() -> None:
    prompt = "board meeting minutes 2024"
    bare = cand("https://riverton.example/blob/7", text="PDF", filename="7", doc_type="pdf")
    read = cand(
        "https://riverton.example/blob/7",
        text="PDF",
        filename="7",
        doc_type="pdf",
        doc_text="Minutes of the regular board meeting held on 9 July 2024. Present: ...",
    )
    assert score(prompt, bare) < THRESHOLD <= score(prompt, read)


# ---------------------------------------------------------------- every word counts


def test_saying_only_the_kind_is_not_enough_when_the_prompt_narrows_it() -> None:
    prompt = "water quality reports"
    assert score(prompt, cand(text="Water quality report 2023")) >= 0.7
    assert score(prompt, cand(text="Annual report 2023")) < THRESHOLD
    assert score(prompt, cand(text="Water supply report 2023")) < THRESHOLD  # half the topic


def test_most_of_the_narrowing_words_are_enough() -> None:
    # Three words narrow the kind ("applications"): saying two of them passes, one does not.
    prompt = "planning applications in the north ward"
    row = {"heading": "Planning applications", "page_title": "Planning"}
    north = cand(text="PA/24/0101", context="PA/24/0101 North 3 Elm Road – new porch", **row)
    south = cand(text="PA/24/0102", context="PA/24/0102 South 9 Oak Road – new porch", **row)
    assert score(prompt, north) >= 0.2
    assert score(prompt, south) < THRESHOLD
    form = cand(text="Planning application form")
    assert score(prompt, form) < THRESHOLD


def test_the_document_kind_says_what_goes_with_it() -> None:
    # Minutes are of a meeting, a budget is annual: the prompt's word need not be repeated.
    assert score("board meeting minutes 2024", cand(text="Board minutes, 12 March 2024")) >= 0.7
    assert score("annual budget 2025", cand(text="Adopted budget 2025")) >= 0.7
    # ... but only when the document says its kind.
    assert score("annual budget 2025", cand(text="Annual events guide 2025")) < THRESHOLD


def test_the_nearest_description_naming_a_kind_decides() -> None:
    prompt = "budget 2025"
    under = {"heading": "Budget bylaw of the town for 2025"}
    assert score(prompt, cand(text="Attachment", **under)) >= 0.5
    assert score(prompt, cand(text="Public notice (PDF)", **under)) < THRESHOLD
    # The row of a generic link is its title: it outranks the heading.
    minutes = cand(text="PDF", context="Finance committee minutes, 2025", heading="Budget 2025")
    assert score(prompt, minutes) < THRESHOLD


def test_a_documents_own_text_names_its_kind_first() -> None:
    prompt = "minutes 2024"
    coded = {"url": "https://riverton.example/docs/DOC-2024-12.pdf", "text": "DOC-2024-12.pdf"}
    agenda = cand(**coded, doc_text="Agenda. 1. Apologies. 2. Minutes of the previous meeting.")
    minutes = cand(**coded, doc_text="Minutes of the meeting held on 3 May 2024. The agenda...")
    assert score(prompt, agenda) < THRESHOLD <= score(prompt, minutes)


def test_naming_no_kind_at_all_counts_against_it() -> None:
    prompt = "council minutes 2024"
    said = cand(text="Council minutes – 12 March 2024")
    unsaid = cand(text="Council – 12 March 2024")
    read = cand(text="Council – 12 March 2024", doc_text="Attendance list, council, 12.03.2024")
    scores = assert_ranked(prompt, [said, unsaid, read])
    assert scores[1] >= THRESHOLD > scores[2]  # the link may not say; the text would


def test_a_compound_names_the_kind_of_its_last_part_only() -> None:
    prompt = "Haushalt 2025"
    assert score(prompt, cand(text="Teilhaushalte 2025 (Excel)")) >= 0.7
    assert score(prompt, cand(text="Merkblatt: Haushaltsauflösung 2025")) < THRESHOLD
    reporting = cand(text="PDF", context="Q1 results", heading="2024 reporting year")
    assert score("annual reports 2024", reporting) < THRESHOLD


def test_a_number_of_minutes_is_a_duration() -> None:
    walk = cand(text="Heritage walk – allow about 40 minutes (2024 edition)")
    assert score("minutes 2024", walk) < THRESHOLD
    assert score("minutes 2024", cand(text="Minutes – 40th meeting, 2024")) >= 0.7


def test_a_titles_own_year_names_its_period() -> None:
    card = cand(text="Download PDF", context="Annual Report 2021 Published March 2022 Download PDF")
    assert score("annual report 2021", card) >= 0.7
    assert score("annual report 2022", card) < THRESHOLD
    # A date alone still dates it; so does a long text's any year.
    assert score("minutes 2024", cand(text="Minutes – 12 March 2024")) >= 0.7


@pytest.mark.parametrize(
    ("prompt", "right", "wrong"),
    [
        (
            "amtliche Bekanntmachungen 2025",
            "Public notice: bridge closed 3–21 March 2025",
            "Abfallkalender 2025",
        ),
        (
            "arrêtés municipaux 2024",
            "Arrêté municipal – fermeture du parc, 12/03/2024",
            "Règlement municipal du cimetière 2024",  # a regulation, not an order
        ),
        ("public notices 2025", "Öffentliche Bekanntmachung: Auslegung, 2025", "News 2025"),
    ],
)
def test_notices_and_orders_are_kinds_across_languages(prompt: str, right: str, wrong: str) -> None:
    assert score(prompt, cand(text=right)) >= 0.5
    assert score(prompt, cand(text=wrong)) < THRESHOLD


# ---------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("candidate", "name"),
    [
        (cand(text="Board meeting minutes (PDF, 2 MB)"), "Board meeting minutes"),
        (cand(text="[PDF] Annual report 2023"), "Annual report 2023"),
        (cand(text="Budget 2024 pdf 1,2 MB"), "Budget 2024"),
        (cand(text="Download", title="Haushaltsplan 2024"), "Haushaltsplan 2024"),
        (
            cand(text="PDF", context="12.03.2024 | Minutes of the board meeting | PDF (2 MB)"),
            "12.03.2024 – Minutes of the board meeting",
        ),
        (
            cand(text="Télécharger", context="Compte rendu du 5 mars 2024 – Lire la suite"),
            "Compte rendu du 5 mars 2024",
        ),
        (
            cand(text="12.03.2024", heading="Board meeting minutes"),
            "Board meeting minutes – 12.03.2024",
        ),
        (cand(text="here", heading="Annual reports / 2023"), "Annual reports / 2023"),
        (
            cand("https://x.example/files/minutes_2024-03-12_final.pdf", text="[PDF]"),
            "Minutes 2024-03-12 final",
        ),
        (cand(text="minutes_2024-03-12_final.pdf"), "Minutes 2024-03-12 final"),
        (cand("https://x.example/f/BoardMinutes2024.pdf", text=""), "Board Minutes 2024"),
        (
            cand("https://x.example/f/Protokoll%20M%C3%A4rz%202024.pdf", text="Herunterladen"),
            "Protokoll März 2024",
        ),
        (cand("https://x.example/download?id=4", text="Download", page_title="Finance"), "Finance"),
        (
            cand("https://x.example/download?id=4", text="Download", filename=""),
            "Untitled document",
        ),
    ],
)
def test_document_name_fallbacks(candidate: Candidate, name: str) -> None:
    assert document_name(candidate) == name


def test_document_name_is_trimmed() -> None:
    name = document_name(cand(text="Minutes " + "of the very long meeting " * 30))
    assert len(name) <= 200
    assert name.startswith("Minutes of the very long meeting")
    context_name = document_name(cand(text="PDF", context="Budget report " * 40))
    assert len(context_name) <= 160


# ---------------------------------------------------------------- the scorer


async def test_lexical_scorer_echoes_ids_with_scores_and_names() -> None:
    scorer: Scorer = LexicalScorer()
    query = build_query("board meeting minutes from 2024", TODAY)
    candidates = [
        Candidate(id=41, url="https://x.example/a.pdf", text="PDF", context="Board minutes 2024"),
        Candidate(id=7, url="https://x.example/privacy.pdf", text="Privacy policy"),
    ]
    scored = await scorer.score(query, candidates)
    assert scorer.name == "lexical"
    assert [s.id for s in scored] == [41, 7]
    assert scored[0].score >= THRESHOLD > scored[1].score
    assert [s.name for s in scored] == ["Board minutes 2024", "Privacy policy"]
