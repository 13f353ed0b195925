"""The grid of unlearning runs the study makes: methods, settings and seeds, each run a named UnlearnConfig."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from .methods import METHODS
from .run import UnlearnConfig

# Each method's settings come from the tuning world (lvlmu.unlearn.tuning, `make tune`), through the study's settings
# file; a grid may still give its own (they win), as the tests' micro grids do. Every method otherwise runs the same
# steps, data and seeds.
# Extra runs on the forget split, each a method pushed harder than its tuned setting: its learning rate times
# `learning_rate_factor` (the papers' GA aftermath, degenerate text, appears only there in our world). Derived from the
# tuned setting by a fixed factor, a variant needs no tuning of its own.
SPLIT_VARIANTS: dict[str, dict] = {
    "ga-x4": {"method": "ga", "learning_rate_factor": 4.0},
    "graddiff-x4": {"method": "graddiff", "learning_rate_factor": 4.0},
}
# SIU's ablations in its own setting (one person, one image), each SIU's tuned single-image setting with one part
# changed: the Dual Masked KL in lvlmu's first, renormalised form; one of its two masks alone; no DMK at all (cross-
# entropy on the four targets); T1 answered as the model answers for a person it never saw instead of an invented name.
SINGLE_VARIANTS: dict[str, dict] = {
    "siu-renormalised": {"method": "siu", "siu": {"kl": "renormalised"}},
    "siu-token-mask-only": {"method": "siu", "siu": {"vocabulary_mask": False}},
    "siu-vocabulary-mask-only": {"method": "siu", "siu": {"token_mask": False}},
    "siu-ce-only": {"method": "siu", "weights": {"dmk": 0.0}},
    "siu-t1-unseen": {"method": "siu", "siu": {"t1": "unseen"}},
}
# Augmentation is an ablation for every single-image method, where none gets it (UnlearnGrid.augmented): each method's
# tuned single-image setting with the photograph shifted by up to AUGMENT_SHIFT pixels and mirrored, as in pretraining,
# on the grid's variant people of every reporting world (the world is the unit of replication, for an ablation too).
# DPO is left out: its collator augments the preferred and the rejected answer's photographs apart (two draws), so its
# pairs would compare different pixels.
AUGMENT_SHIFT = 2
NOT_AUGMENTED = ("dpo",)
# Without a tuned single-image setting, a method runs its split setting at this batch: one photograph gives a handful
# of examples, which a batch of 32 only repeats.
SINGLE_BATCH_SIZE = 8


@dataclass(frozen=True)
class UnlearnRun:
    name: str
    setting: str  # "split": the 20% forget split, all trained images; "single": one person from one image; "curve": the
    # steps curve, single-image runs of fewer steps
    config: UnlearnConfig
    label: str = ""  # how results name it: the method, or a variant's name

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", self.label or self.config.method)


@dataclass(frozen=True)
class UnlearnGrid:
    """Every method on the forget split, and `single_methods` on each of the first `single_people` forget people
    alone from one image (SIU's setting), for every seed. `threads` is each run's torch threads: the pipeline runs
    several runs at once, one thread each, since the tiny model gains little from a second thread."""

    methods: tuple[str, ...] = tuple(METHODS)
    # Worlds are the replicates (lvlmu.study): one unlearning seed in each; more seeds only reshuffle data.
    seeds: tuple[int, ...] = (0,)
    single_methods: tuple[str, ...] = tuple(METHODS)
    single_people: int = 8  # every forget person of the default world
    steps: int = 30
    split_hyperparameters: dict[str, dict] = field(default_factory=dict)
    single_hyperparameters: dict[str, dict] = field(default_factory=dict)
    split_variants: dict[str, dict] = field(default_factory=lambda: dict(SPLIT_VARIANTS))
    single_variants: dict[str, dict] = field(default_factory=lambda: dict(SINGLE_VARIANTS))
    # The variants (SIU's ablations, augmentation) run on each world's first `single_variant_people` forget people, as
    # the steps curve does: one each, since the world is the unit of replication. (Four each, with augmentation on the
    # first world alone, took about 380 job-seconds more: some 3 minutes of the full study on two cores.)
    single_variant_people: int = 1
    augmented: bool = True  # each single-image method (but NOT_AUGMENTED) again with augmentation: "<method>-augmented"
    # The steps curve (setting "curve"): these methods in the single-image setting, on each world's first
    # `curve_people` forget people, in runs of each of `curve_steps` steps (a run of k steps, its learning-rate schedule
    # over k steps, as the paper's few-step runs are; the grid's own runs give the last point). The study adds the
    # `curve_baselines` baselines whose tuned single-image setting lay nearest the oracle on the tuning world.
    curve_methods: tuple[str, ...] = ("siu", "pubg")
    curve_baselines: int = 2
    curve_steps: tuple[int, ...] = (2, 4, 6, 10, 20)
    curve_people: int = 1
    threads: int = 1

    def __post_init__(self) -> None:
        for name in ("methods", "seeds", "single_methods", "curve_methods", "curve_steps"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        variants = [v.get("method", "") for v in (*self.split_variants.values(), *self.single_variants.values())]
        unknown = [m for m in (*self.methods, *self.single_methods, *variants, *self.curve_methods) if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown unlearning methods {unknown}; the methods are {sorted(METHODS)}")

    def runs(self) -> list[UnlearnRun]:
        runs = []
        for seed in self.seeds:
            for method in self.methods:
                config = self.config(seed, "split", "trained", {"method": method, **self.split_hyperparameters.get(method, {})})
                runs.append(UnlearnRun(f"split-{method}-seed{seed}", "split", config))
            for name, variant in self.split_variants.items():
                runs.append(UnlearnRun(f"split-{name}-seed{seed}", "split", self.config(seed, "split", "trained", self.variant_overrides(variant)),
                                       label=name))
            for method in self.single_methods:
                for k in range(self.single_people):
                    config = self.config(seed, f"split:{k}", "single", {"method": method, **self.single_overrides(method)})
                    runs.append(UnlearnRun(f"single-{method}-person{k}-seed{seed}", "single", config))
            for name, variant in {**self.single_variants, **self.augmented_variants()}.items():
                for k in range(min(self.single_variant_people, self.single_people)):
                    config = self.config(seed, f"split:{k}", "single", self.variant_overrides(variant, "single"))
                    runs.append(UnlearnRun(f"single-{name}-person{k}-seed{seed}", "single", config, label=name))
            for method in self.curve_methods:
                for steps in self.curve_steps:
                    for k in range(min(self.curve_people, self.single_people)):
                        config = replace(self.config(seed, f"split:{k}", "single", {"method": method, **self.single_overrides(method)}), steps=steps)
                        runs.append(UnlearnRun(f"curve-{method}-steps{steps}-person{k}-seed{seed}", "curve", config))
        return runs

    def augmented_variants(self) -> dict[str, dict]:
        """The augmentation ablation: each single-image method but NOT_AUGMENTED, with augmentation."""
        if not self.augmented:
            return {}
        return {f"{m}-augmented": {"method": m, "augment_shift": AUGMENT_SHIFT}
                for m in self.single_methods if m not in NOT_AUGMENTED}

    def variant_overrides(self, variant: dict, setting: str = "split") -> dict:
        """A variant's settings: its method's setting, its learning rate times `learning_rate_factor` (if it has one),
        then the variant's other fields."""
        variant = dict(variant)
        factor = variant.pop("learning_rate_factor", 1.0)
        own = self.split_hyperparameters.get(variant["method"], {}) if setting == "split" else self.single_overrides(variant["method"])
        base = {**own, **variant}
        learning_rate = base.get("learning_rate", UnlearnConfig.learning_rate)
        return {**base, "learning_rate": learning_rate * factor}

    def single_overrides(self, method: str) -> dict:
        """A method's settings for one person from one image: its own if it has some, else its split settings at
        SINGLE_BATCH_SIZE."""
        if method in self.single_hyperparameters:
            return self.single_hyperparameters[method]
        return {**self.split_hyperparameters.get(method, {}), "batch_size": SINGLE_BATCH_SIZE}

    def config(self, seed: int, forget: str, images: str, overrides: dict) -> UnlearnConfig:
        """One run's config: the grid's steps, threads and the seed, the setting's people and images, then the overrides."""
        return UnlearnConfig(**{"forget": forget, "images": images, "steps": self.steps, "seed": seed, "threads": self.threads, **overrides})

    def only(self, method: str) -> "UnlearnGrid":
        """The same grid restricted to one method's runs (its pushed-harder variants included)."""
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r} for --only; the methods are {sorted(METHODS)}")
        return replace(self, methods=tuple(m for m in self.methods if m == method),
                       single_methods=tuple(m for m in self.single_methods if m == method),
                       split_variants={k: v for k, v in self.split_variants.items() if v.get("method") == method},
                       single_variants={k: v for k, v in self.single_variants.items() if v.get("method") == method},
                       curve_methods=tuple(m for m in self.curve_methods if m == method))
