"""Text normalisation shared by the query planner and the lexical scorer.

Everything here works on *folded* text: lowercased, accents removed, ß -> ss. Words are
runs of letters or runs of digits; content words are words minus stopwords, lightly stemmed
with rules that are crude but applied identically to prompts and documents, so that
"Protokolle"/"Protokoll", "minutes"/"minute" or "procès-verbaux"/"procès-verbal" meet.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

_SPECIAL: Final = str.maketrans(
    {"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ł": "l", "þ": "th", "’": "'"}
)
_COMBINING: Final = re.compile(r"[\u0300-\u036f]+")
_WORD: Final = re.compile(r"[^\W\d_]+|\d+")
_CAMEL: Final = re.compile(r"(?<=[a-z])(?=[A-Z])")

STOPWORDS: Final = frozenset(
    # en
    "a an the and or of in on at to for from by with about into over under as is are was were"
    " be been being this that these those it its our your their his her my me we you they i"
    " what which who whom whose where when how why not no nor but if then than so such per via"
    " vs also only just both either neither up out off down any each every some all there here"
    # de
    " der die das den dem des ein eine einer eines einem einen und oder von vom zu zum zur im"
    " am an auf aus bei beim mit nach seit fur fuer uber ueber unter vor bis als ist sind war"
    " waren wird werden wurde wurden sein alle allen aller alles jede jeder jedes jeden diese"
    " dieser dieses diesem diesen es sie er wir ihr ich mir mich uns nicht kein keine auch nur"
    " sowie bzw zwischen ab gegen ohne um durch wie was wer wo wann welche welcher welches hier"
    # fr
    " le la les un une du de et ou au aux en dans sur pour par avec sans sous entre depuis"
    " avant apres chez ce cet cette ces son sa ses leur leurs notre nos votre vos mon ma mes"
    " qui que quoi dont est sont ete etre tous toutes tout toute pas ne se ici"
    # es
    " el los las unos unas y del al con sin por para sobre desde hasta antes despues su sus"
    " es son fue ser todo todos toda todas este esta estos estas ese esa lo le mi tu aqui"
    # nl
    " het een van op te voor met aan bij uit naar over tot sinds tussen na om door als zijn"
    " wordt worden dit dat deze alle ook niet geen ze zij wij we ik hun onze hier"
    # it
    " il lo gli di dello della dei degli delle da dal dallo dalla dai dagli dalle nel nello"
    " nella nei negli nelle sul sulla con tra fra alla ai agli alle che chi cui non come dove"
    " quando questo questa questi queste quello quella tutti tutte tutto tutta sono essere"
    " qui".split()
)

# Words that carry no evidence about which document a link is: file types, sizes, verbs of
# downloading and opening, "here", "more", "new window".
GENERIC: Final = frozenset(
    "pdf doc docx xls xlsx ppt pptx odt ods odp rtf txt csv zip word excel file files datei"
    " dateien fichier fichiers archivo documento document dokument bestand download downloads"
    " herunterladen downloaden telecharger telechargement telechargez descargar descarga scarica"
    " scaricare here hier ici aqui qui click klicken klick cliquez cliquer clic haga clicca"
    " open oeffnen offnen ouvrir abrir apri aprire view ansehen anzeigen voir ver visualizza"
    " read lesen lire leer leggi more mehr plus mas link links lien enlace details detail"
    " suite weiter weiterlesen erfahren size groesse grosse taille kb mb gb ko mo kib mib byte"
    " bytes seite seiten page pages new neues neuem nouvelle window fenster fenetre ventana"
    " finestra tab external externer externe opens oeffnet offnet ouvre version kbytes".split()
)

SIZE_UNITS: Final = frozenset("kb mb gb ko mo kib mib byte bytes kbytes".split())


def fold(text: str) -> str:
    """Lowercase and strip accents: "Procès-Verbal Größe" -> "proces-verbal grosse"."""
    text = text.lower()
    if text.isascii():
        return text
    text = _COMBINING.sub("", unicodedata.normalize("NFKD", text))
    # str.translate is slow; most accented letters are gone after NFKD already.
    return text if text.isascii() else text.translate(_SPECIAL)


_ALNUM: Final = bytes(c if chr(c).isascii() and chr(c).isalnum() else 32 for c in range(256))
_PARTS: Final = re.compile(r"[a-z]+|[0-9]+")


def words(text: str) -> list[str]:
    """Folded words: runs of letters and runs of digits, in order."""
    folded = fold(text)
    if not folded.isascii():
        return _WORD.findall(folded)
    # Translating bytes is several times faster than a regex, and this runs for every link.
    out = folded.encode("ascii").translate(_ALNUM).decode("ascii").split()
    for i, word in enumerate(out):
        if not (word.isalpha() or word.isdigit()):
            return out[:i] + [p for w in out[i:] for p in _PARTS.findall(w)]
    return out


def split_camel(text: str) -> str:
    """ "BoardMinutes2024" -> "Board Minutes2024"; file names and URLs glue words together."""
    return _CAMEL.sub(" ", text)


_STEM_CACHE: dict[str, str | None] = {}


def stem(word: str) -> str:
    """Light, language-agnostic suffix stripping (plural and feminine endings), repeated
    until nothing changes so that stemming a stem is harmless."""
    while (shorter := _strip_suffix(word)) != word:
        word = shorter
    return word


def _strip_suffix(word: str) -> str:
    if len(word) <= 4 or word.isdigit():
        return word
    for suffix, repl in (("ies", "y"), ("aux", "al"), ("elles", "el"), ("elle", "el")):
        if word.endswith(suffix):
            return word[: -len(suffix)] + repl
    if word[-1] == "s" and word[-2] not in "sui":
        return word[:-1]
    if len(word) > 5 and word[-1] in "eio":
        return word[:-1]
    if len(word) > 6 and word.endswith("en"):
        return word[:-2]
    return word


def content_word(word: str) -> str | None:
    """The stem of a folded word, or None for stopwords, digits and single letters."""
    try:
        return _STEM_CACHE[word]
    except KeyError:
        pass
    result = None if len(word) < 2 or word.isdigit() or word in STOPWORDS else stem(word)
    if len(_STEM_CACHE) > 50_000:
        _STEM_CACHE.clear()
    _STEM_CACHE[word] = result
    return result


def content_words(text: str) -> list[str]:
    """Stems of the content words of ``text``, in order."""
    out = []
    for word in words(text):
        kept = content_word(word)
        if kept is not None:
            out.append(kept)
    return out


def is_generic_word(word: str) -> bool:
    """A folded word that says nothing about a document: type, size, verb, stopword, number."""
    return word in GENERIC or word in STOPWORDS or word.isdigit() or len(word) < 2


def is_generic_text(text: str) -> bool:
    """True for link texts like "PDF", "[PDF]", "pdf (2 MB)", "Download", "click here"."""
    return all(is_generic_word(w) for w in words(text))


# ---------------------------------------------------------------- dates

MONTHS: Final[dict[str, int]] = {
    name: number
    for number, names in enumerate(
        (
            "january januar janvier enero januari gennaio jan",
            "february februar fevrier febrero februari febbraio feb",
            "march marz maerz mars marzo maart mar",
            "april avril abril aprile apr",
            "may mai mayo mei maggio",
            "june juni juin junio giugno jun",
            "july juli juillet julio luglio jul",
            "august aout agosto augustus aug",
            "september septembre septiembre settembre sep sept",
            "october oktober octobre octubre ottobre oct okt",
            "november novembre noviembre nov",
            "december dezember decembre diciembre dicembre dec dez",
        ),
        start=1,
    )
    for name in names.split()
}

_FOUR_DIGITS: Final = re.compile(r"\d{4}")
_YEAR: Final = re.compile(r"(?<!\d)(19\d\d|20\d\d|2100)(?!\d)")
_COMPACT_DATE: Final = re.compile(
    r"(?<!\d)(19\d\d|20\d\d)(0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?!\d)"
)
_YEAR_SPAN: Final = re.compile(
    r"(?<!\d)(19\d\d|20\d\d)\s*(?:-|–|—|/|to|bis|au|a)\s*(19\d\d|20\d\d|\d\d)(?!\d)"
)
_ISO_MONTH: Final = re.compile(r"(?<!\d)(?:19|20)\d\d[-_./](0[1-9]|1[0-2])(?!\d)")
_DAY_MONTH: Final = re.compile(
    r"(?<!\d)(0?[1-9]|[12]\d|3[01])([./-])(0?[1-9]|1[0-2])[./-](?:19|20)?\d\d(?!\d)"
)
_MONTH_YEAR: Final = re.compile(r"(?<!\d)(0?[1-9]|1[0-2])[./-](?:19|20)\d\d(?!\d)")


def years_in(text: str) -> set[int]:
    """Years a text mentions: "2024", "2024-03-12", "12.03.2024", "minutes_20240312",
    and every year of a span such as "2019-2021" or "2023/24"."""
    if not _FOUR_DIGITS.search(text):
        return set()
    found = {int(y) for y in _YEAR.findall(text)}
    found.update(int(y) for y, _ in _COMPACT_DATE.findall(text))
    for first, last in _YEAR_SPAN.findall(text):
        start = int(first)
        end = int(last) if len(last) == 4 else start - start % 100 + int(last)
        if 0 < end - start <= 10:
            found.update(range(start, end + 1))
    return found


_MONTH_NAMES: Final = "|".join(sorted(MONTHS, key=len, reverse=True))
_DATED: Final = re.compile(
    r"(?<!\d)(?:\d{1,2}[./-]\s?)?(?:0?[1-9]|1[0-2])[./-](?:19|20)\d\d(?!\d)"
    r"|(?<!\d)(?:19|20)\d\d[-_./](?:0[1-9]|1[0-2])(?:[-_./](?:0[1-9]|[12]\d|3[01]))?(?!\d)"
    r"|(?<!\d)(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?!\d)"
    rf"|\b(?:\d{{1,2}}(?:st|nd|rd|th|er)?\.?\s+)?(?:{_MONTH_NAMES})\.?\s+(?:\d{{1,2}},?\s+)?"
    r"(?:19|20)\d\d(?!\d)"
)


def period_years(text: str) -> set[int]:
    """The years a title is about: "Annual Report 2021 – published March 2022" is 2021's,
    "Full year 2022 results, 28 February 2023" is 2022's. Years written on their own win
    over years inside a full date (when it was published or held) when a text has both."""
    found = years_in(text)
    if len(found) < 2:
        return found
    return years_in(_DATED.sub(" ", fold(text))) or found


def months_in(text: str) -> set[int]:
    """Months a text mentions by name (six languages) or in a numeric date."""
    found = {MONTHS[w] for w in words(text) if w in MONTHS}
    if any(c.isdigit() for c in text):
        found.update(int(m) for m in _ISO_MONTH.findall(text))
        found.update(int(m) for _, m in _COMPACT_DATE.findall(text))
        found.update(int(m) for m in _MONTH_YEAR.findall(text))
        for day, sep, month in _DAY_MONTH.findall(text):
            found.add(int(month))
            if sep == "/" and int(day) <= 12:  # 03/12/2024 may be US month-first
                found.add(int(day))
    return found


# ---------------------------------------------------------------- concepts

# Each concept: a name, whether it names a *kind* of document (the thing the user wants
# rather than a qualifier), its spellings across languages, and the qualifiers a document of
# that kind says by being one (minutes are of a meeting, a budget is annual). Several-word
# spellings match as adjacent content words.
_CONCEPTS: Final[tuple[tuple[str, bool, str, str], ...]] = (
    (
        "minutes",
        True,
        "minutes, protocol, protokoll, niederschrift, sitzungsprotokoll,"
        " procès-verbal, procès-verbaux, compte rendu, pv, notulen, acta, verbale, verbali",
        "meeting",
    ),
    (
        "agenda",
        True,
        "agenda, tagesordnung, einladung, ordre du jour, orden del día, ordine del giorno",
        "meeting",
    ),
    (
        "budget",
        True,
        "budget, haushalt, haushaltsplan, haushaltssatzung, presupuesto,"
        " begroting, bilancio di previsione",
        "annual",
    ),
    (
        "annual report",
        True,
        "annual report, jahresbericht, geschäftsbericht, rapport annuel,"
        " rapport d'activité, informe anual, memoria anual, jaarverslag, relazione annuale",
        "annual",
    ),
    ("report", True, "report, bericht, rapport, informe, verslag, relazione", ""),
    (
        "financial statement",
        True,
        "financial statement, annual accounts, jahresabschluss,"
        " comptes annuels, états financiers, cuentas anuales, jaarrekening, rendiconto",
        "annual",
    ),
    (
        "resolution",
        True,
        "resolution, decision, beschluss, délibération, décision,"
        " resolución, acuerdo, besluit, delibera, deliberazione",
        "",
    ),
    (
        "regulation",
        True,
        "regulation, bylaw, ordinance, statute, satzung, verordnung,"
        " règlement, reglamento, ordenanza, verordening, regolamento",
        "",
    ),
    (
        "order",
        True,
        "order, decree, anordnung, verfügung, allgemeinverfügung, erlass, arrêté,"
        " ordonnance, decreto, beschikking, ordinanza",
        "",
    ),
    (
        "notice",
        True,
        "notice, public notice, official notice, bekanntmachung, amtliche bekanntmachung,"
        " öffentliche bekanntmachung, avis, avis public, aviso, edicto, bekendmaking,"
        " kennisgeving, avviso, avviso pubblico",
        "",
    ),
    (
        "application",
        True,
        "application, antrag, bauantrag, solicitud, aanvraag, domanda, istanza",
        "",
    ),
    ("plan", True, "plan, planung, plano", ""),
    ("contract", True, "contract, vertrag, contrat, contrato, overeenkomst, contratto", ""),
    ("newsletter", True, "newsletter, bulletin, rundbrief, boletín, nieuwsbrief, notiziario", ""),
    (
        "press release",
        True,
        "press release, pressemitteilung, communiqué de presse,"
        " nota de prensa, persbericht, comunicato stampa",
        "",
    ),
    (
        "policy",
        True,
        "policy, richtlinie, leitlinie, politique, política, beleid, guideline, leitfaden",
        "",
    ),
    (
        "form",
        True,
        "form, formular, formulaire, formulario, formulier, modulo,"
        " questionnaire, fragebogen, cuestionario, vragenlijst, questionario",
        "",
    ),
    # A kind of document, but the word also means "overview" ("Présentation du budget"),
    # so a presentation never counts against a document as being another kind.
    (
        "presentation",
        False,
        "presentation, präsentation, slides, slide deck, folie, folien, diaporama,"
        " diapositives, presentatie, presentación, presentazione, pptx, ppt, odp, powerpoint",
        "",
    ),
    ("annual", False, "annual, yearly, jahres, jährlich, annuel, anual, jaarlijks, annuale", ""),
    (
        "financial",
        False,
        "financial, finance, finanz, finanzen, financier, financière,"
        " financiero, financieel, finanziario",
        "",
    ),
    (
        "meeting",
        False,
        "meeting, session, sitzung, versammlung, séance, réunion, sesión,"
        " vergadering, riunione, seduta",
        "",
    ),
    (
        "council",
        False,
        "council, gemeinderat, stadtrat, kreistag, conseil, conseil municipal,"
        " ayuntamiento, pleno, gemeenteraad, raad, consiglio, consiglio comunale",
        "",
    ),
    (
        "board",
        False,
        "board, board of directors, vorstand, aufsichtsrat, verwaltungsrat,"
        " conseil d'administration, junta directiva, bestuur, consiglio di amministrazione",
        "",
    ),
    (
        "committee",
        False,
        "committee, ausschuss, kommission, commission, comité, comisión,"
        " commissie, comitato, commissione",
        "",
    ),
)


@dataclass(frozen=True, slots=True)
class Concept:
    name: str
    kind: bool
    words: frozenset[str]
    pairs: frozenset[str]
    implies: frozenset[int]  # indexes of the qualifier concepts a document of this kind says


def normal(phrase: str) -> str:
    return " ".join(content_words(phrase))


def _load_concepts() -> tuple[Concept, ...]:
    index = {name: i for i, (name, *_) in enumerate(_CONCEPTS)}
    out = []
    for name, kind, spellings, implies in _CONCEPTS:
        forms = {normal(s) for s in spellings.split(",")} - {""}
        out.append(
            Concept(
                name,
                kind,
                frozenset(f for f in forms if " " not in f),
                frozenset(f for f in forms if " " in f),
                frozenset(index[n] for n in implies.split()),
            )
        )
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
        known = sorted(
            {s for s in spellings if len(s) >= _AFFIX_MIN and " " not in s},
            key=lambda s: (-len(s), s),
        )
        # Alternatives are tried in order, so longest first finds the longest part.
        self._heads = re.compile("|".join(map(re.escape, known))) if known else None
        self._tails = re.compile("|".join(re.escape(s[::-1]) for s in known)) if known else None
        self.min_length = min(map(len, known)) + _AFFIX_REST if known else 1 << 30

    def parts(self, word: str) -> list[str]:
        """The longest known tail, then the longest known head, of ``word``."""
        tail, head = self.split(word)
        return [part for part in (tail, head) if part]

    def split(self, word: str) -> tuple[str, str]:
        """(longest known tail, longest known head) of ``word``, "" where there is none."""
        if len(word) < self.min_length or self._heads is None or self._tails is None:
            return "", ""
        limit = len(word) - _AFFIX_REST
        tail = self._tails.match(word[::-1], 0, limit)
        head = self._heads.match(word, 0, limit)
        return (tail.group()[::-1] if tail else ""), (head.group() if head else "")


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


_KIND_FIRSTS: Final = frozenset(form.split(" ")[0] for form in _KIND_WORDS if " " in form)
_KIND_CACHE: dict[str, tuple[int, ...]] = {}


def _kinds_of(stem: str) -> tuple[int, ...]:
    found = _KIND_CACHE.get(stem)
    if found is None:
        # Only the tail of a compound names what it is: a "Haushaltsauflösung" is a
        # dissolution (of a household), a "Sitzungsprotokoll" is minutes.
        forms = (stem, _KIND_PARTS.split(stem)[0])
        found = _KIND_CACHE[stem] = tuple(_KIND_WORDS[f] for f in forms if f in _KIND_WORDS)
        if len(_KIND_CACHE) > 50_000:
            _KIND_CACHE.clear()
    return found


def kinds_in(stems: list[str]) -> set[int]:
    """The document kinds (CONCEPTS indexes) a run of stems names, compounds included."""
    found: set[int] = set()
    prev = ""
    for stem in stems:
        found.update(_kinds_of(stem))
        if prev in _KIND_FIRSTS and (kind := _KIND_WORDS.get(f"{prev} {stem}")) is not None:
            found.add(kind)
        prev = stem
    return found


def first_kinds_in(stems: list[str]) -> set[int]:
    """The kinds named first in a run of stems: a document's text starts with its title
    ("Agenda ... 3. Minutes of the previous meeting" is an agenda)."""
    prev = ""
    for stem in stems:
        found = set(_kinds_of(stem))
        if prev in _KIND_FIRSTS and (kind := _KIND_WORDS.get(f"{prev} {stem}")) is not None:
            found.add(kind)
        if found:
            return found
        prev = stem
    return set()
