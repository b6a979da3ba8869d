"""The API documentation renders in a real browser with no network beyond the service."""

from __future__ import annotations

from tests.support.browser import ARTIFACTS, BROWSER, CHROMIUM

pytestmark = BROWSER


def test_api_documentation_renders_under_the_pages_own_policy(server: str) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--no-sandbox"])  # fmt: skip
        context = browser.new_context(ignore_https_errors=True)
        outside: list[str] = []  # any request that leaves the service
        context.on("request", lambda r: None if r.url.startswith(server) else outside.append(r.url))
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{server}/docs")  # redirected to /api/v1/docs
        page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
        title = page.inner_text(".swagger-ui .info .title")
        operations = page.locator(".opblock").count()
        page.screenshot(path=str(ARTIFACTS / "api-docs.png"))
        browser.close()
    assert title.startswith("Clinsight")
    assert operations > 10
    assert not [e for e in errors if "Content Security Policy" in e], errors
    assert outside == []
