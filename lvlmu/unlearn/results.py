"""The results of unlearning runs, gathered for comparison: one row per run, means with confidence intervals, and
what each method's answers turned out to be."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..probe.compare import answer_counts, answers_side_by_side, headline, paired_truth_ratios
from ..probe.likelihood import forget_quality
from ..probe.store import ProbeStore
from ..report.intervals import SHARE, interval
from ..world import World, load_world
from .data import resolve_forget

AFTERMATH_CLASSES = ("degenerate", "hallucinated", "informative", "refusal", "other")


def reference_results(reference_results_dir: str | Path, model: str, people: list[str] | None) -> Path:
    """Where a reference model's probes ("base", "oracle") on the same people as a run are stored: the probe
    chapter's results for the forget split, `reference/<model>-<ids>` for a run that forgot other people."""
    if people is None:
        return Path(reference_results_dir) / model
    return Path(reference_results_dir) / "reference" / f"{model}-{'-'.join(people)}"


def has_results(run: dict, root: str | Path = ".") -> bool:
    """Whether a grid run (its "model_dir" and "results_dir", relative to `root`) finished: its manifest and probe summary exist."""
    return (Path(root) / run["results_dir"] / "summary.json").exists() and (Path(root) / run["model_dir"] / "manifest.json").exists()


# The oracle's own figures on the same people as each run ("oracle: <measure>" columns), for the claims that compare a
# run with a model that never saw the people it forgot: one forgotten person against the oracle on that person alone.
ORACLE_PAIRED = ("MIA AUC (LOSS)", "visual MIA AUC (LOSS)", "fluency: perplexity", "diversity")


def collect_runs(runs: dict[str, dict], worlds: dict[str, dict]) -> tuple[pd.DataFrame, list[str]]:
    """One row per finished run (its world, setting, method, seed, headline probe figures, the oracle's ORACLE_PAIRED
    figures and forget quality against it, both on the same people in its world, and cost), and the names of the runs whose results are missing. `worlds` maps a
    world's label to its "world_dir" and "reference_results_dir" (where its base's and oracle's probes lie); each run
    names its "world"."""
    loaded = {label: load_world(w["world_dir"]) for label, w in worlds.items()}
    rows, missing = [], []
    for name, run in runs.items():
        if run.get("world") not in worlds:
            raise ValueError(f"run {name} names world {run.get('world')!r}; the worlds given are {sorted(worlds)}")
        results, manifest_path = Path(run["results_dir"]), Path(run["model_dir"]) / "manifest.json"
        if not has_results(run):
            missing.append(name)
            continue
        world = loaded[run["world"]]
        store, manifest = ProbeStore.read(results), json.loads(manifest_path.read_text())
        people = None if run["forget"] == "split" else resolve_forget(world, run["forget"])
        oracle = reference_results(worlds[run["world"]]["reference_results_dir"], "oracle", people)
        quality, counted, paired = None, None, {}
        if (oracle / "summary.json").exists():
            reference = ProbeStore.read(oracle)
            paired = {f"oracle: {m}": headline(reference).get(m) for m in ORACLE_PAIRED}
            if store.has_metric("truth_ratio"):
                ours, theirs = paired_truth_ratios(store, reference)
                quality, counted = forget_quality(ours, theirs), min(len(ours), len(theirs))
        rows.append({"run": name, "world": run["world"], "setting": run["setting"], "method": run["method"], "seed": run["seed"],
                     "forget": ", ".join(manifest["forget_people"]) if people else "split", **headline(store),
                     **answer_counts(store), **paired, "forget quality": quality, "truth ratios": counted, "learning rate": manifest["config"]["learning_rate"],
                     "steps": manifest["config"]["steps"], "effective batch size": manifest["effective_batch_size"],
                     "seconds": manifest["wall_seconds"], "peak memory (MB)": manifest["peak_memory_mb"],
                     "people forgotten": len(manifest["forget_people"])})
    frame = pd.DataFrame(rows)
    measures = [c for c in frame.columns if c not in ("run", "world", "setting", "method", "seed", "forget")]
    # A measure no run could compute (say, grounding precision when no answer states a trait) is NaN, not dropped.
    return frame.astype({c: float for c in measures}), missing


def reference_headline(worlds: dict[str, dict], model: str) -> dict[str, float]:
    """A reference model's ("base", "oracle") headline figures, averaged over the worlds (each world has its own)."""
    rows = [headline(ProbeStore.read(Path(w["reference_results_dir"]) / model)) for w in worlds.values()]
    return pd.DataFrame(rows).mean(numeric_only=True).to_dict()


CURVE_MEASURES = ("name leak: unseen images", "retain names")


def steps_curve(frame: pd.DataFrame, measures: tuple[str, ...] = CURVE_MEASURES, within: tuple[float, float] | None = SHARE) -> pd.DataFrame:
    """The steps curve: for each method of the "curve" runs and each step count, the mean of each measure with its 95%
    interval (over worlds, lvlmu.report.intervals) cut to `within`, the range the measures can take (shares by
    default), one row per (method, steps). The last point is the grid's own single-image runs of the same methods on
    the same people (world and person)."""

    curve = frame[frame["setting"] == "curve"] if not frame.empty else frame
    if curve.empty:
        return pd.DataFrame(columns=["method", "steps", *(f"{m} {part}" for m in measures for part in ("mean", "low", "high"))])
    cells = set(zip(curve["world"], curve["forget"]))
    single = frame[(frame["setting"] == "single") & frame["method"].isin(set(curve["method"]))]
    single = single[[cell in cells for cell in zip(single["world"], single["forget"])]]
    rows = []
    for (method, steps), runs in pd.concat([curve, single]).groupby(["method", "steps"], sort=True):
        row = {"method": method, "steps": int(steps)}
        for m in measures:
            estimate = interval(runs, m, ("world", "forget"), within=within)
            row |= {f"{m} mean": estimate.estimate, f"{m} low": estimate.low, f"{m} high": estimate.high}
        rows.append(row)
    return pd.DataFrame(rows)


def method_means(frame: pd.DataFrame, setting: str) -> pd.DataFrame:
    """Each method's mean over seeds (and people) in one setting, one row per method."""
    rows = frame[frame["setting"] == setting]
    return rows.groupby("method", sort=False).mean(numeric_only=True)


def aftermath_findings(frame: pd.DataFrame) -> str:
    """Markdown: each method's most frequent answer class on forget people (mean over seeds), with its over-refusal
    on retain people, so the prose states what was measured rather than what was expected."""
    lines = []
    for setting, title in (("split", "forget split"), ("single", "one person, one image")):
        means = method_means(frame, setting)
        for method, m in means.iterrows():
            shares = m[list(AFTERMATH_CLASSES)].astype(float)
            top = shares.idxmax()
            lines.append(f"- **{method}** ({title}): mostly *{top}* ({shares[top]:.0%} of answers; degenerate {shares['degenerate']:.0%},"
                         f" hallucinated {shares['hallucinated']:.0%}, refusal {shares['refusal']:.0%}); name leak"
                         f" {m['name leak: unseen images']:.0%}, retain people still named {m['retain names']:.0%},"
                         f" over-refusal on retain people {m['over-refusal: retain people']:.0%}.")
    return "\n".join(lines)


def probe_run(world: World, config, run_dir: str | Path, results_dir: str | Path, base_dir: str | Path, oracle_dir: str | Path,
              reference_results_dir: str | Path, probe_parameters: dict) -> dict[str, ProbeStore]:
    """Probe an unlearned model, and the base and the oracle on the same forgotten people: {"base", "unlearned",
    "oracle"} -> stores. A run that forgot the split compares with the probe chapter's results; a run that forgot
    other people with reference results on those people (computed once, then reused)."""
    from dataclasses import replace

    from ..probe.suite import run_probes, study_probe_config

    probes = study_probe_config(probe_parameters, str(base_dir))
    people = None if config.forget == "split" else resolve_forget(world, config.forget)
    if people is not None:
        probes = replace(probes, forget_people=tuple(people))
    return {"base": run_probes(base_dir, world, reference_results(reference_results_dir, "base", people), probes, progress=False),
            # A retrained run makes its earlier results stale: they are replaced (and the replacement printed).
            "unlearned": run_probes(run_dir, world, results_dir, probes, progress=False, replace_stale=True),
            "oracle": run_probes(oracle_dir, world, reference_results(reference_results_dir, "oracle", people), probes, progress=False)}


def headline_table(stores: dict[str, ProbeStore]) -> pd.DataFrame:
    """The headline figures of several models side by side, in percent (MIA AUC and forget quality as they are),
    forget quality measured against the store named "oracle", and left empty where a side has fewer truth ratios
    than the claims page reads one on (one person's few unseen photographs cannot give a readable KS test)."""
    from ..report.claims import MIN_TRUTH_RATIOS

    def quality(store: ProbeStore) -> float | None:
        ours, oracle = paired_truth_ratios(store, stores["oracle"])
        return forget_quality(ours, oracle) if min(len(ours), len(oracle)) >= MIN_TRUTH_RATIOS else None

    table = pd.DataFrame({name: headline(store) for name, store in stores.items()})
    table.loc["forget quality (KS p-value)"] = [quality(s) for s in stores.values()]
    percent = [i for i in table.index if not i.startswith(("MIA", "forget quality"))]
    table.loc[percent] = table.loc[percent].astype(float) * 100
    return table


def answer_comparison(runs: dict[str, dict], methods: list[str], condition: str = "identity", setting: str = "split",
                      seed: int = 0, n_people: int = 2, world: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Each method's answer (its `seed` run in `setting`) to one question (`condition`: "identity" or "open query")
    on the same never-trained photographs of the first `n_people` forget people they share, in one `world` (the first
    run's by default); returns the rows (image, question, one column per method) and the methods shown (those whose
    run has results)."""
    stores = {}
    world = world if world is not None else next((run.get("world") for run in runs.values()), None)
    for run in runs.values():
        if run.get("world") == world and run["setting"] == setting and run["seed"] == seed and run["method"] in methods and run["method"] not in stores:
            if (Path(run["results_dir"]) / "summary.json").exists():
                stores[run["method"]] = ProbeStore.read(run["results_dir"])
    shown_methods = [m for m in methods if m in stores]
    if not shown_methods:
        return pd.DataFrame(), []
    return answers_side_by_side({m: stores[m] for m in shown_methods}, condition, n_people, one_per_person=True), shown_methods


def _count(n: int, noun: str, plural: str = "") -> str:
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def grid_shape(frame: pd.DataFrame) -> str:
    """What this build's finished runs cover, setting by setting, read from their rows (a quick build runs less than
    the study's grid)."""
    if frame.empty:
        return "This build has no finished runs."
    names = {"split": "the forget split", "single": "one person from one image", "curve": "the steps curve (one person, one image)"}
    parts = []
    worlds = frame["world"].nunique() if "world" in frame.columns else 1
    for setting, rows in frame.groupby("setting", sort=False):
        by_world = rows.groupby("world") if "world" in rows.columns else [(None, rows)]
        people = sum(r["forget"].nunique() if setting != "split" else int(r["people forgotten"].max()) for _, r in by_world)
        who = _count(people, "person", "people") + (", one at a time" if setting != "split" and people > 1 else "")
        seeds = ", ".join(str(int(s)) for s in sorted(rows["seed"].unique()))
        steps = "/".join(str(int(s)) for s in sorted(rows["steps"].unique()))
        parts.append(f"{names.get(setting, setting)}: {_count(len(rows), 'run')} of {_count(rows['method'].nunique(), 'method')} "
                     f"on {who}, {'seed' if rows['seed'].nunique() == 1 else 'seeds'} {seeds}, {steps} steps each")
    return f"This build, on {_count(worlds, 'world')}: " + "; ".join(parts) + "."


def missing_runs_note(missing: list[str]) -> None:
    """In a chapter: a warning box naming the runs whose results are missing (failed or not run), left out below."""
    from IPython.display import HTML, display

    if missing:
        display(HTML('<div class="admonition warning"><p class="admonition-title">Missing runs</p><p>These runs have no results '
                     f"(they failed or have not run), and are left out below: {', '.join(missing)}</p></div>"))


def cost_table(frame: pd.DataFrame, worlds: dict[str, dict]):
    """Per (setting, method): steps, batch, learning rate, seconds and peak memory per forgotten person, and the
    seconds as a fraction of retraining an oracle (the mean over the worlds' oracles, from their manifests)."""
    oracle_seconds = sum(json.loads((Path(w["oracle_dir"]) / "manifest.json").read_text())["wall_seconds"] for w in worlds.values()) / len(worlds)
    cost = frame.assign(**{"seconds per person": frame["seconds"] / frame["people forgotten"]})
    cost = cost.groupby(["setting", "method"], sort=False)[["steps", "effective batch size", "learning rate", "seconds per person", "peak memory (MB)"]].mean()
    cost["fraction of an oracle retrain"] = cost["seconds per person"] / oracle_seconds
    return cost.style.format({"learning rate": "{:.0e}", "seconds per person": "{:.1f}", "peak memory (MB)": "{:.0f}",
                              "fraction of an oracle retrain": "{:.4f}", "steps": "{:.0f}", "effective batch size": "{:.0f}"})


def study_results(runs: dict[str, dict], worlds: dict[str, dict]) -> tuple[pd.DataFrame, list[str], dict[str, float], dict[str, float]]:
    """What the chapters that compare methods read: the runs' rows and the missing runs (collect_runs), and the base's
    and the oracle's headline figures averaged over the worlds (reference_headline)."""
    frame, missing = collect_runs(runs, worlds)
    return frame, missing, reference_headline(worlds, "base"), reference_headline(worlds, "oracle")
