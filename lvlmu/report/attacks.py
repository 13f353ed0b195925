"""Attack results as frames, and a method's excess recovery over the oracle under the same attack.

Whatever an attack teaches the oracle, which never saw the forgotten people, it would teach anyone: only the leak a
method's model shows *beyond* the oracle's, after the same attack on the same world and people, is knowledge that
unlearning hid rather than removed. The excess is paired within each world and person and carries the protocol's
interval (lvlmu.report.intervals: worlds, then people).
"""
from __future__ import annotations

import pandas as pd

from .claims import EXCESS_BOUND
from .intervals import SHARE, Interval, difference

ATTACK_AXES = {"relearn_named_photo": "step", "relearn_benign": "step", "relearn_unrelated": "step", "quantization": "weights"}


def attack_frame(samples: list[dict], attack: str, **labels) -> pd.DataFrame:
    """One model's samples of one attack as rows of (labels..., attack, person, kind, step or weights, leak), where
    `labels` name the model (say world=1, method="siu", setting="single")."""
    axis = ATTACK_AXES.get(attack)
    if axis is None:
        raise ValueError(f"{attack!r} has no leak rows; the attacks with leaks are {sorted(ATTACK_AXES)}")
    frame = pd.DataFrame(samples)
    if frame.empty:
        return frame
    frame = frame.rename(columns={"person_id": "person"})[["person", "kind", axis, "leak"]].assign(attack=attack, **labels)
    frame["leak"] = frame["leak"].astype(float)
    return frame


def excess_recovery(frame: pd.DataFrame, method: str, attack: str, at, kind: str = "name", reference: str = "oracle") -> Interval:
    """`method`'s leak minus `reference`'s after the same attack (`at`: its steps, or its weights for quantization),
    paired within each world and person, with its interval (containing the pooled difference's: each row is one
    answer, lvlmu.report.intervals)."""
    axis = ATTACK_AXES[attack]
    chosen = frame[(frame["attack"] == attack) & (frame["kind"] == kind) & (frame[axis] == at)]
    return difference(chosen.assign(answers=1), "leak", method, reference, within=SHARE, answers="answers")


def collect_attacks(runs: dict[str, dict], references: dict[str, dict[str, dict]]) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Every attacked model's leak rows (attack_frame) and logit-lens rows, labelled by world, method and setting, and
    the attack results that are missing. `runs`: the grid's runs (those with an `attack_dir`); `references`: per
    world, the base and the oracle attacked on each attacked forget (lvlmu.study.attack_references)."""
    from ..probe.store import ProbeStore

    models = [(r["world"], r["method"], r["setting"], r["attack_dir"]) for r in runs.values() if r.get("attack_dir")]
    models += [(world, ref["model"], "split" if ref["forget"] == "split" else "single", ref["results_dir"])
               for world, refs in references.items() for ref in refs.values()]
    leaks, lens, missing = [], [], []
    for world, method, setting, directory in models:
        try:
            store = ProbeStore.read(directory)
        except FileNotFoundError:
            missing.append(directory)
            continue
        labels = {"world": world, "method": method, "setting": setting}
        for name in store.data["metrics"]:
            if name in ATTACK_AXES:
                leaks.append(attack_frame(store.samples(name), name, **labels))
            elif name == "logit_lens":
                lens.append(pd.DataFrame(store.samples(name)).rename(columns={"person_id": "person"}).assign(**labels))
    return (pd.concat(leaks, ignore_index=True) if leaks else pd.DataFrame(),
            pd.concat(lens, ignore_index=True) if lens else pd.DataFrame(), missing)


def final_step(frame: pd.DataFrame) -> int:
    """The longest relearning the attacks ran."""
    return int(frame["step"].max())


def strongest_weights(frame: pd.DataFrame) -> str | None:
    """The coarsest rounding the quantization attack ran (int4 before int8), or None where it did not run."""
    ran = set(frame["weights"].dropna()) if "weights" in frame.columns else set()
    return next((q for q in ("int4", "int8") if q in ran), None)


def strongest(frame: pd.DataFrame) -> dict:
    """Each attack of the frame at its strongest: the longest relearning, the coarsest weights."""
    relearned = frame[frame["attack"].str.startswith("relearn")]
    at = {"step": final_step(relearned) if not relearned.empty else None, "weights": strongest_weights(frame)}
    return {a: at[ATTACK_AXES[a]] for a in ATTACK_AXES if a in set(frame["attack"]) and at[ATTACK_AXES[a]] is not None}


def excess_table(frame: pd.DataFrame, setting: str, kind: str = "name") -> pd.DataFrame:
    """Per method of `setting`, its excess `kind` leak over the oracle after each attack at its strongest (the longest
    relearning; the coarsest weights): "mean [95% interval]" in points, paired within world and person."""
    chosen = frame[frame["setting"] == setting]
    columns = strongest(chosen)
    rows = {}
    for method in [m for m in dict.fromkeys(chosen["method"]) if m not in ("base", "oracle")] + ["base"]:
        rows[method] = {f"{a} ({at if ATTACK_AXES[a] == 'weights' else f'{at} steps'})": points(excess_recovery(chosen, method, a, at, kind))
                        for a, at in columns.items()}
    return pd.DataFrame(rows).T.rename_axis("method")


def points(estimate: Interval) -> str:
    """"+12 [+3, +21]" in percentage points; "+12 (no interval)" where none could be computed (one world, say), and
    "no result" where nothing was measured."""
    if not estimate.clusters:
        return "no result"
    if not estimate.defined:
        return f"{estimate.estimate * 100:+.0f} (no interval)"
    return f"{estimate.estimate * 100:+.0f} [{estimate.low * 100:+.0f}, {estimate.high * 100:+.0f}]"


def quantization_table(frame: pd.DataFrame, setting: str) -> pd.DataFrame:
    """Leak rates (%) per method at each precision of its weights and kind of question, mean over worlds."""
    chosen = frame[(frame["setting"] == setting) & (frame["attack"] == "quantization")]
    per_world = chosen.groupby(["method", "weights", "kind", "world"], sort=False)["leak"].mean()
    return (per_world.groupby(level=[0, 1, 2], sort=False).mean().unstack("weights").unstack("kind") * 100).round(0)


def attack_steps(frame: pd.DataFrame) -> list[int]:
    """The numbers of relearning steps after which the leaks were read (0: before the attack)."""
    return sorted(int(s) for s in frame["step"].dropna().unique()) if "step" in frame.columns else []


def lens_curve(lens: pd.DataFrame, setting: str) -> pd.DataFrame:
    """Per method and layer: the share of unseen photographs whose true name the lens ranks first (mean over worlds)."""
    chosen = lens[lens["setting"] == setting]
    per_world = chosen.groupby(["method", "layer", "world"], sort=False)["identified"].mean()
    return per_world.groupby(level=["method", "layer"], sort=False).mean().unstack("layer")


def attack_findings(frame: pd.DataFrame, setting: str, bound: float = EXCESS_BOUND) -> str:
    """The chapter's sentences for one setting, computed: what the oracle and the base show after the strongest
    attacks, and per attack which methods' excess over the oracle lies wholly above `bound` (hidden knowledge found),
    wholly below it (forgotten, as far as this attack can tell), or neither."""
    from .intervals import verdict, HOLDS, FAILS

    chosen = frame[(frame["setting"] == setting) & (frame["kind"] == "name")]
    if chosen.empty or "oracle" not in set(chosen["method"]):
        return f"No attack results with the oracle in the {setting} setting."
    at = strongest(chosen)
    steps = next((at[a] for a in at if a.startswith("relearn")), None)
    lines = []
    if steps is not None:
        for reference in ("oracle", "base"):
            rows = chosen[(chosen["method"] == reference) & (chosen["step"] == steps) & (chosen["attack"] == "relearn_named_photo")]
            if not rows.empty:  # each world weighs alike, whatever its number of people, as in the intervals
                lines.append(f"After {steps} steps on one named photograph, the {reference} names the person on "
                             f"{rows.groupby('world')['leak'].mean().mean():.0%} of their unseen photographs" + (" (what the attack teaches a model that never saw them)." if reference == "oracle" else "."))
    methods = [m for m in dict.fromkeys(chosen["method"]) if m not in ("base", "oracle")]
    labels = {"relearn_named_photo": f"{steps} steps on one named photograph", "relearn_benign": f"{steps} steps on retained people",
              "relearn_unrelated": f"{steps} steps on unrelated scenes", "quantization": f"{at.get('quantization')} weights"}
    for attack, strength in at.items():
        label = labels[attack]
        decided = {m: verdict(excess_recovery(chosen, m, attack, strength), bound, "above") for m in methods}
        hidden = [m for m, v in decided.items() if v == HOLDS]
        gone = [m for m, v in decided.items() if v == FAILS]
        open_ = [m for m, v in decided.items() if v not in (HOLDS, FAILS)]
        lines.append(f"After {label}, the excess over the oracle lies wholly above {bound * 100:.0f} points (hidden knowledge "
                     f"found) for {', '.join(hidden) or 'no method'}; wholly below it for {', '.join(gone) or 'no method'}"
                     + (f"; the interval straddles it for {', '.join(open_)}." if open_ else "."))
    return "\n\n".join(lines)


def attack_table(stores: dict, attack: str, reference: str | None = None) -> pd.DataFrame:
    """One attack's leak rates on a few models (label -> their attack results, lvlmu.probe.store.ProbeStore), by step
    (or weights) and kind of question; with `reference` (one of the labels), each other model's excess over it, paired
    by person."""
    frame = pd.concat([attack_frame(store.samples(attack), attack, method=label) for label, store in stores.items()])
    axis = ATTACK_AXES[attack]
    table = frame.groupby([axis, "kind", "method"], sort=False)["leak"].mean().unstack("method")
    for label in [l for l in stores if reference and l != reference]:
        table[f"{label}: excess over {reference}"] = [excess_recovery(frame, label, attack, at, kind, reference).estimate
                                                      for at, kind in table.index]
    return table
