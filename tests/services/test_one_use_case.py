"""The API and the web reach the same service function for the same action."""

from __future__ import annotations

from clinsight.api.routes import auth as api_auth
from clinsight.api.routes import notes as api_notes
from clinsight.api.routes import patients as api_patients
from clinsight.api.routes import studies as api_studies
from clinsight.services import auth as auth_service
from clinsight.services import notes as note_service
from clinsight.services import patients as patient_service
from clinsight.services import predictions as prediction_service
from clinsight.web import notes as web_notes
from clinsight.web import pages as web_pages
from clinsight.web import session as web_session


def test_note_creation_is_one_service_function() -> None:
    assert vars(api_notes)["create_note"] is note_service.create_note
    assert vars(web_notes)["create_note"] is note_service.create_note


def test_patient_creation_is_one_service_function() -> None:
    assert vars(api_patients)["register_patient"] is patient_service.register_patient
    assert vars(web_pages)["register_patient"] is patient_service.register_patient


def test_login_refresh_and_logout_are_one_service_function_each() -> None:
    assert vars(api_auth)["log_in"] is auth_service.log_in
    assert vars(web_pages)["log_in"] is auth_service.log_in
    assert vars(api_auth)["refresh_session"] is auth_service.refresh_session
    assert vars(web_session)["refresh_session"] is auth_service.refresh_session
    assert vars(api_auth)["log_out"] is auth_service.log_out
    assert vars(web_pages)["log_out"] is auth_service.log_out


def test_feedback_is_one_service_function_each() -> None:
    assert vars(api_studies)["give_feedback"] is prediction_service.give_feedback
    assert vars(web_pages)["give_feedback"] is prediction_service.give_feedback
    assert vars(api_studies)["prediction_feedback"] is prediction_service.prediction_feedback
    assert vars(web_pages)["prediction_feedback"] is prediction_service.prediction_feedback


def test_monitoring_and_recalibration_are_one_service_function_each() -> None:
    from clinsight.api.routes import monitoring as api_monitoring
    from clinsight.services import monitoring as monitoring_service

    for name in ("model_monitoring", "propose_recalibration"):
        assert vars(api_monitoring)[name] is vars(monitoring_service)[name]
        assert vars(web_pages)[name] is vars(monitoring_service)[name]


def test_survival_prediction_is_one_service_function() -> None:
    from clinsight.api.routes import survival as api_survival
    from clinsight.services import survival as survival_service
    from clinsight.web import survival_pages as web_survival

    assert vars(api_survival)["assess_stored_survival"] is survival_service.assess_stored_survival
    assert vars(web_survival)["assess_stored_survival"] is survival_service.assess_stored_survival


def test_administration_and_break_glass_are_one_service_function_each() -> None:
    from clinsight.api.routes import care_teams as api_care_teams
    from clinsight.api.routes import users as api_users
    from clinsight.services import break_glass as break_glass_service
    from clinsight.services import care_teams as care_team_service
    from clinsight.services import users as user_service
    from clinsight.web import admin_pages as web_admin

    for name in ("create_account", "list_users", "set_account_active", "reset_account_password",
                 "change_account_role"):  # fmt: skip
        assert vars(api_users)[name] is vars(web_admin)[name] is getattr(user_service, name)
    for name in ("add_member", "remove_member", "care_team"):
        assert vars(api_care_teams)[name] is vars(web_admin)[name]
        assert vars(web_admin)[name] is getattr(care_team_service, name)
    assert vars(api_care_teams)["grant_log"] is vars(web_admin)["grant_log"]
    assert vars(web_admin)["grant_log"] is break_glass_service.grant_log
    assert vars(api_patients)["open_break_glass"] is vars(web_admin)["open_break_glass"]
    assert vars(web_admin)["open_break_glass"] is patient_service.open_break_glass


def test_the_workspace_is_one_service_function_each() -> None:
    from clinsight.api.routes import workspace as api_workspace
    from clinsight.services import patient_record, reports, worklist
    from clinsight.web import worklist_pages

    assert vars(api_workspace)["worklist"] is worklist.worklist
    assert vars(worklist_pages)["worklist"] is worklist.worklist
    assert vars(api_workspace)["sign_finding_report"] is reports.sign_finding_report
    assert vars(web_pages)["sign_finding_report"] is reports.sign_finding_report
    assert vars(api_workspace)["patient_fhir_bundle"] is patient_record.patient_fhir_bundle
    assert vars(web_pages)["patient_fhir_bundle"] is patient_record.patient_fhir_bundle


def test_segmentation_and_the_heat_map_check_are_one_service_function_each() -> None:
    from clinsight.api.routes import segmentations as api_segmentations
    from clinsight.services import segmentation as segmentation_service
    from clinsight.web import segmentation_pages as web_segmentation

    for name in ("segment_study", "segment_upload", "review", "segmentation_dicom_seg"):
        assert vars(api_segmentations)[name] is vars(segmentation_service)[name]
        assert vars(web_segmentation)[name] is vars(segmentation_service)[name]
    assert vars(api_studies)["heat_in_lungs"] is prediction_service.heat_in_lungs
    assert vars(web_pages)["explained_prediction"] is prediction_service.explained_prediction
