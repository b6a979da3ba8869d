"""Web pages for risk: a patient's risk form and the assessment with its explanation chart.

The chart is an inline SVG drawn here (no JavaScript, no inline styles: the page's CSP
allows neither): one horizontal bar per feature, red where it raised the risk, blue where
it lowered it, in log-odds. An implausible input is refused (`ImplausibleInputError`): the
form comes back (422) with the entered values and the message beside the field.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from markupsafe import Markup, escape

from clinsight.api.risk_runtime import risk_runtime
from clinsight.errors import ImplausibleInputError
from clinsight.inference.risk import RiskResult
from clinsight.services.patients import read_patient
from clinsight.services.risk import assess_stored_patient
from clinsight.store.repositories import StoreContext
from clinsight.tabular.explain import Explanation
from clinsight.web.pages import Csrf, Db, State, guard_page, render_page
from clinsight.web.session import WebSession, check_csrf

__all__ = ["contribution_chart", "router"]

router = APIRouter(include_in_schema=False)
_ROW, _LABEL, _BAR = 26, 190, 320


def contribution_chart(explanation: Explanation) -> Markup:
    """The contributions as an accessible inline SVG bar chart (largest first)."""
    items = explanation.contributions
    scale = max((abs(c.log_odds) for c in items), default=1.0) or 1.0
    middle = _LABEL + _BAR // 2
    height = _ROW * len(items) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_LABEL + _BAR + 80}" '
        f'height="{height}" role="img" aria-labelledby="chart-title" id="explanation-chart">',
        '<title id="chart-title">Contribution of each input to the risk (log-odds)</title>',
        f'<line x1="{middle}" y1="0" x2="{middle}" y2="{height - 24}" stroke="#555"/>',
    ]
    for row, item in enumerate(items):
        y = row * _ROW + 4
        width = abs(item.log_odds) / scale * (_BAR // 2 - 4)
        x = middle if item.log_odds >= 0 else middle - width
        colour = "#c0392b" if item.log_odds >= 0 else "#2471a3"
        value = (
            "missing"
            if item.value is None
            else (f"{item.value:.4g}" if isinstance(item.value, float) else str(item.value))
        )
        label = escape(f"{item.feature} = {value} {item.unit or ''}".strip())
        parts += [
            f'<text x="{_LABEL - 6}" y="{y + 15}" text-anchor="end" font-size="12">{label}</text>',
            f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{_ROW - 8}" fill="{colour}">'
            f"<title>{escape(item.feature)}: {item.log_odds:+.3f}</title></rect>",
            f'<text x="{_LABEL + _BAR + 4}" y="{y + 15}" font-size="12">'
            f"{item.log_odds:+.2f}</text>",
        ]
    parts.append(
        f'<text x="{middle}" y="{height - 8}" text-anchor="middle" font-size="11">'
        "← lowers risk · raises risk →</text></svg>"
    )
    return Markup("".join(parts))  # noqa: S704 - every text part above is escaped


def _form(request: Request, web: WebSession, ctx: StoreContext, patient_id: str,
          result: RiskResult | None = None, refused: ImplausibleInputError | None = None,
          entered: dict[str, str | None] | None = None) -> Response:  # fmt: skip
    patient = read_patient(ctx, patient_id)
    runtime = risk_runtime(request)
    predictor = runtime.predictors.risk(runtime.service.model_name)
    chart = contribution_chart(result.explanation) if result else None
    values = dict(result.inputs) if result else dict(entered or {})
    errors = refused.fields if refused else {}
    return render_page(request, "risk.html", web, 422 if refused else 200,
                       patient=patient, model=predictor.version, result=result, chart=chart,
                       values=values, errors=errors)  # fmt: skip


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
        except ImplausibleInputError as exc:
            ctx.session.rollback()
            return _form(request, web, ctx, patient_id, refused=exc, entered=values)
        return _form(request, web, ctx, patient_id, result)

    # The form is read on the event loop; the store and the model run in a worker thread.
    response: Response = await run_in_threadpool(guard_page, request, state, session, page)
    return response
