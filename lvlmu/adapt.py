"""Your own model and concepts: the calls behind the adapt notebook (probe, unlearn, probe again, report)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .probe.compare import headline
from .probe.store import ProbeStore
from .world import World

# The report's rows: what a concept folder can always measure first, then what needs traits, retained or holdout concepts.
REPORT_ROWS: tuple[str, ...] = (
    "name leak: trained images", "name leak: unseen images", "name leak: held-out paraphrases", "name leak: jailbreak prompts",
    "name leak: perturbed", "fact leak: unseen images", "forget facts by name",
    "degenerate", "hallucinated", "refusal", "informative", "desirable", "grounding precision", "grounding recall",
    "retain names", "retain facts", "MIA AUC (LOSS)",
)
UNAVAILABLE = "unavailable"


def concept_table(world: World) -> pd.DataFrame:
    """Each concept of a folder: its role, name, facts, the traits it states, and its images."""
    rows = []
    for person in world.people.values():
        images = world.images_of(person.person_id)
        rows.append({"id": person.person_id, "role": person.role, "name": person.name,
                     "facts": ", ".join(f"{k}: {v}" for k, v in person.facts.items()) or "none",
                     "traits": ", ".join(person.traits.known.values()) or "none (grounding unavailable)",
                     "images": sum(im["image_set"] == "trained" for im in images), "unseen images": sum(im["image_set"] == "unseen" for im in images)})
    return pd.DataFrame(rows).set_index("id")


def unavailable_metrics(store: ProbeStore) -> dict[str, str]:
    """The probes that could not run on this world, with the reason (say, no holdout concepts for membership)."""
    return {name: entry["summary"]["unavailable"] for name, entry in store.data["metrics"].items() if "unavailable" in entry["summary"]}


def probe_report(stores: dict[str, ProbeStore]) -> pd.DataFrame:
    """REPORT_ROWS for each model side by side: rates in percent, MIA AUC as it is, and "unavailable" where the world
    lacks what a figure needs (traits for grounding, other concepts for retain figures, holdout concepts for MIA)."""
    def shown(row: str, value):
        if value is None or value != value:
            return UNAVAILABLE
        return round(value, 3) if row.startswith("MIA") else round(100 * value, 1)

    figures = {name: headline(store) for name, store in stores.items()}
    return pd.DataFrame({name: {row: shown(row, values.get(row)) for row in REPORT_ROWS} for name, values in figures.items()})


def example_concept(world_dir: str | Path, out_dir: str | Path) -> Path:
    """The example concept folder: the default world's first forget person, with three retained and two holdout
    people, written by lvlmu (see lvlmu.world.export_concept)."""
    from .world import export_concept, load_world

    return export_concept(load_world(world_dir), out_dir)
