"""The one exception tree of Clinsight.

Domain code raises these; only the API layer maps them to HTTP.

    ClinsightError
    ├── ConfigurationError       settings are missing or unsafe
    ├── DataError                input data is missing, corrupt or malformed
    │   ├── DataNotFoundError        a dataset file is not in the data directory
    │   ├── ChecksumError            a file's checksum does not match the official one
    │   ├── InvalidInputError        an assessment input its feature cannot take (by field)
    │   │   └── ImplausibleInputError    an input lies outside its feature's plausible range
    │   ├── PatientMismatchError     a DICOM header names another patient than the chart
    │   ├── OutOfPopulationError     an input lies outside the population a model was made for
    │   └── UnsupportedImageError    an image (or DICOM object) cannot be used
    ├── ModelError               a model cannot be built, trained or run
    ├── RegistryError            the model registry cannot satisfy a request
    │   ├── ModelNotFoundError       no model with that name, version or stage
    │   └── IntegrityError           an artifact's sha256 does not match its record
    ├── StoreError               the persistent store cannot satisfy a request
    │   ├── RecordNotFoundError      no record with that id
    │   ├── DuplicateRecordError     a value that must be unique exists already
    │   └── DecryptionError          a ciphertext cannot be decrypted (key missing or data altered)
    └── AccessError              the caller may not do what they asked
        ├── AuthenticationError      credentials or token missing, wrong, expired or revoked
        │   └── RefreshReuseError        a used refresh token came back; its session is revoked
        └── PermissionDeniedError    authenticated, but the access policy denies the action
"""

from __future__ import annotations

__all__ = [
    "AccessError",
    "AuthenticationError",
    "ChecksumError",
    "ClinsightError",
    "ConfigurationError",
    "DataError",
    "DataNotFoundError",
    "DecryptionError",
    "DuplicateRecordError",
    "ImplausibleInputError",
    "IntegrityError",
    "InvalidInputError",
    "ModelError",
    "ModelNotFoundError",
    "OutOfPopulationError",
    "PatientMismatchError",
    "PermissionDeniedError",
    "RecordNotFoundError",
    "RefreshReuseError",
    "RegistryError",
    "StoreError",
    "UnsupportedImageError",
]


class ClinsightError(Exception):
    """Base class of every error Clinsight raises on purpose."""


class ConfigurationError(ClinsightError):
    """Settings are missing, inconsistent or unsafe for the chosen environment."""


class DataError(ClinsightError):
    """Input data is missing, corrupt or malformed."""


class DataNotFoundError(DataError):
    """A dataset file is not where Clinsight looks for it."""


class ChecksumError(DataError):
    """A file's checksum does not match the published one."""


class InvalidInputError(DataError):
    """An assessment input cannot be read for its feature (not a number, not 0/1, not one of
    its categories); nothing was scored.

    ``fields`` maps each offending feature to its message in words (e.g. ``Glucose must be
    a number (mg/dL); 'high' was entered``), so a form can show it beside the field.
    """

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = dict(fields)
        super().__init__(
            "; ".join(self.fields.values()) + "; correct the value or leave it empty (missing)."
        )


class PatientMismatchError(DataError):
    """A DICOM file's patient attributes contradict the chart it is uploaded to; nothing was
    stored. ``mismatches`` maps each field (name, patient_id, birth_date, sex) to the
    disagreement in words; the upload needs the clinician's explicit confirmation.
    """

    def __init__(self, mismatches: dict[str, str]) -> None:
        self.mismatches = dict(mismatches)
        fields = ", ".join(field.replace("_", " ") for field in self.mismatches)
        # The message names the fields only (no PHI); the values are in `mismatches`.
        super().__init__(
            f"the DICOM file does not match this patient's chart ({fields}; see errors). "
            "Check that the image belongs to this patient; to file it here anyway, confirm "
            "the mismatch (API: confirm_patient_mismatch=true)."
        )


class ImplausibleInputError(InvalidInputError):
    """An assessment input lies outside its feature's plausible range; nothing was scored
    (e.g. ``Glucose 2000 mg/dL is outside the plausible range 10–1500 mg/dL``)."""


class OutOfPopulationError(DataError):
    """A patient lies outside the population a model was trained on (e.g. an age never seen
    in training), so the model refuses rather than extrapolate; ``fields`` as for
    `ImplausibleInputError`."""

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = dict(fields)
        super().__init__(
            "; ".join(self.fields.values())
            + "; the model was not made for such patients, so no risk is given."
        )


class UnsupportedImageError(DataError):
    """An image file or DICOM object cannot be turned into pixels for a model."""


class ModelError(ClinsightError):
    """A model cannot be built, trained, exported or run."""


class RegistryError(ClinsightError):
    """The model registry cannot satisfy a request."""


class ModelNotFoundError(RegistryError):
    """No registered model matches the requested name, version or stage."""


class IntegrityError(RegistryError):
    """A registered artifact no longer matches the sha256 recorded for it."""


class StoreError(ClinsightError):
    """The persistent store (database, encrypted files, key ring) cannot satisfy a request."""


class RecordNotFoundError(StoreError):
    """No record with the requested id exists."""


class DuplicateRecordError(StoreError):
    """A value that must be unique (a username, a patient MRN) is already stored."""


class DecryptionError(StoreError):
    """A ciphertext cannot be decrypted: its key is not in the key ring or the data was altered."""


class AccessError(ClinsightError):
    """The caller may not do what they asked."""


class AuthenticationError(AccessError):
    """Credentials or a token are missing, wrong, expired or revoked."""


class RefreshReuseError(AuthenticationError):
    """A refresh token was presented again, so it may be stolen: its session is revoked.

    The revocation and its audit entry must be committed although the request fails.
    """


class PermissionDeniedError(AccessError):
    """The caller is authenticated, but the access policy denies the action; `help_url`
    is the page where the caller can act on the refusal (e.g. emergency access)."""

    def __init__(self, message: str, *, help_url: str | None = None) -> None:
        super().__init__(message)
        self.help_url = help_url
