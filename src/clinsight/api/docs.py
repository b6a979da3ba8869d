"""The interactive API documentation, served offline.

Swagger UI's assets (5.x, for OpenAPI 3.1) come from the `swagger-ui-py` package
(Apache-2.0; Swagger UI's licence ships beside them) and are served by the service
itself, so the page renders in an air-gapped hospital and under the page's
content-security policy (`script-src 'self'`: the start-up script is a file, not an
inline block). `/static/api-docs.css` raises the contrast of Swagger UI's small text
to WCAG AA; deep links are off, since Swagger UI puts each deep link inside the
operation's toggle button (a link inside a button, which screen readers cannot reach).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS_PATH", "assets", "docs_router"]

DOCS_PATH = "/api/v1/docs"
ASSETS_PATH = f"{DOCS_PATH}/assets"
OPENAPI_PATH = "/api/v1/openapi.json"

_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Clinsight API documentation</title>
<link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">
<link rel="stylesheet" href="/static/api-docs.css">
</head>
<body>
<main id="swagger-ui" data-openapi="{OPENAPI_PATH}"></main>
<script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>
<script src="{DOCS_PATH}/init.js"></script>
</body>
</html>
"""

_INIT = """"use strict";
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi"),
    dom_id: "#swagger-ui",
    deepLinking: false,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
})();
"""


def assets() -> StaticFiles:
    """Swagger UI's files from the installed `swagger-ui-py` package."""
    import swagger_ui  # type: ignore[import-untyped]

    return StaticFiles(directory=Path(swagger_ui.__file__).parent / "static")


def docs_router() -> APIRouter:
    """The documentation page, its start-up script, and `/openapi.json` and `/docs`
    redirects to where the document lives."""
    router = APIRouter(include_in_schema=False)

    @router.get(DOCS_PATH, response_class=HTMLResponse)
    def docs() -> HTMLResponse:
        return HTMLResponse(_PAGE)

    @router.get(f"{DOCS_PATH}/init.js")
    def init_script() -> Response:
        return Response(_INIT, media_type="text/javascript")

    @router.get("/openapi.json")
    def openapi_redirect() -> RedirectResponse:
        return RedirectResponse(OPENAPI_PATH, status_code=308)

    @router.get("/docs")
    def docs_redirect() -> RedirectResponse:
        return RedirectResponse(DOCS_PATH, status_code=308)

    return router
