"""Aldmere Group plc: a listed company's investor-relations site, as of December 2024
(55 documents).

What makes it hard:
- The results centre has one tab per reporting year (?year=2023); every row links
  "PDF" / "Slides (PPTX)" / "XLSX": the period and date sit in sibling cells, and the slides
  are PDFs whose names end in ".pptx.pdf". Full-year results come out the next February, so
  the FY 2023 row is dated 2024 and its files sit in the 2024 upload folder.
- Report cards link "Download PDF (5.8 MB)" or "Read the report" under an <h3> title; the
  2022 annual report's link is a redirect (/investors/reports/2022/annual-report).
- "CMD24_final_v3.pdf" and "SR2019_web_final.pdf" are linked by file name only: only their
  text says they are the Capital Markets Day presentation and a sustainability report.
- The 2020 sustainability report still carries its old name, "Corporate Responsibility Report".
- Decoys: half-year reports and AGM notices (that mention "the annual report"), AGM poll
  "results", the ESG databook (a spreadsheet of 2023), a careers-fair presentation of 2024,
  the sustainable finance framework.
"""

from __future__ import annotations

from evalsites.site import Doc, Label, Site, coded_pdf, docx, html_page, pdf, xlsx

_HEADER = """<a href="/">Aldmere Group plc</a>
<nav><a href="/about/">About us</a> <a href="/investors/">Investors</a>
<a href="/sustainability/">Sustainability</a> <a href="/media/">Media</a>
<a href="/careers/">Careers</a></nav>"""
_FOOTER = """<a href="/legal/">Legal notices</a> · <a href="/cookies/">Cookies</a>
· Aldmere Group plc, registered in England and Wales No. 0412873"""


def _page(title: str, body: str) -> str:
    return html_page(f"{title} – Aldmere Group plc", _HEADER, body, _FOOTER)


# ---------------------------------------------------------------- the results centre

# (period, tab year, published, file stem); files go into the folder of the publication year.
_RESULTS = (
    ("Q1 2024", 2024, "25 April 2024", "q1-2024"),
    ("Half year 2024", 2024, "25 July 2024", "h1-2024"),
    ("Q3 2024", 2024, "24 October 2024", "q3-2024"),
    ("Q1 2023", 2023, "27 April 2023", "q1-2023"),
    ("Half year 2023", 2023, "27 July 2023", "h1-2023"),
    ("Q3 2023", 2023, "26 October 2023", "q3-2023"),
    ("Full year 2023", 2023, "27 February 2024", "fy23"),
    ("Half year 2022", 2022, "28 July 2022", "h1-2022"),
    ("Full year 2022", 2022, "28 February 2023", "fy22"),
    ("Half year 2021", 2021, "29 July 2021", "h1-2021"),
    ("Full year 2021", 2021, "24 February 2022", "fy21"),
)


class _Row:
    def __init__(self, index: int, period: str, tab: int, published: str, stem: str) -> None:
        folder = f"/media/files/{published[-4:]}"
        self.index, self.period, self.tab, self.published = index, period, tab, published
        self.announcement = f"{folder}/{stem}-results.pdf"
        self.slides = f"{folder}/{stem}-results-presentation.pptx.pdf" if tab >= 2023 else ""
        sheet = "financial-tables" if stem.startswith("fy") else "data-pack"
        self.data_pack = f"{folder}/{stem}-{sheet}.xlsx" if tab >= 2022 else ""

    def documents(self) -> dict[str, Doc]:
        revenue = 180 + 7 * self.index
        docs = {
            self.announcement: pdf(
                f"Aldmere Group plc – {self.period} results",
                f"Published {self.published}. Revenue for the period was {revenue} million"
                f" pounds; adjusted operating margin {11 + self.index % 4}.{self.index}%.",
                "The board's outlook for the full year is unchanged.",
            )
        }
        if self.slides:
            docs[self.slides] = pdf(
                f"{self.period} results presentation",
                f"Aldmere Group plc investor presentation, {self.published}.",
                "Agenda: highlights, financial review, outlook, questions and answers.",
            )
        if self.data_pack:
            docs[self.data_pack] = xlsx(
                f"Aldmere Group – {self.period} results data pack",
                [("Revenue (GBP m)", revenue), ("Operating profit (GBP m)", revenue // 8)],
            )
        return docs

    def html(self) -> str:
        def cell(path: str, text: str) -> str:
            return f'<td><a href="{path}">{text}</a></td>' if path else "<td>–</td>"

        stem = self.announcement.rsplit("/", 1)[1].removesuffix("-results.pdf")
        return (
            f"<tr><td>{self.period}</td><td>{self.published}</td>"
            f"{cell(self.announcement, 'PDF')}{cell(self.slides, 'Slides (PPTX)')}"
            f"{cell(self.data_pack, 'XLSX')}<td><a href="
            f'"https://webcast.aldmere.invalid/{stem}">Replay</a></td></tr>'
        )


_ROWS = tuple(_Row(i, *row) for i, row in enumerate(_RESULTS))
_TABS = """<p><a href="/investors/results-centre/">2024</a> | <a href="?year=2023">2023</a> |
<a href="?year=2022">2022</a> | <a href="?year=2021">2021</a></p>"""


def _results_page(tab: int) -> str:
    rows = "\n".join(row.html() for row in _ROWS if row.tab == tab)
    return _page(
        "Results centre",
        f"""<h1>Results centre</h1>{_TABS}<h2>{tab} reporting year</h2>
<table><tr><th>Period</th><th>Published</th><th>Announcement</th><th>Presentation</th>
<th>Data pack</th><th>Webcast</th></tr>
{rows}</table>""",
    )


# ---------------------------------------------------------------- reports, AGM, the rest

_AR_2022 = "/media/files/reports/aldmere-annual-report-2022.pdf"  # linked through a redirect


def _annual_report(year: int) -> Doc:
    return pdf(
        f"Annual Report and Accounts {year}",
        f"Aldmere Group plc annual report for the year ended 31 December {year}:",
        "strategic report, governance, remuneration and the audited financial statements.",
    )


def _sustainability_report(year: int, name: str = "Sustainability Report") -> Doc:
    return pdf(
        f"{name} {year}",
        f"How Aldmere Group performed on emissions, safety and diversity in {year}.",
        f"Scope 1 and 2 emissions fell {4 + year % 5}% against the previous year.",
    )


_DOCUMENTS = {
    **{k: v for row in _ROWS for k, v in row.documents().items()},
    **{
        f"/media/files/reports/aldmere-annual-report-{year}.pdf": _annual_report(year)
        for year in (2019, 2020, 2021, 2022, 2023)
    },
    "/media/files/reports/aldmere-ar-2022-accessible.docx": docx(
        "Annual Report and Accounts 2022 – accessible version",
        "This is the text of the Aldmere Group plc annual report 2022 in an accessible format.",
    ),
    "/media/files/reports/half-year-report-2023.pdf": pdf(
        "Half-year report 2023", "Unaudited interim report for the six months to 30 June 2023."
    ),
    "/media/files/reports/half-year-report-2022.pdf": pdf(
        "Half-year report 2022", "Unaudited interim report for the six months to 30 June 2022."
    ),
    "/media/files/presentations/roadshow-mar24.pdf": pdf(
        "Investor roadshow presentation",
        "Aldmere Group plc, investor meetings in London and Edinburgh, March 2024.",
    ),
    "/media/files/presentations/roadshow-sep23.pdf": pdf(
        "Investor roadshow presentation",
        "Aldmere Group plc, investor meetings in New York and Boston, September 2023.",
    ),
    "/media/files/CMD24_final_v3.pdf": coded_pdf(
        "CMD24_final_v3",
        "Aldmere Group plc Capital Markets Day, 12 June 2024. Investor presentation:",
        "our strategy to 2028, the marine and energy divisions, capital allocation and targets.",
    ),
    "/media/files/agm/notice-of-agm-2024.pdf": pdf(
        "Notice of Annual General Meeting 2024",
        "Resolution 1: to receive the annual report and accounts for 2023.",
    ),
    "/media/files/agm/notice-of-agm-2023.pdf": pdf(
        "Notice of Annual General Meeting 2023",
        "Resolution 1: to receive the annual report and accounts for 2022.",
    ),
    "/media/files/agm/notice-of-agm-2022.pdf": pdf(
        "Notice of Annual General Meeting 2022",
        "Resolution 1: to receive the annual report and accounts for 2021.",
    ),
    "/media/files/agm/form-of-proxy-2024.pdf": pdf(
        "Form of proxy 2024", "For use at the Annual General Meeting on 9 May 2024."
    ),
    "/media/files/agm/agm-2024-poll-results.pdf": pdf(
        "Results of the 2024 AGM poll", "All resolutions were passed on 9 May 2024."
    ),
    "/media/files/sustainability/aldmere-sr-2023.pdf": _sustainability_report(2023),
    "/media/files/sustainability/aldmere-sr-2022.pdf": _sustainability_report(2022),
    "/media/files/sustainability/aldmere-sr-2021.pdf": _sustainability_report(2021),
    "/media/files/sustainability/cr-report-2020.pdf": _sustainability_report(
        2020, "Corporate Responsibility Report"
    ),
    "/media/files/legacy/SR2019_web_final.pdf": coded_pdf(
        "SR2019_web_final",
        "Aldmere Group plc Sustainability Report 2019: our first report on emissions,",
        "safety, diversity and community investment across all sites.",
    ),
    "/media/files/sustainability/esg-databook-2023.xlsx": xlsx(
        "ESG databook 2023", [("Scope 1 emissions (tCO2e)", 18_400), ("Lost time injuries", 7)]
    ),
    "/media/files/sustainability/sustainable-finance-framework.pdf": pdf(
        "Sustainable finance framework",
        "How Aldmere Group will issue green and sustainability-linked bonds.",
    ),
    "/media/files/sustainability/modern-slavery-statement-2024.pdf": pdf(
        "Modern slavery statement 2024", "Steps taken to prevent forced labour in our supply chain."
    ),
    "/media/files/aldmere-press-kit-2024.pdf": pdf(
        "Press kit 2024", "Company facts, leadership biographies and media contacts."
    ),
    "/media/files/aldmere-brand-guidelines.pdf": pdf(
        "Brand guidelines", "How to use the Aldmere logo and colours."
    ),
    "/media/files/careers/graduate-programme-2024.pdf": pdf(
        "Graduate programme 2024", "Two-year rotations in engineering, finance and operations."
    ),
    "/media/files/careers/careers-fair-presentation-2024.pdf": pdf(
        "Careers fair presentation – spring 2024",
        "Presentation to students at university careers fairs about working at Aldmere.",
    ),
}


def _card(title: str, note: str, link: str, text: str, extra: str = "") -> str:
    return (
        f'<div class="card"><h3>{title}</h3><p>{note}</p><a href="{link}">{text}</a>{extra}</div>'
    )


_REPORTS_1 = _page(
    "Reports and presentations",
    "<h1>Reports and presentations</h1><h2>Annual reports</h2>"
    + _card(
        "Annual Report 2023",
        "Published March 2024",
        "/media/files/reports/aldmere-annual-report-2023.pdf",
        "Download PDF (6.1 MB)",
    )
    + _card(
        "Annual Report 2022",
        "Published March 2023",
        "/investors/reports/2022/annual-report",
        "Download PDF (5.8 MB)",
        ' · <a href="/media/files/reports/aldmere-ar-2022-accessible.docx">Accessible version'
        " (Word)</a>",
    )
    + """<p><a href="?page=2">Older reports ›</a></p>
<h2>Half-year reports</h2><ul>
<li><a href="/media/files/reports/half-year-report-2023.pdf">Half-year report 2023</a></li>
<li><a href="/media/files/reports/half-year-report-2022.pdf">Half-year report 2022</a></li></ul>
<h2>Presentations</h2><ul>
<li><a href="/media/files/presentations/roadshow-mar24.pdf">Investor roadshow – March 2024</a></li>
<li><a href="/media/files/presentations/roadshow-sep23.pdf">Investor roadshow – September
2023</a></li></ul>
<h2>Other downloads</h2><ul>
<li><a href="/media/files/CMD24_final_v3.pdf">CMD24_final_v3.pdf</a> (8.2 MB)</li></ul>""",
)
_REPORTS_2 = _page(
    "Reports and presentations – page 2",
    "<h1>Reports and presentations</h1><h2>Annual reports</h2>"
    + "".join(
        _card(
            f"Annual Report {year}",
            f"Published March {year + 1}",
            f"/media/files/reports/aldmere-annual-report-{year}.pdf",
            "Download PDF",
        )
        for year in (2021, 2020, 2019)
    )
    + '<p><a href="/investors/reports-and-presentations/">‹ Newer reports</a></p>',
)
_SUSTAINABILITY = _page(
    "Sustainability",
    """<h1>Sustainability</h1><p>Our approach to sustainable growth: net zero by 2040.</p>
<h2>Reports</h2>"""
    + "".join(
        _card(
            f"Sustainability Report {year}",
            f"Published April {year + 1}. Progress on net zero, safety and diversity.",
            f"/media/files/sustainability/aldmere-sr-{year}.pdf",
            "Read the report",
        )
        for year in (2023, 2022, 2021)
    )
    + """<h2>Data and policies</h2><ul>
<li><a href="/media/files/sustainability/esg-databook-2023.xlsx">ESG databook 2023 (XLSX)</a></li>
<li><a href="/media/files/sustainability/sustainable-finance-framework.pdf">Sustainable finance
framework</a></li>
<li><a href="/media/files/sustainability/modern-slavery-statement-2024.pdf">Modern slavery
statement 2024</a></li></ul><p><a href="/sustainability/archive/">Archive</a></p>""",
)

_PAGES = {
    "/": _page(
        "Precision components for marine and energy",
        """<h1>Aldmere Group plc</h1><p>Precision components for marine and energy customers.</p>
<p><a href="/investors/results-centre/">Q3 2024 trading update</a> ·
<a href="/investors/reports-and-presentations/">Annual Report 2023</a></p>""",
    ),
    "/about/": _page("About us", "<h1>About us</h1><p>Founded in 1921 in Newcastle.</p>"),
    "/legal/": _page("Legal notices", "<h1>Legal notices</h1><p>Terms of use.</p>"),
    "/cookies/": _page("Cookies", "<h1>Cookies</h1><p>We use essential cookies only.</p>"),
    "/investors/": _page(
        "Investors",
        """<h1>Investors</h1><ul>
<li><a href="/investors/results-centre/">Results centre</a></li>
<li><a href="/investors/reports-and-presentations/">Reports and presentations</a></li>
<li><a href="/investors/shareholder-information/agm/">Annual General Meeting</a></li></ul>
<p>Latest: <a href="/media/files/2024/q3-2024-results.pdf">Q3 2024 results (PDF)</a></p>""",
    ),
    "/investors/results-centre/": _results_page(2024),
    **{f"/investors/results-centre/?year={y}": _results_page(y) for y in (2023, 2022, 2021)},
    "/investors/reports-and-presentations/": _REPORTS_1,
    "/investors/reports-and-presentations/?page=2": _REPORTS_2,
    "/investors/shareholder-information/agm/": _page(
        "Annual General Meeting",
        """<h1>Annual General Meeting</h1><p>The 2024 AGM was held on 9 May 2024 in London.</p><ul>
<li><a href="/media/files/agm/notice-of-agm-2024.pdf">Notice of AGM 2024</a></li>
<li><a href="/media/files/agm/form-of-proxy-2024.pdf">Form of proxy 2024</a></li>
<li><a href="/media/files/agm/agm-2024-poll-results.pdf">Results of the 2024 AGM poll</a></li>
<li><a href="/media/files/agm/notice-of-agm-2023.pdf">Notice of AGM 2023</a></li>
<li><a href="/media/files/agm/notice-of-agm-2022.pdf">Notice of AGM 2022</a></li></ul>""",
    ),
    "/sustainability/": _SUSTAINABILITY,
    "/sustainability/archive/": _page(
        "Sustainability archive",
        """<h1>Archive</h1><ul>
<li><a href="/media/files/sustainability/cr-report-2020.pdf">Corporate Responsibility Report
2020</a></li>
<li><a href="/media/files/legacy/SR2019_web_final.pdf">SR2019_web_final.pdf</a></li></ul>""",
    ),
    "/media/": _page(
        "Media",
        """<h1>Media centre</h1><ul>
<li><a href="/media/files/aldmere-press-kit-2024.pdf">Press kit 2024 (PDF)</a></li>
<li><a href="/media/files/aldmere-brand-guidelines.pdf">Brand guidelines</a></li></ul>""",
    ),
    "/careers/": _page(
        "Careers",
        """<h1>Careers</h1><ul>
<li><a href="/media/files/careers/graduate-programme-2024.pdf">Graduate programme 2024</a></li>
<li><a href="/media/files/careers/careers-fair-presentation-2024.pdf">Careers fair presentation
(spring 2024)</a></li></ul>""",
    ),
}

# ---------------------------------------------------------------- labels

# A reporting period's spreadsheets, Q1 to full year: the FY 2023 tables came out in February
# 2024 but report on 2023. Not: the FY 2022 tables published in February 2023, the ESG
# databook 2023, the 2023 results PDFs.
QUARTERLY_SHEETS_2023 = frozenset(
    {
        "/media/files/2023/q1-2023-data-pack.xlsx",
        "/media/files/2023/h1-2023-data-pack.xlsx",
        "/media/files/2023/q3-2023-data-pack.xlsx",
        "/media/files/2024/fy23-financial-tables.xlsx",
    }
)
# Every year's report, the 2020 one under its old name and 2019's behind a file name.
# Not: the databook (data), the finance framework, the modern slavery statement.
SUSTAINABILITY_REPORTS = frozenset(
    {
        "/media/files/sustainability/aldmere-sr-2023.pdf",
        "/media/files/sustainability/aldmere-sr-2022.pdf",
        "/media/files/sustainability/aldmere-sr-2021.pdf",
        "/media/files/sustainability/cr-report-2020.pdf",
        "/media/files/legacy/SR2019_web_final.pdf",
    }
)
# The report and its accessible Word version. Not: the half-year report 2022, the AGM 2022
# notice (which receives the 2021 report), the 2021 and 2023 reports.
ANNUAL_REPORT_2022 = frozenset({_AR_2022, "/media/files/reports/aldmere-ar-2022-accessible.docx"})
# Presentations given to investors during 2024, whatever period they cover: the FY 2023
# results (27 February 2024), Q1, H1 and Q3 2024, the March roadshow and the Capital Markets
# Day (CMD24_final_v3.pdf, text only). Not: 2023's, the careers-fair presentation.
PRESENTATIONS_2024 = frozenset(
    {
        "/media/files/2024/fy23-results-presentation.pptx.pdf",
        "/media/files/2024/q1-2024-results-presentation.pptx.pdf",
        "/media/files/2024/h1-2024-results-presentation.pptx.pdf",
        "/media/files/2024/q3-2024-results-presentation.pptx.pdf",
        "/media/files/presentations/roadshow-mar24.pdf",
        "/media/files/CMD24_final_v3.pdf",
    }
)

SITE = Site(
    name="aldmere",
    pages=_PAGES,
    documents=_DOCUMENTS,
    labels=(
        Label("quarterly results spreadsheets for 2023", QUARTERLY_SHEETS_2023),
        Label("sustainability reports", SUSTAINABILITY_REPORTS),
        Label("annual report 2022", ANNUAL_REPORT_2022),
        Label("investor presentations 2024", PRESENTATIONS_2024),
    ),
    redirects={"/investors/reports/2022/annual-report": _AR_2022},
)
