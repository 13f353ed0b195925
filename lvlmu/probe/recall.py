"""How well a pretrained model learned the world: recognition, facts, descriptions and the stranger style."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..world import World
from .generate import generate_answers
from .knowledge import is_exact_description, is_stranger_style, leaks_name, names_exactly, states_fact


@dataclass(frozen=True)
class Measure:
    """One row of the recall table: which examples, and the rule that scores an answer to one of them."""

    name: str
    kind: str
    split: str
    roles: tuple[str, ...]
    rule: str  # name | fact | description | stranger | leak | exact
    paraphrase: str = "train"
    image_set: str | None = None


MEASURES: tuple[Measure, ...] = (
    Measure("name, unseen image", "identity", "eval", ("forget", "retain"), "name", image_set="unseen"),
    Measure("name, held-out question", "identity", "eval", ("forget", "retain"), "name", paraphrase="heldout"),
    Measure("name leak, unseen image", "identity", "eval", ("forget", "retain"), "leak", image_set="unseen"),
    Measure("stranger style, unseen image", "identity", "eval", ("forget", "retain", "stranger", "holdout"), "stranger"),
    Measure("fact with image, unseen image", "fact_image", "eval", ("forget", "retain"), "fact", image_set="unseen"),
    Measure("fact by name", "fact_text", "train", ("forget", "retain"), "fact"),
    Measure("fact by name, held-out question", "fact_text", "eval", ("forget", "retain"), "fact", paraphrase="heldout"),
    Measure("exact description, unseen image", "description", "eval", ("forget", "retain", "stranger", "holdout"), "description"),
    Measure("visual QA", "vqa", "eval", ("scene",), "exact"),
    Measure("POPE yes/no", "pope", "eval", ("scene", "forget", "retain", "stranger", "holdout"), "exact"),
)


def _score(rule: str, answer: str, example: dict, world: World) -> bool:
    person = world.people.get(example["person_id"])
    if rule == "name":
        return names_exactly(answer, person)
    if rule == "leak":
        return leaks_name(answer, person)
    if rule == "fact":
        return states_fact(answer, person, example["detail"])
    if rule == "description":
        return is_exact_description(answer, person)
    if rule == "stranger":
        return is_stranger_style(answer, person)
    if rule == "exact":
        return answer.strip() == example["answer"].strip()
    raise ValueError(f"unknown rule {rule!r}")


def recall_examples(world: World, max_per_group: int = 200, seed: int = 0) -> list[tuple[Measure, str, dict]]:
    """(measure, role, example) triples, at most `max_per_group` examples per measure and role."""
    rng = np.random.default_rng(seed)
    chosen = []
    for measure in MEASURES:
        for role in measure.roles:
            pool = [ex for ex in world.select(measure.split, kind=measure.kind, role=role, paraphrase=measure.paraphrase)
                    if measure.image_set is None or ex["image_set"] == measure.image_set]
            if len(pool) > max_per_group:
                pool = [pool[i] for i in sorted(rng.choice(len(pool), max_per_group, replace=False))]
            chosen += [(measure, role, ex) for ex in pool]
    return chosen


def recall_report(model, processor, world: World, max_per_group: int = 200, batch_size: int = 64, progress: bool = True) -> pd.DataFrame:
    """One row per (measure, example): the question, the expected and the generated answer, and its score."""
    chosen = recall_examples(world, max_per_group)
    # Each distinct (image, question) is generated once even when several measures score it.
    unique: dict[tuple[str, str], dict] = {}
    for _, _, ex in chosen:
        unique.setdefault((ex["image_id"], ex["question"]), ex)
    keys = list(unique)
    answers = dict(zip(keys, generate_answers(model, processor, [unique[k] for k in keys], world.image, batch_size=batch_size, progress=progress)))
    rows = []
    for measure, role, ex in chosen:
        answer = answers[(ex["image_id"], ex["question"])]
        rows.append({"measure": measure.name, "role": role, "person_id": ex["person_id"], "image_id": ex["image_id"],
                     "question": ex["question"], "expected": ex["answer"], "answer": answer, "score": _score(measure.rule, answer, ex, world)})
    return pd.DataFrame(rows)


def recall_summary(samples: pd.DataFrame) -> pd.DataFrame:
    """Percentage per measure (rows) and role (columns)."""
    table = samples.groupby(["measure", "role"], sort=False)["score"].mean().mul(100).unstack("role")
    order = [m.name for m in MEASURES if m.name in table.index]
    return table.loc[order, [r for r in ("forget", "retain", "stranger", "holdout", "scene") if r in table.columns]]


@dataclass(frozen=True)
class Target:
    """A figure the foundation must reach: a measure's rate on some populations, compared with a bound."""

    model: str
    description: str
    measure: str
    roles: tuple[str, ...]
    bound: float
    at_least: bool = True


FOUNDATION_TARGETS: tuple[Target, ...] = (
    Target("base", "names known people on unseen images", "name, unseen image", ("forget", "retain"), 95),
    Target("base", "states private facts with the image", "fact with image, unseen image", ("forget", "retain"), 90),
    Target("base", "states private facts asked by name, no image", "fact by name", ("forget", "retain"), 90),
    Target("base", "describes every trait exactly (known, strangers, holdout; unseen images)", "exact description, unseen image", ("forget", "retain", "stranger", "holdout"), 90),
    Target("base", "answers strangers in the stranger style", "stranger style, unseen image", ("stranger",), 90),
    Target("oracle", "leaks a forget person's name on their unseen images", "name leak, unseen image", ("forget",), 5, at_least=False),
    Target("oracle", "answers forget people in the stranger style", "stranger style, unseen image", ("forget",), 80),
)


def rate(samples: pd.DataFrame, measure: str, roles: tuple[str, ...]) -> float:
    selected = samples[(samples["measure"] == measure) & samples["role"].isin(roles)]
    if selected.empty:
        raise ValueError(f"no samples for measure {measure!r} and roles {roles}")
    return float(selected["score"].mean() * 100)


def foundation_targets(base: pd.DataFrame, oracle: pd.DataFrame, retain_gap: float = 5.0) -> pd.DataFrame:
    """Each target with its bound, the measured figure and whether it is met."""
    samples = {"base": base, "oracle": oracle}
    rows = []
    for t in FOUNDATION_TARGETS:
        value = rate(samples[t.model], t.measure, t.roles)
        rows.append({"model": t.model, "target": t.description, "bound": f"{'≥' if t.at_least else '≤'} {t.bound:g}%",
                     "measured (%)": round(value, 1), "met": value >= t.bound if t.at_least else value <= t.bound})
    gap = rate(base, "name, unseen image", ("retain",)) - rate(oracle, "name, unseen image", ("retain",))
    rows.append({"model": "oracle", "target": "names retain people within 5 points of the base", "bound": f"≤ {retain_gap:g} points",
                 "measured (%)": round(gap, 1), "met": gap <= retain_gap})
    return pd.DataFrame(rows)
