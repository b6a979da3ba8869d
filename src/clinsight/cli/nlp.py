"""`clinsight nlp`: clinical notes — annotate (entities, assertion, problem list, de-identified
text), classify (medical specialty), and the trained NER models of the note pipeline
(train-ner; listing and stage changes: `clinsight models ... ner`), and the names-and-places
NER beside the de-identification rules (train-deid-ner)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clinsight.cli.options import AsUserOpt
from clinsight.cli.output import console, fail
from clinsight.config import get_settings
from clinsight.nlp import NerBackend
from clinsight.registry.stages import Stage

if TYPE_CHECKING:
    from clinsight.nlp.pipeline import NoteAnnotation

__all__ = [
    "annotate",
    "app",
    "classify",
    "train_deid_ner",
    "train_ner",
]

app = typer.Typer(help="Clinical notes: entities, assertion, de-identification, NER models.")

FilesArg = Annotated[list[Path], typer.Argument(help="Plain-text note files (UTF-8).")]


def _read_notes(paths: list[Path]) -> list[str]:
    texts = []
    for path in paths:
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise fail(f"{path} does not exist; pass plain-text note files.") from exc
        except UnicodeDecodeError as exc:
            raise fail(f"{path} is not UTF-8 text; convert it (e.g. iconv) and retry.") from exc
        except IsADirectoryError as exc:
            raise fail(f"{path} is a folder; pass the note files inside it.") from exc
    return texts


def _annotation_dict(note: NoteAnnotation, deid: str | None) -> dict[str, object]:
    return {
        "ner_models": list(note.ner_models),
        "entities": [
            {"text": e.text, "label": e.label, "start": e.start, "end": e.end,
             "assertion": e.assertion, "section": e.section,
             "icd10": e.icd10.code if e.icd10 else None, "source": e.source}
            for e in note.entities
        ],
        "problem_list": [
            {"text": e.text, "assertion": e.assertion, "icd10": e.icd10.code if e.icd10 else None}
            for e in note.problem_list()
        ],
        "deidentified": deid,
    }  # fmt: skip


@app.command("annotate")
def annotate(
    files: FilesArg,
    deid: Annotated[bool, typer.Option(help="Also print the de-identified text.")] = False,
    key: Annotated[
        str, typer.Option(help="Per-patient secret that keeps surrogates consistent.")
    ] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    ner: Annotated[
        bool,
        typer.Option(
            "--ner/--no-ner",
            help="Use the NER models in production in the registry beside the vocabulary "
            "rules (default), or the rules only.",
        ),
    ] = True,
) -> None:
    """Find problems, medications, procedures and tests with their assertion and ICD-10-CM code."""
    from clinsight.nlp.deid import deidentify
    from clinsight.nlp.phi_ner import phi_ner
    from clinsight.nlp.phi_pretrained import pretrained_ner
    from clinsight.nlp.pipeline import annotate_notes, default_pipeline
    from clinsight.services.notes import note_pipeline

    texts = _read_notes(files)
    nlp = note_pipeline() if ner else default_pipeline()
    columns = (TextColumn("Annotating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("notes", total=len(texts))
        notes = list(
            annotate_notes(texts, nlp, progress=lambda done: progress.update(task, completed=done))
        )
    if not as_json:
        used = ", ".join(notes[0].ner_models) if notes and notes[0].ner_models else None
        console.print(f"[bold]NER models:[/] {used or 'none (vocabulary rules only)'}")
    for path, note in zip(files, notes, strict=True):
        clean = (
            deidentify(note.text, key, ner=phi_ner(), pretrained=pretrained_ner()).text
            if deid
            else None
        )
        if as_json:
            console.print_json(json.dumps({"file": str(path)} | _annotation_dict(note, clean)))
            continue
        table = Table(title=f"{path.name}: {len(note.entities)} entities")
        for column in ("text", "label", "assertion", "section", "ICD-10-CM", "found by"):
            table.add_column(column)
        for e in note.entities:
            code = f"{e.icd10.code} {e.icd10.description}" if e.icd10 else ""
            table.add_row(e.text, e.label, e.assertion, e.section or "", code, e.source)
        console.print(table)
        problems = ", ".join(e.text for e in note.problem_list()) or "none found"
        console.print(f"[bold]Problem list:[/] {problems}")
        if clean is not None:
            console.print("[bold]De-identified:[/]", clean, highlight=False, markup=False)


@app.command("classify")
def classify(
    files: FilesArg,
    kind: Annotated[
        str, typer.Option(help="tfidf (fast) or embedding (MiniLM sentence embeddings).")
    ] = "tfidf",
    top: Annotated[int, typer.Option(help="How many specialties to list.")] = 3,
) -> None:
    """Suggest the medical specialty of each note (trained on MTSamples on first use)."""
    from clinsight.nlp.classify import classify_note, load_or_train_classifier

    if kind not in ("tfidf", "embedding"):
        raise fail(f"Unknown --kind {kind!r}; use tfidf or embedding.")
    model_kind: Literal["tfidf", "embedding"] = "tfidf" if kind == "tfidf" else "embedding"
    texts = _read_notes(files)
    with console.status("Loading the specialty model (trained once on first use)…"):
        classifier = load_or_train_classifier(model_kind)
    for path, text in zip(files, texts, strict=True):
        ranked = classify_note(text, classifier, top=top)
        listing = ", ".join(f"{p.specialty} ({p.probability:.0%})" for p in ranked)
        console.print(f"{path.name}: {listing}")


def _f1(scores: dict[str, Any]) -> str:
    f1 = scores["f1"]
    return f"{f1['value']:.3f} ({f1['low']:.3f}–{f1['high']:.3f})"


@app.command("train-deid-ner")
def train_deid_ner() -> None:
    """Train the de-identification NER on synthetic sentences (minutes on one core) and cache
    it in HOME/models, where `annotate --deid` and the note service find it."""
    from clinsight.nlp.phi_ner import PHI_NER_NAME, phi_ner

    folder = get_settings().home / "models" / PHI_NER_NAME
    cached = (folder / "config.cfg").is_file()
    nlp = phi_ner(folder, train=True)
    assert nlp is not None
    run = nlp.meta.get("training", {})
    done = "Already trained" if cached else "Trained"
    console.print(
        f"{done}: {PHI_NER_NAME} ({nlp.meta.get('description')}; epoch {run.get('kept_epoch')} "
        f"kept, validation F1 {run.get('devel_f1')}) in {folder}"
    )


@app.command("train-ner")
def train_ner(
    corpus: Annotated[
        str, typer.Option(help="ncbi_disease or bc5cdr (CoNLL files in DATA_DIR/nlp/CORPUS/conll).")
    ],
    backend: Annotated[
        str, typer.Option(help="minilm (fine-tuned MiniLM-L6, best) or spacy (CNN, faster).")
    ] = NerBackend.MINILM.value,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Most epochs (default: minilm 8, spacy 12).")
    ] = None,
    time_budget: Annotated[
        float | None, typer.Option(min=0, help="Stop training after this many minutes.")
    ] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="PyTorch threads (default: CLINSIGHT_THREADS).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Registry name (default: CORPUS-BACKEND).")
    ] = None,
    train_subset: Annotated[
        int | None, typer.Option(min=1, help="Train on only this many sentences (quick trials).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed (runs are reproducible).")] = 0,
    promote: Annotated[
        bool, typer.Option("--promote", help="Put the new version into production (audited).")
    ] = False,
    as_user: AsUserOpt = None,
) -> None:
    """Train an NER model (best devel epoch kept), score its test split, register it with a card."""
    import torch

    from clinsight.services.models import promote_trained
    from clinsight.services.ner_training import RECIPES, load_ner_splits, train_and_register_ner

    if backend not in tuple(NerBackend):
        raise fail(f"Unknown --backend {backend!r}; use {' or '.join(NerBackend)}.")
    settings = get_settings()
    if threads or settings.threads:
        torch.set_num_threads(threads or settings.threads)
    splits = load_ner_splits(corpus, train_subset=train_subset)
    planned = epochs or RECIPES[NerBackend(backend)]["epochs"]
    label = f"{corpus} ({backend})"
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task(f"Training {label}", total=planned)

        def on_epoch(epoch: int, loss: float, devel_f1: float | None) -> None:
            scored = "" if devel_f1 is None else f" · devel F1 {devel_f1:.4f}"
            progress.update(
                task, completed=epoch + 1,
                description=f"Training {label} · epoch {epoch + 1} · loss {loss:.4g}{scored}",
            )  # fmt: skip

        version = train_and_register_ner(
            settings.resolved_registry_dir, splits, backend, name=name, epochs=epochs,
            time_budget_s=None if time_budget is None else time_budget * 60, seed=seed,
            progress=on_epoch,
        )  # fmt: skip
    if promote:
        version = promote_trained(settings, version, as_user)
    run = version.training
    console.print(
        f"Trained {run['epochs_run']} epochs on {run['train_sentences']} sentences in "
        f"{run['train_seconds'] / 60:.1f} min (kept epoch {run['kept_epoch']}, stopped by "
        f"{run['stopped_by'] or 'the epoch limit'})."
    )
    table = Table(title=f"{version.name} v{version.version}: strict entity F1 (95% CI)")
    for column in ("label", "devel F1", "test precision", "test recall", "test F1"):
        table.add_column(column)
    devel, test = version.metrics["devel"], version.metrics["test"]
    for key, scores in test.items():
        shown = devel.get(key)
        table.add_row(key, _f1(shown) if shown else "n/a", f"{scores['precision']:.3f}",
                      f"{scores['recall']:.3f}", _f1(scores))  # fmt: skip
    console.print(table)
    console.print(
        f"[green]Registered[/] {version.name} v{version.version} (stage {version.stage}); "
        f"card: {version.card_path}"
    )
    if version.stage is not Stage.PRODUCTION:
        console.print(f"Use it in the note pipeline: clinsight models promote ner {version.name} "
                      f"{version.version}")  # fmt: skip
