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


def test_wanted_type_ranks_first_but_others_stay() -> None:
    prompt = "annual financial reports since 2020 as spreadsheets"
    sheet = cand("https://riverton.example/f/afr-2021.xlsx", text="Annual financial report 2021")
    pdf = cand("https://riverton.example/f/afr-2021.pdf", text="Annual financial report 2021")
    assert_ranked(prompt, [sheet, pdf])
    assert score(prompt, pdf) >= THRESHOLD


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
    assert_ranked(
        prompt,
        [
            cand(text="Report 2024"),
            cand("https://riverton.example/f/table.xlsx", text="Table 2024"),
            cand(text="Report 2023"),
        ],
    )


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
        Candidate(id=41, url="https://x.example/a.pdf", text="PDF", context="Minutes 2024"),
        Candidate(id=7, url="https://x.example/privacy.pdf", text="Privacy policy"),
    ]
    scored = await scorer.score(query, candidates)
    assert scorer.name == "lexical"
    assert [s.id for s in scored] == [41, 7]
    assert scored[0].score >= THRESHOLD > scored[1].score
    assert [s.name for s in scored] == ["Minutes 2024", "Privacy policy"]
