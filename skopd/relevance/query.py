"""The coordinator's plan: what a plain-language prompt asks for, and which links lead there.

``build_query`` turns "annual financial reports since 2020 as spreadsheets" into content
terms (with a few translations of common document words), adjacent-word phrases, a year
range and wanted file types. ``link_priority`` ranks page links for best-first crawling and
runs for every link found, so everything it needs is precomputed once per query (``plan_for``).
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import msgspec

from skopd.relevance.text import MONTHS, content_word, content_words, fold, words


class Query(msgspec.Struct, frozen=True):
    prompt: str
    terms: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()
    years: tuple[int, ...] = ()
    year_from: int | None = None
    year_to: int | None = None
    doc_types: tuple[str, ...] = ()
    # Months named in the prompt (1-12); only narrows within the wanted years.
    months: tuple[int, ...] = ()

    @property
    def has_year_filter(self) -> bool:
        return bool(self.years) or self.year_from is not None or self.year_to is not None

    def wants_year(self, year: int) -> bool:
        """True when ``year`` is inside the asked range; several separate years named
        ("2019 and 2021") leave the range open and are matched one by one."""
        if self.year_from is not None or self.year_to is not None:
            low = self.year_from if self.year_from is not None else -1
            high = self.year_to if self.year_to is not None else 1 << 30
            return low <= year <= high
        return not self.years or year in self.years


# ---------------------------------------------------------------- vocabulary

# Each concept: a name, whether it names a *kind* of document (the thing the user wants
# rather than a qualifier), and its spellings across languages. Several-word spellings
# match as adjacent content words.
_CONCEPTS: Final[tuple[tuple[str, bool, str], ...]] = (
    ("minutes", True, "minutes, protocol, protokoll, niederschrift, sitzungsprotokoll,"
     " procès-verbal, procès-verbaux, compte rendu, pv, notulen, acta, verbale, verbali"),
    ("agenda", True, "agenda, tagesordnung, einladung, ordre du jour, orden del día,"
     " ordine del giorno"),
    ("budget", True, "budget, haushalt, haushaltsplan, haushaltssatzung, presupuesto,"
     " begroting, bilancio di previsione"),
    ("annual report", True, "annual report, jahresbericht, geschäftsbericht, rapport annuel,"
     " rapport d'activité, informe anual, memoria anual, jaarverslag, relazione annuale"),
    ("report", True, "report, bericht, rapport, informe, verslag, relazione"),
    ("financial statement", True, "financial statement, annual accounts, jahresabschluss,"
     " comptes annuels, états financiers, cuentas anuales, jaarrekening, rendiconto"),
    ("resolution", True, "resolution, decision, beschluss, délibération, décision,"
     " resolución, acuerdo, besluit, delibera, deliberazione"),
    ("regulation", True, "regulation, bylaw, ordinance, statute, satzung, verordnung,"
     " règlement, ordonnance, arrêté, reglamento, ordenanza, verordening, regolamento"),
    ("plan", True, "plan, planung, plano"),
    ("contract", True, "contract, vertrag, contrat, contrato, overeenkomst, contratto"),
    ("newsletter", True, "newsletter, bulletin, rundbrief, boletín, nieuwsbrief, notiziario"),
    ("press release", True, "press release, pressemitteilung, communiqué de presse,"
     " nota de prensa, persbericht, comunicato stampa"),
    ("policy", True, "policy, richtlinie, leitlinie, politique, política, beleid, guideline,"
     " leitfaden"),
    ("form", True, "form, formular, antrag, formulaire, formulario, formulier, modulo"),
    ("annual", False, "annual, yearly, jahres, jährlich, annuel, anual, jaarlijks, annuale"),
    ("financial", False, "financial, finance, finanz, finanzen, financier, financière,"
     " financiero, financieel, finanziario"),
    ("meeting", False, "meeting, session, sitzung, versammlung, séance, réunion, sesión,"
     " vergadering, riunione, seduta"),
    ("council", False, "council, gemeinderat, stadtrat, kreistag, conseil, conseil municipal,"
     " ayuntamiento, pleno, gemeenteraad, raad, consiglio, consiglio comunale"),
    ("board", False, "board, board of directors, vorstand, aufsichtsrat, verwaltungsrat,"
     " conseil d'administration, junta directiva, bestuur, consiglio di amministrazione"),
    ("committee", False, "committee, ausschuss, kommission, commission, comité, comisión,"
     " commissie, comitato, commissione"),
)

_SHEETS: Final = ("xls", "xlsx", "ods", "csv")
_WORDPROC: Final = ("doc", "docx", "odt", "rtf")
_SLIDES: Final = ("ppt", "pptx", "odp")
_TYPE_WORDS: Final[dict[str, tuple[str, ...]]] = {
    **dict.fromkeys(
        "spreadsheet spreadsheets excel xls xlsx ods tabellenkalkulation tableur tableurs"
        " rekenblad rekenbladen".split(),
        _SHEETS,
    ),
    **dict.fromkeys("word doc docx odt rtf worddokument worddokumente".split(), _WORDPROC),
    **dict.fromkeys(
        "presentation presentations slides slide powerpoint ppt pptx odp prasentation"
        " prasentationen praesentation praesentationen folien diapositives diapositivas"
        " presentaciones presentatie presentaties presentazione presentazioni".split(),
        _SLIDES,
    ),
    "pdf": ("pdf",),
    "pdfs": ("pdf",),
    "csv": ("csv",),
    "txt": ("txt",),
}

# Prompt words that describe the request rather than the documents.
_NOISE: Final = frozenset(
    "find get show list give want need look search fetch grab collect retrieve locate download"
    " downloads document documents file files please available related regarding concerning"
    " including copy copies version versions format formats type types kind kinds every each"
    " year years month months latest recent newest current older old new"
    " finde finden suche suchen zeige zeigen bitte gib hole herunterladen dokumente dokument"
    " dateien datei unterlagen jahr jahre jahren jahres monat monate neueste aktuelle"
    " trouver trouve trouvez cherche chercher donne donner montrer montre fichier fichiers"
    " annee annees an ans mois derniers dernieres recents"
    " buscar busca encontrar encuentra dame documento documentos archivo archivos ano anos mes"
    " meses vind vinden zoek zoeken toon documenten bestand bestanden jaar jaren maand"
    " trova trovare cerca cercare mostra scarica documenti anno anni mese mesi"
    " one two three four five six seven eight nine ten".split()
)


@dataclass(frozen=True, slots=True)
class _Concept:
    name: str
    kind: bool
    words: frozenset[str]
    pairs: frozenset[str]


def _normal(phrase: str) -> str:
    return " ".join(content_words(phrase))


def _load_concepts() -> tuple[_Concept, ...]:
    out = []
    for name, kind, spellings in _CONCEPTS:
        forms = {_normal(s) for s in spellings.split(",")} - {""}
        out.append(_Concept(name, kind, frozenset(f for f in forms if " " not in f),
                            frozenset(f for f in forms if " " in f)))
    return tuple(out)


CONCEPTS: Final = _load_concepts()
_SPELLING: Final[dict[str, int]] = {
    form: index for index, c in enumerate(CONCEPTS) for form in (*c.words, *c.pairs)
}
_AFFIX_MIN: Final = 5  # shortest spelling matched inside a compound word
_AFFIX_REST: Final = 3  # shortest rest of that compound


class Compounds:
    """Known spellings found as the tail or head of a longer word: German and Dutch glue
    words together ("Sitzungsprotokoll", "Haushaltsplan", "Gemeenteraadsvergadering")."""

    __slots__ = ("_heads", "_tails", "min_length")

    def __init__(self, spellings: Iterable[str]) -> None:
        known = sorted({s for s in spellings if len(s) >= _AFFIX_MIN and " " not in s},
                       key=lambda s: (-len(s), s))
        # Alternatives are tried in order, so longest first finds the longest part.
        self._heads = re.compile("|".join(map(re.escape, known))) if known else None
        self._tails = re.compile("|".join(re.escape(s[::-1]) for s in known)) if known else None
        self.min_length = min(map(len, known)) + _AFFIX_REST if known else 1 << 30

    def parts(self, word: str) -> list[str]:
        """The longest known tail, then the longest known head, of ``word``."""
        if len(word) < self.min_length or self._heads is None or self._tails is None:
            return []
        limit = len(word) - _AFFIX_REST
        found = []
        if tail := self._tails.match(word[::-1], 0, limit):
            found.append(tail.group()[::-1])
        if head := self._heads.match(word, 0, limit):
            found.append(head.group())
        return found


_CONCEPT_PARTS: Final = Compounds(_SPELLING)


def concept_of(unit: str) -> int | None:
    """Index into CONCEPTS of a normalised word or pair, trying compound heads last."""
    if unit in _SPELLING:
        return _SPELLING[unit]
    if " " in unit:
        return None
    # The tail comes first: in a German compound the last word names the thing.
    parts = _CONCEPT_PARTS.parts(unit)
    return _SPELLING[parts[0]] if parts else None


_KIND_WORDS: Final[dict[str, int]] = {
    form: i for i, c in enumerate(CONCEPTS) if c.kind for form in (*c.words, *c.pairs)
}
_KIND_PARTS: Final = Compounds(_KIND_WORDS)


def kinds_in(stems: list[str]) -> set[int]:
    """The document kinds (CONCEPTS indexes) a run of stems names, compounds included."""
    found = set()
    prev = ""
    for stem in stems:
        for form in (stem, f"{prev} {stem}", *_KIND_PARTS.parts(stem)):
            if form in _KIND_WORDS:
                found.add(_KIND_WORDS[form])
        prev = stem
    return found


# ---------------------------------------------------------------- years

_Y = r"(19\d\d|20\d\d|2100)"
_ART = r"(?:(?:the\s+)?years?\s+|(?:den\s+)?jahren?\s+|les\s+annees\s+|l'\s*|il\s+|el\s+ano\s+)?"
_NUMBER_WORDS: Final = {"two": 2, "three": 3, "four": 4, "five": 5, "ten": 10}


_YEAR_FORMS: Final[tuple[tuple[re.Pattern[str], str], ...]] = tuple(
    (re.compile(pattern), kind)
    for pattern, kind in (
        (rf"\b(?:between|zwischen|entre|tussen|tra|fra)\s+{_ART}{_Y}\s+"
         rf"(?:and|und|et|y|e|en|&)\s+(?:l'\s*|il\s+)?{_Y}\b", "range"),
        (rf"\b(?:(?:from|von|vom|de|du|desde|van|dal|da)\s+{_ART})?{_Y}\s*"
         r"(?:-|–|—|/|to|till|until|through|thru|bis|a|au|jusqu'?\s*(?:a|en|au)?|hasta|tot|al"
         rf"|fino\s+al)\s*{_Y}\b", "range"),
        (rf"\b{_Y}\s*[/\-–]\s*(\d\d)\b", "fiscal"),
        (rf"\b(?:after|nach|apres|despues\s+de|na|dopo(?:\s+il)?|later\s+than|newer\s+than)"
         rf"\s+{_ART}{_Y}\b", "after"),
        (rf"\b(?:since|seit|depuis|desde|sinds|vanaf|ab|dal|a\s+partir\s+(?:de|del)"
         rf"|a\s+partire\s+dal?|starting(?:\s+(?:from|in))?)\s+{_ART}{_Y}\b", "since"),
        (rf"\b(?:from\s+{_ART}{_Y}\s+on\b|{_Y}\s*(?:onwards?\b|and\s+(?:later|after|newer|beyond)\b|or\s+later\b"
         r"|\+|und\s+(?:spater|danach|neuer)\b|et\s+(?:apres|plus)\b|en\s+adelante\b"
         r"|y\s+posteriores\b|en\s+later\b|in\s+poi\b))", "since"),
        (rf"\b(?:before|prior\s+to|earlier\s+than|older\s+than|pre|vor|avant|antes\s+de"
         rf"|voor|prima\s+del?)[\s-]+{_ART}{_Y}\b", "before"),
        (rf"\b(?:until|till|through|up\s+to|upto|bis|jusqu'?\s*(?:en|a|au)?|hasta|tot\s+en\s+met|tot"
         rf"|fino\s+al?)\s+{_ART}{_Y}\b", "until"),
        (rf"\b{_Y}\s+(?:(?:and|or)\s+(?:earlier|before|older)|und\s+fruher|et\s+avant"
         r"|y\s+anteriores|en\s+eerder)\b", "until"),
        (r"\b(?:last|past|previous|letzten|vergangenen|ultimos|afgelopen|laatste|ultimi)\s+"
         r"(\d{1,2}|two|three|four|five|ten)\s+(?:years|jahren?|anos|jaar|jaren|anni)\b"
         r"|\b(\d{1,2})\s+(?:dernieres\s+annees|letzten\s+jahre)\b", "last_n"),
        (r"\b(?:last|previous|past)\s+year\b|\bletzte[sn]?\s+jahr(?:es)?\b"
         r"|\bvergangene[sn]?\s+jahr(?:es)?\b|\bvorjahr(?:es)?\b|\bl'annee\s+derniere\b"
         r"|\bl'an\s+dernier\b|\bano\s+pasado\b|\bvorige?\s+jaar\b|\banno\s+scorso\b",
         "last_year"),
        (r"\b(?:this|current)\s+year\b|\b(?:dieses|laufendes|diesem|laufenden)\s+jahr(?:es)?\b"
         r"|\bcette\s+annee\b|\beste\s+ano\b|\bdit\s+jaar\b|\bquest'\s*anno\b|\bquesto\s+anno\b",
         "this_year"),
    )
)
_BARE_YEAR: Final = re.compile(rf"(?<!\d){_Y}(?!\d)")


def _constraint(kind: str, groups: list[str], this_year: int) -> tuple[int | None, int | None]:
    nums = [int(g) if g.isdigit() else _NUMBER_WORDS[g] for g in groups]
    if kind == "range":
        return min(nums), max(nums)
    if kind == "fiscal":
        return (nums[0], nums[0] + 1) if (nums[0] + 1) % 100 == nums[1] else (nums[0], nums[0])
    if kind == "after":
        return nums[0] + 1, None
    if kind == "since":
        return nums[0], None
    if kind == "before":
        return None, nums[0] - 1
    if kind == "until":
        return None, nums[0]
    if kind == "last_n":
        return this_year - nums[0], this_year
    year = this_year - 1 if kind == "last_year" else this_year
    return year, year


def _parse_years(
    text: str, today: datetime.date
) -> tuple[tuple[int, ...], int | None, int | None, str]:
    """Years named, the range asked for, and the text with the year phrases blanked out."""
    spans: list[tuple[int | None, int | None]] = []
    named: list[int] = []
    for pattern, kind in _YEAR_FORMS:
        for match in pattern.finditer(text):
            groups = [g for g in match.groups() if g]
            low, high = _constraint(kind, groups, today.year)
            spans.append((low, high))
            literal = [int(g) for g in groups if len(g) == 4]
            named += literal or [y for y in (low, high) if y is not None]
            text = text[: match.start()] + " " * (match.end() - match.start()) + text[match.end():]
    bare = [int(y) for y in _BARE_YEAR.findall(text)]
    text = _BARE_YEAR.sub(" ", text)
    years = tuple(dict.fromkeys(y for y in named + bare if 1900 <= y <= 2100))
    if not spans:
        single = len(set(bare)) == 1
        return years, (bare[0] if single else None), (bare[0] if single else None), text
    spans += [(y, y) for y in bare]
    lows, highs = [s[0] for s in spans], [s[1] for s in spans]
    low = None if None in lows else min(y for y in lows if y is not None)
    high = None if None in highs else max(y for y in highs if y is not None)
    return years, low, high, text


# ---------------------------------------------------------------- build_query


def _units(stems: list[str]) -> list[str]:
    """Merge adjacent stems that spell a known concept together ("proces verbal")."""
    out: list[str] = []
    i = 0
    while i < len(stems):
        pair = f"{stems[i]} {stems[i + 1]}" if i + 1 < len(stems) else ""
        if pair in _SPELLING:
            out.append(pair)
            i += 2
        else:
            out.append(stems[i])
            i += 1
    return out


def _months(tokens: list[str]) -> tuple[int, ...]:
    found = []
    for i, token in enumerate(tokens):
        # "may" is a month only right before a day or year: "May 2024", not "may contain".
        followed_by_number = i + 1 < len(tokens) and tokens[i + 1].isdigit()
        if token in MONTHS and (token != "may" or followed_by_number):
            found.append(MONTHS[token])
    return tuple(dict.fromkeys(found))


def build_query(prompt: str, today: datetime.date | None = None) -> Query:
    """Plan a crawl from a plain-language prompt (any of en, de, fr, es, nl, it)."""
    today = today or datetime.date.today()
    years, year_from, year_to, rest = _parse_years(fold(prompt), today)
    tokens = words(rest)
    doc_types = tuple(dict.fromkeys(t for w in tokens for t in _TYPE_WORDS.get(w, ())))
    stems = [
        s
        for w in tokens
        if w not in _NOISE and w not in _TYPE_WORDS and w not in MONTHS
        and (s := content_word(w)) is not None
    ]
    units = list(dict.fromkeys(_units(stems)))
    synonyms = []
    for unit in units:
        index = concept_of(unit)
        if index is not None:
            concept = CONCEPTS[index]
            synonyms += sorted(concept.words) + sorted(concept.pairs)
    return Query(
        prompt=prompt,
        terms=tuple(dict.fromkeys(units + synonyms)),
        phrases=tuple(dict.fromkeys(f"{a} {b}" for a, b in zip(stems, stems[1:]) if a != b)),
        years=years,
        year_from=year_from,
        year_to=year_to,
        doc_types=doc_types,
        months=_months(words(prompt)),
    )


# ---------------------------------------------------------------- plan


@dataclass(frozen=True, slots=True)
class Group:
    """One thing the prompt asks for, with every spelling that counts as saying it."""

    concept: int | None  # index into CONCEPTS, None for a word of the prompt's own
    kind: bool  # names a kind of document ("minutes"), not a qualifier ("board")
    pairs: tuple[tuple[str, str], ...]  # two-word spellings, for partial matches


@dataclass(frozen=True, slots=True)
class Plan:
    """A Query compiled for matching: spelling -> group indexes, built once per query."""

    groups: tuple[Group, ...]
    words: dict[str, tuple[int, ...]]
    pairs: dict[str, tuple[int, ...]]
    phrases: frozenset[str]
    compounds: Compounds

    def compound(self, stem: str) -> tuple[int, ...]:
        """Groups whose spelling is the head or tail of a compound ("haushaltsplan")."""
        found: tuple[int, ...] = ()
        for part in self.compounds.parts(stem):
            found += self.words[part]
        return found

    def matches(self, stems: list[str]) -> tuple[dict[int, float], set[str]]:
        """How well the stems of one field say each group (1 full, 0.7 both words of a
        two-word spelling apart, 0.3 one of them), and which prompt phrases they contain."""
        found: dict[int, float] = {}
        phrases: set[str] = set()
        words, pairs = self.words, self.pairs
        shortest = self.compounds.min_length
        prev = ""
        for stem in stems:
            hit = words.get(stem, ())
            if len(stem) >= shortest:
                hit += self.compound(stem)
            if prev:
                bigram = f"{prev} {stem}"
                hit += pairs.get(bigram, ())
                if bigram in self.phrases:
                    phrases.add(bigram)
            for group in hit:
                found[group] = 1.0
            prev = stem
        self._partial(stems, found)
        return found, phrases

    def _partial(self, stems: list[str], found: dict[int, float]) -> None:
        present = set(stems)
        for index, group in enumerate(self.groups):
            if found.get(index) == 1.0:
                continue
            for a, b in group.pairs:
                both, one = a in present and b in present, a in present or b in present
                quality = 0.7 if both else 0.3 if one else 0.0
                if quality > found.get(index, 0.0):
                    found[index] = quality


def _compile(query: Query) -> Plan:
    keys: dict[object, int] = {}
    spellings: list[set[str]] = []
    concepts: list[int | None] = []
    for term in query.terms:
        unit = _normal(term)
        if not unit:
            continue
        concept = concept_of(unit)
        key: object = concept if concept is not None else unit
        if key not in keys:
            keys[key] = len(spellings)
            known = CONCEPTS[concept] if concept is not None else None
            spellings.append(set(known.words | known.pairs) if known else set())
            concepts.append(concept)
        spellings[keys[key]].add(unit)
    words: dict[str, tuple[int, ...]] = {}
    pairs: dict[str, tuple[int, ...]] = {}
    for index, forms in enumerate(spellings):
        for form in forms:
            table = pairs if " " in form else words
            table[form] = (*table.get(form, ()), index)
    groups = tuple(
        Group(
            concept,
            concept is not None and CONCEPTS[concept].kind,
            tuple((f.split(" ")[0], f.split(" ")[1]) for f in sorted(forms) if " " in f),
        )
        for concept, forms in zip(concepts, spellings, strict=True)
    )
    phrases = frozenset(" ".join(content_words(p)) for p in query.phrases)
    return Plan(groups, words, pairs, phrases, Compounds(words))


_last_plan: tuple[Query, Plan] | None = None


@functools.lru_cache(maxsize=64)
def _cached_plan(query: Query) -> Plan:
    return _compile(query)


def plan_for(query: Query) -> Plan:
    """The compiled plan of a query; the identity check spares hashing it on every link."""
    global _last_plan
    last = _last_plan
    if last is not None and last[0] is query:
        return last[1]
    plan = _cached_plan(query)
    _last_plan = (query, plan)
    return plan


# ---------------------------------------------------------------- link priority

_JUNK, _HUB, _NEXT = 1, 2, 3
_LINK_WORDS: Final[dict[str, int]] = {
    **dict.fromkeys(
        "cart basket checkout shop login logout signin signup register account password"
        " cookie cookies privacy datenschutz impressum imprint contact kontakt share print"
        " feed rss facebook twitter linkedin instagram youtube whatsapp tag tags author"
        " comment comments replytocom".split(),
        _JUNK,
    ),
    **dict.fromkeys(
        "documents document dokumente downloads download publications publikationen"
        " veroeffentlichungen veroffentlichungen archive archives archiv media mediathek"
        " library bibliothek files dateien resources ressources documentos publicaciones"
        " documenti pubblicazioni publicaties documenten bestanden sitemap".split(),
        _HUB,
    ),
    **dict.fromkeys(
        "next weiter nachste naechste suivant suivante siguiente volgende successivo"
        " successiva older altere anciens page seite pagina paged offset".split(),
        _NEXT,
    ),
}
_NO_PAGE_SCHEMES: Final = ("mailto:", "javascript:", "tel:", "data:")


def _path(url: str) -> str:
    scheme = url.find("://")
    if scheme < 0:
        return url
    start = url.find("/", scheme + 3)
    return url[start:] if start >= 0 else ""


def link_priority(query: Query, url: str, text: str) -> float:
    """How promising a page link is (0..1) from its text and URL path words: prompt terms
    and wanted years raise it, other years and shop/login/share links lower it."""
    if url[:11].lower().startswith(_NO_PAGE_SCHEMES):
        return 0.0
    plan = plan_for(query)
    groups: set[int] = set()
    signals = 0  # bit set of _JUNK, _HUB, _NEXT
    year_in = year_out = False
    check_years = query.has_year_filter
    shortest = plan.compounds.min_length
    prev = ""
    for word in words(f"{text} {_path(url)}"):
        if word.isdigit():
            if check_years and len(word) == 4 and 1900 <= (year := int(word)) <= 2100:
                if query.wants_year(year):
                    year_in = True
                else:
                    year_out = True
            continue
        signals |= 1 << _LINK_WORDS.get(word, 0)
        stem = content_word(word)
        if stem is None:
            continue
        groups.update(plan.words.get(stem, ()))
        if len(stem) >= shortest:
            groups.update(plan.compound(stem))
        if prev and plan.pairs:
            groups.update(plan.pairs.get(f"{prev} {stem}", ()))
        prev = stem
    return _link_score(plan, groups, signals, year_in, year_out)


def _link_score(plan: Plan, groups: set[int], signals: int, year_in: bool, year_out: bool) -> float:
    score = 0.3
    if plan.groups:
        total = sum(1.5 if g.kind else 1.0 for g in plan.groups)
        score += 0.45 * sum(1.5 if plan.groups[i].kind else 1.0 for i in groups) / total
    if signals & (1 << _HUB):
        score += 0.1
    if signals & (1 << _NEXT):
        score += 0.1
    if year_in:
        score += 0.15
    elif year_out:
        score *= 0.4
    if signals & (1 << _JUNK):
        score *= 0.25
    return min(score, 1.0)
