"""Port Ellery Town Council: an English town council with a harbour district (50 documents).

What makes it hard:
- Meetings live on /council/meetings.php?year=YYYY, one CMS era per year. 2022: a list with
  the year only in the <h2>. 2023: a table whose links read "Agenda" / "Minutes". 2024: a
  table whose links all read "PDF" (the column header and title="Download minutes" tell them
  apart) and whose files are named by code (FC-20240123-M.pdf). 2025: minutes "to follow".
- Committee minutes elsewhere; the Harbour Committee's link does not say "minutes".
- /documents/recent/ lists uploads by file code only ("DOC-2024-117.pdf", "download?id=93"):
  only the document's own text says what it is.
- The finance table's links all read "Download"; title and year sit in sibling cells.
- Decoys: agendas beside minutes (and agendas that list "Minutes of the previous meeting"),
  other years, "allow about 40 minutes" in a walking leaflet, "budget-friendly days out", a
  harbour masterplan and a harbour map among planning documents, a blank application form.
- /council/minutes/latest redirects to the newest minutes; /news/attachments/budget-2025.pdf
  is a copy of the adopted budget.
"""

from __future__ import annotations

from evalsites.site import Doc, Label, Site, coded_pdf, docx, html_page, pdf, xlsx

_HEADER = """<a href="/">Port Ellery Town Council</a>
<nav><a href="/council/">Council &amp; democracy</a> <a href="/planning/">Planning</a>
<a href="/finance/">Budget &amp; spending</a> <a href="/visit/">Visit Port Ellery</a>
<a href="/news/">News</a> <a href="/documents/recent/">Recent uploads</a></nav>"""
_FOOTER = """<a href="/accessibility/">Accessibility</a> · <a href="/privacy/">Privacy</a>
· © Port Ellery Town Council, The Guildhall, Market Square"""


def _page(title: str, body: str) -> str:
    return html_page(f"{title} | Port Ellery Town Council", _HEADER, body, _FOOTER)


# ---------------------------------------------------------------- meetings


def _minutes(body: str, when: str, business: str) -> Doc:
    return pdf(
        f"{body} minutes – {when}",
        f"Minutes of the meeting of the {body} of Port Ellery Town Council held on {when}"
        " at the Guildhall, Market Square.",
        "Present: the Mayor (in the chair) and eleven councillors. In attendance: the Town Clerk.",
        "The minutes of the previous meeting were approved as a correct record.",
        f"Resolved: {business}",
    )


def _agenda(body: str, when: str, business: str) -> Doc:
    return pdf(
        f"{body} agenda – {when}",
        f"Members of the {body} are summoned to attend a meeting on {when} at 7pm in the"
        " Guildhall.",
        "1. Apologies for absence. 2. Declarations of interest. 3. Minutes of the previous"
        f" meeting. 4. Public participation. 5. {business}",
    )


# (date, file date, upload month of the agenda, of the minutes or None, business)
_FC_2024 = (
    ("23 January 2024", "20240123", "01", "02", "to adopt the harbour fees for 2024."),
    ("16 April 2024", "20240416", "04", "05", "to approve the annual governance statement."),
    ("9 July 2024", "20240709", "07", "08", "to grant the lease of the fish quay kiosk."),
    ("8 October 2024", "20241008", "10", "11", "to consult on the draft budget for 2025."),
    ("19 August 2024", "20240819", "08", None, "to fund emergency harbour wall repairs."),
)
_FC_2023 = (
    ("7 February 2023", "2023-02-07", "to set the precept for 2023/24."),
    ("6 June 2023", "2023-06-06", "to elect the Mayor and appoint committees."),
    ("3 October 2023", "2023-10-03", "to adopt the Harbour District Masterplan."),
)


def _meeting_documents() -> dict[str, Doc]:
    docs: dict[str, Doc] = {}
    for when, code, agenda_month, minutes_month, business in _FC_2024:
        extraordinary = minutes_month is None
        body = "Full Council (extraordinary)" if extraordinary else "Full Council"
        docs[f"/uploads/2024/{agenda_month}/FC-{code}-A.pdf"] = _agenda(body, when, business)
        if minutes_month is not None:
            path = f"/uploads/2024/{minutes_month}/FC-{code}-M.pdf"
            docs[path] = _minutes(body, when, business)
    for when, stamp, business in _FC_2023:
        docs[f"/files/council/2023/{stamp}-agenda.pdf"] = _agenda("Full Council", when, business)
        docs[f"/files/council/2023/{stamp}-minutes.pdf"] = _minutes("Full Council", when, business)
    business_2025 = "to adopt the budget for 2025."
    docs["/uploads/2025/01/FC-20250128-A.pdf"] = _agenda(
        "Full Council", "28 January 2025", "Budget 2025: recommendation of the working group."
    )
    docs["/uploads/2025/02/FC-20250128-M.pdf"] = _minutes(
        "Full Council", "28 January 2025", business_2025
    )
    docs["/uploads/2025/04/FC-20250415-A.pdf"] = _agenda(
        "Full Council", "15 April 2025", "Harbour wall: progress report."
    )
    docs["/files/minutes/FC_080322.pdf"] = _minutes(
        "Full Council", "8 March 2022", "to renew the moorings contract."
    )
    docs["/files/minutes/FC_130922.pdf"] = _minutes(
        "Full Council", "13 September 2022", "to mark the Queen's death with a civic service."
    )
    docs["/files/minutes/extraordinary-19-august.pdf"] = _minutes(
        "Full Council (extraordinary)", "19 August 2024", "to fund emergency harbour wall repairs."
    )
    return docs


def _committee_documents() -> dict[str, Doc]:
    planning = "Planning Committee"
    return {
        "/files/committees/planning/pc-minutes-2024-02-20.pdf": _minutes(
            planning, "20 February 2024", "to approve application PA/2024/0102."
        ),
        "/files/committees/planning/pc-minutes-2024-06-18.pdf": _minutes(
            planning, "18 June 2024", "to refuse application PA/2024/0240."
        ),
        "/files/committees/planning/pc-minutes-2023-11-21.pdf": _minutes(
            planning, "21 November 2023", "to approve application PA/2023/0811."
        ),
        "/files/committees/harbour/hc-2024-05-14.pdf": _minutes(
            "Harbour Committee", "14 May 2024", "to raise visitor mooring fees by 5%."
        ),
    }


def _fc_2024_rows() -> str:
    rows = []
    for when, code, agenda_month, minutes_month, _ in _FC_2024:
        agenda = f"/uploads/2024/{agenda_month}/FC-{code}-A.pdf"
        name = "Full Council" if minutes_month else "Full Council (extraordinary)"
        minutes = (
            f'<a href="/uploads/2024/{minutes_month}/FC-{code}-M.pdf" title="Download minutes">'
            "PDF</a>"
            if minutes_month
            else "See news"
        )
        rows.append(
            f'<tr><td>{when}</td><td>{name}</td><td><a href="{agenda}" title="Download agenda">'
            f"PDF</a></td><td>{minutes}</td></tr>"
        )
    return "\n".join(rows)


_YEAR_TABS = """<p>Year: <a href="?year=2025">2025</a> | <a href="?year=2024">2024</a> |
<a href="?year=2023">2023</a> | <a href="?year=2022">2022</a></p>"""
_TABLE_HEAD = (
    "<table><thead><tr><th>Date</th><th>Meeting</th><th>Agenda</th><th>Minutes</th></tr>"
    "</thead><tbody>"
)
_MEETINGS_2025 = _page(
    "Council meetings 2025",
    f"""<h1>Council meetings 2025</h1>{_YEAR_TABS}{_TABLE_HEAD}
<tr><td>28 January 2025</td><td>Full Council</td>
<td><a href="/uploads/2025/01/FC-20250128-A.pdf" title="Download agenda">PDF</a></td>
<td><a href="/uploads/2025/02/FC-20250128-M.pdf" title="Download minutes">PDF</a></td></tr>
<tr><td>15 April 2025</td><td>Full Council</td>
<td><a href="/uploads/2025/04/FC-20250415-A.pdf" title="Download agenda">PDF</a></td>
<td>To follow</td></tr></tbody></table>""",
)
_MEETING_PAGES = {
    "/council/meetings.php": _MEETINGS_2025,
    "/council/meetings.php?year=2025": _MEETINGS_2025,
    "/council/meetings.php?year=2024": _page(
        "Council meetings 2024",
        f"""<h1>Council meetings 2024</h1>{_YEAR_TABS}{_TABLE_HEAD}
{_fc_2024_rows()}</tbody></table>
<p>Minutes are published once approved at the following meeting.</p>""",
    ),
    "/council/meetings.php?year=2023": _page(
        "Council meetings 2023",
        f"""<h1>Council meetings 2023</h1>{_YEAR_TABS}{_TABLE_HEAD}
"""
        + "\n".join(
            f'<tr><td>{when}</td><td>Full Council</td><td><a href="/files/council/2023/'
            f'{stamp}-agenda.pdf">Agenda</a></td><td><a href="/files/council/2023/{stamp}'
            '-minutes.pdf">Minutes</a></td></tr>'
            for when, stamp, _ in _FC_2023
        )
        + "</tbody></table>",
    ),
    "/council/meetings.php?year=2022": _page(
        "Meetings archive",
        f"""<h1>Meetings archive</h1>{_YEAR_TABS}<h2>2022</h2><ul>
<li>Full Council, 8 March – <a href="/files/minutes/FC_080322.pdf">Minutes</a> (PDF, 180 KB)</li>
<li>Full Council, 13 September – <a href="/files/minutes/FC_130922.pdf">Minutes</a>
(PDF, 164 KB)</li></ul>""",
    ),
    "/council/committees/": _page(
        "Committees",
        """<h1>Committees</h1>
<h2>Planning Committee</h2><p>Decides planning applications that officers refer to it.</p><ul>
<li><a href="/files/committees/planning/pc-minutes-2024-02-20.pdf">Minutes – 20 February 2024</a>
</li><li><a href="/files/committees/planning/pc-minutes-2024-06-18.pdf">Minutes – 18 June 2024</a>
</li><li><a href="/files/committees/planning/pc-minutes-2023-11-21.pdf">Minutes – 21 November
2023</a></li></ul>
<h2>Harbour Committee</h2><p>Oversees moorings, the harbour wall and the fish quay.</p><ul>
<li><a href="/files/committees/harbour/hc-2024-05-14.pdf">Harbour Committee – 14 May 2024</a></li>
</ul>""",
    ),
}

# ---------------------------------------------------------------- the upload register

_REGISTER = {
    "/download?id=93": coded_pdf(
        "download",
        "Capital budget 2025. Port Ellery Town Council approved programme of capital works",
        "for the financial year 2025: harbour wall phase 2, Guildhall roof, play areas.",
        "Total capital budget for 2025: 1,240,000 pounds, funded by reserves and grants.",
    ),
    "/documents/DOC-2024-117.pdf": coded_pdf(
        "DOC-2024-117",
        "Minutes of the meeting of the Full Council of Port Ellery Town Council held on",
        "10 December 2024 at the Guildhall. Present: the Mayor and ten councillors.",
        "Resolved: to recommend the budget for 2025 to the January meeting.",
    ),
    "/documents/DOC-2024-131.pdf": coded_pdf(
        "DOC-2024-131",
        "Planning application PA/2024/0412. Site address: 7 Wharf Row, Harbour District,",
        "Port Ellery. Proposal: change of use of the former net loft to a cafe with seating",
        "on the quay. Date received: 28 October 2024.",
    ),
    "/documents/DOC-2024-140.pdf": coded_pdf(
        "DOC-2024-140",
        "Harbour District parking review 2024: consultation report.",
        "Residents were asked about permit zones and visitor parking near the quay.",
    ),
    "/documents/DOC-2023-088.pdf": coded_pdf(
        "DOC-2023-088",
        "Agenda. Members of the Full Council are summoned to attend an extraordinary meeting",
        "on 14 December 2023 at 7pm in the Guildhall. 1. Apologies. 2. Harbour wall survey.",
    ),
    "/download?id=94": coded_pdf(
        "download",
        "Tree Preservation Order 2024 No. 3: the beech trees at Chapel Hill, Northfield.",
    ),
}
_REGISTER_ROWS = (
    ("/download?id=93", "download?id=93", "340 KB", "2025-02-03"),
    ("/documents/DOC-2024-117.pdf", "DOC-2024-117.pdf", "212 KB", "2025-01-06"),
    ("/documents/DOC-2024-140.pdf", "DOC-2024-140.pdf", "1.2 MB", "2024-11-29"),
    ("/documents/DOC-2024-131.pdf", "DOC-2024-131.pdf", "96 KB", "2024-11-04"),
    ("/download?id=94", "download?id=94", "80 KB", "2024-09-12"),
    ("/documents/DOC-2023-088.pdf", "DOC-2023-088.pdf", "64 KB", "2023-12-08"),
)

# ---------------------------------------------------------------- planning

# (reference, district, address, proposal, status)
_APPLICATIONS = (
    ("PA/2024/0301", "Harbour", "12 Quay Street", "Single-storey rear extension", "Approved"),
    ("PA/2024/0355", "Harbour", "Old Customs House, Custom House Quay", "Conversion to six flats",
     "Pending"),
    ("PA/2024/0388", "Northfield", "4 Mill Lane", "Rear dormer window", "Approved"),
    ("PA/2024/0402", "Northfield", "Northfield Farm, Upper Road", "Conversion of barn to a house",
     "Refused"),
    ("PA/2025/0012", "Harbour", "Slipway 3, Boatyard Lane", "Replacement boat shed", "Pending"),
    ("PA/2025/0020", "Town Centre", "21 Station Road", "New shopfront and signage", "Pending"),
)  # fmt: skip


def _application_path(reference: str) -> str:
    return f"/planning/docs/{reference.replace('/', '-')}.pdf"


def _planning_documents() -> dict[str, Doc]:
    docs = {
        _application_path(ref): pdf(
            f"Planning application {ref}",
            f"Site address: {address}, {district} District, Port Ellery.",
            f"Proposal: {proposal}. Status: {status}.",
            "Comments may be made within 21 days of the date of this notice.",
        )
        for ref, district, address, proposal, status in _APPLICATIONS
    }
    docs["/planning/policy/harbour-district-masterplan.pdf"] = pdf(
        "Harbour District Masterplan",
        "Supplementary planning document adopted by the council in October 2023.",
        "It guides how the quays, boatyards and warehouses of the Harbour District may change.",
    )
    docs["/planning/policy/local-plan-2020-2035.pdf"] = pdf(
        "Port Ellery Local Plan 2020-2035", "Policies for housing, employment and the harbour."
    )
    docs["/planning/forms/planning-application-form.docx"] = docx(
        "Planning application form", "Applicant name:", "Site address:", "Description of works:"
    )
    docs["/planning/forms/householder-guide.pdf"] = pdf(
        "Householder guide: do I need planning permission?",
        "Many small extensions are permitted development and need no application.",
    )
    return docs


_PLANNING_ROWS = "\n".join(
    f'<tr><td><a href="{_application_path(ref)}">{ref}</a></td><td>{district}</td>'
    f"<td>{address}</td><td>{proposal}</td><td>{status}</td></tr>"
    for ref, district, address, proposal, status in _APPLICATIONS
)

# ---------------------------------------------------------------- finance and the rest

_FINANCE = (
    ("Adopted revenue budget", "2025", "PDF", "/finance/files/rb25-adopted.pdf"),
    ("Detailed estimates by service", "2025", "Excel", "/finance/files/estimates-2025.xlsx"),
    ("Proposed budget – consultation draft", "2025", "PDF",
     "/finance/files/proposed-budget-2025-consultation.pdf"),
    ("Statement of accounts", "2024", "PDF", "/finance/files/statement-of-accounts-2024.pdf"),
    ("Adopted revenue budget", "2024", "PDF", "/finance/files/rb24-adopted.pdf"),
    ("Adopted revenue budget", "2023", "PDF", "/finance/files/rb23-adopted.pdf"),
)  # fmt: skip


def _finance_documents() -> dict[str, Doc]:
    def budget(year: int) -> Doc:
        return pdf(
            f"Revenue budget {year}",
            f"The budget for {year} as adopted by the Full Council.",
            f"Net expenditure {year}: {1_900_000 + 45_000 * (year - 2023)} pounds.",
        )

    return {
        "/finance/files/rb25-adopted.pdf": budget(2025),
        "/finance/files/rb24-adopted.pdf": budget(2024),
        "/finance/files/rb23-adopted.pdf": budget(2023),
        "/finance/files/estimates-2025.xlsx": xlsx(
            "Budget 2025 – detailed estimates by service",
            [("Harbour", 412_000), ("Parks and open spaces", 188_000), ("Guildhall", 96_000)],
        ),
        "/finance/files/proposed-budget-2025-consultation.pdf": pdf(
            "Proposed budget 2025 – consultation draft",
            "Residents are invited to comment on the proposed budget for 2025 by 6 January.",
        ),
        "/finance/files/statement-of-accounts-2024.pdf": pdf(
            "Statement of accounts 2024",
            "Audited income and expenditure for the year ended 31 March 2024.",
        ),
    }


_OTHER_DOCUMENTS = {
    "/visit/harbour-walk-2024.pdf": pdf(
        "Harbour heritage walk – 2024 edition",
        "Allow about 40 minutes for the full walk from the Guildhall to the lighthouse.",
        "Ten minutes in, pause at the Old Customs House.",
    ),
    "/visit/days-out-on-a-budget-2025.pdf": pdf(
        "Budget-friendly days out in Port Ellery 2025",
        "Free museums, rock pools and cheap eats for families on a budget.",
    ),
    "/visit/harbour-district-map.pdf": pdf(
        "Harbour District map", "Car parks, toilets and the ferry terminal in the Harbour District."
    ),
}

_FINANCE_ROWS = "\n".join(
    f'<tr><td>{title}</td><td>{year}</td><td>{kind}</td><td><a href="{path}">Download</a></td></tr>'
    for title, year, kind, path in _FINANCE
)

_PAGES = {
    "/": _page(
        "Home",
        """<h1>Welcome to Port Ellery</h1>
<p>Your town council: meetings, planning, budgets and what's on around the harbour.</p>
<ul><li><a href="/council/minutes/latest">Latest council minutes</a></li>
<li><a href="/news/budget-2025-adopted">Council adopts its 2025 budget</a></li>
<li><a href="/news/extraordinary-meeting">Extraordinary meeting on the harbour wall</a></li>
<li><a href="/news/harbour-wall-repairs">Harbour wall repairs begin</a></li></ul>""",
    ),
    "/council/": _page(
        "Council & democracy",
        """<h1>Council &amp; democracy</h1>
<p>Port Ellery Town Council has twelve councillors and meets about five times a year.</p>
<ul><li><a href="/council/meetings.php">Meetings calendar</a></li>
<li><a href="/council/committees/">Committees</a></li>
<li><a href="/council/councillors/">Your councillors</a></li></ul>""",
    ),
    "/council/councillors/": _page(
        "Your councillors", "<h1>Your councillors</h1><p>Twelve councillors, four wards.</p>"
    ),
    **_MEETING_PAGES,
    "/documents/recent/": _page(
        "Recent uploads",
        """<h1>Recently uploaded files</h1><p>Newest first.</p>
<table><tr><th>File</th><th>Size</th><th>Uploaded</th></tr>"""
        + "\n".join(
            f'<tr><td><a href="{path}">{text}</a></td><td>{size}</td><td>{day}</td></tr>'
            for path, text, size, day in _REGISTER_ROWS
        )
        + "</table>",
    ),
    "/planning/": _page(
        "Planning",
        """<h1>Planning</h1><p>The town has four districts: Harbour, Northfield, Town Centre and
Chapel Hill.</p><ul><li><a href="/planning/applications/">Current applications</a></li>
<li><a href="/planning/policy/">Planning policy</a></li>
<li><a href="/planning/apply/">How to apply</a></li></ul>""",
    ),
    "/planning/applications/": _page(
        "Current planning applications",
        f"""<h1>Current planning applications</h1>
<table><tr><th>Reference</th><th>District</th><th>Site address</th><th>Proposal</th>
<th>Status</th></tr>
{_PLANNING_ROWS}</table>""",
    ),
    "/planning/policy/": _page(
        "Planning policy",
        """<h1>Planning policy</h1><ul>
<li><a href="/planning/policy/harbour-district-masterplan.pdf">Harbour District Masterplan</a>
– supplementary planning document (adopted 2023)</li>
<li><a href="/planning/policy/local-plan-2020-2035.pdf">Local Plan 2020–2035</a></li></ul>""",
    ),
    "/planning/apply/": _page(
        "How to apply",
        """<h1>How to apply for planning permission</h1><ul>
<li><a href="/planning/forms/planning-application-form.docx">Planning application form
(Word)</a></li>
<li><a href="/planning/forms/householder-guide.pdf">Householder guide: do I need planning
permission?</a></li></ul>""",
    ),
    "/finance/": _page(
        "Budget & spending",
        f"""<h1>Budget &amp; spending</h1>
<table><tr><th>Document</th><th>Year</th><th>Format</th><th></th></tr>
{_FINANCE_ROWS}</table>""",
    ),
    "/visit/": _page(
        "Visit Port Ellery",
        """<h1>Visit Port Ellery</h1><ul>
<li><a href="/visit/harbour-walk-2024.pdf">Harbour heritage walk – allow about 40 minutes
(2024 edition)</a></li>
<li><a href="/visit/days-out-on-a-budget-2025.pdf">Budget-friendly days out (2025)</a></li>
<li><a href="/visit/harbour-district-map.pdf">Harbour District map</a></li></ul>""",
    ),
    "/news/": _page(
        "News",
        """<h1>News</h1><ul>
<li><a href="/news/harbour-wall-repairs">Harbour wall repairs begin</a> – 12 March 2025</li>
<li><a href="/news/budget-2025-adopted">Council adopts its 2025 budget</a> – 30 January 2025</li>
<li><a href="/news/extraordinary-meeting">Extraordinary meeting on the harbour wall</a>
– 2 September 2024</li></ul>""",
    ),
    "/news/harbour-wall-repairs": _page(
        "Harbour wall repairs begin",
        "<h1>Harbour wall repairs begin</h1><p>Posted 12 March 2025. Work starts on Monday.</p>",
    ),
    "/news/budget-2025-adopted": _page(
        "Council adopts its 2025 budget",
        """<h1>Council adopts its 2025 budget</h1><p>Posted 30 January 2025. Council tax rises by
2.9%. <a href="/news/attachments/budget-2025.pdf">Download the adopted budget</a></p>""",
    ),
    "/news/extraordinary-meeting": _page(
        "Extraordinary meeting on the harbour wall",
        """<h1>Extraordinary meeting on the harbour wall</h1><p>Posted 2 September 2024.</p>
<p>Councillors met on 19 August to agree emergency repairs to the harbour wall.
<a href="/files/minutes/extraordinary-19-august.pdf">Read the minutes</a></p>""",
    ),
    "/accessibility/": _page("Accessibility", "<h1>Accessibility statement</h1><p>WCAG 2.1.</p>"),
    "/privacy/": _page("Privacy", "<h1>Privacy notice</h1><p>We process your data lawfully.</p>"),
}

# ---------------------------------------------------------------- labels

# The council's committees are the council meeting in smaller groups: their minutes count.
# The 10 December meeting is only in the upload register (DOC-2024-117); the extraordinary
# meeting only in the news. Agendas, 2023/2025 minutes and the walking leaflet do not count.
MINUTES_2024 = frozenset(
    {
        "/uploads/2024/02/FC-20240123-M.pdf",
        "/uploads/2024/05/FC-20240416-M.pdf",
        "/uploads/2024/08/FC-20240709-M.pdf",
        "/uploads/2024/11/FC-20241008-M.pdf",
        "/files/minutes/extraordinary-19-august.pdf",
        "/files/committees/planning/pc-minutes-2024-02-20.pdf",
        "/files/committees/planning/pc-minutes-2024-06-18.pdf",
        "/files/committees/harbour/hc-2024-05-14.pdf",
        "/documents/DOC-2024-117.pdf",
    }
)
# Applications whose site is in the Harbour district; DOC-2024-131 says so only in its text.
# The masterplan (policy), the map, the blank form and other districts' applications do not.
HARBOUR_APPLICATIONS = frozenset(
    {
        "/planning/docs/PA-2024-0301.pdf",
        "/planning/docs/PA-2024-0355.pdf",
        "/planning/docs/PA-2025-0012.pdf",
        "/documents/DOC-2024-131.pdf",
    }
)
# The adopted budget, its estimates, the consultation draft and the capital budget
# (download?id=93, text only). Not: other years, the accounts, "budget-friendly days out".
BUDGET_2025 = frozenset(
    {
        "/finance/files/rb25-adopted.pdf",
        "/finance/files/estimates-2025.xlsx",
        "/finance/files/proposed-budget-2025-consultation.pdf",
        "/download?id=93",
    }
)
# The three regular meetings' agendas and the extraordinary December one (DOC-2023-088,
# text only). Not: the 2023 minutes beside them, other years' agendas.
AGENDAS_2023 = frozenset(
    {
        "/files/council/2023/2023-02-07-agenda.pdf",
        "/files/council/2023/2023-06-06-agenda.pdf",
        "/files/council/2023/2023-10-03-agenda.pdf",
        "/documents/DOC-2023-088.pdf",
    }
)

SITE = Site(
    name="port-ellery",
    pages=_PAGES,
    documents={
        **_meeting_documents(),
        **_committee_documents(),
        **_REGISTER,
        **_planning_documents(),
        **_finance_documents(),
        **_OTHER_DOCUMENTS,
    },
    labels=(
        Label("minutes of council meetings in 2024", MINUTES_2024),
        Label("planning applications in the harbour district", HARBOUR_APPLICATIONS),
        Label("annual budget 2025", BUDGET_2025),
        Label("Full Council agendas for 2023", AGENDAS_2023),
    ),
    redirects={"/council/minutes/latest": "/uploads/2025/02/FC-20250128-M.pdf"},
    copies={"/news/attachments/budget-2025.pdf": "/finance/files/rb25-adopted.pdf"},
)
