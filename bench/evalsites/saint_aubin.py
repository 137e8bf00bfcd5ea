"""Mairie de Saint-Aubin-sur-Loire: a French commune on WordPress, served in windows-1252
(36 documents).

What makes it hard:
- Council sessions are list items "Séance du 14 décembre : Ordre du jour · PV" under
  <h2>Année 2023</h2>: the year is only in the heading, the link says "PV", and the upload
  folder is often the next year's (/wp-content/uploads/2024/02/PV-CM-14122023.pdf).
- April 2023's PV is linked as /?attachment_id=412, a redirect to the file.
- /vie-municipale/documents/ lists files by name ("scan_0042.pdf", "AM-2024-031.pdf",
  "telecharger.php?id=93"): only their text says what they are.
- Decoys: "PV de stationnement" (a parking fine), agendas that list "approbation du
  procès-verbal", the 2022 PVs uploaded in 2023, a prefect's order (arrêté préfectoral),
  the "budget participatif" (a citizens' vote), the budget orientation report, the accounts.
"""

from __future__ import annotations

from evalsites.site import Doc, Label, Site, coded_pdf, html_page, pdf, xlsx

_CHARSET = "windows-1252"
_HEADER = """<a href="/">Mairie de Saint-Aubin-sur-Loire</a>
<nav><a href="/vie-municipale/">Vie municipale</a>
<a href="/vie-municipale/conseil-municipal/">Conseil municipal</a>
<a href="/vie-municipale/arretes/">Arrêtés</a> <a href="/vie-municipale/budget/">Budget</a>
<a href="/demarches/">Démarches</a> <a href="/actualites/">Actualités</a></nav>"""
_FOOTER = """<a href="/mentions-legales/">Mentions légales</a> · Mairie, 2 place de l'Église,
49000 Saint-Aubin-sur-Loire"""


def _page(title: str, body: str) -> str:
    return html_page(f"{title} – Saint-Aubin-sur-Loire", _HEADER, body, _FOOTER, "fr", _CHARSET)


def _upload(folder: str, name: str) -> str:
    return f"/wp-content/uploads/{folder}/{name}"


# ---------------------------------------------------------------- council sessions

# (day, month number, year, French date, agenda folder, PV folder, deliberations folder, topic)
_Session = tuple[str, str, str, str, str | None, str | None, str | None, str]
_SESSIONS: tuple[_Session, ...] = (
    ("27", "06", "2024", "27 juin", None, "2024/09", None, "le plan de mobilité"),
    ("11", "04", "2024", "11 avril", None, "2024/06", None, "le budget primitif 2024"),
    ("08", "02", "2024", "8 février", None, "2024/04", None, "le débat d'orientation budgétaire"),
    ("14", "12", "2023", "14 décembre", "2023/12", "2024/02", "2023/12", "les tarifs 2024"),
    ("05", "10", "2023", "5 octobre", "2023/09", None, None, "le rapport sur l'eau"),
    ("29", "06", "2023", "29 juin", "2023/06", "2023/10", "2023/07", "le compte administratif"),
    ("13", "04", "2023", "13 avril", "2023/04", "2023/05", None, "le budget primitif 2023"),
    ("09", "02", "2023", "9 février", "2023/02", "2023/04", None, "la cantine scolaire"),
    ("15", "12", "2022", "15 décembre", None, "2023/01", None, "les tarifs 2023"),
    ("22", "09", "2022", "22 septembre", None, "2022/11", None, "la rentrée scolaire"),
)
_ATTACHMENT = "/?attachment_id=412"  # WordPress's own link to the April 2023 PV


def _files(session: _Session) -> tuple[str | None, str | None, str | None]:
    day, month, year, _, agenda, minutes, decisions, _ = session
    stamp = f"{day}{month}{year}"
    return (
        _upload(agenda, f"OJ-CM-{stamp}.pdf") if agenda else None,
        _upload(minutes, f"PV-CM-{stamp}.pdf") if minutes else None,
        _upload(decisions, f"liste-deliberations-{stamp}.pdf") if decisions else None,
    )


def _session_documents() -> dict[str, Doc]:
    docs: dict[str, Doc] = {}
    for session in _SESSIONS:
        _, _, year, date, *_, topic = session
        when = f"{date} {year}"
        agenda, minutes, decisions = _files(session)
        if agenda:
            docs[agenda] = pdf(
                f"Ordre du jour – conseil municipal du {when}",
                f"Le conseil municipal est convoqué en séance publique le {when} à 20 h 30.",
                f"1. Approbation du procès-verbal de la séance précédente. 2. Examen de {topic}.",
            )
        if minutes:
            docs[minutes] = pdf(
                f"Procès-verbal de la séance du conseil municipal du {when}",
                "Présents : le maire et 14 conseillers municipaux. Secrétaire : Mme Girard.",
                f"Le conseil municipal approuve à l'unanimité {topic}.",
            )
        if decisions:
            docs[decisions] = pdf(
                f"Liste des délibérations – conseil municipal du {when}",
                f"Délibérations adoptées : {topic}, subventions aux associations.",
            )
    return docs


def _session_item(session: _Session) -> str:
    date = session[3]
    agenda, minutes, decisions = _files(session)
    if minutes == _upload("2023/05", "PV-CM-13042023.pdf"):
        minutes = _ATTACHMENT
    links = []
    if agenda:
        links.append(f'<a href="{agenda}">Ordre du jour</a>')
    if decisions:
        links.append(f'<a href="{decisions}">Liste des délibérations</a>')
    links.append(f'<a href="{minutes}">PV</a>' if minutes else "PV en cours de validation")
    return f"<li><strong>Séance du {date}</strong> : {' · '.join(links)}</li>"


_COUNCIL_PAGE = _page(
    "Conseil municipal",
    "<h1>Conseil municipal</h1><p>Le conseil municipal se réunit environ cinq fois par an,"
    " salle du conseil de la mairie. Les séances sont publiques.</p>"
    + "".join(
        f"<h2>Année {year}</h2><ul>"
        + "".join(_session_item(s) for s in _SESSIONS if s[2] == year)
        + "</ul>"
        for year in ("2024", "2023", "2022")
    ),
)

# ---------------------------------------------------------------- orders

# (number, subject, date, upload folder)
_ORDERS = (
    ("2024-027", "Fermeture du parc municipal par vent violent", "04/09/2024", "2024/09"),
    ("2024-022", "Interdiction de stationner place de l'Église pendant la fête de la musique",
     "18/06/2024", "2024/06"),
    ("2024-015", "Circulation alternée rue de la Loire pendant les travaux", "12/03/2024",
     "2024/03"),
    ("2023-044", "Interdiction de stationner place de l'Église pendant le marché de Noël",
     "27/11/2023", "2023/11"),
    ("2023-041", "Réglementation de la baignade au plan d'eau", "03/07/2023", "2023/07"),
)  # fmt: skip


def _order_path(number: str, folder: str) -> str:
    return _upload(folder, f"arrete-{number}.pdf")


def _order(number: str, subject: str, date: str) -> Doc:
    return pdf(
        f"Arrêté municipal n° {number}",
        "Le maire de Saint-Aubin-sur-Loire, vu le code général des collectivités territoriales,",
        f"arrête : Article 1 : {subject}. Fait à Saint-Aubin-sur-Loire, le {date}.",
    )


_ORDERS_PAGE = _page(
    "Arrêtés",
    """<h1>Arrêtés</h1><h2>Arrêtés municipaux</h2>
<table><tr><th>N°</th><th>Objet</th><th>Date</th><th></th></tr>"""
    + "".join(
        f"<tr><td>{number}</td><td>{subject}</td><td>{date}</td>"
        f'<td><a href="{_order_path(number, folder)}">Télécharger</a></td></tr>'
        for number, subject, date, folder in _ORDERS
    )
    + f"""</table><h2>Arrêtés préfectoraux</h2><ul>
<li><a href="{_upload("2024/07", "AP-secheresse-2024.pdf")}">Arrêté préfectoral du 18 juillet 2024
– restrictions des usages de l'eau</a></li></ul>""",
)

# ---------------------------------------------------------------- budget, services, files

_BUDGET_DOCUMENTS = {
    _upload("2024/04", "BP-2024.pdf"): pdf(
        "Budget primitif 2024",
        "Budget principal de la commune voté le 11 avril 2024.",
        "Section de fonctionnement : 2 310 000 euros. Section d'investissement : 880 000 euros.",
    ),
    _upload("2024/04", "presentation-breve-synthetique.pdf"): pdf(
        "Présentation brève et synthétique du budget primitif 2024",
        "Cette note présente aux habitants les grandes lignes du budget voté pour 2024.",
    ),
    _upload("2024/04", "BP2024_annexes.xlsx"): xlsx(
        "Budget primitif 2024 – annexes",
        [("Section de fonctionnement", 2_310_000), ("Section d'investissement", 880_000)],
    ),
    _upload("2023/04", "BP-2023.pdf"): pdf(
        "Budget primitif 2023", "Budget principal de la commune voté le 13 avril 2023."
    ),
    _upload("2024/06", "CA-2023.pdf"): pdf(
        "Compte administratif 2023", "Exécution du budget 2023, voté le 27 juin 2024."
    ),
    _upload("2024/03", "ROB-2024.pdf"): pdf(
        "Rapport d'orientation budgétaire 2024",
        "Document préparatoire au débat d'orientation budgétaire du 8 février 2024.",
    ),
    _upload("2024/10", "budget-participatif-2024-resultats.pdf"): pdf(
        "Budget participatif 2024 : résultats du vote",
        "Les habitants ont choisi trois projets : un city-stade, des bancs, un jardin partagé.",
    ),
}
_OTHER_DOCUMENTS = {
    **{_order_path(n, folder): _order(n, subject, date) for n, subject, date, folder in _ORDERS},
    _upload("2024/07", "AP-secheresse-2024.pdf"): pdf(
        "Arrêté préfectoral du 18 juillet 2024",
        "Le préfet de Maine-et-Loire arrête des restrictions des usages de l'eau (sécheresse).",
    ),
    _upload("2023/05", "guide-pv-stationnement.pdf"): pdf(
        "Payer un PV de stationnement",
        "Vous avez reçu un avis de contravention (PV) : payez l'amende forfaitaire en ligne.",
    ),
    _upload("2022/01", "demande-acte-naissance.pdf"): pdf(
        "Demande d'acte de naissance", "Formulaire à renvoyer à la mairie."
    ),
    _upload("2023/03", "reglement-cimetiere.pdf"): pdf(
        "Règlement du cimetière", "Horaires, concessions et entretien des tombes."
    ),
}
_FILE_LIST = {
    "/telecharger.php?id=93": coded_pdf(
        "telecharger",
        "Budget primitif 2024 – budget annexe de l'assainissement de la commune de",
        "Saint-Aubin-sur-Loire, voté le 11 avril 2024. Exploitation : 310 000 euros.",
    ),
    _upload("2024/07", "AM-2024-031.pdf"): coded_pdf(
        "AM-2024-031",
        "Arrêté municipal n° 2024-031 portant autorisation d'un débit de boissons temporaire",
        "pour la fête du 14 juillet. Fait à Saint-Aubin-sur-Loire, le 10/07/2024.",
    ),
    _upload("2023/11", "scan_0042.pdf"): coded_pdf(
        "scan_0042",
        "Procès-verbal de la séance du conseil municipal du 5 octobre 2023.",
        "Présents : le maire et 13 conseillers municipaux. Le conseil approuve le rapport",
        "sur le prix et la qualité du service de l'eau.",
    ),
    _upload("2024/06", "doc20240612.pdf"): coded_pdf(
        "doc20240612",
        "Compte rendu de la réunion publique du 12 juin 2024 sur le plan local d'urbanisme.",
    ),
}
_FILE_ROWS = (
    ("/telecharger.php?id=93", "telecharger.php?id=93", "410 Ko", "15/04/2024"),
    (_upload("2024/07", "AM-2024-031.pdf"), "AM-2024-031.pdf", "95 Ko", "10/07/2024"),
    (_upload("2024/06", "doc20240612.pdf"), "doc20240612.pdf", "240 Ko", "14/06/2024"),
    (_upload("2023/11", "scan_0042.pdf"), "scan_0042.pdf", "1,8 Mo", "20/11/2023"),
)

_PAGES = {
    "/": _page(
        "Accueil",
        """<h1>Bienvenue à Saint-Aubin-sur-Loire</h1><p>1 850 habitants au bord de la Loire.</p>
<ul><li><a href="/actualites/retour-conseil-5-octobre/">Retour sur le conseil municipal</a></li>
<li><a href="/vie-municipale/budget/">Le budget de la commune</a></li></ul>""",
    ),
    "/vie-municipale/": _page(
        "Vie municipale",
        """<h1>Vie municipale</h1><ul>
<li><a href="/vie-municipale/conseil-municipal/">Le conseil municipal</a></li>
<li><a href="/vie-municipale/arretes/">Arrêtés</a></li>
<li><a href="/vie-municipale/budget/">Budget communal</a></li>
<li><a href="/vie-municipale/documents/">Documents</a></li></ul>""",
    ),
    "/vie-municipale/conseil-municipal/": _COUNCIL_PAGE,
    "/vie-municipale/arretes/": _ORDERS_PAGE,
    "/vie-municipale/budget/": _page(
        "Budget communal",
        f"""<h1>Budget communal</h1>
<h2>Budget primitif 2024</h2><p>Voté par le conseil municipal le 11 avril 2024.</p><ul>
<li><a href="{_upload("2024/04", "BP-2024.pdf")}">Budget primitif 2024 (document complet)</a></li>
<li><a href="{_upload("2024/04", "presentation-breve-synthetique.pdf")}">Présentation brève et
synthétique</a></li>
<li><a href="{_upload("2024/04", "BP2024_annexes.xlsx")}">BP2024_annexes.xlsx</a></li></ul>
<h2>Budget primitif 2023</h2><ul>
<li><a href="{_upload("2023/04", "BP-2023.pdf")}">Budget primitif 2023</a></li></ul>
<h2>Comptes administratifs</h2><ul>
<li><a href="{_upload("2024/06", "CA-2023.pdf")}">Compte administratif 2023</a>
(voté le 27 juin 2024)</li></ul>
<h2>Orientations budgétaires</h2><ul>
<li><a href="{_upload("2024/03", "ROB-2024.pdf")}">Rapport d'orientation budgétaire 2024</a></li>
</ul><h2>Budget participatif</h2><ul>
<li><a href="{_upload("2024/10", "budget-participatif-2024-resultats.pdf")}">Budget participatif
2024 : résultats du vote</a></li></ul>""",
    ),
    "/vie-municipale/documents/": _page(
        "Documents",
        """<h1>Fichiers récents</h1>
<table><tr><th>Fichier</th><th>Taille</th><th>Mis en ligne</th></tr>"""
        + "".join(
            f'<tr><td><a href="{path}">{text}</a></td><td>{size}</td><td>{day}</td></tr>'
            for path, text, size, day in _FILE_ROWS
        )
        + "</table>",
    ),
    "/demarches/": _page(
        "Démarches",
        f"""<h1>Démarches</h1><ul>
<li><a href="{_upload("2023/05", "guide-pv-stationnement.pdf")}">Payer un PV de stationnement
(amende forfaitaire)</a></li>
<li><a href="{_upload("2022/01", "demande-acte-naissance.pdf")}">Demande d'acte de
naissance</a></li>
<li><a href="{_upload("2023/03", "reglement-cimetiere.pdf")}">Règlement du cimetière</a></li>
</ul>""",
    ),
    "/actualites/": _page(
        "Actualités",
        """<h1>Actualités</h1><ul>
<li><a href="/actualites/retour-conseil-5-octobre/">Retour sur le conseil municipal du
5 octobre</a></li><li><a href="/actualites/marche-de-noel/">Marché de Noël</a></li></ul>""",
    ),
    "/actualites/retour-conseil-5-octobre/": _page(
        "Retour sur le conseil municipal",
        "<h1>Retour sur le conseil municipal du 5 octobre 2023</h1><p>Les élus ont approuvé le"
        " rapport sur le prix et la qualité du service de l'eau.</p>",
    ),
    "/actualites/marche-de-noel/": _page(
        "Marché de Noël", "<h1>Marché de Noël</h1><p>Place de l'Église, le 14 décembre.</p>"
    ),
    "/mentions-legales/": _page("Mentions légales", "<h1>Mentions légales</h1>"),
}

# ---------------------------------------------------------------- labels

# The minutes of the 2023 sessions: four listed (one behind ?attachment_id=412, one filed in
# 2024/02) and October's (scan_0042.pdf, text only). Not: 2022's PVs uploaded in 2023, the
# agendas, the lists of deliberations, the parking-fine guide, the 2024 PVs.
PV_2023 = frozenset(
    {
        _upload("2024/02", "PV-CM-14122023.pdf"),
        _upload("2023/10", "PV-CM-29062023.pdf"),
        _upload("2023/05", "PV-CM-13042023.pdf"),
        _upload("2023/04", "PV-CM-09022023.pdf"),
        _upload("2023/11", "scan_0042.pdf"),
    }
)
# The budget, its summary note, its annex sheet and the sewage service's annex budget
# (telecharger.php?id=93, text only). Not: the 2023 budget, the accounts, the orientation
# report, the budget participatif.
BP_2024 = frozenset(
    {
        _upload("2024/04", "BP-2024.pdf"),
        _upload("2024/04", "presentation-breve-synthetique.pdf"),
        _upload("2024/04", "BP2024_annexes.xlsx"),
        "/telecharger.php?id=93",
    }
)
# The mayor's orders of 2024, one only in the file list (AM-2024-031.pdf). Not: the prefect's
# order, the 2023 orders.
ARRETES_2024 = frozenset(
    {_order_path(n, folder) for n, _, _, folder in _ORDERS if n.startswith("2024")}
    | {_upload("2024/07", "AM-2024-031.pdf")}
)

SITE = Site(
    name="saint-aubin",
    pages=_PAGES,
    documents={**_session_documents(), **_BUDGET_DOCUMENTS, **_OTHER_DOCUMENTS, **_FILE_LIST},
    labels=(
        Label("procès-verbaux du conseil municipal 2023", PV_2023),
        Label("budget primitif 2024", BP_2024),
        Label("arrêtés municipaux 2024", ARRETES_2024),
    ),
    redirects={_ATTACHMENT: _upload("2023/05", "PV-CM-13042023.pdf")},
    charset=_CHARSET,
)
