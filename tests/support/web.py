"""Web UI helpers: the form token of a page, a browser-style login, a new patient's page."""

from __future__ import annotations

import re

from tests.support.service import PASSWORD, Service

__all__ = ["WEB_PATIENT", "form_csrf", "web_login", "web_patient"]

WEB_PATIENT = {"mrn": "M1", "name": "Ada Lovelace", "birth_date": "1980-12-10", "sex": "female"}


def form_csrf(html: str) -> str:
    """The CSRF token of the (first) form in `html`."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def web_login(service: Service, username: str) -> None:
    """Log `username` in through the login form; the session cookie is strict and secure."""
    form = service.client.get("/login")
    response = service.client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf": form_csrf(form.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303
    cookie = response.headers.get_list("set-cookie")[0]
    assert "HttpOnly" in cookie
    assert "Secure" in cookie
    assert "SameSite=strict" in cookie


def web_patient(service: Service) -> tuple[str, str]:
    """Create WEB_PATIENT through the patients page; its page path and the form token."""
    page = service.client.get("/patients")
    csrf = form_csrf(page.text)
    made = service.client.post("/patients", data={**WEB_PATIENT, "csrf": csrf})
    assert made.status_code == 200
    assert 'id="notes-link"' in made.text
    return str(made.url.path), csrf
