"""The treatment suggestions page of a patient's record: the OMOP person named by the
clinician, suggestions with reasons, removals with why, a person that contradicts the
chart, accept / reject through the form (stored, audited), and the hospital's own
interaction file laid over the shipped table."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from clinsight.config import Settings, get_settings
from clinsight.registry.recommendation import REGISTRY
from clinsight.registry.stages import Stage
from clinsight.store.db import create_db_engine, session_factory
from clinsight.store.tables import AuditRow
from tests.support.omop import tiny_omop
from tests.support.recommend import register_tiny
from tests.support.service import Service
from tests.support.web import form_csrf, web_login, web_patient

HOSPITAL_CSV = "drug_a,drug_b,severity,text\n11289,3640,major,raises the INR (hospital rule)\n"


@pytest.fixture
def settings(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The web settings plus a tiny recommender in production and a tiny OMOP database."""
    register_tiny(settings.resolved_registry_dir)
    REGISTRY.promote(settings.resolved_registry_dir, "tiny", 1, Stage.PRODUCTION)
    monkeypatch.setenv("CLINSIGHT_OMOP_URL", tiny_omop(tmp_path))
    monkeypatch.setenv("CLINSIGHT_RECOMMENDATION_MODEL", "tiny")
    get_settings.cache_clear()
    return get_settings()


def _audit(settings: Settings, action: str) -> list[dict[str, object]]:
    engine = create_db_engine(settings=settings)
    with session_factory(engine)() as session:
        rows = session.scalars(select(AuditRow).where(AuditRow.action == action)
                               .order_by(AuditRow.seq)).all()  # fmt: skip
        found = [dict(r.details) for r in rows]
    engine.dispose()
    return found


def test_the_page_says_no_person_is_linked_until_one_is_named(service: Service) -> None:
    web_login(service, "alice")
    path, _ = web_patient(service)
    assert 'id="treatments-link"' in service.client.get(path).text
    page = service.client.get(f"{path}/treatments")
    assert page.status_code == 200
    assert "No OMOP person named yet: no suggestion can be made for this patient." in page.text
    assert "cannot tell which person of the OMOP database this patient is" in page.text
    bad = service.client.get(f"{path}/treatments?person=abc")
    assert bad.status_code == 422
    assert "&#39;abc&#39; is not an OMOP person_id" in bad.text
    missing = service.client.get(f"{path}/treatments?person=77")
    assert (missing.status_code, "No person 77 in the OMOP database." in missing.text) == (
        422, True)  # fmt: skip


def test_suggestions_with_reasons_and_a_person_who_contradicts_the_chart(
    service: Service,
) -> None:
    web_login(service, "alice")
    path, _ = web_patient(service)  # female, born 1980, like OMOP person 2
    page = service.client.get(f"{path}/treatments?person=2").text
    assert "3 of 11 patients with Sinusitis received Doxycycline" in page
    assert page.index("Doxycycline") < page.index("Amoxicillin")
    assert "Allergy to mold" in page
    assert 'id="person-mismatch"' not in page
    assert 'id="none-removed"' in page
    other = service.client.get(f"{path}/treatments?person=1").text  # male, born 1970
    assert ("Check the person: the OMOP person is male, the chart says female; the OMOP "
            "person was born in 1970, the chart says 1980.") in other  # fmt: skip
    assert "No treatment history" in other
    suggest = _audit(service.settings, "recommendation.suggest")
    assert [(d["model"], d["patient_id"]) for d in suggest] == [("tiny", path.split("/")[-1])] * 2


def test_accept_and_reject_through_the_form_are_stored_and_audited(service: Service) -> None:
    web_login(service, "alice")
    path, _ = web_patient(service)
    page = service.client.get(f"{path}/treatments?person=2")
    form = {"csrf": form_csrf(page.text), "person": "2", "drug": "RxNorm|3640", "model": "tiny",
            "version": "1", "reason": "tetracycline rash", "decision": "reject"}  # fmt: skip
    done = service.client.post(f"{path}/treatments/feedback", data=form, follow_redirects=False)
    assert done.status_code == 303
    assert done.headers["location"] == f"{path}/treatments?person=2#decisions"
    after = service.client.get(f"{path}/treatments?person=2").text
    assert "rejected RxNorm|3640 (tiny v1) · tetracycline rash" in after
    record = service.client.get(path).text  # the decision is on the patient's timeline
    assert "Treatment suggestion rejected: RxNorm|3640" in record
    assert "OMOP person 2" in record
    wrong = service.client.post(f"{path}/treatments/feedback",
                                data={**form, "decision": "maybe"})  # fmt: skip
    assert wrong.status_code == 422
    assert "decision must be accept or reject" in wrong.text
    forged = service.client.post(f"{path}/treatments/feedback", data={**form, "csrf": "x"})
    assert forged.status_code == 401
    entries = _audit(service.settings, "recommendation.feedback")
    patient_id = path.split("/")[-1]
    assert [(e["drug"], e["decision"], e["patient_id"]) for e in entries] == [
        ("RxNorm|3640", "reject", patient_id)]  # fmt: skip
    assert all("tetracycline" not in str(e) for e in entries)
    web_login(service, "bob")  # not on the patient's care team
    assert service.client.get(f"{path}/treatments?person=2").status_code == 403
    assert (
        service.client.post(
            f"{path}/treatments/feedback",
            data={**form, "csrf": form_csrf(service.client.get("/patients").text)},
        ).status_code
        == 403
    )


def test_the_hospital_interaction_file_removes_what_it_names(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv = tmp_path / "hospital-ddi.csv"
    csv.write_text(HOSPITAL_CSV)
    monkeypatch.setattr(service.settings, "interactions_csv", csv)
    web_login(service, "alice")
    path, _ = web_patient(service)
    page = service.client.get(f"{path}/treatments?person=2").text  # warfarin is active
    removed = page[page.index('id="removed"') :]
    assert "interaction (major): interacts with active Warfarin: raises the INR" in removed
    assert "hospital-ddi.csv line 2" in removed
    csv.write_text("drug_a,drug_b,severity,text\n11289,3640,severe,x\n")
    broken = service.client.get(f"{path}/treatments?person=2")
    assert broken.status_code == 422
    assert (
        "The hospital interaction file (CLINSIGHT_INTERACTIONS_CSV or --interactions) "
        "cannot be used: hospital-ddi.csv line 2: severity &#39;severe&#39;"
    ) in broken.text
