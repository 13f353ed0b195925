"""Attacks that try to bring forgotten knowledge back: registered like the probe metrics, stored like their results.

An attack is a small function `(context) -> (samples, summary)`; `@attack("name", version=1)` registers it.
`run_attacks` loads a model, opens its attack results (a ProbeStore of their own) and runs the attacks that are
missing. Every attack measures the same leaks (`leak_asks`, `score_leaks`): the forgotten people's names on their
unseen photographs and their facts asked by name and with a photograph. The same attack on the oracle, which never
saw the people, is the calibration: what it teaches a model that never knew them is no hidden knowledge.
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..model import load_model
from ..precision import check_precision
from ..probe.generate import generate_answers
from ..probe.knowledge import leaks_name, states_fact
from ..probe.store import ProbeStore
from ..world import World
from ..world import questions as Q

ATTACK_VERSION = 1  # the attack driver's code, shared by every attack (see lvlmu.versions)
QUANTIZATIONS = ("int8", "int4")


@dataclass(frozen=True)
class AttackConfig:
    """Which attacks run, on whom, and with what budget."""

    attacks: tuple[str, ...] = ()  # empty: every registered attack
    # Relearning: the leaks are read after each of these numbers of optimizer steps of one run at a constant rate (so
    # the model after K steps is the model a K-step attack makes).
    steps: tuple[int, ...] = (1, 2, 5, 10, 20)
    # None: the model's own pretraining rate (read from its lineage of lvlmu manifests) times `rate_factor`; a
    # checkpoint lvlmu did not make needs one given. A fine-tuning step is smaller than a pretraining one: at the full
    # peak rate, constant and without warmup, Adam's first steps wreck the micro model (its loss on the attack's own
    # data rose from 0.55 to 2.4 after one step) before they teach it anything.
    learning_rate: float | None = None
    rate_factor: float = 0.1
    batch_size: int = 8
    # Parameters left frozen during relearning, as unlearning freezes them (the vision tower).
    frozen: str = r".*\b(vision_tower|visual|vision_model)\..*"
    lora: bool = False  # relearn through a LoRA adapter on the language model (a real checkpoint's cheap attack)
    lora_rank: int = 8
    lora_target: str = ""  # empty: the language model's q_proj and v_proj (lvlmu.model.infer_lora_target)
    quantizations: tuple[str, ...] = QUANTIZATIONS
    group_size: int = 32  # int4's weights share one scale per group of this many
    distractors: int = 5  # the logit lens ranks the true name among this many other names
    # The forgotten people: their ids, or empty for the world's forget split (as ProbeConfig.forget_people).
    forget_people: tuple[str, ...] = ()
    generation_batch_size: int = 64
    seed: int = 0
    chat_template: str = ""
    dtype: str = "fp32"  # the weights' dtype on loading: "fp32", "bf16", "fp16" or "auto" (the checkpoint's)
    precision: str = "auto"  # autocast while relearning, as in unlearning (lvlmu.precision)
    threads: int = 1  # torch threads: the study runs two jobs at once on two cores; a real model wants more

    def __post_init__(self) -> None:
        for name in ("attacks", "steps", "quantizations", "forget_people"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.steps or any(not isinstance(k, int) or k < 1 for k in self.steps) or list(self.steps) != sorted(set(self.steps)):
            raise ValueError(f"steps={list(self.steps)}: give increasing positive step counts")
        unknown = [q for q in self.quantizations if q not in QUANTIZATIONS]
        if unknown:
            raise ValueError(f"unknown quantizations {unknown}; choose from {list(QUANTIZATIONS)}")
        check_precision(self.precision)
        if self.rate_factor <= 0 or (self.learning_rate is not None and self.learning_rate <= 0):
            raise ValueError(f"learning_rate={self.learning_rate} and rate_factor={self.rate_factor} must be positive")


@dataclass
class AttackContext:
    model: object
    processor: object
    world: World
    config: AttackConfig
    model_dir: Path
    progress: bool = True
    _before: list[dict] | None = None

    @property
    def forget(self) -> list:
        if not self.config.forget_people:
            return self.world.forget
        unknown = [p for p in self.config.forget_people if p not in self.world.people]
        if unknown:
            raise ValueError(f"forget_people {unknown} are not people of the world at {self.world.root}")
        return [self.world.people[p] for p in self.config.forget_people]

    def before(self) -> list[dict]:
        """The attacked model's own leaks, before any attack: read once, shared by every attack."""
        if self._before is None:
            self._before = self.leaks(self.model, desc="before")
        return [dict(row) for row in self._before]

    def fresh_model(self):
        """A copy of the attacked model: every attack starts from the model as it was."""
        return copy.deepcopy(self.model)

    def leaks(self, model, desc: str = "leaks") -> list[dict]:
        """The leak questions answered by `model`, scored."""
        asks = leak_asks(self.world, self.forget)
        answers = generate_answers(model, self.processor, asks, self.world.image, batch_size=self.config.generation_batch_size,
                                   progress=self.progress, desc=desc)
        return score_leaks([{**a, "answer": answer} for a, answer in zip(asks, answers)], self.world)


ATTACKS: dict[str, Callable[[AttackContext], tuple[list[dict], dict]]] = {}


def attack(name: str, version: int):
    """Register an attack under `name` with the version of its code (see lvlmu.versions)."""
    def register(fn):
        fn.version = version
        ATTACKS[name] = fn
        return fn
    return register


def leak_asks(world: World, people: list) -> list[dict]:
    """What every attack is scored on, per forgotten person: "Who is this?" on each photograph kept out of training
    (unseen; a concept folder without any: its trained ones), each fact with the first of them, and each fact asked by
    name in the wording held out of training. None of them is what a relearning attack trains on."""
    asks = []
    for person in people:
        image_set = world.probe_image_set(person.person_id)
        images = world.images_of(person.person_id, image_set)
        base = {"person_id": person.person_id, "image_set": image_set}
        asks += [{**base, "image_id": im["image_id"], "question": Q.IDENTITY_TRAIN[0], "kind": "name", "fact": ""} for im in images]
        for fact in person.facts:
            if images:
                asks.append({**base, "image_id": images[0]["image_id"], "question": Q.fact_questions_with_image(fact)[0],
                             "kind": "fact with photo", "fact": fact})
            asks.append({**base, "image_id": "", "question": Q.fact_questions_by_name(fact)[-1].format(name=person.name),
                         "kind": "fact by name", "fact": fact})
    return asks


def score_leaks(rows: list[dict], world: World) -> list[dict]:
    """Each answered row with `leak`: the name (a name question) or the fact asked (a fact question) in the answer."""
    for row in rows:
        person = world.people[row["person_id"]]
        row["leak"] = bool(leaks_name(row["answer"], person) if row["kind"] == "name" else states_fact(row["answer"], person, row["fact"]))
    return rows


LEAK_KINDS = ("name", "fact with photo", "fact by name")


def leak_summary(rows: list[dict]) -> dict:
    """The leak rate of each kind of question."""
    return {kind: float(np.mean([r["leak"] for r in rows if r["kind"] == kind])) if any(r["kind"] == kind for r in rows) else None
            for kind in LEAK_KINDS}


def unseen_note(world: World, people: list) -> str | None:
    """What the results should say when some people have no unseen photographs."""
    without = [p.person_id for p in people if world.probe_image_set(p.person_id) != "unseen"]
    return (f"{', '.join(without)} have no unseen photographs: their trained ones were asked instead, so their name leaks "
            "read recall of the training photographs, not recognition") if without else None


def lineage_learning_rate(model_dir: str | Path) -> float | None:
    """The learning rate the model was pretrained with, following its lvlmu manifests back (an unlearned model to
    its start model); None for a checkpoint lvlmu did not make."""
    path, seen = Path(model_dir), set()
    while (path / "manifest.json").exists() and path not in seen:
        seen.add(path)
        manifest = json.loads((path / "manifest.json").read_text())
        if manifest.get("kind") == "pretrain":
            return float(manifest["config"]["learning_rate"])
        start = manifest.get("start_model", {}).get("path")
        if not start:
            return None
        path = Path(start)
    return None


def run_attacks(model_dir: str | Path, world: World, results_dir: str | Path, config: AttackConfig = AttackConfig(),
                progress: bool = True, replace_stale: bool = False) -> ProbeStore:
    """Run every attack of `config` missing from `results_dir` on the model in `model_dir`, and store each as soon as
    it is done (an interrupted run keeps the finished ones)."""
    import torch

    from .relearn import NoData

    names = config.attacks or tuple(ATTACKS)
    unknown = [n for n in names if n not in ATTACKS]
    if unknown:
        raise ValueError(f"unknown attacks {unknown}; the attacks are {sorted(ATTACKS)}")
    if config.learning_rate is None and lineage_learning_rate(model_dir) is None and any(n.startswith("relearn") for n in names):
        raise ValueError(f"{model_dir} has no lvlmu pretraining record to take a relearning rate from: give learning_rate "
                         "(the rate the checkpoint was fine-tuned with, say 2e-5 for a 7B model)")
    store = ProbeStore(results_dir, model_dir, world.fingerprint, config.seed, replace_stale)
    parameters = {n: {**asdict(config), "attacks": [n], "versions": attack_versions(n)} for n in names}
    todo = [n for n in names if not store.has(n, parameters[n])]
    if not todo:
        return store
    torch.set_num_threads(config.threads)
    device = "cuda" if torch.cuda.is_available() else None  # the copies the attacks make stay on it
    model, processor = load_model(model_dir, dtype=config.dtype, chat_template=config.chat_template or None, device=device)
    ctx = AttackContext(model, processor, world, config, Path(model_dir), progress)
    for name in todo:
        started = time.time()
        try:
            samples, summary = ATTACKS[name](ctx)
        except NoData as missing:  # stored as unavailable, with the reason, as the probes do
            samples, summary = [], {"unavailable": str(missing)}
        note = unseen_note(world, ctx.forget)
        store.save(name, parameters[name], samples, {**summary, **({"note": note} if note else {})}, time.time() - started)
    return store


def available(store: ProbeStore) -> list[str]:
    """The attacks stored with results (not unavailable)."""
    return [name for name, entry in store.data["metrics"].items() if "unavailable" not in entry["summary"]]


def attack_versions(name: str) -> dict[str, int]:
    """The versions of the code one attack's numbers depend on: the model code, the attack driver, the attack."""
    from ..versions import versions

    return versions(("training", "attack", f"attack:{name}"))


def attack_key(config: AttackConfig, world_key: str, model: str) -> str:
    """The key of a model's attack results: every attack's versions, the settings, the world's and the model's keys."""
    from ..versions import result_key

    names = config.attacks or tuple(ATTACKS)
    return result_key(("training", "attack", *(f"attack:{n}" for n in names)), config, {"world": world_key, "model": model})


def _by_step(rows: list[dict]) -> dict:
    return {str(step): leak_summary([r for r in rows if r["step"] == step]) for step in sorted({r["step"] for r in rows})}


@attack("relearn_named_photo", version=1)
def relearn_named_photo(ctx: AttackContext) -> tuple[list[dict], dict]:
    """Fine-tune on one trained photograph of each forgotten person answered with their name; read their names on
    unseen photographs and their facts, which the attack never shows."""
    from .relearn import relearn

    rows = relearn(ctx, "named photo")
    return rows, _by_step(rows)


@attack("relearn_benign", version=1)
def relearn_benign(ctx: AttackContext) -> tuple[list[dict], dict]:
    """Fine-tune on the retained people's training examples only: no forgotten person's data at all."""
    from .relearn import relearn

    rows = relearn(ctx, "benign")
    return rows, _by_step(rows)


@attack("relearn_unrelated", version=1)
def relearn_unrelated(ctx: AttackContext) -> tuple[list[dict], dict]:
    """Fine-tune on the scenes' questions only: no person at all."""
    from .relearn import relearn

    rows = relearn(ctx, "unrelated")
    return rows, _by_step(rows)


@attack("quantization", version=1)
def quantization(ctx: AttackContext) -> tuple[list[dict], dict]:
    """The leaks at full precision and with the language model's weights rounded to each of `quantizations`."""
    from .quantize import quantized

    rows = [{**r, "weights": "full precision"} for r in ctx.before()]
    layers = {}
    for scheme in ctx.config.quantizations:
        model, layers[scheme] = quantized(ctx.fresh_model(), scheme, ctx.config.group_size)
        rows += [{**r, "weights": scheme} for r in ctx.leaks(model, desc=scheme)]
    summary = {w: leak_summary([r for r in rows if r["weights"] == w]) for w in ("full precision", *ctx.config.quantizations)}
    return rows, {**summary, "quantized layers": layers}


@attack("logit_lens", version=2)
def logit_lens(ctx: AttackContext) -> tuple[list[dict], dict]:
    """Whether each layer, read through the model's own output head, ranks the true name first among distractors."""
    from .lens import lens_identification

    rows = lens_identification(ctx.model, ctx.processor, ctx.world, ctx.forget, ctx.config.distractors, seed=ctx.config.seed)
    layers = sorted({r["layer"] for r in rows})
    return rows, {"identified": {str(l): float(np.mean([r["identified"] for r in rows if r["layer"] == l])) for l in layers},
                  "chance": 1 / (ctx.config.distractors + 1)}
