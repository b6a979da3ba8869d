"""ConText assertion: triggers, scopes, terminations, pseudo-triggers, sections; dev-set F1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span

import clinsight.nlp.sentences  # noqa: F401 - registers the factory
from clinsight.data.notes import load_context_annotations, split_context_annotations
from clinsight.errors import DataError
from clinsight.nlp.assertion import (
    ConTextComponent,
    ContextRule,
    Direction,
    ProblemListRule,
    evaluate_assertion,
    load_context_rules,
    load_problem_list_rule,
    locate_condition,
)


@pytest.fixture(scope="module")
def nlp() -> Language:
    pipeline = spacy.blank("en")
    pipeline.add_pipe("clinical_sentences")
    pipeline.add_pipe("clinical_sections")
    pipeline.add_pipe("clinical_context")
    return pipeline


def _problem(doc: Doc, text: str, target: str) -> Span:
    """The span of `target` in `text`, labelled PROBLEM."""
    located = locate_condition(text, target)
    assert located is not None
    span = doc.char_span(*located, label="PROBLEM")
    assert span is not None
    return span


def _assert(nlp: Language, text: str, *targets: str) -> list[dict[str, bool]]:
    doc = nlp.make_doc(text)
    doc.ents = [_problem(doc, text, t) for t in targets]
    for _, component in nlp.pipeline:
        doc = component(doc)
    names = ("is_negated", "is_uncertain", "is_historical", "is_hypothetical", "is_family")
    return [{n[3:]: e._.get(n) for n in names if e._.get(n)} for e in doc.ents]


def test_negation_scope_and_termination(nlp: Language) -> None:
    text = "No fever or chills, but reports cough. Cough is absent today? Pain resolved."
    assert _assert(nlp, text, "fever", "chills", "reports cough") == [
        {"negated": True},
        {"negated": True},
        {},
    ]
    assert _assert(nlp, "Cough is absent.", "cough") == [{"negated": True}]
    assert _assert(nlp, "No  evidence of   PNEUMONIA.", "pneumonia") == [{"negated": True}]


def test_pseudo_triggers_block_negation(nlp: Language) -> None:
    assert _assert(nlp, "No change in the effusion.", "effusion") == [{}]
    assert _assert(nlp, "Gram negative rods, not only sepsis.", "rods") == [{}]


def test_uncertain_historical_hypothetical_family(nlp: Language) -> None:
    assert _assert(nlp, "Possible pneumonia.", "pneumonia") == [{"uncertain": True}]
    assert _assert(nlp, "History of MI, now with chest pain.", "MI", "chest pain") == [
        {"historical": True},
        {},
    ]
    assert _assert(nlp, "Return if fever develops.", "fever") == [{"hypothetical": True}]
    assert _assert(nlp, "Mother had breast cancer.", "breast cancer") == [{"family": True}]
    assert _assert(nlp, "She is a 45-year-old woman with asthma.", "asthma") == [{}]


def test_section_context(nlp: Language) -> None:
    text = "FAMILY HISTORY: Diabetes.\nPAST MEDICAL HISTORY: Gout.\nASSESSMENT: Gout flare."
    assert _assert(nlp, text, "diabetes", "gout.", "gout flare") == [
        {"family": True},
        {"historical": True},
        {},
    ]
    no_sections = spacy.blank("en")
    no_sections.add_pipe("clinical_sentences")
    no_sections.add_pipe("clinical_sections")
    no_sections.add_pipe("clinical_context", config={"use_sections": False})
    assert _assert(no_sections, "PMH: Gout.", "gout") == [{}]
    assert _assert(nlp, "PMH: Gout.", "gout") == [{"historical": True}]


def test_bare_chronic_problem_list_line_is_historical(nlp: Language) -> None:
    assert _assert(nlp, "HYPERTENSION.", "hypertension") == [{"historical": True}]
    assert _assert(nlp, "2. Type 2 diabetes mellitus", "type 2 diabetes mellitus") == [
        {"historical": True}
    ]
    # an acute event, a graded finding, a non-chronic condition, a longer sentence
    assert _assert(nlp, "COPD EXACERBATION.", "copd exacerbation") == [{}]
    assert _assert(nlp, "07) MILD PULMONARY HYPERTENSION.", "mild pulmonary hypertension") == [{}]
    assert _assert(nlp, "SYNCOPE.", "syncope") == [{}]
    assert _assert(nlp, "He has hypertension.", "hypertension") == [{}]
    # under a heading the section decides: past history → historical, assessment → current
    text = "PAST MEDICAL HISTORY:\n1. Syncope.\nASSESSMENT:\n1. Hypertension."
    assert _assert(nlp, text, "syncope", "hypertension") == [{"historical": True}, {}]


def test_new_historical_triggers_and_who_ends_a_history_scope(nlp: Language) -> None:
    assert _assert(nlp, "The nodule in the right lobe is again seen.", "nodule") == [
        {"historical": True}
    ]
    assert _assert(nlp, "Longstanding asthma.", "asthma") == [{"historical": True}]
    text = "A woman with a history of gout who was found to have hematuria."
    assert _assert(nlp, text, "gout", "hematuria") == [{"historical": True}, {}]


def test_a_literal_with_two_directions_modifies_both_ways(nlp: Language) -> None:
    assert _assert(nlp, "He had asthma in the past.", "asthma") == [{"historical": True}]
    assert _assert(nlp, "In the past he had gout.", "gout") == [{"historical": True}]
    assert _assert(nlp, "Gout, treated previously.", "gout") == [{"historical": True}]
    rules = [
        ContextRule("ago", "NEGATED_EXISTENCE", Direction.FORWARD),
        ContextRule("ago", "HISTORICAL", Direction.BACKWARD),
        ContextRule("ago today", "PSEUDO", Direction.PSEUDO),
    ]
    bare = spacy.blank("en")
    bare.add_pipe("clinical_sentences")
    context = ConTextComponent(bare, rules, use_sections=False)
    doc = bare("rash ago cough")
    assert [(s, e, r.direction) for s, e, r in context.find_triggers(doc)] == [
        (1, 2, Direction.FORWARD),
        (1, 2, Direction.BACKWARD),
    ]
    assert context.find_triggers(bare("rash ago today")) == []


def test_history_phrases_time_cues_and_current_episode_phrases(nlp: Language) -> None:
    text = "Her medical history is notable for gout and asthma."
    assert _assert(nlp, text, "gout", "asthma") == [{"historical": True}] * 2
    assert _assert(nlp, "Hx DVT, now with leg swelling.", "DVT", "leg swelling") == [
        {"historical": True},
        {},
    ]
    assert _assert(nlp, "Smoking: quit.", "smoking") == [{"historical": True}]
    assert _assert(nlp, "Ulcer treated two yrs ago.", "ulcer") == [{"historical": True}]
    assert _assert(nlp, "A healed fracture of the rib.", "fracture") == [{"historical": True}]
    assert _assert(nlp, "Prior to admission she had a cough.", "cough") == [{}]
    assert _assert(nlp, "The previous night he vomited blood.", "vomited blood") == [{}]


def test_psychiatric_and_menstrual_history_sections_are_historical(nlp: Language) -> None:
    text = "PSYCHIATRIC HISTORY: Depression.\nMenstrual history:  Menopause at 50.\nPLAN: Rest."
    assert _assert(nlp, text, "depression", "menopause", "rest") == [
        {"historical": True},
        {"historical": True},
        {},
    ]


def test_problem_list_rule_file(tmp_path: Path) -> None:
    rule = load_problem_list_rule()
    assert rule is not None
    assert rule.category == "HISTORICAL"
    assert {"hypertension", "copd", "atrial fibrillation"} <= set(rule.chronic_conditions)
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"rules": []}))
    assert load_problem_list_rule(path) is None
    path.write_text(json.dumps({"rules": [], "problem_list": {"category": "HISTORICAL"}}))
    with pytest.raises(DataError, match="non-empty chronic_conditions list"):
        load_problem_list_rule(path)
    bare = spacy.blank("en")
    bare.add_pipe("clinical_sentences")
    custom = ConTextComponent(bare, [], use_sections=False)
    assert custom.problem_list is None
    gout = ConTextComponent(bare, [], False, ProblemListRule("HISTORICAL", ("gout",)))
    doc = bare("Gout.")
    doc.ents = [doc.char_span(0, 4, "PROBLEM")]  # type: ignore[list-item]
    assert gout(doc).ents[0]._.is_historical is True


def test_max_scope_and_custom_rules() -> None:
    nlp = spacy.blank("en")
    nlp.add_pipe("clinical_sentences")
    rules = [ContextRule("no", "NEGATED_EXISTENCE", Direction.FORWARD, max_scope=2)]
    context = ConTextComponent(nlp, rules, use_sections=False)
    doc = nlp("no cough or fever")
    doc.ents = [doc.char_span(3, 8, "PROBLEM"), doc.char_span(12, 17, "PROBLEM")]  # type: ignore[list-item]
    doc = context(doc)
    assert [e._.is_negated for e in doc.ents] == [True, False]
    assert [m.rule.literal for m in doc.ents[0]._.context_modifiers] == ["no"]
    assert context.find_triggers(doc) == [(0, 1, rules[0])]


def test_rule_file_errors(tmp_path: Path) -> None:
    assert len(load_context_rules()) > 500
    path = tmp_path / "r.json"
    path.write_text(
        json.dumps({"rules": [{"literal": "x", "category": "ODD", "direction": "FORWARD"}]})
    )
    with pytest.raises(DataError, match="has category 'ODD'"):
        load_context_rules(path)
    path.write_text(json.dumps({"rules": [{"literal": "x", "category": "ODD", "direction": "UP"}]}))
    with pytest.raises(DataError, match="is invalid"):
        load_context_rules(path)
    path.write_text("{")
    with pytest.raises(DataError, match=r"r\.json:1: invalid JSON"):
        load_context_rules(path)


def test_locate_condition_prefers_the_capitalised_non_heading_mention() -> None:
    assert locate_condition("ALLERGIES:  He has no known ALLERGIES.", "allergies") == (28, 37)
    assert locate_condition("chest  pain and CHEST PAIN", "chest pain") == (16, 26)
    assert locate_condition("nothing here", "fever") is None


def test_dev_set_figures_on_the_tuning_part(data_dir: Path, nlp: Language) -> None:
    tuning, _ = split_context_annotations(load_context_annotations())
    tuned = evaluate_assertion(nlp, tuning)
    assert (tuned.sentences, tuned.unlocated) == (890, 5)
    assert (tuned.negated.tp, tuned.negated.fp, tuned.negated.fn) == (171, 6, 3)
    assert (tuned.historical.tp, tuned.historical.fp, tuned.historical.fn) == (96, 7, 20)
    assert (tuned.hypothetical.tp, tuned.hypothetical.fp, tuned.hypothetical.fn) == (24, 0, 2)


def test_dated_and_aged_past_events_are_historical(nlp: Language) -> None:
    assert _assert(nlp, "Appendicitis in 2011, treated surgically.", "appendicitis") == [
        {"historical": True}
    ]
    assert _assert(nlp, "In March 2009 she had a stroke.", "stroke") == [{"historical": True}]
    assert _assert(nlp, "As a child he had rheumatic fever.", "rheumatic fever") == [
        {"historical": True}
    ]
    assert _assert(nlp, "Seizures since 1998.", "seizures") == [{"historical": True}]
    assert _assert(nlp, "Diagnosed with lymphoma at age 19.", "lymphoma") == [{"historical": True}]
    assert _assert(nlp, "She had anorexia in her 20s.", "anorexia") == [{"historical": True}]
    assert _assert(nlp, "Rickets in the 1950s.", "rickets") == [{"historical": True}]
    assert _assert(nlp, "Diabetes, diagnosed 1999.", "diabetes") == [{"historical": True}]
    assert _assert(nlp, "Saturations in the 80s with hypoxia.", "hypoxia") == [{}]
    assert _assert(nlp, "Low back pain for many years.", "low back pain") == [{"historical": True}]
    assert _assert(nlp, "Pneumonia last year.", "pneumonia") == [{"historical": True}]
    # a full date of this stay, a year inside a longer number, a recent span of days
    assert _assert(nlp, "Seen on Mar 3 2008 for chest pain.", "chest pain") == [{}]
    assert _assert(nlp, "Dyspnea in the past 2 days.", "dyspnea") == [{}]
    assert _assert(nlp, "Nausea over the past 3 days.", "nausea") == [{}]


def test_current_encounter_cues_end_a_history_scope(nlp: Language) -> None:
    text = "History of asthma, for 3 days with wheezing."
    assert _assert(nlp, text, "asthma", "wheezing") == [{"historical": True}, {}]
    text = "Prior stroke, brought in with aphasia."
    assert _assert(nlp, text, "stroke", "aphasia") == [{"historical": True}, {}]
    text = "Remote history of gastritis, c/o epigastric pain."
    assert _assert(nlp, text, "gastritis", "epigastric pain") == [{"historical": True}, {}]
    text = "Status post recent abscess drainage."  # a recent past event is still past
    assert _assert(nlp, text, "abscess") == [{"historical": True}]


def test_hypothetical_conditionals_precautions_and_risks(nlp: Language) -> None:
    text = "Should the patient develop chest pain, call 911."
    assert _assert(nlp, text, "chest pain") == [{"hypothetical": True}]
    assert _assert(nlp, "Seizure precautions.", "seizure") == [{"hypothetical": True}]
    assert _assert(nlp, "Heparin for DVT prophylaxis.", "DVT") == [{"hypothetical": True}]
    assert _assert(nlp, "Tylenol as needed for headache.", "headache") == [{"hypothetical": True}]
    assert (
        _assert(nlp, "Risks include bleeding and infection.", "bleeding", "infection")
        == [{"hypothetical": True}] * 2
    )
    # a recurrence is current; rule-out is uncertain, not hypothetical; a cause ends the scope
    assert _assert(nlp, "Return of abdominal pain today.", "abdominal pain") == [{}]
    text = "She will return to clinic in 3 months to recheck her anemia."  # a follow-up visit
    assert _assert(nlp, text, "anemia") == [{}]
    assert _assert(nlp, "Return to clinic if fever.", "fever") == [{"hypothetical": True}]
    assert _assert(nlp, "Rule out pneumonia.", "pneumonia") == [{"uncertain": True}]
    text = "Return if fever recurs, since her sepsis was severe."
    assert _assert(nlp, text, "fever", "sepsis") == [{"hypothetical": True}, {}]


def test_return_precaution_and_hospitalization_sections(nlp: Language) -> None:
    text = (
        "PLAN: Antibiotics for pneumonia.\nRETURN PRECAUTIONS: Worsening dyspnea.\n"
        "PRIOR HOSPITALIZATIONS: Pancreatitis.\nSURGERIES: Cholecystectomy for gallstones."
    )
    assert _assert(nlp, text, "pneumonia", "dyspnea", "pancreatitis", "gallstones") == [
        {},
        {"hypothetical": True},
        {"historical": True},
        {"historical": True},
    ]


def test_token_classes_and_longest_match() -> None:
    bare = spacy.blank("en")
    bare.add_pipe("clinical_sentences")
    rules = [
        ContextRule("in <year>", "HISTORICAL", Direction.BIDIRECTIONAL),
        ContextRule("as needed", "PSEUDO", Direction.PSEUDO),
        ContextRule("as needed for", "HYPOTHETICAL", Direction.FORWARD),
    ]
    context = ConTextComponent(bare, rules, use_sections=False)
    found = context.find_triggers(bare("gout in 2015 , rash in 20150 , pain as needed for"))
    assert [(s, e, r.literal) for s, e, r in found] == [
        (1, 3, "in <year>"),
        (9, 12, "as needed for"),
    ]
    with pytest.raises(DataError, match="Unknown token class <date>"):
        ConTextComponent(bare, [ContextRule("on <date>", "HISTORICAL", Direction.FORWARD)])
