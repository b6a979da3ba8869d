"""Evaluation: metrics with confidence intervals, calibration, subgroups, figures, reports."""
