"""The study as jobs: what each result is, what it depends on, and its key (lvlmu.versions). The Snakefile
(workflow/Snakefile) turns these jobs into rules; lvlmu.tasks runs one; lvlmu.engine runs Snakemake.

A job's key holds the versions of exactly the code it uses, its config and the keys of its inputs, all computed
without reading a result: a comment reruns nothing, a method's version bump reruns that method's runs and the chapters.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import get_type_hints

import yaml

from .attack.suite import AttackConfig, attack_key
from .io import hash_file, hash_json
from .job import PACKAGE_DIR, REPO_DIR, Job, done_record, recorded  # noqa: F401 (done_record and recorded: the engine's and the Snakefile's)
from .pretrain import PretrainConfig, pretrain_key
from .probe.suite import ProbeConfig, probe_key, study_probe_config
from .unlearn.grid import UnlearnGrid, UnlearnRun
from .unlearn.run import unlearn_key
from .unlearn.tuning import PROBES as TUNING_PROBES, SETTINGS_FILE, TuningPlan, load_settings, nearest_to_oracle
from .versions import changed_since, result_key, units, versions
from .vision import VisionPretrainConfig, vision_key
from .world import WorldConfig
from .world.build import world_key

PROFILES_DIR = REPO_DIR / "workflow" / "config"
GRID_JOBS = ("batched", "run")


@dataclass(frozen=True)
class StudyConfig:
    """Everything the study's numbers depend on, and how its grid is cut into jobs (which changes no number)."""

    world: WorldConfig = field(default_factory=WorldConfig)
    vision: VisionPretrainConfig = field(default_factory=VisionPretrainConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    eval_max_per_group: int = 200
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    unlearn: UnlearnGrid = field(default_factory=UnlearnGrid)
    # The reporting worlds, by seed: each a world of its own people and photographs (`world` gives their sizes), with
    # its own base model and oracle; the world is the unit of replication. `world.seed` is the tuning world's: the
    # vision tower is trained there once and shared by every world (as LLaVA models share CLIP), and no result of it
    # is reported.
    worlds: tuple[int, ...] = (1, 2, 3)
    # "batched": a job per world and batch of runs (grid_batches): a process per run would spend about 8 s on imports
    # for each of the grid's several hundred runs; "run": one job per run, as a cluster wants.
    grid_jobs: str = "batched"
    # Each method's settings: chosen on the tuning world by `make tune` (what `tuning` tries) and read from this file
    # (relative to the repository); the grid's own hyperparameters, where it gives some, win. None: the grid's alone.
    settings: str | None = SETTINGS_FILE
    tuning: TuningPlan = field(default_factory=TuningPlan)
    # The attacks (lvlmu.attack) on every method of the grid (its variants aside), in both settings: the forget split's
    # runs, and the single-image runs of each world's first `attack_people` forget people; the base and the oracle are
    # attacked the same way on the same people (the oracle's recovery is the calibration). At most single_people.
    attack: AttackConfig = field(default_factory=AttackConfig)
    attack_people: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "worlds", tuple(self.worlds))
        if self.grid_jobs not in GRID_JOBS:
            raise ValueError(f"grid_jobs={self.grid_jobs!r}; choose from {list(GRID_JOBS)}")
        if not self.worlds or len(set(self.worlds)) != len(self.worlds):
            raise ValueError(f"worlds={list(self.worlds)}: give one or more distinct world seeds")
        if self.unlearn.single_people > self.world.n_forget:
            raise ValueError(f"unlearn.single_people={self.unlearn.single_people}, but each world has {self.world.n_forget} forget people")
        if self.attack_people < 0:
            raise ValueError(f"attack_people={self.attack_people}: give how many single-image people to attack (0 or more)")
        if self.world.seed in self.worlds:
            raise ValueError(f"world {self.world.seed} is the tuning world (world.seed) and cannot also report results; "
                             f"the reporting worlds are {list(self.worlds)}")

    def settings_path(self) -> Path | None:
        return None if self.settings is None else REPO_DIR / self.settings

    def world_config(self, seed: int) -> WorldConfig:
        """The world of `seed`: the study's sizes, its own people and photographs."""
        return replace(self.world, seed=seed)


# The code a tuned choice depends on besides each method's own (`method:<name>`), as the settings file records it: the
# tuning world and its models, the unlearning, the probes the rule reads (name leaks: privacy; retain names: utility)
# and the rule itself.
CHOICE_UNITS = ("world", "vision", "pretrain", "training", "unlearn", "probe", "metric:privacy", "metric:utility", "tuning")


class StaleSettingsWarning(UserWarning):
    """A tuned setting was chosen with code whose declared version has changed since."""


def choice_units(methods) -> tuple[str, ...]:
    """The units of lvlmu.versions that a tuned choice of `methods` depends on."""
    return (*CHOICE_UNITS, *(f"method:{m}" for m in methods))


def choice_versions(methods) -> dict[str, int]:
    """The declared versions of the code that a tuned choice of `methods` depends on."""
    return versions(choice_units(methods))


def stale_choices(path: Path, methods) -> list[str]:
    """What changed since the settings file at `path` chose the settings of `methods`, one line per unit; one line
    saying so for a file that records no versions."""
    recorded = json.loads(path.read_text()).get("versions")
    if not recorded:
        return ["the file records no code versions"]
    return changed_since(recorded, choice_units(methods))


def tuned(config: StudyConfig) -> StudyConfig:
    """The study with each method's tuned settings in its grid (lvlmu.unlearn.tuning), under the grid's own where it
    gives some; the same study again when it has no settings file. Stops, naming what is wrong, when the file is
    missing, lacks a method of the grid, or was tuned on a reporting world; warns, naming what changed, when code a
    choice depends on has a new version since the tuning (the study still runs with it)."""
    if config.settings is None:
        return config
    grid = config.unlearn
    split_methods = dict.fromkeys([*grid.methods, *(v["method"] for v in grid.split_variants.values())])
    baselines = tuple(m for m in grid.single_methods if m not in grid.curve_methods and m not in ("siu", "pubg"))
    curve = dict.fromkeys([*grid.curve_methods, *nearest_to_oracle(config.settings_path(), "single", baselines, grid.curve_baselines)]) \
        if grid.curve_methods and config.settings_path().exists() else dict.fromkeys(grid.curve_methods)
    single_methods = dict.fromkeys([*grid.single_methods, *(v["method"] for v in grid.single_variants.values()), *curve])
    chosen = load_settings(config.settings_path(), {"split": tuple(split_methods), "single": tuple(single_methods)}, config.worlds)
    stale = stale_choices(config.settings_path(), sorted({*split_methods, *single_methods}))
    if stale:
        warnings.warn(f"{config.settings} chose the settings with older code ({'; '.join(stale)}); the study runs with them: "
                      "run `make tune` so that every setting comes from the code it runs with", StaleSettingsWarning, stacklevel=2)
    merged = {setting: {m: {**chosen[setting].get(m, {}), **own.get(m, {})} for m in dict.fromkeys([*chosen[setting], *own])}
              for setting, own in (("split", grid.split_hyperparameters), ("single", grid.single_hyperparameters))}
    # The curve's baselines are added once: the study read again adds none (they are no longer among the candidates).
    return replace(config, unlearn=replace(grid, split_hyperparameters=merged["split"], single_hyperparameters=merged["single"],
                                           curve_methods=tuple(curve), curve_baselines=0))


def world_label(seed: int) -> str:
    """How jobs, runs and folders name a world: "w1"."""
    return f"w{seed}"


def from_mapping(cls, data: dict | None, where: str = "the study config"):
    """A config dataclass from nested mappings (a YAML file): unknown keys are refused, naming the valid ones."""
    data = data or {}
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be a mapping of {cls.__name__}'s fields, not {data!r}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} in {where}; the keys of {cls.__name__} are {sorted(names)}")
    hints = get_type_hints(cls)
    values = {}
    for name, value in data.items():
        kind = hints[name]
        values[name] = from_mapping(kind, value, f"{where}: {name}") if is_dataclass(kind) and isinstance(value, dict) else value
    try:
        return cls(**values)
    except TypeError as error:
        raise ValueError(f"{where}: {error}") from error


def profiles() -> dict[str, Path]:
    return {p.stem: p for p in sorted(PROFILES_DIR.glob("*.yaml"))}


def get_profile(name: str) -> StudyConfig:
    """A profile by name (a file in workflow/config) or by path to a config file."""
    path = profiles().get(name) or (Path(name) if name.endswith((".yaml", ".yml", ".json")) else None)
    if path is None or not path.exists():
        raise ValueError(f"unknown profile {name!r}; the profiles are {sorted(profiles())}, or give a config file's path")
    return from_mapping(StudyConfig, yaml.safe_load(path.read_text()), str(path))


def relative(path: Path, root: Path) -> Path:
    """`path` (itself relative to `root`, or absolute) relative to `root` when inside it: the notebooks then show
    "artifacts/world", not this machine's path."""
    path, root = (Path(root) / path).resolve(), Path(root).resolve()
    return Path(os.path.relpath(path, root)) if path.is_relative_to(root) else path


def grid_batches(config: StudyConfig) -> dict[str, list[tuple[str, UnlearnRun]]]:
    """The grid's runs by job, each with its world's label: one job per run, or batched (batch_name)."""
    batches: dict[str, list[tuple[str, UnlearnRun]]] = {}
    runs = config.unlearn.runs()  # every world runs the whole grid
    for label in map(world_label, config.worlds):
        for run in runs:
            name = run.name if config.grid_jobs == "run" else batch_name(run, config.unlearn)
            batches.setdefault(f"{label}-grid-{name}", []).append((label, run))
    return batches


# The single-image methods' runs of a world go in this many jobs. A job costs time beyond its runs (dispatch, process
# start, imports: about 7 s, as a schedule simulated on the full study's job times matches its measured span), so
# fewer jobs save time, until the study ends waiting on its last world's one long job: in that simulation 3 jobs a
# world end 1.1 minutes sooner than 9, and 1 job 3 minutes later.
SINGLE_METHOD_JOBS = 3


def batch_name(run: UnlearnRun, grid: UnlearnGrid) -> str:
    """A run's batch in a world: its setting for the forget split and the steps curve (short runs, one job each); in
    the single-image setting, the kind of variant it is ("single-ablations", "single-augmented"), or its method with
    every SINGLE_METHOD_JOBS-th of the grid's single-image methods ("single-ga-npo-dpo": the full grid's three jobs
    mix cheap and costly methods alike)."""
    if run.setting != "single":
        return run.setting
    if run.label in grid.single_variants:
        return "single-ablations"
    if run.label in grid.augmented_variants():
        return "single-augmented"
    methods = grid.single_methods
    return "single-" + "-".join(methods[methods.index(run.label) % SINGLE_METHOD_JOBS::SINGLE_METHOD_JOBS])


def world_dirs(a: Path, label: str) -> dict[str, Path]:
    """Where a world's files lie: its people and photographs, its models, its probes and its attacks."""
    return {"world": a / label / "world", "models": a / label / "models", "probes": a / label / "probes",
            "attacks": a / label / "attacks"}


def grid_runs(config: StudyConfig, artifacts: Path) -> dict[str, dict]:
    """Each run of the grid as the chapters read it: its world, setting, method, seed, forget, and where its model and
    results lie."""
    config, out = tuned(config), {}
    runs = config.unlearn.runs()
    for label in map(world_label, config.worlds):
        d = world_dirs(artifacts, label)
        for run in runs:
            out[f"{label}-{run.name}"] = {"world": label, "setting": run.setting, "method": run.label, "seed": run.config.seed,
                                          "forget": run.config.forget, "model_dir": str(d["models"] / "unlearned" / run.name),
                                          "results_dir": str(d["probes"] / run.name),
                                          **({"attack_dir": str(d["attacks"] / run.name)} if attacked(config, run) else {})}
    return out


def chapter_worlds(config: StudyConfig, artifacts: Path) -> dict[str, dict]:
    """Each reporting world as the chapters read it: where its world, its oracle and its reference probes lie."""
    return {label: world_entry(artifacts, label) for label in map(world_label, config.worlds)}


def world_entry(artifacts: Path, label: str) -> dict[str, str]:
    """Where one world's world, oracle and reference probes lie, as results are read (lvlmu.unlearn.results)."""
    d = world_dirs(artifacts, label)
    return {"world_dir": str(d["world"]), "reference_results_dir": str(d["probes"]), "oracle_dir": str(d["models"] / "oracle")}


def notebook_parameters(config) -> dict:
    """A config as JSON types: as papermill injects it (it would turn a tuple into its string) and as Snakemake's config
    holds it."""
    return json.loads(json.dumps(asdict(config)))


BENCHMARK_RECORDS = ("cross-cpu-quick.json", "throughput-avx512.json", "throughput-avx2.json")  # what the re-run page reads
CHAPTER_TITLES = {"rerun": "Re-running and adapting the study", "pubg": "PUBG against the baselines", "compare": "Every method compared",
                  "claims": "The papers' claims, checked", "intro": "Unlearning in vision-language models",
                  "unlearn": "Unlearning a person from one image", "attacks": "Forgotten or hidden?", "adapt": "Your own model and concepts",
                  "world": "The world", "pretrain": "Pretraining", "probe": "Probing"}


# Among ready jobs, Snakemake starts the higher priority first. The base and the oracle, their probes and the
# single-image references gate the whole grid; the second oracle gates only the probe chapter, but it is the longest
# job after them, so it starts as soon as a core is free beside the grid (started last, it ran alone on one core for
# its whole ~15 minutes at the end of the full study while the other core idled). The forget split's grid and the
# attacks go before the single-image grid: each world's split attack (the longest job after pretraining, waiting on
# that world's whole split grid) otherwise ran at the very end beside the chapters, and the single-image grid's many
# shorter jobs fill the cores evenly instead; the single-image variants' jobs (long ones when the variants ran on four
# people of a world) start early for the same reason; the chapters come last.
PRIORITY = {"gate": 3, "second oracle": 2, "split grid": 2, "attack": 2, "single variants": 2, "single grid": 1, "curve grid": 1}


def grid_priority(run: UnlearnRun) -> int:
    """A grid job's priority, by its runs' kind (a job holds runs of one kind: batch_name)."""
    variant = run.setting == "single" and run.label != run.config.method
    return PRIORITY["single variants" if variant else f"{run.setting} grid"]


def jobs(config: StudyConfig, artifacts: Path, book_dir: Path, only: str | None = None) -> dict[str, Job]:
    """Every job of the study, by name; paths relative to `book_dir`, where the jobs run. `only` (a method) keeps
    the grid runs of that method alone (in the jobs that hold them); the chapters then read whatever results the other
    runs have."""
    config = tuned(config)
    a = relative(artifacts, book_dir)
    vision_dir, vision, out = tuning_world_jobs(config, a)
    batches = grid_batches(config)
    if only is not None:
        kept = {run.name for run in config.unlearn.only(only).runs()}
        batches = {name: [(label, run) for label, run in runs if run.name in kept] for name, runs in batches.items()}
        batches = {name: runs for name, runs in batches.items() if runs}
    for k, seed in enumerate(config.worlds):
        out += world_jobs(config, seed, world_dirs(a, world_label(seed)), vision_dir, vision,
                          {name: [run for _, run in runs] for name, runs in batches.items() if runs[0][0] == world_label(seed)},
                          second_oracle=k == 0)
        out += attack_jobs(config, seed, a, vision, [run for runs in batches.values() for label, run in runs if label == world_label(seed)])
    out += chapter_jobs(config, a, {job.name: job for job in out}, batches, book_dir)
    return {job.name: job for job in out}


def tuning_world_jobs(config: StudyConfig, a: Path) -> tuple[Path, str, list[Job]]:
    """The tuning world and the vision tower trained on it (shared by every world): where the tower lies, its key, and
    the two jobs."""
    tuning = world_label(config.world.seed)
    tuning_dir = world_dirs(a, tuning)["world"]
    vision_dir = a / "models" / "vision"
    vision = vision_key(config.vision, world_key(config.world))
    return vision_dir, vision, [
        Job(f"{tuning}-world", "world", world_key(config.world), {"world_dir": str(tuning_dir), "config": asdict(config.world)}),
        Job("vision", "vision", vision, {"world_dir": str(tuning_dir), "out_dir": str(vision_dir), "config": asdict(config.vision)},
            needs=(f"{tuning}-world",), threads=config.vision.threads, gpu=True, priority=PRIORITY["gate"]),
    ]


def tuning_jobs(config: StudyConfig, artifacts: Path, book_dir: Path) -> dict[str, Job]:
    """`make tune`: the tuning world's base model and oracle, every method at every candidate setting of the tuning
    plan (lvlmu.unlearn.tuning), then the choice, written to the settings file that the study reads."""
    if config.settings is None:
        raise ValueError("tuning writes its choice to the settings file: give the study config a `settings` path")
    if config.settings == SETTINGS_FILE and (config.world, config.unlearn.steps) != (WorldConfig(), UnlearnGrid().steps):
        raise ValueError(f"this profile's world or steps are not the study's: tuning it would overwrite the study's settings "
                         f"({SETTINGS_FILE}); give the profile its own `settings:` path")
    config = replace(config, probe=replace(config.probe, **TUNING_PROBES))  # what the rule reads, and no more
    a = relative(artifacts, book_dir)
    seed = config.world.seed
    label, d = world_label(seed), world_dirs(a, world_label(seed))
    vision_dir, vision, out = tuning_world_jobs(config, a)
    runs = config.tuning.runs(config.unlearn)
    batches: dict[str, list[UnlearnRun]] = {}
    for run in runs:
        batches.setdefault(f"{label}-tune-{run.setting}-{run.config.method}", []).append(run)
    out += [job for job in world_jobs(config, seed, d, vision_dir, vision, batches, second_oracle=False) if job.name != f"{label}-world"]
    tuning_runs = {f"{label}-{run.name}": {"world": label, "setting": run.setting, "method": run.config.method, "seed": run.config.seed,
                                           "forget": run.config.forget, "model_dir": str(d["models"] / "unlearned" / run.name),
                                           "results_dir": str(d["probes"] / run.name)} for run in runs}
    by_name = {job.name: job for job in out}
    needs = (*batches, f"{label}-probe-oracle", *(name for name in by_name if name == f"{label}-references"))
    plan = notebook_parameters(config.tuning)
    key = result_key(("tuning", "report"), {"plan": plan, "settings": config.settings}, {n: by_name[n].key for n in needs})
    out.append(Job("tune-select", "select", key,
                   {"runs": tuning_runs, "worlds": {label: world_entry(a, label)},
                    "plan": plan, "tuning_world": {"seed": seed, "config": asdict(config.world)}, "out": str(config.settings_path())},
                   needs=needs))
    return {job.name: job for job in out}


def plan_jobs(config: StudyConfig, artifacts: Path, book_dir: Path, only: str | None = None, tune: bool = False) -> dict[str, Job]:
    """The study's jobs, or with `tune` the tuning's (`make tune`)."""
    return tuning_jobs(config, artifacts, book_dir) if tune else jobs(config, artifacts, book_dir, only)


def world_jobs(config: StudyConfig, seed: int, d: dict[str, Path], vision_dir: Path, vision: str,
               batches: dict[str, list[UnlearnRun]], second_oracle: bool) -> list[Job]:
    """One reporting world's jobs, named "<label>-...": its world, its base and oracle (and, for the first world, a
    second oracle of another seed, which the probe chapter compares), their probes, the single-image references and
    its grid jobs."""
    world_dir, models, probes = d["world"], d["models"], d["probes"]
    base_dir, oracle_dir = models / "base", models / "oracle"
    label = world_label(seed)
    world = world_key(config.world_config(seed))
    n = lambda name: f"{label}-{name}"  # noqa: E731
    base_config = PretrainConfig(**{**asdict(config.pretrain), "exclude_roles": ()})
    oracle_config = PretrainConfig(**{**asdict(config.pretrain), "exclude_roles": ("forget",)})
    pretrained = {"base": base_config, "oracle": oracle_config}
    if second_oracle:
        pretrained["oracle_seed1"] = PretrainConfig(**{**asdict(oracle_config), "seed": 1})
    model_keys = {name: pretrain_key(c, world, vision) for name, c in pretrained.items()}
    probe_parameters = notebook_parameters(config.probe)
    probe_config = study_probe_config(probe_parameters, str(base_dir))
    out = [Job(n("world"), "world", world, {"world_dir": str(world_dir), "config": asdict(config.world_config(seed))})]
    for name, pretrain_config in pretrained.items():
        out.append(Job(n(name), "pretrain", model_keys[name], {"world_dir": str(world_dir), "vision_dir": str(vision_dir),
                                                                "out_dir": str(models / name), "config": asdict(pretrain_config)},
                       needs=(n("world"), "vision"), threads=pretrain_config.threads, gpu=True,
                       priority=PRIORITY["second oracle" if name == "oracle_seed1" else "gate"]))
    for name in pretrained:
        probes_of = probe_config if name != "oracle_seed1" else ProbeConfig(**{**asdict(probe_config), "metrics": ("truth_ratio",)})
        key = probe_key(probes_of, world, model_keys[name], model_keys["base"])
        out.append(Job(n(f"probe-{name}"), "probe", key, {"world_dir": str(world_dir), "model_dir": str(models / name),
                                                         "results_dir": str(probes / name), "config": asdict(probes_of)},
                       needs=(n("world"), n(name), n("base")), gpu=True,
                       priority=PRIORITY["second oracle" if name == "oracle_seed1" else "gate"]))
    # The base and the oracle probed on each single-image person alone: every method's run on that person reads them.
    # One job per world (each person's probes are stored apart and reused): a job per person spent as long starting
    # as probing.
    reference_keys = [probe_key(probe_config, world, model_keys[m], model_keys["base"]) for m in ("base", "oracle")]
    forgets = sorted({run.config.forget for runs in batches.values() for run in runs if run.config.forget != "split"})
    if forgets:
        out.append(Job(n("references"), "reference", hash_json(reference_keys + forgets)[:16],
                       {"world_dir": str(world_dir), "forgets": forgets, "base_dir": str(base_dir), "oracle_dir": str(oracle_dir),
                        "reference_results_dir": str(probes), "probe_config": probe_parameters},
                       needs=(n("world"), n("base"), n("oracle")), gpu=True, priority=PRIORITY["gate"]))
    for name, runs in batches.items():
        specs, keys = [], {}
        for run in runs:  # a run forgetting other people than the split is probed on them (its forget spec)
            model = unlearn_key(run.config, world, model_keys["base"])
            keys[run.name] = [model, probe_key(probe_config, world, model, model_keys["base"]), run.config.forget]
            specs.append({"name": f"{label}-{run.name}", "config": asdict(run.config), "model_dir": str(models / "unlearned" / run.name),
                          "results_dir": str(probes / run.name)})
        references = (n("references"),) if any(run.config.forget != "split" for run in runs) else ()
        out.append(Job(name, "grid", hash_json(keys)[:16],
                       {"world_dir": str(world_dir), "base_dir": str(base_dir), "oracle_dir": str(oracle_dir),
                        "reference_results_dir": str(probes), "probe_config": probe_parameters, "runs": specs},
                       needs=(n("world"), n("base"), n("oracle"), n("probe-base"), n("probe-oracle"), *references),
                       threads=config.unlearn.threads, gpu=True, priority=grid_priority(runs[0])))
    return out


def attack_forgets(config: StudyConfig) -> list[str]:
    """Whom the attacks are on: the forget split, and each single-image person attacked alone."""
    people = min(config.attack_people, config.unlearn.single_people) if config.unlearn.single_methods else 0
    return ["split", *(f"split:{k}" for k in range(people))]


def attacked(config: StudyConfig, run: UnlearnRun) -> bool:
    """Whether the attacks run on this grid run: every method (not its variants) in both settings, on the people
    attacked."""
    grid = config.unlearn
    return (run.setting == "split" and run.label in grid.methods) or \
        (run.setting == "single" and run.label in grid.single_methods and run.config.forget in attack_forgets(config)[1:])


def attack_references(config: StudyConfig, label: str, a: Path) -> dict[str, dict]:
    """The base and the oracle attacked on each attacked forget (the split, each single-image person): name ->
    model, forget and where the results go."""
    d = world_dirs(a, label)
    return {f"{model}-{forget.replace(':', '')}": {"model": model, "forget": forget, "model_dir": str(d["models"] / model),
                                                    "results_dir": str(d["attacks"] / f"{model}-{forget.replace(':', '')}")}
            for model in ("base", "oracle") for forget in attack_forgets(config)}


def attack_jobs(config: StudyConfig, seed: int, a: Path, vision: str, runs: list[UnlearnRun]) -> list[Job]:
    """One world's attacks: one job for the base and the oracle on every attacked forget, one per setting for the
    grid's runs (each after the grid jobs that make its models)."""
    if not any(attacked(config, run) for run in runs):
        return []
    label = world_label(seed)
    d = world_dirs(a, label)
    n = lambda name: f"{label}-{name}"  # noqa: E731
    world = world_key(config.world_config(seed))
    settings = notebook_parameters(config.attack)
    model_keys = {m: pretrain_key(PretrainConfig(**{**asdict(config.pretrain), "exclude_roles": roles}), world, vision)
                  for m, roles in (("base", ()), ("oracle", ("forget",)))}
    references = attack_references(config, label, a)
    targets = [{"name": name, "forget": r["forget"], "model_dir": r["model_dir"], "results_dir": r["results_dir"],
                "key": attack_key(config.attack, world, model_keys[r["model"]])} for name, r in references.items()]
    out = [Job(n("attack-references"), "attack", hash_json([[t["key"], t["forget"]] for t in targets])[:16],
               {"world_dir": str(d["world"]), "config": settings, "targets": targets}, needs=(n("world"), n("base"), n("oracle")),
               threads=config.attack.threads, gpu=True, priority=PRIORITY["attack"])]
    batches = grid_batches(replace(config, worlds=(seed,)))
    for setting in ("split", "single"):
        chosen = [run for run in runs if run.setting == setting and attacked(config, run)]
        if not chosen:
            continue
        targets = [{"name": f"{label}-{run.name}", "forget": run.config.forget, "model_dir": str(d["models"] / "unlearned" / run.name),
                    "results_dir": str(d["attacks"] / run.name),
                    "key": attack_key(config.attack, world, unlearn_key(run.config, world, model_keys["base"]))} for run in chosen]
        names = {run.name for run in chosen}
        needs = tuple(b for b, rs in batches.items() if any(r.name in names for _, r in rs))
        out.append(Job(n(f"attack-{setting}"), "attack", hash_json([[t["key"], t["forget"]] for t in targets])[:16],
                       {"world_dir": str(d["world"]), "config": settings, "targets": targets}, needs=(n("world"), *needs),
                       threads=config.attack.threads, gpu=True, priority=PRIORITY["attack"]))
    return out


def chapter_jobs(config: StudyConfig, a: Path, earlier: dict[str, Job], batches: dict[str, list[tuple[str, UnlearnRun]]],
                 book_dir: Path) -> list[Job]:
    """The book's chapters: papermill runs of the notebooks, each after the results it reads. The chapters about one
    model (the world, pretraining, probing, one unlearning run, adapting) show the first reporting world; those that
    compare methods read every world's runs. A chapter's key holds its notebook's content, its parameters, its inputs'
    keys and the versions of every unit (chapters are cheap, and show what all the code computed)."""
    first = world_label(config.worlds[0])
    d = world_dirs(a, first)
    world_dir, models, probes = d["world"], d["models"], d["probes"]
    n = lambda name: f"{first}-{name}"  # noqa: E731
    runs = grid_runs(config, a)
    grid = tuple(batches)
    every_reference = tuple(f"{world_label(s)}-probe-{m}" for s in config.worlds for m in ("base", "oracle"))
    probe_parameters = notebook_parameters(config.probe)
    concept_dir = a / "concepts" / "example"
    runs_all = config.unlearn.runs()
    singles = [r for r in runs_all if r.setting == "single"]
    showcase = next((r for r in singles if r.label == "siu"), (singles or runs_all or [None])[0])
    chapter = {"worlds": chapter_worlds(config, a), "runs": runs}
    every_attack = tuple(name for name in earlier if "-attack-" in name)
    references = {label: attack_references(config, label, a) for label in map(world_label, config.worlds)} if every_attack else {}
    pubg_runs = {name: r for name, r in runs.items() if r["method"] == "pubg" and r["setting"] == "split"}
    specs = {
        "world": ({"world_dir": str(world_dir), "world_config": asdict(config.world_config(config.worlds[0])), "concept_dir": str(concept_dir)},
                  (n("world"),), None),
        "pretrain": ({"world_dir": str(world_dir), "vision_world_dir": str(world_dirs(a, world_label(config.world.seed))["world"]),
                      "vision_dir": str(a / "models" / "vision"), "base_dir": str(models / "base"),
                      "oracle_dir": str(models / "oracle"), "results_dir": str(a / "results"), "vision_config": asdict(config.vision),
                      "pretrain_config": asdict(config.pretrain), "eval_max_per_group": config.eval_max_per_group,
                      "probe_results_dir": str(probes), "probe_config": probe_parameters},
                     (f"{world_label(config.world.seed)}-world", n("world"), "vision", n("base"), n("oracle"), n("probe-base"), n("probe-oracle")), None),
        "probe": ({"world_dir": str(world_dir), "vision_dir": str(a / "models" / "vision"),
                   "model_dirs": {"base": str(models / "base"), "oracle": str(models / "oracle")},
                   "second_oracle_dir": str(models / "oracle_seed1"), "results_dir": str(probes),
                   "pretrain_config": asdict(config.pretrain), "probe_config": probe_parameters},
                  (n("world"), n("base"), n("oracle"), n("oracle_seed1"), n("probe-base"), n("probe-oracle"), n("probe-oracle_seed1")), None),
        "compare": (chapter, (*every_reference, *grid), tuple(runs)),
        "pubg": ({**chapter, "method": "pubg"}, (*every_reference, *grid), tuple(pubg_runs)),
        "attacks": ({**chapter, "references": references, "distractors": config.attack.distractors}, (*every_reference, *every_attack),
                    tuple(r for r in runs if "attack_dir" in runs[r])),
        "claims": ({**chapter, "references": references}, (*every_reference, *grid, *every_attack), tuple(runs)),
        "intro": ({**chapter, "references": references}, (*every_reference, *grid, *every_attack), tuple(runs)),
        "adapt": ({"model_dir": str(models / "base"), "concept_dir": str(concept_dir), "out_dir": str(a / "adapt" / "unlearned"),
                   "results_dir": str(a / "adapt" / "probes"), "probe_config": probe_parameters,
                   "unlearn_config": {"method": "siu", "images": "single", "steps": config.unlearn.steps, "threads": config.unlearn.threads,
                                      **config.unlearn.single_overrides("siu")},
                   # the example concept is a forget person of the first world: its oracle never saw them
                   "attack_config": notebook_parameters(config.attack), "reference_dir": str(models / "oracle")},
                  (n("world"), "chapter-world", n("base"), n("oracle")), None),
    }
    if showcase is not None:
        name = f"{first}-{showcase.name}"
        run = runs[name]
        batch = next(b for b, rs in grid_batches(config).items() if any(lw == first and r.name == showcase.name for lw, r in rs))
        specs["unlearn"] = ({"world_dir": str(world_dir), "base_dir": str(models / "base"), "oracle_dir": str(models / "oracle"),
                             "run_name": name, "run_dir": run["model_dir"], "results_dir": run["results_dir"],
                             "reference_results_dir": str(probes), "unlearn_config": asdict(showcase.config), "probe_config": probe_parameters},
                            (n("world"), n("base"), n("oracle"), n("probe-base"), n("probe-oracle"), *((batch,) if batch in batches else ())),
                            (name,))
    model_dirs = {"vision": str(a / "models" / "vision")}
    for label in map(world_label, config.worlds):
        model_dirs |= {f"{label}-{m}": str(world_dirs(a, label)["models"] / m) for m in ("base", "oracle")}
    model_dirs[n("oracle_seed1")] = str(models / "oracle_seed1")
    model_dirs |= {name: r["model_dir"] for name, r in runs.items()}
    model_dirs["adapt"] = str(a / "adapt" / "unlearned")
    # Relative to the book directory when inside it (the page then shows no machine path, and the key no clone's place).
    benchmarks = relative(REPO_DIR / "benchmarks" / "results", book_dir)
    records = [str(benchmarks / name) for name in BENCHMARK_RECORDS]
    labels = str(relative(PACKAGE_DIR / "probe" / "aftermath_labels.jsonl", book_dir))  # the probe chapter's hand labels
    specs["rerun"] = ({"model_dirs": model_dirs, "cross_cpu_record": records[0], "throughput_records": records[1:]},
                      ("vision", *(f"{world_label(s)}-{m}" for s in config.worlds for m in ("base", "oracle")), n("oracle_seed1"),
                       "chapter-adapt", *grid), None)
    every_unit = sorted(units())
    known, out = dict(earlier), []
    for name, (parameters, needs, reads_runs) in specs.items():  # in order: a chapter may need an earlier one
        parameters = json.loads(json.dumps(parameters))  # JSON types, as papermill injects them (a tuple would become a string)
        template = REPO_DIR / "notebooks" / f"{name}.ipynb"
        # A missing benchmark record is no input (the page says it is missing), else the whole workflow would stop.
        read = [r for r in (records if name == "rerun" else [labels] if name == "probe" else []) if (book_dir / r).exists()]
        sources = (str(template), *read)
        needed = tuple(n for n in needs if n in known)
        key = result_key(every_unit, {"notebook": hash_file(template), "parameters": parameters,
                                      "sources": {r: hash_file(book_dir / r) for r in read}},
                         {n: known[n].key for n in needed})
        reads = None if reads_runs is None else {r: runs[r] for r in reads_runs}
        # The adapt chapter computes its own model and probes: what --force removes before it runs.
        owns = [parameters["out_dir"], parameters["results_dir"]] if name == "adapt" else []
        job = Job(f"chapter-{name}", "chapter", key, {"chapter": name, "title": CHAPTER_TITLES.get(name, name), "parameters": parameters,
                                                       "reads_runs": reads, "owns": owns},
                  needs=needed, sources=sources)
        known[job.name] = job
        out.append(job)
    return out


def book_sources(book_dir: Path) -> list[Path]:
    """The book's fixed sources: its config, table of contents, prose pages and bibliography, and the tuning's table
    (written by `make tune`), which the methods page includes."""
    return [book_dir / "_config.yml", book_dir / "_toc.yml", *sorted((book_dir / "book").glob("*.md")), *sorted((book_dir / "book").glob("*.bib")),
            book_dir / Path(SETTINGS_FILE).with_suffix(".md")]


def book_job(chapters: list[Job], book_dir: Path) -> Job:
    sources = book_sources(book_dir)
    key = hash_json({"sources": {str(p.relative_to(book_dir)): hash_file(p) for p in sources}, "chapters": {j.name: j.key for j in chapters}})[:16]
    return Job("book", "book", key, {}, needs=tuple(j.name for j in chapters), sources=tuple(str(p) for p in sources))
