"""Web pages for risk: a patient's risk form and the assessment with its explanation chart.

The chart is an inline SVG drawn here (no JavaScript, no inline styles: the page's CSP
allows neither): one horizontal bar per feature, red where it raised the risk, blue where
it lowered it, in log-odds; the label column is as wide as the longest label. The form
starts from what the store holds of the patient: the age from the birth date and the sex
(the store keeps no measurements, so the others are entered). An input the model cannot
take or an implausible one is refused (`InvalidInputError`): the form comes back (422)
with the entered values and the message, in words, beside the field.
"""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from markupsafe import Markup, escape

from clinsight.api.risk_runtime import risk_runtime
from clinsight.data.population import DEFAULT_SEX_CODES
from clinsight.errors import InvalidInputError
from clinsight.inference.risk import RiskResult
from clinsight.registry.risk import RiskModelVersion
from clinsight.services.patient_record import patient_header
from clinsight.services.risk import age_on, assess_stored_patient
from clinsight.store.repositories import PatientRecord, StoreContext
from clinsight.tabular.explain import Explanation
from clinsight.web.pages import Csrf, Db, State, guard_page, render_page
from clinsight.web.session import WebSession, check_csrf

__all__ = ["contribution_chart", "record_values", "router"]

router = APIRouter(include_in_schema=False)
_ROW, _BAR, _CHAR_WIDTH = 26, 320, 7.2  # px; the widest average glyph of a 12 px sans-serif


def _label(feature: str, value: object, unit: str | None) -> str:
    if value is None:
        return f"{feature} = missing"
    shown = f"{value:.4g}" if isinstance(value, float) else str(value)
    return f"{feature} = {shown} {unit or ''}".strip()


def contribution_chart(explanation: Explanation) -> Markup:
    """The contributions as an accessible inline SVG bar chart (largest first), scaled to
    its container (``viewBox``) with every label whole."""
    items = explanation.contributions
    labels = [_label(c.feature, c.value, c.unit) for c in items]
    label_width = int(max((len(text) for text in labels), default=10) * _CHAR_WIDTH) + 16
    scale = max((abs(c.log_odds) for c in items), default=1.0) or 1.0
    middle = label_width + _BAR // 2
    height = _ROW * len(items) + 30
    width = label_width + _BAR + 60
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="chart-title" '
        'id="explanation-chart" class="chart">',
        '<title id="chart-title">Contribution of each input to the risk (log-odds)</title>',
        f'<line x1="{middle}" y1="0" x2="{middle}" y2="{height - 24}" stroke="#555"/>',
    ]
    for row, (item, text) in enumerate(zip(items, labels, strict=True)):
        y = row * _ROW + 4
        bar = abs(item.log_odds) / scale * (_BAR // 2 - 4)
        x = middle if item.log_odds >= 0 else middle - bar
        colour = "#c0392b" if item.log_odds >= 0 else "#2471a3"
        parts += [
            f'<text x="{label_width - 8}" y="{y + 15}" text-anchor="end" font-size="12">'
            f"{escape(text)}</text>",
            f'<rect x="{x:.1f}" y="{y}" width="{bar:.1f}" height="{_ROW - 8}" fill="{colour}">'
            f"<title>{escape(item.feature)}: {item.log_odds:+.3f}</title></rect>",
            f'<text x="{label_width + _BAR + 4}" y="{y + 15}" font-size="12">'
            f"{item.log_odds:+.2f}</text>",
        ]
    parts.append(
        f'<text x="{middle}" y="{height - 8}" text-anchor="middle" font-size="11">'
        "← lowers risk · raises risk →</text></svg>"
    )
    return Markup("".join(parts))  # noqa: S704 - every text part above is escaped


def record_values(model: RiskModelVersion, patient: PatientRecord, today: date) -> dict[str, str]:
    """The inputs the stored patient supplies: age (whole years, from the birth date on
    `today`) and sex (coded as the model's sex column), where the model has them."""
    task, values = model.task, {}
    if task.age_column is not None:
        values[task.age_column] = f"{int(age_on(patient.birth_date, today))}"
    codes = {word: code for code, word in (task.sex_codes or DEFAULT_SEX_CODES).items()}
    if task.sex_column is not None and patient.sex in codes:
        values[task.sex_column] = codes[patient.sex]
    return values


def _form(request: Request, web: WebSession, ctx: StoreContext, patient_id: str,
          result: RiskResult | None = None, refused: InvalidInputError | None = None,
          entered: dict[str, str | None] | None = None) -> Response:  # fmt: skip
    header = patient_header(ctx, patient_id)
    patient = header.patient
    runtime = risk_runtime(request)
    predictor = runtime.predictors.risk(runtime.service.model_name)
    chart = contribution_chart(result.explanation) if result else None
    from_record = record_values(predictor.version, patient, date.today())
    if result:
        values: dict[str, object] = dict(result.inputs)
    else:
        values = dict(entered) if entered is not None else dict(from_record)
    errors = refused.fields if refused else {}
    return render_page(request, "risk.html", web, 422 if refused else 200,
                       patient=patient, model=predictor.version, result=result, chart=chart,
                       values=values, errors=errors, from_record=from_record,
                       header=header)  # fmt: skip


@router.get("/patients/{patient_id}/risk")
def risk_form(request: Request, state: State, session: Db, patient_id: str) -> Response:
    """The inputs of the configured risk model for this patient."""
    return guard_page(
        request, state, session, lambda web, ctx: _form(request, web, ctx, patient_id)
    )


@router.post("/patients/{patient_id}/risk")
async def assess(request: Request, state: State, session: Db, patient_id: str,
                 csrf: Csrf) -> Response:  # fmt: skip
    """Assess the patient from the form (empty fields are missing) and show the explanation."""
    form = await request.form()

    def page(web: WebSession, ctx: StoreContext) -> Response:
        check_csrf(state, web, csrf)
        runtime = risk_runtime(request)
        values = {
            str(key)[2:]: str(value).strip() or None
            for key, value in form.items()
            if str(key).startswith("f_")
        }
        model = runtime.service.model_name
        try:
            result = assess_stored_patient(ctx, runtime.predictors, patient_id, values, model=model)
        except InvalidInputError as exc:  # audited and committed by the service
            ctx.session.rollback()
            return _form(request, web, ctx, patient_id, refused=exc, entered=values)
        return _form(request, web, ctx, patient_id, result)

    # The form is read on the event loop; the store and the model run in a worker thread.
    response: Response = await run_in_threadpool(guard_page, request, state, session, page)
    return response
