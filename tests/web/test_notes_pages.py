"""Notes in the web UI: paste or upload → highlighted note, problem list, de-identified text,
search with highlighted snippets, FHIR download; other clinicians are refused."""

from __future__ import annotations

import re

from tests.support.service import Service
from tests.support.web import web_login, web_patient

NOTE = (
    "Seen by Dr. John Smith on 03/14/2026. History of hypertension. Denies chest pain.\n"
    "Possible pneumonia.\nFAMILY HISTORY: Mother had diabetes."
)


def test_paste_a_note_and_read_it_highlighted_coded_and_deidentified(service: Service) -> None:
    client = service.client
    web_login(service, "alice")
    patient, csrf = web_patient(service)
    assert "No notes yet." in client.get(f"{patient}/notes").text
    forged = client.post(f"{patient}/notes", data={"text": NOTE, "csrf": "bad"})
    assert forged.status_code == 401
    page = client.post(f"{patient}/notes", data={"text": NOTE, "csrf": csrf})
    assert page.status_code == 200
    assert re.search(r"/notes/[0-9a-f-]{36}$", str(page.url))
    text = page.text
    historical = (
        '<mark class="a-historical" title="problem · historical · ICD-10-CM I10 Essential '
        '(primary) hypertension">hypertension</mark>'
    )
    negated = (
        '<mark class="a-negated" title="problem · negated · ICD-10-CM R07.9 Chest pain, '
        'unspecified">chest pain</mark>'
    )
    assert historical in text
    assert negated in text
    assert '<mark class="a-family"' in text
    assert '<mark class="a-possible">possible</mark> possible, uncertain' in text  # the legend
    problems = text.split('id="problems"')[1].split("</table>")[0]
    assert re.findall(r"<code>([A-Z0-9.]+)</code>", problems) == ["I10", "J18.9"]
    deid = text.split('id="deidentified"')[1].split("</div>")[0]
    assert "John Smith" not in deid
    assert "03/14/2026" not in deid
    assert deid.count('<mark class="phi"') == 2
    fhir = client.get(f"{page.url.path}/fhir")
    assert fhir.headers["content-type"] == "application/fhir+json"
    assert fhir.json()["entry"][0]["resource"]["resourceType"] == "DocumentReference"


def test_upload_a_txt_note_and_search_with_highlighted_snippets(service: Service) -> None:
    client = service.client
    web_login(service, "alice")
    patient, csrf = web_patient(service)
    note = b"Follow-up: asthma is controlled on an inhaler. No wheezing."
    uploaded = client.post(f"{patient}/notes", data={"csrf": csrf},
                           files={"file": ("visit.txt", note, "text/plain")})  # fmt: skip
    assert uploaded.status_code == 200
    assert '<mark class="a-present"' in uploaded.text
    binary = client.post(f"{patient}/notes", data={"csrf": csrf},
                         files={"file": ("x.txt", b"\x00\x01", "text/plain")})  # fmt: skip
    assert binary.status_code == 415
    assert "binary" in binary.text
    empty = client.post(f"{patient}/notes", data={"csrf": csrf, "text": "  "})
    assert empty.status_code == 422
    assert "the note is empty" in empty.text
    found = client.get(f"{patient}/notes", params={"q": "inhaler", "mode": "keyword"})
    hits = found.text.split('id="hits"')[1].split("</ol>")[0]
    assert "controlled on an <mark>inhaler</mark>." in hits
    missing = client.get(f"{patient}/notes", params={"q": "xylophone", "mode": "keyword"})
    assert "No note matches “xylophone”." in missing.text


def test_another_clinician_cannot_open_the_notes(service: Service) -> None:
    client = service.client
    web_login(service, "alice")
    patient, csrf = web_patient(service)
    note_url = client.post(f"{patient}/notes", data={"text": NOTE, "csrf": csrf}).url.path
    client.cookies.clear()
    web_login(service, "bob")
    for url in (f"{patient}/notes", note_url, f"{note_url}/fhir"):
        refused = client.get(url)
        assert refused.status_code == 403
        assert "Ada" not in refused.text
        assert "hypertension" not in refused.text
