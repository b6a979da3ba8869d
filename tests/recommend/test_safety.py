from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from clinsight.data.longitudinal import Code
from clinsight.data.omop import FREE_TEXT_ALLERGY
from clinsight.errors import DataError
from clinsight.evaluation.recommendation import ddi_rate
from clinsight.recommend.matrix import build_treatment_data, context_at
from clinsight.recommend.models import make_recommender
from clinsight.recommend.safety import (
    check_treatments,
    load_interaction_csv,
    proposed_set,
    shipped_interactions,
)
from clinsight.recommend.suggest import COLD_START_NOTE, suggest
from tests.support.recommend import (
    AFIB,
    ARTHRITIS,
    ASPIRIN,
    IBUPROFEN,
    START,
    WARFARIN,
    records,
    treated,
)

NAMES = {"RxNorm|5640": "Ibuprofen", "RxNorm|7258": "Naproxen", "RxNorm|11289": "Warfarin"}


def test_shipped_table_is_cited_and_says_it_is_a_demonstration() -> None:
    table = shipped_interactions()
    assert "DEMONSTRATION" in table.notice
    assert len(table) >= 20
    pair = table.between("5640", "11289")
    assert pair is not None
    assert pair.severity == "major"
    assert "COUMADIN" in pair.citation


def test_each_removal_has_its_reason() -> None:
    classes = {"RxNorm|5640": Code("ATC", "M01AE", "Propionic acid derivatives"),
               "RxNorm|7258": Code("ATC", "M01AE", "Propionic acid derivatives")}  # fmt: skip
    result = check_treatments(
        ["RxNorm|5640", "RxNorm|7258", "RxNorm|723", "RxNorm|1191", "RxNorm|3640"],
        active=["RxNorm|11289", "RxNorm|5640"],
        allergies=[Code("RxNorm", "723", "Amoxicillin"),
                   Code(FREE_TEXT_ALLERGY, "SNOMED|1", "Allergy to doxycycline and mold")],
        table=shipped_interactions(),
        names={**NAMES, "RxNorm|723": "Amoxicillin", "RxNorm|1191": "Aspirin",
               "RxNorm|3640": "Doxycycline"},
        classes=classes,
    )  # fmt: skip
    reasons = {r.treatment: r.reason for r in result.removed}
    assert reasons == {"RxNorm|5640": "duplicate_ingredient", "RxNorm|7258": "duplicate_class",
                       "RxNorm|723": "allergy", "RxNorm|1191": "interaction",
                       "RxNorm|3640": "allergy"}  # fmt: skip
    aspirin = next(r for r in result.removed if r.reason == "interaction")
    assert aspirin.detail.startswith("interacts with active Warfarin")
    assert aspirin.citation
    assert result.kept == ()
    assert result.unchecked_allergies == ("Allergy to doxycycline and mold",)


def test_hospital_csv(tmp_path: Path) -> None:
    path = tmp_path / "ddi.csv"
    path.write_text("drug_a,drug_b,severity,text\n723,3640,Minor,made-up pair for a test\n")
    table = load_interaction_csv(path)
    assert table.between("3640", "723") is not None
    assert table.source == "ddi.csv"
    path.write_text("drug_a,drug_b,severity\n723,3640,minor\n")
    with pytest.raises(DataError, match="lacks the column\\(s\\) text"):
        load_interaction_csv(path)
    path.write_text("drug_a,drug_b,severity,text\n723,3640,severe,x\n")
    with pytest.raises(DataError, match=r"ddi\.csv line 2: severity 'severe' is not one of"):
        load_interaction_csv(path)


def test_suggestions_explain_and_filter() -> None:
    data = build_treatment_data(records(), min_patients=2)
    model = make_recommender("user_knn").fit(data)
    patient = treated("p", [(AFIB, WARFARIN, 30), (ARTHRITIS, ASPIRIN, 30)])
    found = suggest(model, data, context_at(patient, START + timedelta(days=35)),
                    shipped_interactions())  # fmt: skip
    assert found.suggestions == ()
    assert {(r.display, r.reason) for r in found.removed} == {
        ("Ibuprofen", "interaction"), ("Naproxen", "interaction"),
        ("Warfarin", "duplicate_ingredient"),
    }  # fmt: skip


def test_cold_start_is_most_popular_and_said_so() -> None:
    data = build_treatment_data(records(), min_patients=2)
    model = make_recommender("als", factors=4.0).fit(data)
    newcomer = treated("n", [(ARTHRITIS, IBUPROFEN, 10)])
    found = suggest(model, data, context_at(newcomer, START + timedelta(days=10)),
                    shipped_interactions())  # fmt: skip
    assert found.cold_start
    assert found.model == "most_popular"
    assert COLD_START_NOTE in found.notes
    top = found.suggestions[0]
    assert (top.display, top.support) == ("Ibuprofen", 8)
    assert top.explanation == "8 of 11 patients with Osteoarthritis received Ibuprofen"


def test_unknown_drug_code_is_refused() -> None:
    data = build_treatment_data(records(), min_patients=2)
    context = context_at(records()[0], START)
    with pytest.raises(DataError, match=re.escape("The drug code RxNorm|99999999 is unknown")):
        suggest(make_recommender("most_popular"), data, context, shipped_interactions(),
                extra_active=["RxNorm|99999999"])  # fmt: skip
    with pytest.raises(DataError, match="is not a drug code"):
        suggest(make_recommender("most_popular"), data, context, shipped_interactions(),
                extra_active=["aspirin"])  # fmt: skip


def test_hospital_csv_cites_its_lines_and_is_laid_over_the_shipped_table(tmp_path: Path) -> None:
    path = tmp_path / "ddi.csv"
    path.write_text("drug_a,drug_b,severity,text,citation\n"
                    "5640,11289,moderate,local wording,Formulary 2024\n"
                    "723,3640,minor,made-up pair for a test,\n")  # fmt: skip
    hospital = load_interaction_csv(path)
    shipped = shipped_interactions()
    merged = shipped.merged(hospital)
    assert len(merged) == len(shipped) + 1
    assert merged.source == f"{shipped.source} + ddi.csv"
    ibuprofen = merged.between("11289", "5640")
    assert ibuprofen is not None
    assert ibuprofen.severity == "moderate"
    assert ibuprofen.citation == "ddi.csv line 2: Formulary 2024"
    assert merged.between("3640", "723").citation == "ddi.csv line 3"  # type: ignore[union-attr]
    aspirin = merged.between("11289", "1191")
    assert aspirin is not None
    assert "ddi.csv" not in aspirin.citation
    for body, message in (
        ("drug_a,drug_b,severity,text\n723,723,minor,x\n", "line 2: drug 723 is paired with"),
        ("drug_a,drug_b,severity,text\n723,3640,minor, \n", "line 2: the text column is empty"),
        ("drug_a,drug_b,severity,text\n", "holds a header but no pair"),
        ("drug_a,drug_b,severity,text\nwarfarin,3640,minor,x\n",
         "must be RxNorm ingredient codes .* got 'warfarin' and '3640'"),
    ):  # fmt: skip
        path.write_text(body)
        with pytest.raises(DataError, match=message):
            load_interaction_csv(path)
    with pytest.raises(DataError, match=r"Cannot read the interaction file 'absent\.csv'"):
        load_interaction_csv(tmp_path / "absent.csv")


def test_proposed_set_never_pairs_interacting_treatments_and_says_what_it_skipped() -> None:
    table = shipped_interactions()
    ranked = ["RxNorm|11289", "RxNorm|5640", "RxNorm|723", "RxNorm|1191", "RxNorm|3640"]
    found = proposed_set(ranked, 3, table, names={**NAMES, "RxNorm|1191": "Aspirin"})
    assert found.treatments == ("RxNorm|11289", "RxNorm|723", "RxNorm|3640")
    assert [(r.treatment, r.reason) for r in found.skipped] == [
        ("RxNorm|5640", "interaction_in_set"),
        ("RxNorm|1191", "interaction_in_set"),
    ]
    assert found.skipped[1].detail.startswith("interacts with Warfarin, proposed before it")
    assert found.skipped[0].citation
    assert found.skipped[0].severity == "major"
    assert ddi_rate(found.treatments, table) == 0.0
    assert ddi_rate(ranked[:3], table) == pytest.approx(1 / 3)
    assert proposed_set(ranked, 1, table).skipped == ()  # the set is full before a clash
    assert ddi_rate(["RxNorm|11289", "RxNorm|5640", "NDC|1", "NDC|2"], table) == 1 / 6
