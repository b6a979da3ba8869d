"""Web page for survival: a patient's inputs, predicted survival curve with its band, the
population's Kaplan-Meier curve, the risk by 1, 3 and 5 years and the factors that move it.

The chart is an inline SVG drawn here (no JavaScript, no inline styles: the page's CSP
allows neither). A refused input (implausible, or outside the training population) brings
the form back (422) with the message beside the field; any other refusal (a horizon
beyond the follow-up, no input) is shown above the form.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from markupsafe import Markup, escape

from clinsight.data.survival import DAYS_PER_YEAR
from clinsight.errors import DataError, ImplausibleInputError, OutOfPopulationError
from clinsight.inference.cache import model_cache
from clinsight.inference.survival import SurvivalResult
from clinsight.services.patient_record import patient_header
from clinsight.services.survival import assess_stored_survival
from clinsight.store.repositories import StoreContext
from clinsight.web.pages import Csrf, Db, State, guard_page, render_page
from clinsight.web.session import WebSession, check_csrf

__all__ = ["router", "survival_chart"]

router = APIRouter(include_in_schema=False)
_W, _H, _LEFT, _TOP, _PLOT_W, _PLOT_H = 620, 330, 50, 16, 540, 260


def _x(days: float, longest: float) -> float:
    return _LEFT + days / longest * _PLOT_W


def _y(survival: float) -> float:
    return _TOP + (1.0 - survival) * _PLOT_H


def _points(days: Sequence[float], values: Sequence[float], longest: float) -> str:
    return " ".join(f"{_x(d, longest):.1f},{_y(v):.1f}" for d, v in zip(days, values, strict=True))


def _steps(days: Sequence[float], values: Sequence[float], longest: float) -> str:
    """A right-continuous step curve from (0, 1), cut at `longest`."""
    xs, ys, level = [0.0], [1.0], 1.0
    for d, v in zip(days, values, strict=True):
        if d > longest:
            break
        xs += [d, d]
        ys += [level, v]
        level = v
    xs.append(longest)
    ys.append(level)
    return _points(xs, ys, longest)


def survival_chart(result: SurvivalResult) -> Markup:
    """Predicted survival (line) with its band (shaded), the population's Kaplan-Meier curve
    (grey steps) and a dashed line at each horizon, as an accessible inline SVG."""
    longest = result.model.max_horizon_days
    km = result.model.population["kaplan_meier"]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H + 30}" role="img" '
        f'viewBox="0 0 {_W} {_H + 30}" aria-labelledby="survival-title" id="survival-chart" '
        'class="chart">',
        '<title id="survival-title">Predicted probability of staying event-free over time, '
        "with the population's Kaplan-Meier curve</title>",
        f'<rect x="{_LEFT}" y="{_TOP}" width="{_PLOT_W}" height="{_PLOT_H}" fill="none" '
        'stroke="#555"/>',
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<text x="{_LEFT - 6}" y="{_y(tick) + 4:.1f}" text-anchor="end" '
                     f'font-size="11">{tick:.0%}</text>')  # fmt: skip
    for year in range(int(longest // DAYS_PER_YEAR) + 1):
        x = _x(year * DAYS_PER_YEAR, longest)
        parts.append(f'<text x="{x:.1f}" y="{_TOP + _PLOT_H + 16}" text-anchor="middle" '
                     f'font-size="11">{year}</text>')  # fmt: skip
    if result.low is not None and result.high is not None:
        outline = (
            _points(result.days, result.high, longest)
            + " "
            + _points(result.days[::-1], result.low[::-1], longest)
        )
        parts.append(f'<polygon points="{outline}" fill="#aed6f1" stroke="none" id="survival-band">'
                     "<title>95 % band of bootstrap refits</title></polygon>")  # fmt: skip
    parts.append(f'<polyline points="{_steps(km["days"], km["survival"], longest)}" fill="none" '
                 'stroke="#888" stroke-width="2" id="population-km"><title>Population '
                 "(Kaplan-Meier)</title></polyline>")  # fmt: skip
    parts.append(f'<polyline points="{_points(result.days, result.survival, longest)}" '
                 'fill="none" stroke="#1a5276" stroke-width="3" id="patient-curve">'
                 "<title>This patient (predicted)</title></polyline>")  # fmt: skip
    for horizon in result.horizons:
        x = _x(horizon.years * DAYS_PER_YEAR, longest)
        parts += [
            f'<line x1="{x:.1f}" y1="{_TOP}" x2="{x:.1f}" y2="{_TOP + _PLOT_H}" stroke="#c0392b" '
            'stroke-dasharray="4 3"/>',
            f'<text x="{x + 3:.1f}" y="{_TOP + 12}" font-size="11" fill="#c0392b">'
            f"{escape(f'{horizon.risk:.0%} by {horizon.years:g} y')}</text>",
        ]
    parts.append(f'<text x="{_LEFT + _PLOT_W / 2}" y="{_H + 24}" text-anchor="middle" '
                 'font-size="12">years since diagnosis · blue: this patient (band shaded) · '
                 "grey: population</text></svg>")  # fmt: skip
    return Markup("".join(parts))  # noqa: S704 - every text part above is escaped or a number


def _form(
    request: Request, web: WebSession, ctx: StoreContext, patient_id: str,
    result: SurvivalResult | None = None, errors: dict[str, str] | None = None,
    refusal: str | None = None, entered: dict[str, str | None] | None = None,
) -> Response:  # fmt: skip
    settings = request.app.state.clinsight.settings
    header = patient_header(ctx, patient_id)
    patient = header.patient
    predictor = model_cache(settings.resolved_registry_dir).survival(settings.survival_model)
    values = {
        k: (None if v is None else str(v))
        for k, v in (result.inputs if result else entered or {}).items()
    }
    failed = bool(errors or refusal)
    longest = predictor.version.max_horizon_days / DAYS_PER_YEAR
    return render_page(request, "survival.html", web, 422 if failed else 200, patient=patient,
                       model=predictor.version, result=result,
                       chart=survival_chart(result) if result else None, values=values,
                       errors=errors or {}, refusal=refusal, longest_years=longest,
                       header=header)  # fmt: skip


@router.get("/patients/{patient_id}/survival")
def survival_form(request: Request, state: State, session: Db, patient_id: str) -> Response:
    """The inputs of the configured survival model for this patient."""
    return guard_page(
        request, state, session, lambda web, ctx: _form(request, web, ctx, patient_id)
    )


@router.post("/patients/{patient_id}/survival")
async def predict(request: Request, state: State, session: Db, patient_id: str,
                  csrf: Csrf) -> Response:  # fmt: skip
    """Predict the patient's survival from the form (empty fields are missing)."""
    form = await request.form()

    def page(web: WebSession, ctx: StoreContext) -> Response:
        check_csrf(state, web, csrf)
        values = {str(k)[2:]: str(v).strip() or None for k, v in form.items()
                  if str(k).startswith("f_")}  # fmt: skip
        cache = model_cache(state.settings.resolved_registry_dir)
        try:
            result = assess_stored_survival(ctx, cache, patient_id, values,
                                            model=state.settings.survival_model)  # fmt: skip
        except (ImplausibleInputError, OutOfPopulationError) as exc:
            ctx.session.rollback()
            return _form(request, web, ctx, patient_id, errors=exc.fields, entered=values)
        except DataError as exc:
            ctx.session.rollback()
            return _form(request, web, ctx, patient_id, refusal=str(exc), entered=values)
        return _form(request, web, ctx, patient_id, result)

    # The form is read on the event loop; the store and the model run in a worker thread.
    response: Response = await run_in_threadpool(guard_page, request, state, session, page)
    return response
