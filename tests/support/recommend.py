"""Tiny longitudinal records for the recommender tests: sinusitis treated with amoxicillin
(or, for some, doxycycline), atrial fibrillation with warfarin, osteoarthritis with
ibuprofen or naproxen."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

from clinsight.data.longitudinal import Code, Event, EventKind, PatientRecord

__all__ = [
    "AMOXICILLIN",
    "ASPIRIN",
    "IBUPROFEN",
    "NAPROXEN",
    "WARFARIN",
    "records",
    "register_tiny",
    "treated",
]

SINUSITIS = Code("SNOMED", "36971009", "Sinusitis")
AFIB = Code("SNOMED", "49436004", "Atrial fibrillation")
ARTHRITIS = Code("SNOMED", "396275006", "Osteoarthritis")
AMOXICILLIN = Code("RxNorm", "723", "Amoxicillin")
DOXYCYCLINE = Code("RxNorm", "3640", "Doxycycline")
WARFARIN = Code("RxNorm", "11289", "Warfarin")
IBUPROFEN = Code("RxNorm", "5640", "Ibuprofen")
NAPROXEN = Code("RxNorm", "7258", "Naproxen")
ASPIRIN = Code("RxNorm", "1191", "Aspirin")
START = datetime(2015, 1, 1)


def treated(
    pid: str, plan: list[tuple[Code, Code, int]], *, sex: str = "female", born: int = 1960
) -> PatientRecord:
    """A patient with (condition, drug, day) episodes: the drug starts on the diagnosis day."""
    events = []
    for condition, drug, day in plan:
        when = START + timedelta(days=day)
        events.append(Event(EventKind.CONDITION, condition, when, when + timedelta(days=14)))
        events.append(Event(EventKind.DRUG, drug, when, when + timedelta(days=10), quantity=10))
    return PatientRecord(pid, birth_date=date(born, 1, 1), sex=sex, events=tuple(events))


def records() -> list[PatientRecord]:
    """Twelve training patients."""
    found = []
    for i in range(8):
        found.append(treated(f"s{i}", [(SINUSITIS, AMOXICILLIN, 0), (ARTHRITIS, IBUPROFEN, 100)]))
    for i in range(3):
        found.append(
            treated(
                f"d{i}",
                [(SINUSITIS, DOXYCYCLINE, 0), (AFIB, WARFARIN, 50), (ARTHRITIS, NAPROXEN, 100)],
                sex="male",
                born=1940,
            )
        )
    found.append(treated("w0", [(AFIB, WARFARIN, 0), (AFIB, WARFARIN, 40)], sex="male"))
    return found


def register_tiny(registry: Path, name: str = "tiny") -> None:
    """Register a user-kNN recommender trained on `records` (a new version each call)."""
    from clinsight.recommend.matrix import build_treatment_data
    from clinsight.recommend.models import make_recommender
    from clinsight.registry.recommendation import register_recommendation_model

    data = build_treatment_data(records(), min_patients=2)
    register_recommendation_model(
        registry, name=name, model=make_recommender("user_knn", neighbours=5.0).fit(data),
        data=data, min_support=2, metrics={"validation": {"ndcg_at_10": 0.5}},
        training={"data_sha256": "0" * 64}, intended_use="tests",
    )  # fmt: skip
