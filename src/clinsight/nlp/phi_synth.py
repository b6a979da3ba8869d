"""Synthetic sentences with names and places marked, for training the de-identification NER.

Values come from Faker in many locales (person names, cities, street addresses,
postcodes, regions; facility names built from them); the sentence frames below are
clinical and everyday phrasing written for this module alone (not taken from any
benchmark's templates). A third of the sentences carry no identifier: clinical text
full of capitalised words that are not names (eponyms, drugs, scales, headings), so
the model learns to leave them. Seeded: the same seed gives the same sentences.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from functools import cache
from typing import Any

__all__ = ["LOCALES", "PHI_LABELS", "Marked", "synthetic_sentences"]

Marked = tuple[str, list[tuple[int, int, str]]]
"""A text and its identifier spans ``(start, end, label)``."""

PHI_LABELS = ("NAME", "LOCATION")
LOCALES = (
    "en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL", "en_IN",
    "ja_JP", "sv_SE", "da_DK", "fi_FI", "pt_BR", "cs_CZ", "no_NO", "en_AU", "ro_RO",
    "hu_HU", "tr_TR", "en_IE", "sl_SI", "et_EE", "pt_PT",
)  # fmt: skip
_FALLBACKS = ("en_US", "en_GB", "de_DE")
"""Where a value comes from when a locale writes it in a non-Latin script."""
_LATIN = re.compile(r"^[\x20-\x7eÀ-ɏ’\n]+$")

# {P} a person, {D} a clinician (a person), {C} a city, {A} a street address,
# {L} a full postal address, {Z} a postcode, {R} a region/state, {F} a facility.
_FRAMES = (
    "{P} was admitted overnight with chest pain.",
    "Discussed the results with {P} and her daughter {P}.",
    "{P} is a 64-year-old retired teacher from {C}.",
    "Patient {P} reports three days of productive cough.",
    "Name: {P}",
    "Contact person: {P}, telephone on file.",
    "Referred by {D} of {F}.",
    "Seen together with {D} on the ward round.",
    "Plan discussed with {D}, who agrees with discharge.",
    "Electronically signed: {D}",
    "cc: {D}, {F}",
    "Transferred from {F} for further management.",
    "She was previously treated at {F} in {C}.",
    "He underwent surgery at {F} last spring.",
    "Follow up in the outpatient clinic at {F}.",
    "The patient lives alone in {C}.",
    "Moved to {C}, {R} two years ago.",
    "Home address: {L}",
    "Address: {A}, {C} {Z}",
    "Lives at {A} with his wife {P}.",
    "Please send the records to {L}.",
    "Her son {P} drove her in from {C}.",
    "{P} works as a bus driver in {C}.",
    "Born in {C}; emigrated in childhood.",
    "Recently returned from a trip to {C}.",
    "Mail to {P}, {L}",
    "Postcode {Z}, {C}.",
    "{P} ({C}) called about the prescription.",
    "I spoke to {P} on the phone this morning.",
    "According to {P}, the fall happened at home in {C}.",
    "{P}, {P} and {P} attended the family meeting.",
    "Next of kin: {P} (sister), {A}, {C}.",
    "My name is {P} and I am calling from {C}.",
    "Can you ship it to {A}, {C}?",
    "{P} left a message for {D} at {F}.",
    "Ambulance crew brought {P} from {A}.",
    "Appointment at {F}, {A}, {C}.",
    "{C} {Z}",
    "{P} lives in {R}.",
    "We met {P} at the {C} office.",
    "Thanks {P}, see you next week.",
    "{D} reviewed the imaging from {F}.",
    "Consultant: {D}",
    "Referring physician: {D}, {F}, {C}",
    "{P} was born in {C} and grew up in {C}.",
    "Emergency contact {P} can be reached through {F}.",
    "Dear {D}, thank you for seeing {P}.",
    "Attn: {P}\n{L}",
    "{P}\n{L}",
    "Patient is {P}, staying with family in {C}.",
    "{P} visited {C} last month and felt unwell on return.",
    "{P} and {P} live in {C}.",
    "{P} is feeling better today.",
    "{P} called to cancel.",
    "Spoke with {P} about the biopsy result.",
    "{P} from {C} is here for a second opinion.",
    "Our office in {C} will send {P} a letter.",
    "{P}'s address is {L}.",
    "Visited {A} in {C} for a home assessment.",
    "{P} travelled from {R} to {C} for treatment.",
    "Interpreter {P} was present.",
    "The sample was couriered to {F}, {C}.",
)
_NEGATIVES = (
    "Blood pressure 142/88, pulse 96, afebrile.",
    "Parkinson disease, on levodopa since 2019.",
    "Glasgow Coma Scale 15; pupils equal and reactive.",
    "Foley catheter removed on day two.",
    "HISTORY OF PRESENT ILLNESS: Progressive dyspnoea on exertion.",
    "Assessment and Plan: Continue Lasix 40 mg daily.",
    "Hashimoto thyroiditis, stable on levothyroxine.",
    "Crohn disease in remission on Humira.",
    "Apgar scores 8 and 9 at one and five minutes.",
    "Positive Babinski sign on the left.",
    "Murphy sign negative; no rebound tenderness.",
    "Metformin 500 mg twice daily, Lipitor 20 mg at night.",
    "Alzheimer dementia with Lewy body features.",
    "Wells score low; D-dimer negative.",
    "Bell palsy on the right, improving.",
    "Review of Systems: Negative except as noted in HPI.",
    "The Emergency Department was informed.",
    "Physical Examination: General: alert and oriented.",
    "Cushing syndrome was excluded by dexamethasone suppression.",
    "EKG shows normal sinus rhythm, QRS narrow.",
    "Plan: MRI of the lumbar spine, Physical Therapy referral.",
    "Past Medical History: Hypertension, Type 2 Diabetes Mellitus.",
    "No known drug allergies. Social History: Nonsmoker.",
    "Tylenol as needed for pain, Zofran for nausea.",
    "Graves disease treated with radioactive iodine.",
    "Down syndrome, lives in a group home.",
    "Kernig and Brudzinski signs absent.",
    "Gleason score 3+4 on biopsy.",
    "CT Chest with contrast: no pulmonary embolism.",
    "Hodgkin lymphoma, completed ABVD chemotherapy.",
    "Medications reconciled by Pharmacy.",
    "Intensive Care Unit admission was not needed.",
    "Tinel sign positive at the wrist.",
    "Epley manoeuvre performed with relief.",
    "Denies chest pain, palpitations or syncope.",
    "Pap smear normal; Mammogram due next year.",
    "Fasting glucose 7.2 mmol/L, HbA1c 58 mmol/mol.",
    "Heberden nodes on both hands.",
    "Meniere disease with episodic vertigo.",
    "Chief Complaint: Headache.",
    "Discharge Diagnosis: Community acquired pneumonia.",
    "Monday to Friday she walks the dog for an hour.",
    "Christmas holidays were spent with family.",
    "Stage III colon cancer, FOLFOX started.",
    "Holter monitor showed occasional PVCs.",
    "Warfarin held; INR 3.4.",
    "Von Willebrand disease, type 1.",
    "Seen in Cardiology Clinic for follow up.",
    "Addison disease on hydrocortisone replacement.",
    "Whipple procedure in the past.",
)
_FACILITY = (
    "{C} General Hospital", "St. {N} Hospital", "{N} Medical Center", "{C} Community Clinic",
    "{N} Memorial Hospital", "{C} Nursing Home", "Klinikum {C}", "Centre Hospitalier de {C}",
    "Hospital Universitario de {C}", "Ospedale di {C}", "{C} Royal Infirmary",
    "{N} Family Practice", "{C} Rehabilitation Centre", "{N} Hospice", "{C} Medical Group",
    "Szpital Wojewódzki w {C}", "{C} Health Centre", "{N} Children's Hospital",
)  # fmt: skip


@cache
def _faker(locale: str) -> Any:
    from faker import Faker

    return Faker(locale)


def _latin(make: Callable[[], str], fallback: Callable[[], str]) -> str:
    for _ in range(5):
        value = make()
        if _LATIN.match(value):
            return value
    return fallback()


def _person(fake: Any, rng: random.Random) -> str:
    locale = str(fake.locales[0]) if hasattr(fake, "locales") else ""
    if locale == "ja_JP":
        first, last = fake.first_romanized_name(), fake.last_romanized_name()
    else:
        first = _latin(fake.first_name, _faker("en_US").first_name)
        last = _latin(fake.last_name, _faker("en_US").last_name)
    form = rng.random()
    if form < 0.45:
        name = f"{first} {last}"
    elif form < 0.55:
        name = f"{last}, {first}"
    elif form < 0.65:
        name = f"{first[0]}. {last}"
    elif form < 0.75:
        name = first
    elif form < 0.85:
        name = last
    else:
        name = f"{first} {_latin(fake.first_name, lambda: 'Ann')[0]}. {last}"
    return name.upper() if rng.random() < 0.06 else name


def _titled(fake: Any, rng: random.Random) -> tuple[str, str, str]:
    """A clinician: (before, name, after) so that only the name is marked."""
    title = rng.choice(["Dr. ", "Dr ", "Doctor ", "Prof. ", "Nurse ", "", ""])
    credential = rng.choice(["", "", "", ", MD", " MD", ", RN", ", DO", " FRCP"])
    return title, _person(fake, rng), credential


def _place(fake: Any, slot: str, rng: random.Random) -> str:
    city = _latin(fake.city, _faker("en_US").city)
    if slot == "C":
        value = city
    elif slot == "A":
        value = _latin(fake.street_address, _faker("en_GB").street_address)
    elif slot == "L":
        address = _latin(fake.address, _faker("en_US").address)
        value = address.replace("\n", rng.choice([", ", "\n", " "]))
    elif slot == "Z":
        value = _latin(fake.postcode, _faker("de_DE").postcode)
    elif slot == "R":
        region = getattr(fake, "state", None) or getattr(fake, "region", None)
        value = _latin(region, lambda: city) if callable(region) else city
    else:
        family = _latin(fake.last_name, _faker("en_US").last_name)
        value = rng.choice(_FACILITY).format(C=city, N=family)
    return value.upper() if rng.random() < 0.06 and slot in "CR" else value


def _fill(frame: str, fake: Any, rng: random.Random) -> Marked:
    text, spans = "", []
    for piece in re.split(r"(\{[A-Z]\})", frame):
        if not re.fullmatch(r"\{[A-Z]\}", piece):
            text += piece
            continue
        slot = piece[1]
        before, after, label = "", "", "LOCATION"
        if slot == "P":
            value, label = _person(fake, rng), "NAME"
        elif slot == "D":
            (before, value, after), label = _titled(fake, rng), "NAME"
        else:
            value = _place(fake, slot, rng)
        text += before
        spans.append((len(text), len(text) + len(value), label))
        text += value + after
    return text, spans


_SERVICES = (
    "Cardiology", "Oncology", "Neurology", "Orthopaedics", "Dermatology", "Pulmonology",
    "Gastroenterology", "Nephrology", "Urology", "Rheumatology", "Endocrinology",
    "Psychiatry", "Radiology", "Pathology", "Physical Therapy", "Social Work",
    "Infectious Disease", "Emergency", "Pain", "Wound Care", "Diabetes", "Memory",
)  # fmt: skip
_SERVICE_FRAMES = (
    "Seen in the {S} Clinic today.", "{S} Department consulted.", "Referred to {S}.",
    "The {S} team will follow up.", "{S} Service recommended no change.",
    "Follow up in {S} Clinic in six weeks.", "Discussed at the {S} meeting.",
)  # fmt: skip
_DRUGS = (
    "Sinemet", "Lasix", "Coumadin", "Keppra", "Eliquis", "Xarelto", "Norvasc", "Zoloft",
    "Prozac", "Augmentin", "Lantus", "Januvia", "Plavix", "Synthroid", "Ventolin", "Advair",
    "Flomax", "Neurontin", "Lyrica", "Seroquel", "Depakote", "Ativan", "Dilaudid", "Toradol",
)  # fmt: skip


def _negative(rng: random.Random) -> str:
    """A sentence with no identifier: fixed clinical text, a service or a brand-name drug."""
    kind = rng.random()
    if kind < 0.6:
        return rng.choice(_NEGATIVES)
    if kind < 0.8:
        return rng.choice(_SERVICE_FRAMES).format(S=rng.choice(_SERVICES))
    first, second = rng.sample(_DRUGS, 2)
    return rng.choice(
        [f"Started {first} and stopped {second}.", f"{first} 10 mg daily; {second} as needed.",
         f"Allergic to {first}.", f"{first} was switched to {second} for side effects."]
    )  # fmt: skip


def synthetic_sentences(n: int, seed: int = 0, negative_share: float = 0.33) -> list[Marked]:
    """`n` marked texts: identifier sentences from random locales, and identifier-free
    clinical sentences (share `negative_share`), some joined two to a text."""
    rng = random.Random(seed)
    fakers = [_faker(locale) for locale in LOCALES]
    out: list[Marked] = []
    spans: list[tuple[int, int, str]]
    while len(out) < n:
        if rng.random() < negative_share:
            text, spans = _negative(rng), []
        else:
            fake = rng.choice(fakers)
            for one in (*(_faker(f) for f in _FALLBACKS), fake):  # fallbacks seeded too
                one.seed_instance(rng.randrange(2**32))
            text, spans = _fill(rng.choice(_FRAMES), fake, rng)
        if rng.random() < 0.3:  # a second sentence after the first, as in running notes
            other = _negative(rng)
            if rng.random() < 0.5:
                text, spans = f"{other} {text}", [(s + len(other) + 1, e + len(other) + 1, k)
                                                  for s, e, k in spans]  # fmt: skip
            else:
                text = f"{text} {other}"
        out.append((text, spans))
    return out
