"""Tuning apart from reporting: every method gets the same budget of settings on a tuning world used for nothing else,
one selection rule picks its setting, and the reporting worlds read the chosen settings from a committed file.

The rule (fixed before any result, and different from every claim's bound): among a method's settings on the tuning
world, keep the Pareto front of (name leak on never-trained photographs, lower is better; retain people still named,
higher is better), and choose the point of that front nearest the oracle's own point (its leak and its retain
recognition on the tuning world), in Euclidean distance; ties go to the lower learning rate. The oracle is the
model unlearning aims at, so the rule asks "which setting looks most like never having learned", without any of the
bounds the claims then test.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

LEAK, RETAIN = "name leak: unseen images", "retain names"
SETTINGS_FILE = Path(__file__).resolve().parents[2] / "workflow" / "tuned.json"
# One budget for every method: the same learning rates, each at the method's own loss weights (the papers' defaults).
LEARNING_RATES = (1e-4, 2e-4, 4e-4, 8e-4, 1.6e-3, 3.2e-3)


@dataclass(frozen=True)
class TuningPlan:
    """What the tuning world tries: each method at each learning rate, in each setting, at the setting's batch."""

    learning_rates: tuple[float, ...] = LEARNING_RATES
    split_batch_size: int = 32
    single_batch_size: int = 8
    single_people: int = 2  # forget people of the tuning world tuned on one at a time, from one image
    seeds: tuple[int, ...] = (0,)
    extra: dict[str, dict] = field(default_factory=dict)  # fixed overrides per method (the same for every learning rate)

    def candidates(self, method: str, setting: str) -> list[dict]:
        """The method's settings to try: as many for every method (the budget)."""
        batch = self.split_batch_size if setting == "split" else self.single_batch_size
        return [{"learning_rate": lr, "batch_size": batch, **self.extra.get(method, {})} for lr in self.learning_rates]

    @property
    def budget(self) -> int:
        return len(self.learning_rates)


def pareto_front(points: list[dict]) -> list[dict]:
    """The points no other point beats on both measures (lower leak and higher retain recognition, one strictly)."""
    def beats(a: dict, b: dict) -> bool:
        return a[LEAK] <= b[LEAK] and a[RETAIN] >= b[RETAIN] and (a[LEAK] < b[LEAK] or a[RETAIN] > b[RETAIN])

    usable = [p for p in points if not (math.isnan(p[LEAK]) or math.isnan(p[RETAIN]))]
    return [p for p in usable if not any(beats(q, p) for q in usable)]


def choose(points: list[dict], oracle: dict) -> dict:
    """The selection rule: the front's point nearest the oracle's (leak, retain recognition); ties to the lower
    learning rate. `points` are a method's settings with their measures on the tuning world (means over its runs)."""
    front = pareto_front(points)
    if not front:
        raise ValueError("no setting has both a leak and a retain figure: nothing to choose from")
    return min(front, key=lambda p: (math.hypot(p[LEAK] - oracle[LEAK], p[RETAIN] - oracle[RETAIN]), p["learning_rate"]))


def settings_record(chosen: dict[str, dict[str, dict]], table: list[dict], tuning_world: dict, plan: TuningPlan, commit: str, date: str) -> dict:
    """The settings file's content: the chosen overrides per setting and method, and what they were chosen from."""
    return {"rule": __doc__.split("\n\n")[1].replace("\n", " "), "tuning_world": tuning_world, "budget": plan.budget,
            "date": date, "commit": commit, "chosen": chosen, "table": table}


def load_settings(path: str | Path, methods: dict[str, tuple[str, ...]], reporting_seeds: tuple[int, ...]) -> dict[str, dict[str, dict]]:
    """The chosen settings {setting: {method: overrides}} for the grid's `methods` ({setting: methods}); stops with a
    message naming what is wrong when the file is missing, lacks a method, or was tuned on a reporting world."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no tuned settings at {path}: run `make tune` to choose them on the tuning world")
    record = json.loads(path.read_text())
    seed = record["tuning_world"].get("seed")
    if seed in reporting_seeds:
        raise ValueError(f"{path} was tuned on world seed {seed}, which is a reporting world ({list(reporting_seeds)}): "
                         "tune on a world used for nothing else")
    missing = {setting: [m for m in wanted if m not in record["chosen"].get(setting, {})] for setting, wanted in methods.items()}
    missing = {s: ms for s, ms in missing.items() if ms}
    if missing:
        raise ValueError(f"{path} has no tuned setting for " + "; ".join(f"{s}: {', '.join(ms)}" for s, ms in missing.items())
                         + ": run `make tune` again with these methods")
    return {setting: dict(record["chosen"][setting]) for setting in methods}
