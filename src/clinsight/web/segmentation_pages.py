"""Web pages for segmentation: segment a study or an upload from the patient page, the result page
(the outline over the image, a no-script toggle to the plain image, the areas, the
intended-use verdict, the review buttons) and the DICOM SEG download."""

from __future__ import annotations

import base64
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response

from clinsight.api.uploads import read_upload
from clinsight.services.patient_record import patient_header
from clinsight.services.segmentation import (
    review,
    segment_study,
    segment_upload,
    segmentation_dicom_seg,
    segmentation_pictures,
)
from clinsight.store.repositories import StoreContext
from clinsight.web.pages import Csrf, Db, State, guard_page, redirect_to, render_page
from clinsight.web.session import WebSession, check_csrf

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@router.post("/studies/{study_id}/segmentations")
def segment(
    request: Request,
    state: State,
    session: Db,
    study_id: str,
    csrf: Csrf,
    model: Annotated[str, Form(max_length=64)],
) -> Response:
    """Segment a study with the named production segmentation model, then show the result."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        check_csrf(state, web, csrf)
        record = segment_study(ctx, state.models.segmentation(model), study_id, state.settings)
        return redirect_to(f"/segmentations/{record.id}", web)

    return guard_page(request, state, session, page)


@router.post("/patients/{patient_id}/segmentations")
def upload_and_segment(
    request: Request,
    state: State,
    session: Db,
    patient_id: str,
    csrf: Csrf,
    model: Annotated[str, Form(max_length=64)],
    file: Annotated[UploadFile, File()],
    confirm_patient_mismatch: Annotated[bool, Form()] = False,
) -> Response:
    """Store the uploaded image as a study of the patient, segment it with the chosen
    production model, and show the result; a wrong file or an unknown model gets an error
    page saying why (nothing is stored)."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        check_csrf(state, web, csrf)
        predictor = state.models.segmentation(model)
        try:
            content = read_upload(file, state.settings.upload_max_bytes)
        except Exception as exc:  # the API's 413/415 become a message on the page
            return render_page(
                request, "error.html", web, 415, message=str(getattr(exc, "detail", exc))
            )
        record = segment_upload(ctx, predictor, patient_id, content, state.settings,
                                confirm_patient_mismatch=confirm_patient_mismatch)  # fmt: skip
        return redirect_to(f"/segmentations/{record.id}", web)

    return guard_page(request, state, session, page)


@router.get("/segmentations/{segmentation_id}")
def result(request: Request, state: State, session: Db, segmentation_id: str) -> Response:
    """The segmentation: outline over the image, areas, verdict, review, DICOM SEG link."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        pictures = segmentation_pictures(ctx, segmentation_id)
        return render_page(
            request, "segmentation.html", web, seg=pictures.record,
            header=patient_header(ctx, pictures.record.patient_id),
            outline=_data_uri(pictures.outline), plain=_data_uri(pictures.plain),
            saved=request.query_params.get("saved"),
        )  # fmt: skip

    return guard_page(request, state, session, page)


@router.post("/segmentations/{segmentation_id}/review")
def review_page(
    request: Request,
    state: State,
    session: Db,
    segmentation_id: str,
    csrf: Csrf,
    verdict: Annotated[Literal["agree", "disagree"], Form()],
) -> Response:
    """Record the clinician's review and return to the result."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        check_csrf(state, web, csrf)
        review(ctx, segmentation_id, verdict)
        return redirect_to(f"/segmentations/{segmentation_id}?saved={verdict}", web)

    return guard_page(request, state, session, page)


@router.get("/segmentations/{segmentation_id}/dicom-seg")
def dicom_seg(request: Request, state: State, session: Db, segmentation_id: str) -> Response:
    """The DICOM SEG as a download (an error page for a PNG/JPEG input)."""

    def page(web: WebSession, ctx: StoreContext) -> Response:
        del web
        headers = {
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="seg-{segmentation_id[:8]}.dcm"',
        }
        return Response(segmentation_dicom_seg(ctx, segmentation_id),
                        media_type="application/dicom", headers=headers)  # fmt: skip

    return guard_page(request, state, session, page)
