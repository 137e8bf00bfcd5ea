"""Gemeinde Lindenau: a German municipality with an English corner (40 documents).

What makes it hard:
- Council sessions sit in <details><summary>Sitzungen 2024</summary> tables; the dates are
  "20.02.2024", the links read "Tagesordnung" / "Niederschrift", and the 2023 archive's
  links read only "PDF" (the column header says which). File names are codes (GR-...-NS.pdf).
- German says "Niederschrift", not "Protokoll"; "Haushalt" is both the budget and a
  household ("Abfallkalender für Privathaushalte", "Haushaltsbefragung").
- /dokumente/ is the CMS file list: "SI-2024-117.pdf", "AB_2025_07.pdf", "download?id=93";
  only the documents' own text says what they are.
- English documents: a translated council minutes, a public notice about a bridge closure.
- Decoys: committee (Bauausschuss) minutes of 2024, the fire brigade's "Protokoll" of its
  annual assembly 2024, the 2024 budget and its supplement, the annual accounts, the notice
  of the 2025 budget bylaw (a Bekanntmachung, not the Haushaltsplan).
- /bekanntmachungen/files/anlage-haushaltsplan-2025.pdf is a copy of the Haushaltsplan.
"""

from __future__ import annotations

from evalsites.site import Doc, Label, Site, coded_pdf, html_page, pdf, xlsx

_HEADER = """<a href="/">Gemeinde Lindenau</a>
<nav><a href="/rathaus/">Rathaus</a> <a href="/rathaus/gemeinderat/">Gemeinderat</a>
<a href="/bekanntmachungen/">Bekanntmachungen</a> <a href="/rathaus/finanzen/">Finanzen</a>
<a href="/buergerservice/">Bürgerservice</a> <a href="/dokumente/">Dokumente</a>
<a href="/en/" hreflang="en">English</a></nav>"""
_FOOTER = """<a href="/impressum/">Impressum</a> · <a href="/datenschutz/">Datenschutz</a>
· Gemeinde Lindenau, Marktplatz 1"""


def _page(title: str, body: str, lang: str = "de") -> str:
    return html_page(f"{title} – Gemeinde Lindenau", _HEADER, body, _FOOTER, lang)


# ---------------------------------------------------------------- council sessions

# (date, body code, body name, agenda?, minutes?, topic)
_SESSIONS = (
    ("28.01.2025", "GR", "Gemeinderat", True, True, "Beschluss der Haushaltssatzung 2025"),
    ("18.03.2025", "GR", "Gemeinderat", True, False, "Bebauungsplan Nr. 12 Am Mühlbach"),
    ("20.02.2024", "GR", "Gemeinderat", True, True, "Sanierung der Grundschule"),
    ("14.05.2024", "GR", "Gemeinderat", True, True, "Feuerwehrbedarfsplan"),
    ("24.09.2024", "GR", "Gemeinderat", True, True, "Neubau der Mühlbachbrücke"),
    ("19.11.2024", "GR", "Gemeinderat", True, False, "Entwurf des Haushaltsplans 2025"),
    ("14.03.2023", "GR", "Gemeinderat", False, True, "Kita-Gebühren"),
    ("10.10.2023", "GR", "Gemeinderat", False, True, "Straßenbeleuchtung LED"),
    ("05.03.2024", "BUA", "Bau- und Umweltausschuss", False, True, "Bauvoranfragen"),
    ("08.10.2024", "BUA", "Bau- und Umweltausschuss", False, True, "Radweg an der L 123"),
)


def _path(date: str, code: str, suffix: str) -> str:
    day, month, year = date.split(".")
    return f"/ratsinfo/{year}/{code}-{year}-{month}-{day}-{suffix}.pdf"


def _session_documents() -> dict[str, Doc]:
    docs: dict[str, Doc] = {}
    for date, code, body, agenda, minutes, topic in _SESSIONS:
        if agenda:
            docs[_path(date, code, "TO")] = pdf(
                f"Tagesordnung {body} {date}",
                f"Einladung zur öffentlichen Sitzung des {body}s am {date} um 19 Uhr im Rathaus.",
                f"TOP 1: Genehmigung der Niederschrift der letzten Sitzung. TOP 2: {topic}.",
            )
        if minutes:
            docs[_path(date, code, "NS")] = pdf(
                f"Niederschrift {body} {date}",
                f"Niederschrift über die öffentliche Sitzung des {body}s am {date}.",
                f"Anwesend: der Bürgermeister und 14 Mitglieder. Beraten wurde: {topic}.",
            )
    return docs


def _session_table(year: str, plain_links: bool) -> str:
    def cell(path: str | None, text: str) -> str:
        if path is None:
            return "<td>wird nachgereicht</td>"
        return f'<td><a href="{path}">{"PDF" if plain_links else text}</a></td>'

    rows = []
    for date, code, body, agenda, minutes, _ in _SESSIONS:
        if code != "GR" or not date.endswith(year):
            continue
        to = _path(date, code, "TO") if agenda else None
        ns = _path(date, code, "NS") if minutes else None
        agenda_cell = cell(to, "Tagesordnung") if agenda else "<td></td>"
        rows.append(
            f"<tr><td>{date}</td><td>{body}</td>{agenda_cell}{cell(ns, 'Niederschrift')}</tr>"
        )
    head = "<tr><th>Datum</th><th>Gremium</th><th>Tagesordnung</th><th>Niederschrift</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


_SESSIONS_PAGE = _page(
    "Sitzungen und Niederschriften",
    f"""<h1>Sitzungen und Niederschriften</h1>
<p>Die Sitzungen des Gemeinderates sind öffentlich. Niederschriften werden nach ihrer
Genehmigung veröffentlicht.</p>
<details open><summary>Sitzungen 2025</summary>{_session_table("2025", False)}</details>
<details><summary>Sitzungen 2024</summary>{_session_table("2024", False)}</details>
<details><summary>Archiv 2023</summary>{_session_table("2023", True)}</details>""",
)
_COMMITTEES_PAGE = _page(
    "Ausschüsse",
    f"""<h1>Ausschüsse</h1><h2>Bau- und Umweltausschuss</h2>
<p>Der Ausschuss berät Bauvorhaben und Umweltfragen.</p><ul>
<li><a href="{_path("05.03.2024", "BUA", "NS")}">Niederschrift der Sitzung vom 05.03.2024</a></li>
<li><a href="{_path("08.10.2024", "BUA", "NS")}">Niederschrift der Sitzung vom 08.10.2024</a></li>
</ul>""",
)

# ---------------------------------------------------------------- notices

# (published, headline, file)
_NOTICES_2025 = (
    ("10.04.2025", "Bebauungsplan Nr. 12 „Am Mühlbach“ – öffentliche Auslegung",
     "/bekanntmachungen/files/2025-04-10-bplan-12.pdf"),
    ("07.03.2025", "Einladung zur Sitzung des Gemeinderates am 18.03.2025",
     "/bekanntmachungen/files/2025-03-07-sitzung-gr.pdf"),
    ("14.02.2025", "Haushaltssatzung der Gemeinde Lindenau für das Haushaltsjahr 2025",
     "/bekanntmachungen/files/2025-02-14-haushaltssatzung.pdf"),
    ("30.01.2025", "Wahlbekanntmachung zur Bundestagswahl am 23. Februar 2025",
     "/bekanntmachungen/files/2025-01-30-wahlbekanntmachung.pdf"),
)  # fmt: skip
_NOTICES_2024 = (
    ("18.12.2024", "Feststellung des Jahresabschlusses 2023",
     "/bekanntmachungen/files/2024-12-18-jahresabschluss.pdf"),
    ("03.06.2024", "Satzung über die Erhebung der Hundesteuer",
     "/bekanntmachungen/files/2024-06-03-hundesteuer.pdf"),
    ("12.02.2024", "Haushaltssatzung der Gemeinde Lindenau für das Haushaltsjahr 2024",
     "/bekanntmachungen/files/2024-02-12-haushaltssatzung.pdf"),
)  # fmt: skip


def _notice_documents() -> dict[str, Doc]:
    return {
        path: pdf(
            f"Öffentliche Bekanntmachung: {headline}",
            f"Lindenau, den {published}. Der Bürgermeister macht hiermit öffentlich bekannt:",
            f"{headline}. Die Unterlagen können im Rathaus, Zimmer 12, eingesehen werden.",
        )
        for published, headline, path in _NOTICES_2025 + _NOTICES_2024
    }


def _notices_page(notices: tuple[tuple[str, str, str], ...], pager: str) -> str:
    items = "".join(
        f"<article><h3>{headline}</h3><p>Veröffentlicht: {published}</p>"
        f'<a href="{path}">Bekanntmachung (PDF)</a></article>'
        for published, headline, path in notices
    )
    return _page("Amtliche Bekanntmachungen", f"<h1>Amtliche Bekanntmachungen</h1>{items}{pager}")


# ---------------------------------------------------------------- finance, services, files

_FINANCE_DOCUMENTS = {
    "/rathaus/finanzen/files/haushaltsplan-2025.pdf": pdf(
        "Haushaltssatzung und Haushaltsplan 2025",
        "Der Gemeinderat hat am 28.01.2025 die Haushaltssatzung beschlossen.",
        "Ergebnishaushalt 2025: ordentliche Erträge 14,2 Mio. Euro, Aufwendungen 14,0 Mio. Euro.",
    ),
    "/rathaus/finanzen/files/teilhaushalte-2025.xlsx": xlsx(
        "Haushaltsplan 2025 – Teilhaushalte",
        [("Teilhaushalt 1 Innere Verwaltung", 3_120_000), ("Teilhaushalt 2 Schulen", 2_480_000)],
    ),
    "/rathaus/finanzen/files/entwurf-haushaltsplan-2025.pdf": pdf(
        "Entwurf des Haushaltsplans 2025",
        "Stand: 05.11.2024. Entwurf zur Beratung im Gemeinderat am 19.11.2024.",
    ),
    "/rathaus/finanzen/files/haushaltsplan-2024.pdf": pdf(
        "Haushaltssatzung und Haushaltsplan 2024",
        "Ergebnishaushalt 2024: ordentliche Erträge 13,6 Mio. Euro.",
    ),
    "/rathaus/finanzen/files/nachtragshaushaltsplan-2024.pdf": pdf(
        "1. Nachtragshaushaltsplan 2024", "Mehrkosten der Grundschulsanierung."
    ),
    "/rathaus/finanzen/files/jahresabschluss-2023.pdf": pdf(
        "Jahresabschluss 2023", "Bilanz und Ergebnisrechnung zum 31.12.2023."
    ),
}
_SERVICE_DOCUMENTS = {
    "/buergerservice/files/abfallkalender-2025.pdf": pdf(
        "Abfallkalender 2025 für Privathaushalte",
        "Abholtermine für Restmüll, Biotonne und Gelbe Säcke für alle Haushalte 2025.",
    ),
    "/buergerservice/files/merkblatt-haushaltsaufloesung.pdf": pdf(
        "Merkblatt: Auflösung eines Haushalts",
        "Sperrmüll und Entrümpelung bei Umzug oder Todesfall.",
    ),
    "/buergerservice/files/anmeldung-hundesteuer.pdf": pdf(
        "Anmeldung zur Hundesteuer", "Formular für neue Hundehalter."
    ),
    "/buergerservice/files/feuerwehr-jhv-2024.pdf": pdf(
        "Protokoll der Jahreshauptversammlung 2024 der Freiwilligen Feuerwehr Lindenau",
        "Versammlung am 12.01.2024 im Gerätehaus; Bericht des Wehrführers, Wahlen, Ehrungen.",
    ),
}
_ENGLISH_DOCUMENTS = {
    "/en/files/council-minutes-2024-09-24-en.pdf": pdf(
        "Minutes of the municipal council meeting of 24 September 2024 (English translation)",
        "Present: the mayor and fourteen councillors. Item: new Mühlbach bridge.",
    ),
    "/en/files/public-notice-bridge-closure-2025.pdf": pdf(
        "Public notice: closure of the Mühlbach bridge (Hauptstraße), 3–21 March 2025",
        "The mayor gives notice that the bridge will be closed to all traffic.",
    ),
    "/en/files/waste-calendar-2025-en.pdf": pdf(
        "Waste collection calendar 2025", "Collection days for residual and organic waste."
    ),
    "/en/files/twin-town-visit-2024.pdf": pdf(
        "Twin town visit 2024 – programme", "Guests from Saint-Aubin-sur-Loire, 14-16 June."
    ),
}
_FILE_LIST = {
    "/dokumente/SI-2024-117.pdf": coded_pdf(
        "SI-2024-117",
        "Niederschrift über die öffentliche Sitzung des Gemeinderates am 19.11.2024.",
        "Anwesend: der Bürgermeister und 13 Mitglieder. Beraten wurde: Entwurf des",
        "Haushaltsplans 2025.",
    ),
    "/dokumente/download?id=93": coded_pdf(
        "download",
        "1. Nachtragshaushaltsplan 2025 der Gemeinde Lindenau.",
        "Der Nachtrag erhöht die Auszahlungen für den Neubau der Mühlbachbrücke um 0,4 Mio. Euro.",
    ),
    "/dokumente/AB_2025_07.pdf": coded_pdf(
        "AB_2025_07",
        "Öffentliche Bekanntmachung über die Auslegung des Entwurfs des Lärmaktionsplans der",
        "Gemeinde Lindenau vom 2. Juni bis 4. Juli 2025.",
    ),
    "/dokumente/SI-2024-098.pdf": coded_pdf(
        "SI-2024-098", "Anwesenheitsliste der Sitzung des Gemeinderates am 24.09.2024."
    ),
    "/dokumente/download?id=94": coded_pdf(
        "download",
        "Haushaltsbefragung 2025: Fragebogen zur Mobilität privater Haushalte in Lindenau.",
    ),
}
_FILE_ROWS = (
    ("/dokumente/download?id=93", "download?id=93", "2,1 MB", "15.07.2025"),
    ("/dokumente/AB_2025_07.pdf", "AB_2025_07.pdf", "320 KB", "26.05.2025"),
    ("/dokumente/download?id=94", "download?id=94", "80 KB", "03.03.2025"),
    ("/dokumente/SI-2024-117.pdf", "SI-2024-117.pdf", "184 KB", "02.12.2024"),
    ("/dokumente/SI-2024-098.pdf", "SI-2024-098.pdf", "150 KB", "01.10.2024"),
)

_PAGES = {
    "/": _page(
        "Startseite",
        """<h1>Willkommen in Lindenau</h1><p>Aktuelles aus Rathaus und Gemeinderat.</p><ul>
<li><a href="/bekanntmachungen/">Neue Bekanntmachungen</a></li>
<li><a href="/rathaus/gemeinderat/sitzungen/">Nächste Sitzung des Gemeinderates</a></li></ul>""",
    ),
    "/rathaus/": _page(
        "Rathaus",
        """<h1>Rathaus</h1><ul><li><a href="/rathaus/gemeinderat/">Gemeinderat</a></li>
<li><a href="/rathaus/finanzen/">Haushalt und Finanzen</a></li></ul>""",
    ),
    "/rathaus/gemeinderat/": _page(
        "Gemeinderat",
        """<h1>Gemeinderat</h1><p>Der Gemeinderat hat 16 Mitglieder.</p><ul>
<li><a href="/rathaus/gemeinderat/sitzungen/">Sitzungen und Niederschriften</a></li>
<li><a href="/rathaus/gemeinderat/ausschuesse/">Ausschüsse</a></li></ul>""",
    ),
    "/rathaus/gemeinderat/sitzungen/": _SESSIONS_PAGE,
    "/rathaus/gemeinderat/ausschuesse/": _COMMITTEES_PAGE,
    "/bekanntmachungen/": _notices_page(
        _NOTICES_2025,
        '<p>Der Haushaltsplan liegt zur Einsichtnahme aus: <a href="/bekanntmachungen/files/'
        'anlage-haushaltsplan-2025.pdf">Anlage</a></p><p><a href="?seite=2">Ältere Meldungen'
        "</a></p>",
    ),
    "/bekanntmachungen/?seite=2": _notices_page(
        _NOTICES_2024, '<p><a href="/bekanntmachungen/">Neuere Meldungen</a></p>'
    ),
    "/rathaus/finanzen/": _page(
        "Haushalt und Finanzen",
        """<h1>Haushalt und Finanzen</h1><h2>Haushalt 2025</h2><ul>
<li><a href="/rathaus/finanzen/files/haushaltsplan-2025.pdf">Haushaltssatzung und
Haushaltsplan 2025</a> (beschlossen am 28.01.2025)</li>
<li><a href="/rathaus/finanzen/files/teilhaushalte-2025.xlsx">Teilhaushalte (Excel)</a></li>
<li><a href="/rathaus/finanzen/files/entwurf-haushaltsplan-2025.pdf">Entwurf
(Stand: 05.11.2024)</a></li></ul>
<h2>Haushalt 2024</h2><ul>
<li><a href="/rathaus/finanzen/files/haushaltsplan-2024.pdf">Haushaltssatzung und
Haushaltsplan 2024</a></li>
<li><a href="/rathaus/finanzen/files/nachtragshaushaltsplan-2024.pdf">1. Nachtrag</a></li></ul>
<h2>Jahresabschlüsse</h2><ul>
<li><a href="/rathaus/finanzen/files/jahresabschluss-2023.pdf">Jahresabschluss 2023</a></li>
</ul>""",
    ),
    "/buergerservice/": _page(
        "Bürgerservice",
        """<h1>Bürgerservice</h1><h2>Abfall</h2><ul>
<li><a href="/buergerservice/files/abfallkalender-2025.pdf">Abfallkalender 2025 für
Privathaushalte</a></li>
<li><a href="/buergerservice/files/merkblatt-haushaltsaufloesung.pdf">Merkblatt:
Haushaltsauflösung und Sperrmüll</a></li></ul><h2>Formulare</h2><ul>
<li><a href="/buergerservice/files/anmeldung-hundesteuer.pdf">Anmeldung zur Hundesteuer</a></li>
</ul><h2>Feuerwehr</h2><ul>
<li><a href="/buergerservice/files/feuerwehr-jhv-2024.pdf">Protokoll der Jahreshauptversammlung
2024</a></li></ul>""",
    ),
    "/dokumente/": _page(
        "Dokumente",
        """<h1>Dokumentenablage</h1><p>Alle hochgeladenen Dateien, neueste zuerst.</p>
<table><tr><th>Datei</th><th>Größe</th><th>Hochgeladen</th></tr>"""
        + "".join(
            f'<tr><td><a href="{path}">{text}</a></td><td>{size}</td><td>{day}</td></tr>'
            for path, text, size, day in _FILE_ROWS
        )
        + "</table>",
    ),
    "/en/": _page(
        "Welcome",
        """<h1>Welcome to Lindenau</h1><p>Information in English for visitors and new
residents.</p><ul>
<li><a href="/en/files/council-minutes-2024-09-24-en.pdf">Council minutes, 24 September 2024
(English translation)</a></li>
<li><a href="/en/files/public-notice-bridge-closure-2025.pdf">Public notice: Mühlbach bridge
closed 3–21 March 2025</a></li>
<li><a href="/en/files/waste-calendar-2025-en.pdf">Waste collection calendar 2025</a></li>
<li><a href="/en/files/twin-town-visit-2024.pdf">Twin town visit 2024</a></li></ul>""",
        lang="en",
    ),
    "/impressum/": _page("Impressum", "<h1>Impressum</h1><p>Gemeinde Lindenau.</p>"),
    "/datenschutz/": _page("Datenschutz", "<h1>Datenschutzerklärung</h1><p>DSGVO.</p>"),
}

# ---------------------------------------------------------------- labels

# The adopted plan, its Teilhaushalte sheet, the draft, and the supplementary plan
# (download?id=93, text only). Not: the Bekanntmachung of the 2025 budget bylaw, the 2024
# plans, the Abfallkalender "für Privathaushalte", the Haushaltsbefragung 2025.
HAUSHALTSPLAN_2025 = frozenset(
    {
        "/rathaus/finanzen/files/haushaltsplan-2025.pdf",
        "/rathaus/finanzen/files/teilhaushalte-2025.xlsx",
        "/rathaus/finanzen/files/entwurf-haushaltsplan-2025.pdf",
        "/dokumente/download?id=93",
    }
)
# The council's (Gemeinderat) own minutes of 2024: three in the table, the English translation
# of September's, and November's (SI-2024-117, text only). Not: the agendas, the committee's
# minutes, the fire brigade's Protokoll, the attendance list SI-2024-098.
PROTOKOLLE_GR_2024 = frozenset(
    {
        _path("20.02.2024", "GR", "NS"),
        _path("14.05.2024", "GR", "NS"),
        _path("24.09.2024", "GR", "NS"),
        "/en/files/council-minutes-2024-09-24-en.pdf",
        "/dokumente/SI-2024-117.pdf",
    }
)
# Official notices published in 2025: four on the notices page, the English bridge-closure
# notice, the noise action plan notice (AB_2025_07.pdf, text only). Not: 2024's notices.
BEKANNTMACHUNGEN_2025 = frozenset(
    {path for _, _, path in _NOTICES_2025}
    | {"/en/files/public-notice-bridge-closure-2025.pdf", "/dokumente/AB_2025_07.pdf"}
)

SITE = Site(
    name="lindenau",
    pages=_PAGES,
    documents={
        **_session_documents(),
        **_notice_documents(),
        **_FINANCE_DOCUMENTS,
        **_SERVICE_DOCUMENTS,
        **_ENGLISH_DOCUMENTS,
        **_FILE_LIST,
    },
    labels=(
        Label("Haushaltsplan 2025", HAUSHALTSPLAN_2025),
        Label("Sitzungsprotokolle des Gemeinderats 2024", PROTOKOLLE_GR_2024),
        Label("amtliche Bekanntmachungen 2025", BEKANNTMACHUNGEN_2025),
    ),
    copies={
        "/bekanntmachungen/files/anlage-haushaltsplan-2025.pdf": (
            "/rathaus/finanzen/files/haushaltsplan-2025.pdf"
        )
    },
)
