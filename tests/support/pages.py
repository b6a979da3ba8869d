"""Every page of the web UI, checked in a real browser: axe-core (serious or critical
violations), horizontal overflow at 390 px, raw JSON bodies and broken images.

`tour` drives one scripted walk through the UI (a clinician, an admin, a second clinician
under break-glass, an auditor, a visitor) and checks each page it reaches; the
`TemplateRecorder` notes which template the server rendered for each, so the test can
fail when a template in `src/clinsight/web/templates` is reached by no step. A new page
template needs a new `Step` here. The browser test (`tests/e2e/test_pages_browser.py`)
and the benchmark (`benchmarks/ui.py`, which runs that test) share this code.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from clinsight.web import pages as web_pages
from tests.support.service import PASSWORD

__all__ = [
    "AXE_JS", "DESKTOP", "NARROW", "PageCheck", "TemplateRecorder", "Tour", "check_page",
    "page_templates",
]  # fmt: skip

AXE_JS = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1280, "height": 900}
NARROW = {"width": 390, "height": 844}
WAIT_MS = 180_000
NOT_TEMPLATES = "API documentation (Swagger UI, no template)"

_OVERFLOW_JS = """() => {
  const root = document.scrollingElement, width = root.clientWidth;
  if (root.scrollWidth <= width) return [];
  const clipped = e => {
    for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
      if (getComputedStyle(p).overflowX !== 'visible') return true;
    }
    return false;
  };
  const name = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
      (e.classList.length ? '.' + [...e.classList].join('.') : '');
  const wide = [...document.body.querySelectorAll('*')].filter(e => {
    const r = e.getBoundingClientRect();
    return r.right > width + 1 && r.width > 0 && !clipped(e);
  });
  const outermost = wide.filter(e => !wide.includes(e.parentElement));
  return outermost.slice(0, 10).map(e =>
      `${name(e)} (right edge ${Math.round(e.getBoundingClientRect().right)} px > ${width} px)`);
}"""
_RAW_JSON_JS = """() => {
  const text = (document.body ? document.body.innerText : '').trim();
  if (!text || !'[{'.includes(text[0])) return false;
  try { JSON.parse(text); return true; } catch (e) { return false; }
}"""
_BROKEN_IMAGES_JS = """() => [...document.images]
  .filter(i => !i.complete || i.naturalWidth === 0)
  .map(i => (i.id ? '#' + i.id + ' ' : '') + (i.getAttribute('src') || '').slice(0, 80))"""
_AXE_JS = """async () => {
  const found = await axe.run(document, {resultTypes: ['violations']});
  return found.violations.filter(v => ['serious', 'critical'].includes(v.impact)).map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 8).map(n => n.target.join(' ') + ': ' + n.failureSummary.slice(0, 300))
  }));
}"""


def page_templates() -> list[str]:
    """The page templates of the web UI (partials `_*.html` and the layout excluded)."""
    return sorted(
        p.name
        for p in web_pages.TEMPLATES_DIR.glob("*.html")
        if not p.name.startswith("_") and p.name != "base.html"
    )


@dataclass
class PageCheck:
    """What one page showed: the findings are empty lists / False when it is clean."""

    step: str
    template: str
    path: str
    axe: list[dict[str, Any]] = field(default_factory=list)
    overflow: list[str] = field(default_factory=list)
    raw_json: bool = False
    broken_images: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.axe or self.overflow or self.raw_json or self.broken_images)

    def problems(self) -> str:
        """The findings in words, for a failure message."""
        lines = [f"{self.step} ({self.template}, {self.path}):"]
        for v in self.axe:
            lines.append(f"  axe {v['impact']} {v['id']}: {v['help']}")
            lines += [f"    {node}" for node in v["nodes"]]
        if self.overflow:
            lines.append("  overflows at 390 px: " + "; ".join(self.overflow))
        if self.raw_json:
            lines.append("  the body is raw JSON")
        lines += [f"  broken image {src}" for src in self.broken_images]
        return "\n".join(lines)


class TemplateRecorder:
    """The names of the templates the (in-process) server renders, in order."""

    def __init__(self) -> None:
        self.rendered: list[str] = []

    @contextmanager
    def recording(self) -> Iterator[TemplateRecorder]:
        templates = web_pages.templates
        real = templates.TemplateResponse

        def recorded(request: Any, name: str, *args: Any, **kwargs: Any) -> Any:
            self.rendered.append(name)
            return real(request, name, *args, **kwargs)

        templates.TemplateResponse = recorded  # type: ignore[method-assign]
        try:
            yield self
        finally:
            templates.TemplateResponse = real  # type: ignore[method-assign]

    def last(self) -> str:
        return self.rendered[-1] if self.rendered else NOT_TEMPLATES


def check_page(page: Any, step: str, template: str, shots: Path) -> PageCheck:
    """Check the page as it stands (desktop width), then at 390 px; screenshots of both."""
    path = page.url.split("://", 1)[-1].split("/", 1)[-1]
    found = PageCheck(step=step, template=template, path="/" + path.split("?")[0])
    page.set_viewport_size(DESKTOP)
    page.add_script_tag(path=str(AXE_JS))
    found.axe = page.evaluate(_AXE_JS)
    found.raw_json = bool(page.evaluate(_RAW_JSON_JS))
    found.broken_images = page.evaluate(_BROKEN_IMAGES_JS)
    page.screenshot(path=str(shots / f"{step}-desktop.png"), full_page=True)
    page.set_viewport_size(NARROW)
    page.wait_for_timeout(50)
    found.overflow = page.evaluate(_OVERFLOW_JS)
    page.screenshot(path=str(shots / f"{step}-390px.png"), full_page=True)
    page.set_viewport_size(DESKTOP)
    return found


@dataclass
class Tour:
    """One scripted walk through the UI; `checks` holds a `PageCheck` per page reached."""

    server: str
    browser: Any
    recorder: TemplateRecorder
    shots: Path
    dicom: Path
    tag: str = ""  # makes the names of a second walk on the same server new
    checks: list[PageCheck] = field(default_factory=list)

    @property
    def mrn(self) -> str:
        return f"A11Y-1{self.tag}"

    @property
    def second(self) -> str:
        return f"dora{self.tag}"

    @property
    def auditor(self) -> str:
        return f"audra{self.tag}"

    def context(self) -> Any:
        """A browser context for one user; waits are long, for a busy shared machine."""
        context = self.browser.new_context(ignore_https_errors=True, bypass_csp=True,
                                           viewport=DESKTOP)  # fmt: skip
        context.set_default_timeout(WAIT_MS)
        return context

    def login(self, username: str, password: str = PASSWORD) -> Any:
        page = self.context().new_page()
        page.goto(f"{self.server}/login")
        page.fill("#username", username)
        page.fill("#password", password)
        page.click("#login")
        page.wait_for_load_state()
        return page

    def step(self, name: str, page: Any, action: Callable[[], Any] | None = None) -> None:
        """Run `action` (a navigation or a form), then check the page it leaves."""
        if action is not None:
            self.recorder.rendered.clear()
            action()
        page.wait_for_load_state()
        self.checks.append(check_page(page, name, self.recorder.last(), self.shots))
        self.recorder.rendered.clear()  # a step with no action sees what came since

    def goto(self, name: str, page: Any, path: str) -> None:
        self.step(name, page, lambda: page.goto(f"{self.server}{path}"))

    def run(self) -> list[PageCheck]:
        """Every page, each role in turn; the clinician's data feeds the later steps."""
        visitor = self.context().new_page()
        self.goto("login", visitor, "/login")
        self.goto("not-found", visitor, "/no-such-page")
        self.goto("method-not-allowed", visitor, "/logout")  # a form's address, by GET

        def docs() -> None:
            visitor.goto(f"{self.server}/api/v1/docs")
            visitor.wait_for_selector(".swagger-ui .info .title")

        self.step("api-docs", visitor, docs)
        patient = self._clinician()
        self._admin()
        self._break_glass(patient)
        self._auditor()
        self.goto("logged-out", visitor, "/login?logged_out=1")
        return self.checks

    def _clinician(self) -> str:
        alice = self.login("alice")
        self.step("patients", alice)
        born = (date.today() - timedelta(days=365 * 54)).isoformat()

        def create() -> None:
            alice.fill("#mrn", self.mrn)
            alice.fill("#name", "Grace Brewster Murray Hopper")
            alice.fill("#birth_date", born)
            alice.select_option("#sex", "female")
            alice.click("#create-patient")
            alice.wait_for_selector("text=No studies yet.")

        self.step("patient", alice, create)
        patient_path: str = alice.url.split(self.server, 1)[1]

        def upload() -> None:
            alice.set_input_files("#file", str(self.dicom))
            alice.click("#upload")
            alice.wait_for_selector("#confirm-mismatch")

        self.step("confirm-patient", alice, upload)

        def confirm() -> None:
            alice.click("#confirm-mismatch")
            alice.wait_for_selector("#overlay")

        self.step("result", alice, confirm)
        self.step("result-feedback", alice, lambda: alice.click("#agree"))
        self.goto("patient-timeline", alice, patient_path)

        def segment() -> None:
            alice.click("form.segment button")
            alice.wait_for_selector("#overlay")

        self.step("segmentation", alice, segment)
        self.goto("notes", alice, f"{patient_path}/notes")

        def note() -> None:
            alice.fill("#note-text", "History of hypertension. Denies chest pain.\n"
                       "Possible pneumonia. Mother had diabetes.")  # fmt: skip
            alice.click("#save-note")
            alice.wait_for_selector("#legend")

        self.step("note", alice, note)
        self.goto("risk", alice, f"{patient_path}/risk")

        def assess() -> None:
            alice.fill("#f_Glucose", "150")
            alice.fill("#f_BloodPressure", "70")
            alice.fill("#f_BMI", "33.6")
            alice.click("#assess")
            alice.wait_for_selector("#explanation-chart")

        self.step("risk-result", alice, assess)
        self.goto("survival", alice, f"{patient_path}/survival")

        def predict() -> None:
            for name, value in {"age": "50", "pnodes": "5", "tsize": "25", "progrec": "30",
                                "estrec": "30"}.items():  # fmt: skip
                alice.fill(f"#f_{name}", value)
            alice.click("#predict")
            alice.wait_for_selector("#survival-result")

        self.step("survival-result", alice, predict)
        self.goto("treatments", alice, f"{patient_path}/treatments")
        self.goto("models", alice, "/models")
        self.goto("worklist", alice, "/worklist")
        self.goto("error-signed-in", alice, "/patients/no-such-patient")
        return patient_path.rsplit("/", 1)[1]

    def _admin(self) -> None:
        admin = self.login("admin")
        self.goto("admin-users", admin, "/admin/users")
        for name, role in ((self.second, "clinician"), (self.auditor, "auditor")):
            admin.fill("#new-username", name)
            admin.fill("#new-password", PASSWORD)
            admin.select_option("#new-role", role)
            admin.click("#create-user-button")
            admin.wait_for_selector("#admin-notice")
        self.step("admin-users-created", admin)
        self.goto("admin-care-teams", admin, "/admin/care-teams")

        def show() -> None:
            admin.fill("#team-mrn", self.mrn)
            admin.click("#show-team")
            admin.wait_for_selector("#team-table")

        self.step("admin-care-team", admin, show)
        self.goto("models-admin", admin, "/models")
        admin.click(".monitoring-link")
        self.step("monitoring", admin)

    def _break_glass(self, patient_id: str) -> None:
        dora = self.login(self.second)
        self.goto("break-glass", dora, f"/break-glass?mrn={self.mrn}")

        def open_access() -> None:
            dora.fill("#bg-reason", "collapsed in the waiting room, team unreachable")
            dora.fill("#bg-minutes", "30")
            dora.click("#bg-open-button")
            dora.wait_for_selector("#emergency-banner")

        self.step("break-glass-banner", dora, open_access)

    def _auditor(self) -> None:
        audra = self.login(self.auditor)
        self.goto("audit", audra, "/audit")
        self.goto("audit-break-glass", audra, "/audit/break-glass")


def write_report(path: Path, checks: list[PageCheck], templates: list[str]) -> dict[str, Any]:
    """The findings as JSON (what `benchmarks/ui.py` reads)."""
    covered = {c.template for c in checks}
    report = {
        "templates": templates,
        "not_covered": [t for t in templates if t not in covered],
        "pages": [asdict(c) for c in checks],
    }
    path.write_text(json.dumps(report, indent=2) + "\n")
    return report
