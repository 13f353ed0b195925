"""The grid of unlearning runs the study makes: methods, settings and seeds, each run a named UnlearnConfig."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from .methods import METHODS
from .run import UnlearnConfig

# Per-method hyperparameters for each setting, chosen on the tuning world (world seed 0, never reported), unlearning
# seed 0, with benchmarks/sweep_unlearning.py:
# for each method, the gentlest setting tried whose name leak on never-trained photographs fell below 10%
# (GA-like methods trade retain recognition for it; the compare chapter reports by how much). GradDiff and NPO at
# 2e-4 met it on seed 0 but leaked 41-44% on seed 1, so they run at 3e-4. Every method otherwise
# runs the same 30 steps, data and seeds. Missing methods take UnlearnConfig's defaults.
SPLIT_HYPERPARAMETERS: dict[str, dict] = {
    "ga": {"learning_rate": 2e-4, "batch_size": 32},
    "graddiff": {"learning_rate": 3e-4, "batch_size": 32},
    "kl": {"learning_rate": 6e-4, "batch_size": 32, "weights": {"retain": 5.0}},
    "npo": {"learning_rate": 3e-4, "batch_size": 32, "weights": {"retain": 5.0}},
    "idk": {"learning_rate": 6e-4, "batch_size": 32},
    "dpo": {"learning_rate": 4e-3, "batch_size": 32},
    "random": {"learning_rate": 6e-4, "batch_size": 32},
    # PUBG trades leak against retain recognition steeply here (seed-0 sweep): retain x2 leaked 12% of names, retain x1
    # stopped them; a gradient-ascent weight of 0.3 or more cost 20 to 70 more points of retain recognition.
    "pubg": {"learning_rate": 6e-4, "batch_size": 32, "weights": {"suppress": 0.1}},
    # Eight people at once: more T4 (other people's QA) and no repeats of the targets, which would crowd it out.
    "siu": {"learning_rate": 2e-3, "batch_size": 32, "target_repeats": 1, "other_qa": 128},
}
# Extra runs on the forget split, each a method at other hyperparameters, named: what the same method does when pushed
# harder (the papers' GA aftermath, degenerate text, appears only there in our world).
SPLIT_VARIANTS: dict[str, dict] = {
    "ga-lr1e-3": {"method": "ga", "learning_rate": 1e-3, "batch_size": 32},
    "graddiff-lr8e-4": {"method": "graddiff", "learning_rate": 8e-4, "batch_size": 8},
}
SINGLE_HYPERPARAMETERS: dict[str, dict] = {
    "siu": {"learning_rate": 6e-4, "batch_size": 16, "augment_shift": 2},
}
# In the single-image setting, the other methods run at their split settings with a quarter of the batch: one
# photograph gives a handful of examples, which a batch of 32 only repeats (a seed-0 check on the first forget person
# stopped every method's name leak at batch 8).
SINGLE_BATCH_SIZE = 8


@dataclass(frozen=True)
class UnlearnRun:
    name: str
    setting: str  # "split": the 20% forget split, all trained images; "single": one person from one image
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
    split_hyperparameters: dict[str, dict] = field(default_factory=lambda: dict(SPLIT_HYPERPARAMETERS))
    single_hyperparameters: dict[str, dict] = field(default_factory=lambda: dict(SINGLE_HYPERPARAMETERS))
    split_variants: dict[str, dict] = field(default_factory=lambda: dict(SPLIT_VARIANTS))
    threads: int = 1

    def __post_init__(self) -> None:
        for name in ("methods", "seeds", "single_methods"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        variants = [v.get("method", "") for v in self.split_variants.values()]
        unknown = [m for m in (*self.methods, *self.single_methods, *variants) if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown unlearning methods {unknown}; the methods are {sorted(METHODS)}")

    def runs(self) -> list[UnlearnRun]:
        runs = []
        for seed in self.seeds:
            for method in self.methods:
                config = self.config(seed, "split", "trained", {"method": method, **self.split_hyperparameters.get(method, {})})
                runs.append(UnlearnRun(f"split-{method}-seed{seed}", "split", config))
            for name, overrides in self.split_variants.items():
                runs.append(UnlearnRun(f"split-{name}-seed{seed}", "split", self.config(seed, "split", "trained", overrides), label=name))
            for method in self.single_methods:
                for k in range(self.single_people):
                    config = self.config(seed, f"split:{k}", "single", {"method": method, **self.single_overrides(method)})
                    runs.append(UnlearnRun(f"single-{method}-person{k}-seed{seed}", "single", config))
        return runs

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
                       split_variants={k: v for k, v in self.split_variants.items() if v.get("method") == method})
