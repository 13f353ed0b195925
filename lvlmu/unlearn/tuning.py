"""Tuning apart from reporting: every method gets the same budget of settings on a tuning world used for nothing else,
one selection rule picks its setting, and the reporting worlds read the chosen settings from a committed file.

The rule (fixed before any result, and different from every claim's bound): among a method's settings on the tuning
world, keep the Pareto front of (name leak on never-trained photographs, lower is better; retain people still named,
higher is better), and choose the point of that front nearest the oracle's own point (its leak and its retain
recognition on the tuning world, on the same people), in Euclidean distance; ties go to the lower learning rate.
The oracle is the model unlearning aims at, so the rule asks "which setting looks most like never having learned",
without any of the bounds the claims then test.

The budget is the same for every method and setting: the learning rates of `TuningPlan`, at the setting's batch and
with no augmentation; every other argument stays at the method's default (lvlmu.unlearn.run.UnlearnConfig).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from .grid import UnlearnGrid, UnlearnRun

TUNING_VERSION = 4  # the selection rule's code (see lvlmu.versions)
LEAK, RETAIN = "name leak: unseen images", "retain names"
SETTINGS_FILE = "workflow/tuned.json"  # relative to the repository
# One budget for every method: a factor-2 ladder of learning rates, each at the method's own loss weights.
# (A first ladder from 2e-4 left GA, KL, GradDiff and PUBG on the forget split at its lowest rung, their fronts not
# reached: it was extended downward, for every method alike.)
LEARNING_RATES = (5e-5, 1e-4, 2e-4, 4e-4, 8e-4, 1.6e-3, 3.2e-3)
# What the rule reads, and all the tuning runs are probed for: name leaks (no perturbed photographs) and utility.
PROBES = {"metrics": ("privacy", "utility"), "perturbations": ()}


@dataclass(frozen=True)
class TuningPlan:
    """What the tuning world tries: each method at each learning rate, in each setting, at the setting's batch; in the
    single-image setting, on each of the first `single_people` forget people alone, from one image."""

    learning_rates: tuple[float, ...] = LEARNING_RATES
    split_batch_size: int = 32
    single_batch_size: int = 8
    single_people: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "learning_rates", tuple(self.learning_rates))
        if not self.learning_rates or min(self.learning_rates) <= 0 or self.single_people < 1:
            raise ValueError("a tuning plan needs positive learning rates and at least one single-image person")

    def candidates(self, setting: str) -> list[dict]:
        """The settings every method tries in `setting` (the budget): the same for every method."""
        batch = self.split_batch_size if setting == "split" else self.single_batch_size
        return [{"learning_rate": lr, "batch_size": batch} for lr in self.learning_rates]

    @property
    def budget(self) -> int:
        return len(self.learning_rates)

    def runs(self, grid: UnlearnGrid) -> list[UnlearnRun]:
        """The tuning runs: the grid's methods (and its variants' methods) on the forget split, its single-image
        methods on each tuning person, at every candidate; one unlearning seed, the grid's steps."""
        split_methods = dict.fromkeys([*grid.methods, *(v["method"] for v in grid.split_variants.values())])
        out = []
        for method in split_methods:
            for c in self.candidates("split"):
                config = grid.config(0, "split", "trained", {"method": method, **c})
                out.append(UnlearnRun(f"tune-split-{method}-lr{c['learning_rate']:g}", "split", config))
        for method in dict.fromkeys([*grid.single_methods, *(v["method"] for v in grid.single_variants.values())]):
            for c in self.candidates("single"):
                for k in range(self.single_people):
                    config = grid.config(0, f"split:{k}", "single", {"method": method, **c})
                    out.append(UnlearnRun(f"tune-single-{method}-lr{c['learning_rate']:g}-person{k}", "single", config))
        return out


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
    return min(front, key=lambda p: (distance(p, oracle), p["learning_rate"]))


def distance(point: dict, oracle: dict) -> float:
    return math.hypot(point[LEAK] - oracle[LEAK], point[RETAIN] - oracle[RETAIN])


def select(frame: pd.DataFrame, oracles: dict[str, dict], plan: TuningPlan) -> tuple[dict[str, dict[str, dict]], pd.DataFrame]:
    """Each method's chosen setting per setting, and the table it was chosen from. `frame` holds the tuning runs (one
    row each: setting, method, learning rate and the two measures, as lvlmu.unlearn.results.collect_runs gives them);
    `oracles` the oracle's point per setting."""
    chosen: dict[str, dict[str, dict]] = {}
    rows = []
    for (setting, method), runs in frame.groupby(["setting", "method"], sort=True):
        means = runs.groupby("learning rate")[[LEAK, RETAIN]].mean()
        points = [{"learning_rate": float(lr), LEAK: m[LEAK], RETAIN: m[RETAIN]} for lr, m in means.iterrows()]
        best = choose(points, oracles[setting])
        front = pareto_front(points)
        for p in points:
            rows.append({"setting": setting, "method": method, "learning rate": p["learning_rate"], LEAK: p[LEAK], RETAIN: p[RETAIN],
                         "runs": int((runs["learning rate"] == p["learning_rate"]).sum()), "on the front": p in front,
                         "distance to the oracle": distance(p, oracles[setting]), "chosen": p is best,
                         "at the ladder's end": p is best and p["learning_rate"] in (min(plan.learning_rates), max(plan.learning_rates))})
        candidate = next(c for c in plan.candidates(setting) if math.isclose(c["learning_rate"], best["learning_rate"]))
        chosen.setdefault(setting, {})[method] = candidate
    return chosen, pd.DataFrame(rows)


def oracle_points(worlds: dict[str, dict], plan: TuningPlan) -> dict[str, dict]:
    """The oracle's (leak, retain recognition) on the tuning world: on the forget split, and on the single-image
    people (the mean of its probes on each alone). `worlds` holds the one tuning world, as collect_runs reads it."""
    from ..probe.compare import headline
    from ..probe.store import ProbeStore
    from ..world import load_world
    from .data import resolve_forget
    from .results import reference_results

    (entry,) = worlds.values()
    world, root = load_world(entry["world_dir"]), entry["reference_results_dir"]
    split = headline(ProbeStore.read(Path(root) / "oracle"))
    single = [headline(ProbeStore.read(reference_results(root, "oracle", resolve_forget(world, f"split:{k}")))) for k in range(plan.single_people)]
    return {"split": {m: split[m] for m in (LEAK, RETAIN)},
            "single": {m: sum(h[m] for h in single) / len(single) for m in (LEAK, RETAIN)}}


def tune(runs: dict[str, dict], worlds: dict[str, dict], plan: TuningPlan, tuning_world: dict, commit: str, date: str) -> dict:
    """The settings record from the finished tuning runs (as lvlmu.study.tuning_jobs names them); stops, naming them,
    when some runs have no results."""
    from .results import collect_runs

    frame, missing = collect_runs(runs, worlds)
    if missing:
        raise RuntimeError(f"{len(missing)} tuning run(s) have no results, so no choice is made: {', '.join(missing)}")
    oracles = oracle_points(worlds, plan)
    chosen, table = select(frame, oracles, plan)
    return settings_record(chosen, table, oracles, tuning_world, plan, commit, date)


def settings_record(chosen: dict[str, dict[str, dict]], table: pd.DataFrame, oracles: dict[str, dict], tuning_world: dict,
                    plan: TuningPlan, commit: str, date: str) -> dict:
    """The settings file's content: the chosen overrides per setting and method, and what they were chosen from."""
    return {"rule": " ".join(__doc__.split("\n\n")[1].split()), "budget": " ".join(__doc__.split("\n\n")[2].split()),
            "tuning_world": tuning_world, "plan": asdict(plan), "date": date, "commit": commit, "oracle": oracles,
            "chosen": chosen, "table": json.loads(table.to_json(orient="records"))}


def settings_markdown(record: dict) -> str:
    """The methods chapter's tuning section, from the settings file: the rule, the budget, the table and the choice."""
    table = pd.DataFrame(record["table"])
    table[LEAK] = table[LEAK].map("{:.0%}".format)
    table[RETAIN] = table[RETAIN].map("{:.0%}".format)
    table["distance to the oracle"] = table["distance to the oracle"].map("{:.3f}".format)
    table["learning rate"] = table["learning rate"].map("{:g}".format)
    table["on the front"] = table["on the front"].map({True: "yes", False: ""})
    table["chosen"] = table["chosen"].map({True: "**chosen**", False: ""})
    oracle = "; ".join(f"{s}: leak {o[LEAK]:.0%}, retain names {o[RETAIN]:.0%}" for s, o in record["oracle"].items())
    world = record["tuning_world"]
    ends = [f"{r['method']} ({r['setting']})" for r in record["table"] if r.get("at the ladder's end")]
    table = table.drop(columns=["at the ladder's end"], errors="ignore")
    edge = (f"**At the ladder's end**: {', '.join(ends)} chose the lowest or highest learning rate tried; a rate beyond it "
            "might lie nearer the oracle." if ends else "No method chose the lowest or highest learning rate tried.")
    return "\n".join([
        f"Tuned on world {world['seed']} (never reported) on {record['date']}, at commit `{record['commit'][:12]}`, "
        f"with `make tune`; the study reads the choice from `workflow/tuned.json`.", "",
        f"**Rule.** {record['rule']}", "",
        f"**Budget.** {record['budget']} Here: {len(record['plan']['learning_rates'])} learning rates per method and setting, "
        f"{record['plan']['single_people']} single-image people.", "",
        f"**The oracle's point** on the tuning world: {oracle}.", "", edge, "",
        table.to_markdown(index=False), ""])


def nearest_to_oracle(path: str | Path, setting: str, candidates: tuple[str, ...], n: int) -> tuple[str, ...]:
    """The `n` methods among `candidates` whose chosen setting in `setting` lay nearest the oracle on the tuning world
    (the settings file's table): the "best baselines" the steps curve follows, chosen before any reported result."""
    table = [row for row in json.loads(Path(path).read_text())["table"] if row["chosen"] and row["setting"] == setting]
    ranked = sorted((row["distance to the oracle"], row["method"]) for row in table if row["method"] in candidates)
    return tuple(method for _, method in ranked[:n])


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
    return {setting: dict(record["chosen"].get(setting, {})) for setting in methods}
