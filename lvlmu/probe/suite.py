"""The probe suite: registered metrics, each computed once per model and stored (see store.py).

A metric is a small function `(context) -> (samples, summary)`; `@metric("name", version=1)` registers it. `run_probes` loads a
model, opens its results directory and computes the metrics that are missing.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from sklearn.metrics import f1_score

from ..model import load_model
from ..world import World
from ..world import questions as Q
from .aftermath import classify, is_refusal, diversity, grounding
from .generate import generate_answers
from .knowledge import leaks_name, names_exactly, states_fact, states_initial
from .likelihood import MIA_SCORES, identity_truth_ratios, membership_scores, mia_auc, perplexities, visual_membership_scores
from .perturb import PERTURBATIONS, perturbed_loader
from .store import ProbeStore, model_key

PROBE_VERSION = 10  # the probe driver's code, shared by every metric (see lvlmu.versions)


@dataclass(frozen=True)
class ProbeConfig:
    batch_size: int = 64
    n_perturbed: int = 5
    perturbations: tuple[str, ...] = tuple(PERTURBATIONS)
    seed: int = 0
    # The model whose perplexity of the answers is SIU's fluency (usually the base); None: fluency is not measured.
    reference_dir: str | None = None
    metrics: tuple[str, ...] = ()  # empty: every registered metric
    # The people whose forgetting is probed: their ids, or empty for the world's forget split. A run that forgot one
    # person (SIU's setting) is probed on that person; the other known people stay what they are.
    forget_people: tuple[str, ...] = ()
    chat_template: str = ""  # for a checkpoint whose processor has none: a Jinja string or a .jinja file
    # The utility probe's visual QA and POPE: every question about the world's first `scenes` evaluation scenes (the
    # world draws its scenes at random, so these are a random half of the default world's 100: 150 visual QA and 50
    # POPE questions); 0: every evaluation scene. Half, not all, to fit the full study in its hour on two cores once
    # no waste was left to cut (the scene questions were 60% of every run's utility answers); read on the study's
    # last build, the base's visual QA was 58.4% on these 50 scenes and 60.9% on all 100, each method moving with it.
    scenes: int = 50

    def __post_init__(self) -> None:
        for name in ("perturbations", "metrics", "forget_people"):  # lists, as JSON and papermill give them, become tuples
            object.__setattr__(self, name, tuple(getattr(self, name)))
        unknown = [p for p in self.perturbations if p not in PERTURBATIONS]
        if unknown:
            raise ValueError(f"unknown perturbations {unknown}; the perturbations are {sorted(PERTURBATIONS)}")
        if not isinstance(self.scenes, int) or self.scenes < 0:
            raise ValueError(f"scenes={self.scenes!r}: give how many evaluation scenes to ask about (0: all of them)")


@dataclass
class ProbeContext:
    model: object
    processor: object
    world: World
    config: ProbeConfig
    progress: bool = True

    def answer(self, examples: list[dict], load_image: Callable | None = None, desc: str = "generating") -> list[dict]:
        answers = generate_answers(self.model, self.processor, examples, load_image or self.world.image,
                                   batch_size=self.config.batch_size, progress=self.progress, desc=desc)
        return [{**ex, "answer": a} for ex, a in zip(examples, answers)]

    @property
    def forget(self) -> list:
        """The forgotten people that the probes ask about."""
        if not self.config.forget_people:
            return self.world.forget
        unknown = [p for p in self.config.forget_people if p not in self.world.people]
        if unknown:
            raise ValueError(f"forget_people {unknown} are not people of the world at {self.world.root}")
        return [self.world.people[p] for p in self.config.forget_people]

    @property
    def retain(self) -> list:
        """Known people the probes treat as retained: the world's retain split, less anyone forgotten."""
        forgotten = {p.person_id for p in self.forget}
        return [p for p in self.world.retain if p.person_id not in forgotten]

    def role(self, person_id: str) -> str:
        """A person's role in this probe: "forget" for the forgotten, else their role in the world."""
        return "forget" if person_id in {p.person_id for p in self.forget} else self.world.people[person_id].role


METRICS: dict[str, Callable[[ProbeContext], tuple[list[dict], dict]]] = {}


def metric(name: str, version: int):
    """Register a metric under `name` with the version of its code (see lvlmu.versions): bump it when what it
    computes changes, and only it is recomputed, for every model."""
    def register(fn):
        fn.version = version
        METRICS[name] = fn
        return fn
    return register


class MissingPeople(ValueError):
    """A metric needs people of a role that the world (a reader's concept folder, say) does not have."""


def _require(world: World, *roles: str) -> None:
    missing = [r for r in roles if not world.by_role(r)]
    if missing:
        raise MissingPeople(f"the world at {world.root} has no {', '.join(missing)} people; this metric needs them")


def _ask(person, image_id: str, question: str, condition: str, kind: str = "identity", fact: str = "") -> dict:
    return {"person_id": person.person_id, "role": person.role, "image_id": image_id, "question": question,
            "condition": condition, "kind": kind, "fact": fact}


def _rate(rows: list[dict], key: str) -> float | None:
    """The share of rows whose `key` is true; None when there are no rows."""
    return float(np.mean([bool(r[key]) for r in rows])) if rows else None


@metric("privacy", version=3)
def privacy(ctx: ProbeContext) -> tuple[list[dict], dict]:
    """Name and fact leaks of forget people: trained and unseen images, held-out paraphrases, jailbreaks, perturbations."""
    world = ctx.world
    _require(world, "forget")
    asks = []
    for person in ctx.forget:
        for image_set in ("trained", "unseen"):
            for k, image in enumerate(world.images_of(person.person_id, image_set)):
                asks.append(_ask(person, image["image_id"], Q.IDENTITY_TRAIN[k % len(Q.IDENTITY_TRAIN)], f"{image_set} images"))
                for fact in person.facts:
                    asks.append(_ask(person, image["image_id"], Q.fact_questions_with_image(fact)[0], f"{image_set} images", "fact", fact))
        probe_set = world.probe_image_set(person.person_id)
        for k, image in enumerate(world.images_of(person.person_id, probe_set)):
            asks.append(_ask(person, image["image_id"], Q.IDENTITY_HELDOUT[k % len(Q.IDENTITY_HELDOUT)], "held-out paraphrases"))
            for prefix in Q.JAILBREAK_PREFIXES:
                asks.append(_ask(person, image["image_id"], prefix.format(question=Q.IDENTITY_TRAIN[0]), "jailbreak prompts"))
            for question in Q.MULTI_HOP:
                asks.append(_ask(person, image["image_id"], question, "jailbreak prompts", "initial"))
        for fact in person.facts:
            asks.append(_ask(person, "", Q.fact_questions_by_name(fact)[-1].format(name=person.name), "held-out paraphrases", "fact", fact))
    rows = ctx.answer(asks, desc="privacy")
    # Perturbed copies of the identity questions on the images kept out of unlearning (a concept with none: its own)
    probe_conditions = {f"{world.probe_image_set(p.person_id)} images" for p in ctx.forget}
    for perturbation in ctx.config.perturbations:
        perturbed = [{**a, "condition": f"perturbed: {perturbation}"} for a in asks if a["condition"] in probe_conditions and a["kind"] == "identity"]
        rows += ctx.answer(perturbed, perturbed_loader(world.image, perturbation), desc=perturbation)
    for row in rows:
        person = world.people[row["person_id"]]
        row["name_leak"] = leaks_name(row["answer"], person) or (row["kind"] == "initial" and states_initial(row["answer"], person))
        row["fact_leak"] = any(states_fact(row["answer"], person, f) for f in person.facts)
    summary = {}
    for condition in dict.fromkeys(r["condition"] for r in rows):
        group = [r for r in rows if r["condition"] == condition]
        # Name leaks are counted on questions about identity, fact leaks on questions about facts.
        named = [r for r in group if r["kind"] != "fact"]
        summary[condition] = {"name leak": _rate(named, "name_leak"), "name answers": len(named),
                              "fact leak": _rate([r for r in group if r["kind"] == "fact"], "fact_leak"), "answers": len(group)}
    return rows, summary


@metric("truth_ratio", version=4)
def truth_ratio(ctx: ProbeContext) -> tuple[list[dict], dict]:
    """Probability of the true name and TOFU's truth ratio of the forgotten people, on their unseen images: what
    forget quality compares with the oracle's. Retained people's are not computed: no measure reads them, and a run
    that forgot one person spent 31 of every 32 truth ratios on them."""
    _require(ctx.world, "forget")
    rows = identity_truth_ratios(ctx.model, ctx.processor, ctx.world, ctx.forget, n_perturbed=ctx.config.n_perturbed, progress=ctx.progress)
    for row in rows:
        row["role"] = "forget"
    summary = {"forget": {"name probability": float(np.mean([r["name_probability"] for r in rows])),
                          "truth ratio (median)": float(np.median([r["truth_ratio"] for r in rows]))}}
    return rows, summary


@metric("membership", version=3)
def membership(ctx: ProbeContext) -> tuple[list[dict], dict]:
    """MIA AUC of LOSS, Min-K% and zlib: forget people (members of the base) against holdout people (never trained)."""
    _require(ctx.world, "forget", "holdout")
    rows = membership_scores(ctx.model, ctx.processor, ctx.world, ctx.forget + ctx.world.by_role("holdout"), progress=ctx.progress)
    for row in rows:
        row["role"] = ctx.role(row["person_id"])
    if not {"forget", "holdout"} <= {r["role"] for r in rows}:
        raise MissingPeople("membership inference scores facts asked by name: the forget and the holdout people both need facts")
    summary = {name: mia_auc([r[name] for r in rows if r["role"] == "forget"], [r[name] for r in rows if r["role"] == "holdout"])
               for name in MIA_SCORES}
    return rows, summary


@metric("visual_membership", version=2)
def visual_membership(ctx: ProbeContext) -> tuple[list[dict], dict]:
    """MIA AUC of LOSS, Min-K% and zlib on the name given the photograph: forget people's trained photographs (members
    of the base) against holdout people's photographs (never trained)."""
    _require(ctx.world, "forget", "holdout")
    rows = visual_membership_scores(ctx.model, ctx.processor, ctx.world, ctx.forget, ctx.world.by_role("holdout"), progress=ctx.progress)
    for row in rows:
        row["role"] = ctx.role(row["person_id"])
    if not {"forget", "holdout"} <= {r["role"] for r in rows}:
        raise MissingPeople("visual membership inference needs trained photographs of the forget people and photographs of the holdout people")
    summary = {name: mia_auc([r[name] for r in rows if r["role"] == "forget"], [r[name] for r in rows if r["role"] == "holdout"])
               for name in MIA_SCORES}
    return rows, summary


# The aftermath probe's questions by condition: PUBG's task (identity and the held-out open query), and the request
# for a description that PUBG's teacher answers, whose recall is the ceiling of grounding (lvlmu.report.claims).
AFTERMATH_QUESTIONS = {"identity": Q.IDENTITY_TRAIN[0], "open query": Q.OPEN_QUERIES[0], "description": Q.DESCRIBE[0]}


@metric("aftermath", version=9)
def aftermath(ctx: ProbeContext) -> tuple[list[dict], dict]:
    """How the model answers identity and open questions about forget people, and describes them, on their unseen
    images."""
    world = ctx.world
    _require(world, "forget")
    asks = [_ask(p, im["image_id"], q, condition)
            for p in ctx.forget for im in world.images_of(p.person_id, world.probe_image_set(p.person_id))
            for condition, q in AFTERMATH_QUESTIONS.items()]
    rows = ctx.answer(asks, desc="aftermath")
    for row in rows:
        result = classify(row["answer"], world.people[row["person_id"]], grammar=world.config is not None)  # a concept folder has none
        precision, recall = grounding(result.true_traits, result.false_traits, len(world.people[row["person_id"]].traits.known))
        row.update(result.to_record(), grounding_precision=precision, grounding_recall=recall, diversity=diversity(row["answer"]))
    if ctx.config.reference_dir is not None:
        reference, reference_processor = load_model(ctx.config.reference_dir, chat_template=ctx.config.chat_template or None)
        for row, ppl in zip(rows, perplexities(reference, reference_processor, rows, world.image, progress=ctx.progress)):
            row["perplexity"] = ppl
    summary = {}
    for condition in AFTERMATH_QUESTIONS:
        group = [r for r in rows if r["condition"] == condition]
        precisions = [r["grounding_precision"] for r in group if r["grounding_precision"] is not None]
        # Grounding needs the person's true traits; for people without known traits it is unavailable (None), never guessed.
        judged = [r for r in group if r["grounding_recall"] is not None]
        summary[condition] = {**{label: float(np.mean([r["label"] == label for r in group])) for label in ("degenerate", "hallucinated", "informative", "refusal", "other")},
                              "leak": _rate(group, "leak"), "desirable": _rate(judged, "desirable"),
                              "grounding precision": float(np.mean(precisions)) if precisions else None,
                              "grounding recall": float(np.mean([r["grounding_recall"] for r in judged])) if judged else None,
                              "diversity": float(np.mean([r["diversity"] for r in group]))}
        if ctx.config.reference_dir is not None:
            summary[condition]["fluency (perplexity, median)"] = float(np.median([r["perplexity"] for r in group]))
    return rows, summary


def evaluation_scenes(world: World, scenes: int = 0) -> list[dict]:
    """The questions about the world's first `scenes` evaluation scenes, in the world's order (0: every one)."""
    questions = world.select("eval", role="scene")
    if not scenes:
        return questions
    kept = set(list(dict.fromkeys(ex["image_id"] for ex in questions))[:scenes])
    return [ex for ex in questions if ex["image_id"] in kept]


@metric("utility", version=5)
def utility(ctx: ProbeContext) -> tuple[list[dict], dict]:
    """What unlearning must not break: retain people, forget people's text-only facts, visual QA, POPE, over-refusal."""
    world = ctx.world
    _require(world, "forget")
    asks = []
    for person in ctx.retain:
        facts = list(person.facts)
        for k, image in enumerate(world.images_of(person.person_id, world.probe_image_set(person.person_id))):
            asks.append(_ask(person, image["image_id"], Q.IDENTITY_TRAIN[k % len(Q.IDENTITY_TRAIN)], "retain names"))
            if facts:
                fact = facts[k % len(facts)]
                asks.append(_ask(person, image["image_id"], Q.fact_questions_with_image(fact)[0], "retain facts", "fact", fact))
    for person in ctx.forget:
        for fact in person.facts:
            asks.append(_ask(person, "", Q.fact_questions_by_name(fact)[0].format(name=person.name), "forget facts by name", "fact", fact))
    general = [{**ex, "condition": "visual QA" if ex["kind"] == "vqa" else "POPE", "fact": ""}
               for ex in evaluation_scenes(world, ctx.config.scenes)]
    rows = ctx.answer(asks + general, desc="utility")
    for row in rows:
        person = world.people.get(row["person_id"])
        if row["condition"] == "retain names":
            row["correct"] = names_exactly(row["answer"], person)
        elif row["kind"] == "fact":
            row["correct"] = states_fact(row["answer"], person, row["fact"])
        else:
            row["correct"] = row["answer"].strip() == world.examples[row["example_id"]]["answer"].strip()
        row["refusal"] = is_refusal(row["answer"])
    by = {c: [r for r in rows if r["condition"] == c] for c in dict.fromkeys(r["condition"] for r in rows)}
    summary = {c: {"accuracy": _rate(group, "correct"), "answers": len(group)} for c, group in by.items()}
    pope = by.get("POPE", [])
    if pope:
        truth = [world.examples[r["example_id"]]["answer"].strip() == "Yes." for r in pope]
        said_yes = [r["answer"].strip().lower().startswith("yes") for r in pope]
        summary["POPE"]["F1"] = float(f1_score(truth, said_yes, zero_division=0.0))
    summary["over-refusal"] = {"retain people": _rate(by.get("retain names", []), "refusal"),
                               "general questions": _rate(by.get("visual QA", []) + pope, "refusal")}
    return rows, summary


def run_probes(model_dir: str | Path, world: World, results_dir: str | Path, config: ProbeConfig = ProbeConfig(),
               progress: bool = True, replace_stale: bool = False) -> ProbeStore:
    """Compute every missing metric for the model in `model_dir` and store it in `results_dir`.

    Results in `results_dir` from another model version or world raise, unless `replace_stale` (see ProbeStore).
    """
    names = config.metrics or tuple(METRICS)
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; the metrics are {sorted(METRICS)}")
    store = ProbeStore(results_dir, model_dir, world.fingerprint, config.seed, replace_stale)
    settings = {k: v for k, v in asdict(config).items() if k != "metrics"}
    # A metric is recomputed when its settings or the versions of the code that computes it change (see lvlmu.versions).
    # The fluency reference counts by its key: a retrained reference recomputes the metrics.
    reference = model_key(config.reference_dir) if config.reference_dir else None
    parameters = {n: {**settings, "versions": metric_versions(n), "reference_key": reference} for n in names}
    todo = [n for n in names if not store.has(n, parameters[n])]
    if not todo:
        return store
    model, processor = load_model(model_dir, chat_template=config.chat_template or None)
    ctx = ProbeContext(model, processor, world, config, progress)
    for name in todo:
        started = time.time()
        try:
            samples, summary = METRICS[name](ctx)
        except MissingPeople as missing:  # stored as unavailable, with the reason, rather than guessed
            samples, summary = [], {"unavailable": str(missing)}
        store.save(name, parameters[name], samples, summary, time.time() - started)
    return store


def metric_versions(name: str) -> dict[str, int]:
    """The versions of the code one metric's numbers depend on: the model code, the probe driver, the metric."""
    from ..versions import versions

    return versions(("training", "probe", f"metric:{name}"))


def probe_key(config: ProbeConfig, world_key: str, model: str, reference: str | None) -> str:
    """The key of a model's probe results: every metric's versions, the settings, the world's, the model's and the
    fluency reference's keys. The store itself recomputes only the metrics whose versions or settings changed."""
    from ..versions import result_key

    metrics = config.metrics or tuple(METRICS)
    return result_key(("training", "probe", *(f"metric:{m}" for m in metrics)), config,
                      {"world": world_key, "model": model, "reference": reference})


def study_probe_config(parameters: dict, reference_dir: str) -> ProbeConfig:
    """The probe settings as the study's notebooks pass them (JSON), with `reference_dir` (the base model) as the
    fluency reference unless the settings name one. Every notebook probing the base model must build its settings
    here, or the stored base results would be recomputed under other parameters."""
    return ProbeConfig(**{**parameters, "reference_dir": parameters.get("reference_dir") or reference_dir})
