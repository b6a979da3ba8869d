"""Risk prediction from structured patient data: pipeline, models, explanations, validation."""

from clinsight.tabular.explain import Explanation, explain_patient
from clinsight.tabular.models import ModelSelection, RiskModel, select_model
from clinsight.tabular.validation import ExternalValidation, external_validation

__all__ = [
    "Explanation",
    "ExternalValidation",
    "ModelSelection",
    "RiskModel",
    "explain_patient",
    "external_validation",
    "select_model",
]
