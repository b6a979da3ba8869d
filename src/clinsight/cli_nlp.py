"""CLI commands for clinical notes: annotate (entities, assertion, problem list, de-identified
text) and classify (medical specialty), wired into `cli.py` by `register_nlp_commands`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from clinsight.cli_output import console, fail
from clinsight.errors import ClinsightError
from clinsight.nlp.pipeline import NoteAnnotation

__all__ = ["annotate", "classify", "register_nlp_commands"]

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
        "entities": [
            {"text": e.text, "label": e.label, "start": e.start, "end": e.end,
             "assertion": e.assertion, "section": e.section,
             "icd10": e.icd10.code if e.icd10 else None}
            for e in note.entities
        ],
        "problem_list": [
            {"text": e.text, "assertion": e.assertion, "icd10": e.icd10.code if e.icd10 else None}
            for e in note.problem_list()
        ],
        "deidentified": deid,
    }  # fmt: skip


def annotate(
    files: FilesArg,
    deid: Annotated[bool, typer.Option(help="Also print the de-identified text.")] = False,
    key: Annotated[
        str, typer.Option(help="Per-patient secret that keeps surrogates consistent.")
    ] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Find problems, medications, procedures and tests with their assertion and ICD-10-CM code."""
    from clinsight.nlp.deid import deidentify
    from clinsight.nlp.pipeline import annotate_notes

    texts = _read_notes(files)
    columns = (TextColumn("Annotating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("notes", total=len(texts))
        notes = list(
            annotate_notes(texts, progress=lambda done: progress.update(task, completed=done))
        )
    for path, note in zip(files, notes, strict=True):
        clean = deidentify(note.text, key).text if deid else None
        if as_json:
            console.print_json(json.dumps({"file": str(path)} | _annotation_dict(note, clean)))
            continue
        table = Table(title=f"{path.name}: {len(note.entities)} entities")
        for column in ("text", "label", "assertion", "section", "ICD-10-CM"):
            table.add_column(column)
        for e in note.entities:
            code = f"{e.icd10.code} {e.icd10.description}" if e.icd10 else ""
            table.add_row(e.text, e.label, e.assertion, e.section or "", code)
        console.print(table)
        problems = ", ".join(e.text for e in note.problem_list()) or "none found"
        console.print(f"[bold]Problem list:[/] {problems}")
        if clean is not None:
            console.print("[bold]De-identified:[/]", clean, highlight=False, markup=False)


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
    try:
        with console.status("Loading the specialty model (trained once on first use)…"):
            classifier = load_or_train_classifier(model_kind)
        for path, text in zip(files, texts, strict=True):
            ranked = classify_note(text, classifier, top=top)
            listing = ", ".join(f"{p.specialty} ({p.probability:.0%})" for p in ranked)
            console.print(f"{path.name}: {listing}")
    except ClinsightError as exc:
        raise fail(exc) from exc


def register_nlp_commands(app: typer.Typer) -> None:
    """Add the `nlp` command group to the main CLI."""
    group = typer.Typer(help="Clinical notes: entities, assertion, de-identification.")
    group.command("annotate")(annotate)
    group.command("classify")(classify)
    app.add_typer(group, name="nlp")
