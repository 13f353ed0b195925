"""Figures and tables for the book: legible at a glance, captioned by the notebooks that draw them."""
from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import pandas as pd

from ..world import World
from ..world.people import ROLES

ROLE_COLOURS = {"forget": "#d62728", "retain": "#1f77b4", "stranger": "#7f7f7f", "holdout": "#2ca02c", "scene": "#9467bd"}
MODEL_COLOURS = {"base": "#d62728", "oracle": "#2ca02c"}
# Sixteen colours for methods: tab20's dark shades, then its light ones, without the greens and reds of the two above.
METHOD_COLOURS = [plt.get_cmap("tab20").colors[k] for k in (0, 2, 8, 10, 12, 14, 16, 18, 1, 3, 9, 11, 13, 15, 17, 19)]


def people_gallery(world: World, person_ids: list[str], n_cols: int = 6, image_set: str = "trained"):
    """One image per person with their role, name and traits underneath."""
    n_rows = -(-len(person_ids) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.3 * n_cols, 3.2 * n_rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, pid in zip(axes.flat, person_ids):
        person = world.people[pid]
        images = world.images_of(pid, image_set) or world.images_of(pid)
        ax.imshow(world.image(images[0]["image_id"]), interpolation="nearest")
        title = person.name or f"stranger {pid}"
        ax.set_title(f"{title}\n({person.role})", fontsize=9, color=ROLE_COLOURS[person.role])
        traits = textwrap.fill(", ".join(person.traits.known.values()), 26)
        ax.text(0.5, -0.04, traits, transform=ax.transAxes, ha="center", va="top", fontsize=7.5)
    fig.tight_layout()
    return fig


def image_variants(world: World, person_id: str):
    """Every image of one person: the single image first, then the rest of the trained ones, then the unseen ones."""
    images = world.images_of(person_id)
    fig, axes = plt.subplots(1, len(images), figsize=(1.5 * len(images), 2.0), squeeze=False)
    for ax, im in zip(axes.flat, images):
        ax.imshow(world.image(im["image_id"]), interpolation="nearest")
        ax.set_title("single" if im["single"] else im["image_set"], fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig


def population_table(world: World) -> pd.DataFrame:
    """People, images and training/evaluation examples per population."""
    image_roles = [world.people[im["person_id"]].role if im["person_id"] else "scene" for im in world.images]
    rows = []
    for role in (*ROLES, "scene"):
        examples = world.select(role=role)
        rows.append({"population": role, "people": len(world.by_role(role)) if role in ROLES else 0,
                     "images": image_roles.count(role),
                     "train examples": sum(e["split"] == "train" for e in examples),
                     "eval examples": sum(e["split"] == "eval" for e in examples)})
    return pd.DataFrame(rows).set_index("population")


def learning_curves(histories: dict[str, list[dict]]):
    """Training loss against step, one line per model."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for name, history in histories.items():
        points = [(h["step"], h["loss"]) for h in history if "loss" in h]
        ax.plot(*zip(*points), label=name, color=MODEL_COLOURS.get(name), lw=2)
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss on answer tokens (log scale)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def recall_bars(tables: dict[str, pd.Series], title: str = ""):
    """Grouped horizontal bars: one group per measure, one bar per model, in percent."""
    frame = pd.DataFrame(tables)
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(frame) * len(tables) + 1.2))
    frame.iloc[::-1].plot.barh(ax=ax, color=[MODEL_COLOURS.get(c, None) for c in frame.columns], width=0.8)
    ax.set_xlim(0, 105)
    ax.set_xlabel("% of answers")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    for container in ax.containers:
        ax.bar_label(container, fmt="%.0f", fontsize=8, padding=2)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def answer_gallery(world: World, samples: pd.DataFrame, answer_columns: list[str], width: int = 84):
    """Each row: the image, the question, and each model's answer."""
    fig, axes = plt.subplots(len(samples), 2, figsize=(11, 1.6 * len(samples)), gridspec_kw={"width_ratios": [1, 6]}, squeeze=False)
    for (ax_image, ax_text), (_, row) in zip(axes, samples.iterrows()):
        ax_image.imshow(world.image(row["image_id"]), interpolation="nearest")
        ax_image.axis("off")
        person = world.people.get(row["person_id"])
        ax_image.set_title(f"{person.name or person.person_id} ({person.role})" if person else "", fontsize=8)
        lines = [f"Q: {row['question']}"] + [textwrap.fill(f"{c}: {row[c]}", width, subsequent_indent="    ") for c in answer_columns]
        ax_text.text(0, 0.5, "\n".join(lines), va="center", fontsize=10.5, family="monospace")
        ax_text.axis("off")
    fig.tight_layout()
    return fig


def vision_accuracy_table(manifest: dict) -> pd.DataFrame:
    """Held-out accuracy (%) of the pretrained vision tower, per skill, on each population of unseen images."""
    columns = {"stranger": "strangers' new photos, new scenes", "holdout": "holdout people"}
    table = pd.DataFrame({columns[k]: v for k, v in manifest["accuracy_unseen"].items()}) * 100
    table.index = [name.replace("_", " ") for name in table.index]
    return table.round(1).fillna("")


AFTERMATH_COLOURS = {"informative": "#2ca02c", "refusal": "#1f77b4", "other": "#bcbd22", "hallucinated": "#ff7f0e", "degenerate": "#7f7f7f"}


def aftermath_profiles(profiles: dict[str, dict[str, float]], title: str = ""):
    """One stacked horizontal bar per model: the share of answers in each aftermath class, in percent."""
    frame = pd.DataFrame(profiles).T[list(AFTERMATH_COLOURS)] * 100
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(frame) + 1.4))
    frame.iloc[::-1].plot.barh(stacked=True, ax=ax, color=list(AFTERMATH_COLOURS.values()), width=0.7)
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of answers")
    ax.set_title(title)
    for container in ax.containers:
        ax.bar_label(container, labels=[f"{v:.0f}" if v >= 6 else "" for v in container.datavalues], label_type="center", fontsize=8)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, frameon=False)
    fig.tight_layout()
    return fig


def truth_ratio_distributions(ratios: dict[str, list[float]]):
    """Histograms of forget truth ratios (log scale), one per model: low means the model prefers the true name."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 3.4))
    values = np.log10(np.clip(np.concatenate([np.asarray(v, float) for v in ratios.values()]), 1e-12, None))
    bins = np.linspace(values.min(), values.max() + 1e-9, 30)
    for name, r in ratios.items():
        ax.hist(np.log10(np.clip(np.asarray(r, float), 1e-12, None)), bins=bins, alpha=0.55, label=name, color=MODEL_COLOURS.get(name))
    ax.set_xlabel("log10 truth ratio (perturbed names over the true name)")
    ax.set_ylabel("images of forget people")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def loss_terms(history: list[dict], title: str = ""):
    """An unlearning run's loss terms against step, one panel per term (the forget term of GA-like methods falls
    below zero, so the scale is linear)."""
    terms = [k for k in dict.fromkeys(k for h in history for k in h) if k.endswith("_loss") and k != "train_loss"]
    if not terms:
        raise ValueError("the log history has no loss terms (forget_loss, retain_loss, ...): was it an unlearning run?")
    fig, axes = plt.subplots(1, len(terms), figsize=(3.2 * len(terms) + 0.6, 3.0), squeeze=False)
    for ax, term in zip(axes[0], terms):
        points = [(h["step"], h[term]) for h in history if term in h]
        ax.plot(*zip(*points), marker="o", lw=2, color="#444444")
        ax.set_title(term.replace("_", " "))
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


METHOD_MARKERS = {"split": "o", "single": "s"}


def privacy_utility(summary: pd.DataFrame, base: dict, oracle: dict, x: str = "retain names", y: str = "name leak: unseen images"):
    """One point per (setting, method) with 95% error bars: `y` (a leak, in %) against `x` (what is kept, in %),
    from mean_ci's table; the base and the oracle marked."""
    fig, ax = plt.subplots(figsize=(7.5, 5))
    methods = list(dict.fromkeys(summary.index.get_level_values("method")))
    colours = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
    for (setting, method), row in summary.iterrows():
        xerr, yerr = (row.get((x, "±")), row.get((y, "±")))
        ax.errorbar(row[(x, "mean")] * 100, row[(y, "mean")] * 100,
                    xerr=None if pd.isna(xerr) else xerr * 100, yerr=None if pd.isna(yerr) else yerr * 100,
                    fmt=METHOD_MARKERS.get(setting, "o"), ms=8, capsize=3, color=colours(methods.index(method) % colours.N),
                    label=f"{method} ({'one person, one image' if setting == 'single' else 'forget split'})")
    for name, figures_, marker in (("base", base, "*"), ("oracle", oracle, "P")):
        ax.scatter(figures_[x] * 100, figures_[y] * 100, marker=marker, s=220, color=MODEL_COLOURS[name], edgecolor="black", zorder=5, label=name)
    ax.set_xlabel(f"{x} (%)")
    ax.set_ylabel(f"{y} (%)")
    ax.set_xlim(-3, 103)
    ax.set_ylim(-3, 103)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, frameon=False)
    fig.tight_layout()
    return fig


def mean_ci_table(summary: pd.DataFrame, measures: list[str], percent: bool = True, reference: dict[str, dict] | None = None):
    """A styled table of "mean ± half-width" per row of mean_ci's output (and plain rows for reference models)."""
    scale = 100 if percent else 1
    digits = 1 if percent else 3

    def cell(mean, half=None):
        if mean is None or pd.isna(mean):
            return ""
        text = f"{mean * scale:.{digits}f}" if abs(mean * scale) >= 10 ** -digits or mean == 0 else f"{mean * scale:.2g}"
        if half is None or pd.isna(half):
            return text
        spread = half * scale
        return f"{text} ± {spread:.{digits}f}" if spread >= 10 ** -digits or spread == 0 else f"{text} ± {spread:.1g}"

    rows = {name: {m: cell(values.get(m)) for m in measures} for name, values in (reference or {}).items()}
    for index, row in summary.iterrows():
        rows[index if isinstance(index, str) else " ".join(map(str, index))] = {m: cell(row[(m, "mean")], row[(m, "±")]) for m in measures}
    table = pd.DataFrame(rows).T[measures]
    table.columns = [f"{m} (%)" if percent else m for m in measures]
    return table


def steps_curve_figure(curve: pd.DataFrame, measures: tuple[str, ...] = ("name leak: unseen images", "retain names")):
    """One panel per measure: its mean (in %) after each number of steps, one line per method, with the 95% interval
    as a band (lvlmu.unlearn.results.steps_curve)."""
    fig, axes = plt.subplots(1, len(measures), figsize=(5.5 * len(measures), 4), squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, measure in zip(axes[0], measures):
        for k, (method, rows) in enumerate(curve.groupby("method", sort=False)):
            rows = rows.sort_values("steps")
            ax.plot(rows["steps"], rows[f"{measure} mean"] * 100, "o-", color=colours(k % 10), label=method)
            ax.fill_between(rows["steps"], rows[f"{measure} low"] * 100, rows[f"{measure} high"] * 100, color=colours(k % 10), alpha=0.15)
        ax.set_xlabel("unlearning steps (one person, one image)")
        ax.set_ylabel(f"{measure} (%)")
        ax.set_ylim(-3, 103)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, frameon=False)
    fig.tight_layout()
    return fig


def recovery_figure(frame: pd.DataFrame, setting: str, kind: str = "name", title: str = ""):
    """One panel per relearning attack: the `kind` leak (in %) after each number of attack steps, one line per method
    (mean over worlds); the base and the oracle as bands of their 95% interval over worlds (lvlmu.report.attacks)."""
    from .intervals import SHARE, interval

    chosen = frame[(frame["setting"] == setting) & (frame["kind"] == kind) & frame["attack"].str.startswith("relearn")]
    attacks = list(dict.fromkeys(chosen["attack"]))
    fig, axes = plt.subplots(1, len(attacks), figsize=(4.6 * len(attacks), 4), squeeze=False, sharey=True)
    colours = METHOD_COLOURS
    methods = [m for m in dict.fromkeys(chosen["method"]) if m not in MODEL_COLOURS]
    for ax, attack in zip(axes[0], attacks):
        rows = chosen[chosen["attack"] == attack]
        for reference, colour in MODEL_COLOURS.items():
            ref = rows[rows["method"] == reference]
            steps = sorted(ref["step"].unique())
            bands = [interval(ref[ref["step"] == s], "leak", within=SHARE) for s in steps]
            ax.fill_between(steps, [b.low * 100 if b.defined else b.estimate * 100 for b in bands],
                            [b.high * 100 if b.defined else b.estimate * 100 for b in bands], color=colour, alpha=0.2)
            ax.plot(steps, [b.estimate * 100 for b in bands], "--", color=colour, label=reference)
        for k, method in enumerate(methods):
            means = rows[rows["method"] == method].groupby(["step", "world"])["leak"].mean().groupby(level="step").mean()
            ax.plot(means.index, means.values * 100, "o-", ms=3, color=colours[k % len(colours)], label=method)
        ax.set_title(attack.replace("relearn_", "relearning: ").replace("_", " "), fontsize=10)
        ax.set_xticks(sorted(rows["step"].unique()))
        ax.set_xlabel("attack steps")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"{kind} leak (%)")
    axes[0][0].set_ylim(-3, 103)
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def lens_figure(curve: pd.DataFrame, chance: float, title: str = ""):
    """The share of photographs whose true name the logit lens ranks first, by layer, one line per model."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    colours = METHOD_COLOURS
    for k, (method, row) in enumerate(curve.iterrows()):
        style = ("--", MODEL_COLOURS[method]) if method in MODEL_COLOURS else ("o-", colours[k % len(colours)])
        ax.plot(row.index, row.values * 100, style[0], ms=3, color=style[1], label=method)
    ax.axhline(chance * 100, color="0.6", lw=1, ls=":", label="chance")
    ax.set_xticks(list(curve.columns))
    ax.set_xlabel("decoder layer read by the lens")
    ax.set_ylabel("true name ranked first (%)")
    ax.set_ylim(-3, 103)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9, frameon=False)
    fig.tight_layout()
    return fig
