"""Risk prediction from structured patient data: pipeline, models, explanations."""

from clinsight.tabular.explain import Explanation, explain_patient
from clinsight.tabular.models import ModelSelection, RiskModel, select_model

__all__ = [
    "Explanation",
    "ModelSelection",
    "RiskModel",
    "explain_patient",
    "select_model",
]
