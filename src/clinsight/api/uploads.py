"""Reading uploaded files over HTTP, shared by the API routes and the web pages: the size and
format are refused up front (413, 415), before any work is spent on the content."""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Query, UploadFile

from clinsight.data.source import sniff_image_format
from clinsight.errors import UnsupportedImageError
from clinsight.store.notes import MAX_NOTE_CHARS

__all__ = ["FHIR_JSON", "MAX_UPLOAD_BYTES", "ConfirmMismatch", "read_text_upload", "read_upload"]

FHIR_JSON = "application/fhir+json"
MAX_UPLOAD_BYTES = 4 * MAX_NOTE_CHARS  # UTF-8 needs at most 4 bytes a character
ConfirmMismatch = Annotated[
    bool,
    Query(
        description="File a DICOM whose header names another patient (name, ID, birth date "
        "or sex) than the chart anyway; without it such an upload is refused with 409 and the "
        "mismatching fields. A confirmed mismatch is recorded with the study and audited."
    ),
]


def read_upload(file: UploadFile, max_bytes: int) -> bytes:
    """The uploaded bytes, refusing oversize (413) and unknown formats (415) up front.

    Raises:
        HTTPException: 413 over `max_bytes`, 415 not PNG, JPEG or DICOM.
    """
    content = file.file.read(max_bytes + 1)
    if len(content) > max_bytes:
        raise HTTPException(
            413, f"the upload is larger than {max_bytes} bytes; send a smaller image"
        )
    try:
        sniff_image_format(content[:132])
    except UnsupportedImageError as exc:
        raise HTTPException(415, f"{exc}") from exc
    return content


def read_text_upload(file: UploadFile) -> str:
    """The text of an uploaded plain-text note, refusing oversize (413) and non-text (415).

    Raises:
        HTTPException: 413 larger than the note limit, 415 not UTF-8 text.
    """
    content = file.file.read(MAX_UPLOAD_BYTES + 1)
    if len(content) > MAX_UPLOAD_BYTES:
        raise HTTPException(413, f"the file is larger than {MAX_UPLOAD_BYTES} bytes; split it")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise HTTPException(415, "the file is not UTF-8 text; upload a plain .txt note") from None
    if "\x00" in text:
        raise HTTPException(415, "the file is binary, not a plain-text note; upload a .txt")
    return text
