"""The whole note pipeline: entities with assertion, sections, codes and a problem list."""

from __future__ import annotations

from clinsight.nlp.pipeline import annotate_note, annotate_notes, build_pipeline

NOTE = """HISTORY OF PRESENT ILLNESS:
67 y.o. male with a history of HTN presents with chest pain. He denies fever. Possible pneumonia.
FAMILY HISTORY: Mother had breast cancer.
PAST MEDICAL HISTORY:
1. Gout.
PLAN: Return to the ED if shortness of breath. Continue metformin 500 mg b.i.d."""


def test_annotate_note_entities_and_problem_list() -> None:
    note = annotate_note(NOTE)
    assert [(e.text, e.label, e.section, e.assertion) for e in note.entities] == [
        ("HTN", "PROBLEM", "history_of_present_illness", "historical"),
        ("chest pain", "PROBLEM", "history_of_present_illness", "present"),
        ("fever", "PROBLEM", "history_of_present_illness", "negated"),
        ("pneumonia", "PROBLEM", "history_of_present_illness", "possible"),
        ("breast cancer", "PROBLEM", "family_history", "family"),
        ("Gout", "PROBLEM", "past_medical_history", "historical"),
        ("shortness of breath", "PROBLEM", "plan", "hypothetical"),
        ("metformin", "MEDICATION", "plan", "present"),
    ]
    htn = note.entities[0]
    assert (htn.start, htn.end, NOTE[htn.start : htn.end]) == (59, 62, "HTN")
    assert htn.icd10 is not None
    assert htn.icd10.code == "I10"
    assert note.entities[-1].icd10 is None
    assert [(p.text, p.icd10.code if p.icd10 else None) for p in note.problem_list()] == [
        ("HTN", "I10"),
        ("chest pain", "R07.9"),
        ("pneumonia", "J18.9"),
        ("Gout", "M10.9"),
    ]
    assert len(note.sentences) == 9
    assert note.sentences[:3] == ((0, 27), (28, 88), (89, 105))
    assert [s.category for s in note.sections] == [
        "history_of_present_illness",
        "family_history",
        "past_medical_history",
        "plan",
    ]


def test_annotate_notes_streams_with_progress() -> None:
    done: list[int] = []
    nlp = build_pipeline(use_sections=False)
    notes = list(annotate_notes(["No fever.", "Cough."], nlp, progress=done.append))
    assert [[e.assertion for e in n.entities] for n in notes] == [["negated"], ["present"]]
    assert done == [1, 2]
