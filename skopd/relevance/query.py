"""The coordinator's plan: what a plain-language prompt asks for, and which links lead there.

``build_query`` turns "annual financial reports since 2020 as spreadsheets" into content
terms (with a few translations of common document words), adjacent-word phrases, a year
range and wanted file types. ``link_priority`` ranks page links for best-first crawling and
runs for every link found, so everything it needs is precomputed once per query (``plan_for``).
"""

from __future__ import annotations

import datetime
import functools
import itertools
import re
from dataclasses import dataclass, field
from typing import Final, TypeVar

import msgspec

from skopd.relevance.text import (
    CONCEPTS,
    MONTHS,
    Compounds,
    concept_of,
    content_word,
    fold,
    normal,
    words,
)


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


# ---------------------------------------------------------------- prompt words

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
    # "presentations" and "slides" name a kind of document, often published as a PDF: they
    # stay search terms (see CONCEPTS) and ask for no file type.
    **dict.fromkeys("powerpoint ppt pptx odp".split(), _SLIDES),
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


# ---------------------------------------------------------------- years

_Y = r"(19\d\d|20\d\d|2100)"
_ART = r"(?:(?:the\s+)?years?\s+|(?:den\s+)?jahren?\s+|les\s+annees\s+|l'\s*|il\s+|el\s+ano\s+)?"
_NUMBER_WORDS: Final = {"two": 2, "three": 3, "four": 4, "five": 5, "ten": 10}


_YEAR_FORMS: Final[tuple[tuple[re.Pattern[str], str], ...]] = tuple(
    (re.compile(pattern), kind)
    for pattern, kind in (
        (
            rf"\b(?:between|zwischen|entre|tussen|tra|fra)\s+{_ART}{_Y}\s+"
            rf"(?:and|und|et|y|e|en|&)\s+(?:l'\s*|il\s+)?{_Y}\b",
            "range",
        ),
        (
            rf"\b(?:(?:from|von|vom|de|du|desde|van|dal|da)\s+{_ART})?{_Y}\s*"
            r"(?:-|–|—|/|to|till|until|through|thru|bis|a|au|jusqu'?\s*(?:a|en|au)?"
            rf"|hasta|tot|al|fino\s+al)\s*{_Y}\b",
            "range",
        ),
        (rf"\b{_Y}\s*[/\-–]\s*(\d\d)\b", "fiscal"),
        (
            rf"\b(?:after|nach|apres|despues\s+de|na|dopo(?:\s+il)?|later\s+than|newer\s+than)"
            rf"\s+{_ART}{_Y}\b",
            "after",
        ),
        (
            rf"\b(?:since|seit|depuis|desde|sinds|vanaf|ab|dal|a\s+partir\s+(?:de|del)"
            rf"|a\s+partire\s+dal?|starting(?:\s+(?:from|in))?)\s+{_ART}{_Y}\b",
            "since",
        ),
        (
            rf"\b(?:from\s+{_ART}{_Y}\s+on\b|{_Y}\s*(?:onwards?\b"
            r"|and\s+(?:later|after|newer|beyond)\b|or\s+later\b"
            r"|\+|und\s+(?:spater|danach|neuer)\b|et\s+(?:apres|plus)\b|en\s+adelante\b"
            r"|y\s+posteriores\b|en\s+later\b|in\s+poi\b))",
            "since",
        ),
        (
            rf"\b(?:before|prior\s+to|earlier\s+than|older\s+than|pre|vor|avant|antes\s+de"
            rf"|voor|prima\s+del?)[\s-]+{_ART}{_Y}\b",
            "before",
        ),
        (
            r"\b(?:until|till|through|up\s+to|upto|bis|jusqu'?\s*(?:en|a|au)?|hasta"
            rf"|tot\s+en\s+met|tot|fino\s+al?)\s+{_ART}{_Y}\b",
            "until",
        ),
        (
            rf"\b{_Y}\s+(?:(?:and|or)\s+(?:earlier|before|older)|und\s+fruher|et\s+avant"
            r"|y\s+anteriores|en\s+eerder)\b",
            "until",
        ),
        (
            r"\b(?:last|past|previous|letzten|vergangenen|ultimos|afgelopen|laatste|ultimi)\s+"
            r"(\d{1,2}|two|three|four|five|ten)\s+(?:years|jahren?|anos|jaar|jaren|anni)\b"
            r"|\b(\d{1,2})\s+(?:dernieres\s+annees|letzten\s+jahre)\b",
            "last_n",
        ),
        (
            r"\b(?:last|previous|past)\s+year\b|\bletzte[sn]?\s+jahr(?:es)?\b"
            r"|\bvergangene[sn]?\s+jahr(?:es)?\b|\bvorjahr(?:es)?\b|\bl'annee\s+derniere\b"
            r"|\bl'an\s+dernier\b|\bano\s+pasado\b|\bvorige?\s+jaar\b|\banno\s+scorso\b",
            "last_year",
        ),
        (
            r"\b(?:this|current)\s+year\b|\b(?:dieses|laufendes|diesem|laufenden)\s+jahr(?:es)?\b"
            r"|\bcette\s+annee\b|\beste\s+ano\b|\bdit\s+jaar\b|\bquest'\s*anno\b|\bquesto\s+anno\b",
            "this_year",
        ),
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
            text = text[: match.start()] + " " * (match.end() - match.start()) + text[match.end() :]
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
        if pair and concept_of(pair) is not None:
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
        if w not in _NOISE
        and w not in _TYPE_WORDS
        and w not in MONTHS
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
        phrases=tuple(dict.fromkeys(f"{a} {b}" for a, b in itertools.pairwise(stems) if a != b)),
        years=years,
        year_from=year_from,
        year_to=year_to,
        doc_types=doc_types,
        months=_months(words(prompt)),
    )


# ---------------------------------------------------------------- plan

_JUNK, _HUB, _NEXT, _YEAR_IN, _YEAR_OUT = 1, 2, 4, 8, 16
_GROUP_SHIFT: Final = 5  # group i is bit 5 + i of a link_part value
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
_V = TypeVar("_V")
_CACHE_SIZE: Final = 10_000  # entries per cache and query: about a MB each


def _remember(cache: dict[str, _V], key: str, value: _V) -> None:
    # Starting over when full keeps the cache bounded and tracking the current site.
    if len(cache) >= _CACHE_SIZE:
        cache.clear()
    cache[key] = value


@dataclass(frozen=True, slots=True)
class Group:
    """One thing the prompt asks for, with every spelling that counts as saying it."""

    concept: int | None  # index into CONCEPTS, None for a word of the prompt's own
    kind: bool  # names a kind of document ("minutes"), not a qualifier ("board")
    weight: float  # kinds weigh more: "minutes" matters more than "board" in "board minutes"
    pairs: tuple[tuple[str, str], ...]  # two-word spellings, for partial matches
    # The kind group that says this qualifier by itself ("meeting" for "meeting minutes").
    implied_by: int | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """A Query compiled for matching: spelling -> group indexes, built once per query."""

    query: Query
    groups: tuple[Group, ...]
    words: dict[str, tuple[int, ...]]
    pairs: dict[str, tuple[int, ...]]
    phrases: frozenset[str]
    compounds: Compounds
    firsts: frozenset[str]  # first words of two-word spellings and phrases
    # link_priority's memory: path segment or link text -> link_part(), and -> score.
    link_parts: dict[str, int] = field(default_factory=dict)
    link_words: dict[str, tuple[int, str]] = field(default_factory=dict)
    stem_groups: dict[str, tuple[int, ...]] = field(default_factory=dict)
    link_scores: dict[int, float] = field(default_factory=dict)
    said_groups: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def groups_of(self, stem: str) -> tuple[int, ...]:
        """Groups a single stem says, as itself or as part of a compound ("haushaltsplan");
        a path segment may say them either way."""
        found = self.stem_groups.get(stem)
        if found is None:
            found = self.words.get(stem, ())
            for part in self.compounds.parts(stem):
                found += self.words[part]
            _remember(self.stem_groups, stem, found)
        return found

    def said_by(self, stem: str) -> tuple[int, ...]:
        """Groups a stem says about a document: a compound's head only qualifies it, so it
        says no kind ("Haushaltsauflösung" is about a household, not a budget)."""
        found = self.said_groups.get(stem)
        if found is None:
            found = self.words.get(stem, ())
            tail, head = self.compounds.split(stem)
            if tail:
                found += self.words[tail]
            if head:
                found += tuple(i for i in self.words[head] if not self.groups[i].kind)
            _remember(self.said_groups, stem, found)
        return found

    def matches(self, stems: list[str]) -> tuple[dict[int, float], set[str]]:
        """How well the stems of one field say each group (1 full, 0.7 both words of a
        two-word spelling apart, 0.3 one of them), and which prompt phrases they contain."""
        found: dict[int, float] = {}
        phrases: set[str] = set()
        prev = ""
        for stem in stems:
            hit = self.said_by(stem)
            if prev in self.firsts:
                bigram = f"{prev} {stem}"
                hit += self.pairs.get(bigram, ())
                if bigram in self.phrases:
                    phrases.add(bigram)
            for index in hit:
                found[index] = 1.0
            prev = stem
        present = set(stems)
        for index, group in enumerate(self.groups):
            for a, b in group.pairs:
                quality = (
                    0.7 if a in present and b in present else 0.3 * (a in present or b in present)
                )
                if quality > found.get(index, 0.0):
                    found[index] = quality
        return found, phrases

    def link_part(self, part: str) -> int:
        """What one path segment or link text says, as one int: signal bits (_JUNK ...)
        in the low bits, then one bit per matched group. Cached: directories repeat."""
        value = 0
        prev = ""
        known, firsts = self.link_words, self.firsts
        for word in words(part):
            bits, stem = known.get(word) or self._link_word(word)
            value |= bits
            if stem:
                if prev in firsts:
                    for index in self.pairs.get(f"{prev} {stem}", ()):
                        value |= 1 << (_GROUP_SHIFT + index)
                prev = stem
        _remember(self.link_parts, part, value)
        return value

    def _link_word(self, word: str) -> tuple[int, str]:
        if word.isdigit():
            info = (self._year_bit(word), "")
        else:
            bits = _LINK_WORDS.get(word, 0)
            stem = content_word(word) or ""
            for index in self.groups_of(stem) if stem else ():
                bits |= 1 << (_GROUP_SHIFT + index)
            info = (bits, stem)
        _remember(self.link_words, word, info)
        return info

    def _year_bit(self, digits: str) -> int:
        year = int(digits) if len(digits) == 4 else 0
        if not (1900 <= year <= 2100 and self.query.has_year_filter):
            return 0
        return _YEAR_IN if self.query.wants_year(year) else _YEAR_OUT

    def link_score(self, value: int) -> float:
        """The priority of a link whose parts said ``value`` (see link_part)."""
        score = self.link_scores.get(value)
        if score is None:
            score = self.link_scores[value] = _link_score(self, value)
        return score


def _compile(query: Query) -> Plan:
    keys: dict[object, int] = {}
    spellings: list[set[str]] = []
    concepts: list[int | None] = []
    for term in query.terms:
        unit = normal(term)
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
    groups = []
    for concept, forms in zip(concepts, spellings, strict=True):
        kind = concept is not None and CONCEPTS[concept].kind
        two = tuple((f.split(" ")[0], f.split(" ")[1]) for f in sorted(forms) if " " in f)
        groups.append(Group(concept, kind, 1.5 if kind else 1.0, two, _implier(concept, keys)))
    phrases = frozenset(normal(p) for p in query.phrases)
    firsts = frozenset(p.split(" ")[0] for p in (*pairs, *phrases))
    return Plan(query, tuple(groups), words, pairs, phrases, Compounds(words), firsts)


def _implier(concept: int | None, keys: dict[object, int]) -> int | None:
    """The group of a kind in the prompt that says ``concept`` by itself, if any."""
    for key, index in keys.items():
        if isinstance(key, int) and concept in CONCEPTS[key].implies:
            return index
    return None


@functools.lru_cache(maxsize=8)
def _cached_plan(query: Query) -> Plan:
    return _compile(query)


_last_plan: list[Plan] = []


def plan_for(query: Query) -> Plan:
    """The compiled plan of a query; the identity check spares hashing it on every link."""
    if _last_plan and _last_plan[0].query is query:
        return _last_plan[0]
    plan = _cached_plan(query)
    _last_plan[:] = [plan]
    return plan


# ---------------------------------------------------------------- link priority

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
    cache = plan.link_parts
    value = cache.get(text)
    if value is None:
        value = plan.link_part(text)
    for part in _path(url).split("/"):
        found = cache.get(part)
        value |= plan.link_part(part) if found is None else found
    return plan.link_score(value)


def _link_score(plan: Plan, value: int) -> float:
    score = 0.3
    if plan.groups:
        said = sum(g.weight for i, g in enumerate(plan.groups) if value >> (_GROUP_SHIFT + i) & 1)
        score += 0.45 * said / sum(g.weight for g in plan.groups)
    if value & _HUB:
        score += 0.1
    if value & _NEXT:
        score += 0.1
    if value & _YEAR_IN:
        score += 0.15
    elif value & _YEAR_OUT:
        score *= 0.4
    if value & _JUNK:
        score *= 0.25
    return min(score, 1.0)
