"""De-identification: every Safe Harbor type found, consistent surrogates, measured recall."""

from __future__ import annotations

from pathlib import Path

from clinsight.data.notes import load_mtsamples
from clinsight.nlp.deid import (
    PHISpan,
    PHIType,
    deidentify,
    evaluate_deid,
    find_phi,
    insert_identifiers,
)

NOTE = (
    "Patient: John Smith   MRN: 00123456   DOB: 03/14/1931\n"
    "Seen on March 3, 2021 by Dr. Maria Lopez. Mr. Smith is a 92-year-old man. "
    "Follow up 2021-04-05.\nPhone (412) 555-1234, Fax: 412-555-9876, "
    "email john.smith@mail.com, https://portal.example.com/x?id=3 from 10.0.12.7.\n"
    "Lives at 1234 Oak Hill Road, Apt 5, Boise, ID 83702. SSN 123-45-6789. "
    "Signed by Priya Okafor, RN. BP 120/80, pain 9/10, 2.5 mg. Smith tolerated it."
)


def test_find_phi_types_and_exact_text() -> None:
    assert [(s.type.value, s.text) for s in find_phi(NOTE)] == [
        ("NAME", "John Smith"),
        ("ID", "00123456"),
        ("DATE", "03/14/1931"),
        ("DATE", "March 3, 2021"),
        ("NAME", "Maria Lopez"),
        ("NAME", "Smith"),
        ("AGE", "92"),
        ("DATE", "2021-04-05"),
        ("PHONE", "(412) 555-1234"),
        ("FAX", "412-555-9876"),
        ("EMAIL", "john.smith@mail.com"),
        ("URL", "https://portal.example.com/x?id=3"),
        ("IP", "10.0.12.7"),
        ("ADDRESS", "1234 Oak Hill Road, Apt 5, Boise, ID 83702"),
        ("ID", "123-45-6789"),
        ("NAME", "Priya Okafor"),
        ("NAME", "Smith"),
    ]
    first = find_phi(NOTE)[0]
    assert first == PHISpan(9, 19, PHIType.NAME, "John Smith")


def test_surrogates_are_consistent_and_dates_shift_in_their_format() -> None:
    result = deidentify(NOTE, key="patient-1", date_shift_days=-10)
    assert "Smith" not in result.text
    assert "00123456" not in result.text
    surrogate_of = dict(zip((s.text for s in result.phi), result.surrogates, strict=True))
    assert surrogate_of["03/14/1931"] == "03/04/1931"
    assert surrogate_of["March 3, 2021"] == "February 21, 2021"
    assert surrogate_of["2021-04-05"] == "2021-03-26"
    assert surrogate_of["92"] == "90+"
    assert surrogate_of["10.0.12.7"].startswith("192.0.2.")
    smiths = [
        sur for span, sur in zip(result.phi, result.surrogates, strict=True) if span.text == "Smith"
    ]
    assert len(smiths) == 2
    assert smiths[0] == smiths[1]
    assert surrogate_of["John Smith"].endswith(smiths[0])
    assert deidentify(NOTE, key="patient-1").text == deidentify(NOTE, key="patient-1").text
    assert deidentify(NOTE, key="patient-1").text != deidentify(NOTE, key="patient-2").text
    assert "120/80" in result.text
    assert "9/10" in result.text
    assert "2.5 mg" in result.text


def test_inserted_identifiers_recall(data_dir: Path) -> None:
    notes = [s.text for s in load_mtsamples()[:40]]
    corpus = insert_identifiers(notes, per_note=6, seed=1)
    assert sum(len(gold) for _, gold in corpus) >= 240
    for text, gold in corpus[:5]:
        assert all(text[g.start : g.end] == g.text for g in gold)
    scores = evaluate_deid(corpus)
    assert scores["ALL"].recall >= 0.98
    # MTSamples' own identifiers (dates, "Mr. Barker", "Seattle") count as false positives here
    assert scores["ALL"].precision >= 0.8


def test_an_address_keeps_its_house_number_postcode_unit_and_corner() -> None:
    text = (
        "Home address: 4953 Harbour Road, Suite 930\nBergen, PA 82087. "
        "Met at the corner of 12 Harbour Road and 5 Elm Street. Pain 6/10 at L4."
    )
    found = [s.text for s in find_phi(text)]
    assert "4953 Harbour Road, Suite 930" in found
    assert "Bergen, PA 82087" in found
    assert any(f.startswith("the corner of 12 Harbour Road and 5 Elm Street") for f in found)
    assert not any("6/10" in f or "L4" in f for f in found)
