"""A finding's printable report as PDF (ReportLab): patient, image and heat map, the
calibrated probability with the decision thresholds, the model card link, provenance
(model name, version, artifact and input sha256) and the reviewing clinician's verdict.

The PDF is made fresh each time; what proves which one was signed is its sha256, recorded
by the caller. Text is set in the standard Helvetica fonts (no font files needed), in
uncompressed page streams (the pictures stay compressed).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from clinsight import __version__
from clinsight.store.repositories import PatientRecord
from clinsight.store.studies import FeedbackRecord, PredictionRecord

__all__ = ["ReportContent", "render_report_pdf", "thresholds_text"]

_PICTURE = 70 * mm


@dataclass(frozen=True)
class ReportContent:
    """Everything a finding's report shows."""

    patient: PatientRecord
    age: int
    prediction: PredictionRecord
    image_png: bytes
    heatmap_png: bytes
    card_url: str
    reviewer: str
    review: FeedbackRecord
    signed_at: datetime
    cropped: bool = False


def thresholds_text(record: PredictionRecord) -> str:
    """The decision rule of the finding in words."""
    band = record.decision_thresholds
    if record.refused:
        return "refused: the image is outside the model's intended use (no finding)"
    if not band:
        return "most probable class (this model version has no decision thresholds)"
    low, high = min(band["low"], band["high"]), band["high"]
    text = f"positive at >= {high * 100:.1f}%, negative below {low * 100:.1f}%"
    return text + (", indeterminate in between" if band["low"] < band["high"] else "")


def _finding(record: PredictionRecord) -> str:
    if record.refused:
        return "No finding: outside this model's intended use"
    if record.label_probability is None:
        return "Indeterminate: needs a clinician's reading"
    return record.predicted_label


def _verdict(review: FeedbackRecord) -> str:
    text = str(review.verdict)
    if review.override_label:
        text += f" (corrected label: {review.override_label})"
    if review.reason:
        text += f"; reason: {review.reason}"
    return text


def _picture(png: bytes) -> Image:
    return Image(io.BytesIO(png), width=_PICTURE, height=_PICTURE, kind="proportional")


def render_report_pdf(content: ReportContent) -> bytes:
    """The report as PDF bytes (A4, one page for a usual finding)."""
    styles = getSampleStyleSheet()
    small = ParagraphStyle("small", parent=styles["Normal"], fontSize=8, leading=10)
    p, record = content.patient, content.prediction

    def para(text: str, style: ParagraphStyle = styles["Normal"]) -> Paragraph:
        return Paragraph(escape(text), style)

    rows = [
        ["Finding", para(_finding(record))],
        ["Calibrated probability",
         para("-" if record.label_probability is None
              else f"{record.label_probability * 100:.1f}% for {record.predicted_label}")],
        ["P(positive class)",
         para("-" if record.positive_probability is None
              else f"{record.positive_probability * 100:.1f}%")],
        ["Decision thresholds", para(thresholds_text(record))],
        ["Model", para(f"{record.model_name} v{record.model_version}")],
        ["Model card", para(content.card_url)],
        ["Model sha256", para(record.artifact_sha256, small)],
        ["Input sha256", para(record.input_sha256, small)],
        ["Made", para(f"{record.created_at:%Y-%m-%d %H:%M:%S} UTC, Clinsight {__version__}")],
    ]  # fmt: skip
    table = Table(rows, colWidths=[42 * mm, 128 * mm])
    table.setStyle(TableStyle([
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("FONTNAME", (0, 0), (0, -1), "Helvetica-Bold"),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
    ]))  # fmt: skip
    pictures = Table(
        [[_picture(content.image_png), _picture(content.heatmap_png)],
         [para("The image the model read", small),
          para("Grad-CAM heat map (blue: least weight, red: most)", small)]],
        colWidths=[85 * mm, 85 * mm],
    )  # fmt: skip
    story = [
        para("Clinsight finding report", styles["Title"]),
        para(f"{p.name} · MRN {p.mrn} · born {p.birth_date.isoformat()} (age {content.age}) "
             f"· {p.sex}", styles["Heading3"]),
        Spacer(1, 4 * mm),
        pictures,
    ]  # fmt: skip
    if content.cropped:
        story.append(para("The uploaded image is not square: the model read its centred "
                          "square only.", small))  # fmt: skip
    for warning in (*record.warnings, *record.intended_use_reasons):
        story.append(para(f"Warning: {warning}", small))
    story += [
        Spacer(1, 4 * mm),
        table,
        Spacer(1, 6 * mm),
        para("Review", styles["Heading2"]),
        para(f"Reviewed by {content.reviewer} on {content.review.created_at:%Y-%m-%d %H:%M} "
             f"UTC: {_verdict(content.review)}."),
        para(f"Signed electronically by {content.reviewer} on "
             f"{content.signed_at:%Y-%m-%d %H:%M:%S} UTC; the sha256 of this file is recorded "
             "with the signature in Clinsight's audit log."),
        Spacer(1, 4 * mm),
        para("Decision support only: every finding must be confirmed by a qualified "
             "clinician.", small),
    ]  # fmt: skip
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer, pagesize=A4, title=f"Clinsight finding report {record.id}", author="Clinsight",
        leftMargin=18 * mm, rightMargin=18 * mm, topMargin=16 * mm, bottomMargin=16 * mm,
        pageCompression=0,  # the text stays searchable and checkable in the file
    )  # fmt: skip
    document.build(story)
    return buffer.getvalue()
