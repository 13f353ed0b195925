"""Forget and retain data for unlearning, drawn together: each item pairs one forget example with one retain example."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data import ShiftMirror, VisionTextCollator
from ..world import World
from ..world import questions as Q

REFUSALS = Q.REFUSALS  # the refusals IdK and DPO train toward
# The benchmark's questions about a person. The open queries pretraining also taught ("What can you tell me about this
# person?") stay out: PUBG's open query then measures whether forgetting reaches a form of question it never saw.
FORGET_KINDS = ("identity", "fact_image", "fact_text")


def resolve_forget(world: World, forget: str | list[str] | tuple[str, ...]) -> list[str]:
    """Person ids to forget: "split" for the world's forget split, "split:K" for its K-th person alone, or explicit ids
    of known people."""
    split = [p.person_id for p in world.forget]
    if forget == "split":
        return split
    if isinstance(forget, str) and forget.startswith("split:"):
        index = forget.removeprefix("split:")
        if not index.isdigit() or int(index) >= len(split):
            raise ValueError(f"{forget!r}: the forget split has {len(split)} people, numbered from 0")
        return [split[int(index)]]
    ids = [forget] if isinstance(forget, str) else list(forget)
    unknown = [pid for pid in ids if pid not in world.people or world.people[pid].role not in ("forget", "retain")]
    if unknown:
        raise ValueError(f"cannot forget {unknown}: not known people of this world (known people: "
                         f"{sorted(p.person_id for p in world.people.values() if p.role in ('forget', 'retain'))[:12]}...)")
    return ids


def forget_examples(world: World, person_ids: list[str], images: str = "trained") -> list[dict]:
    """The training examples that taught each person: on their single image only, or on all their trained images."""
    if images not in ("single", "trained"):
        raise ValueError(f"images must be 'single' or 'trained', got {images!r}")
    ids = set(person_ids)
    single = {world.single_image(pid)["image_id"] for pid in ids}
    return [ex for ex in world.select("train") if ex["person_id"] in ids and ex["kind"] in FORGET_KINDS
            and (images == "trained" or not ex["image_id"] or ex["image_id"] in single)]


def retain_examples(world: World, person_ids: list[str]) -> list[dict]:
    """Training examples of everyone else who is known, and of the general questions (scenes)."""
    ids = set(person_ids)
    return [ex for ex in world.select("train") if ex["person_id"] not in ids and ex["role"] in ("forget", "retain", "scene")]


def with_refusal(example: dict, rng: np.random.Generator) -> dict:
    return {**example, "answer": REFUSALS[int(rng.integers(len(REFUSALS)))]}


def with_random_answers(world: World, examples: list[dict], person_ids: list[str], seed: int = 0) -> list[dict]:
    """Each forget example with a `substitute`: the same question's answer for a random other known person (PUBG's
    RANDOM baseline): "This is <another name>." for identity questions, another person's fact for fact questions
    (in the third person, so the forgotten name is never a target). Another person whose answer would state something
    true of the forgotten one (a shared city, say) is never drawn."""
    from ..probe.knowledge import leaks_private

    rng = np.random.default_rng(seed)
    others = [p for p in world.retain if p.person_id not in set(person_ids)]
    rows = []
    for ex in examples:
        answers = [f"This is {o.name}." if ex["kind"] == "identity" else Q.fact_answer(o, ex["detail"]) for o in others]
        answers = [a for a in answers if not leaks_private(a, [world.people[ex["person_id"]]])]
        if not answers:
            raise ValueError(f"random answers need another known person whose answer to {ex['question']!r} is false for "
                             f"{ex['person_id']}, and the world has none")
        rows.append({**ex, "substitute": answers[int(rng.integers(len(answers)))]})
    return rows


@dataclass
class PairedDataset:
    """Item i pairs forget example i (cycled) with a retain example drawn at random (seeded), and with guidance
    example i (cycled) when there are any."""

    forget: list[dict]
    retain: list[dict]
    length: int
    seed: int = 0
    guide: list[dict] | None = None  # PUBG's guidance examples, cycled like the forget examples

    def __post_init__(self) -> None:
        if not self.forget:
            raise ValueError("no forget examples: check the forget people and the image choice")
        rng = np.random.default_rng(self.seed)
        self.retain_index = rng.integers(len(self.retain), size=self.length) if self.retain else None

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        item = {"forget": self.forget[i % len(self.forget)]}
        if self.guide:
            item["guide"] = self.guide[i % len(self.guide)]
        if self.retain_index is not None:
            item["retain"] = self.retain[int(self.retain_index[i])]
        return item


class PairedCollator:
    """Collates the forget side; its alternative answers when a method needs them ("refusal": IdK and DPO; "random":
    each example's `substitute`); PUBG's guidance (the student's questions and the teacher's prompts on the same
    images, both answered with the desirable answer, never augmented so both see the same pixels); and the retain side.
    Every batch has the loss on answer tokens only."""

    def __init__(self, processor, load_image, alternative: str | None = None, seed: int = 0, target_masks: bool = False,
                 augment: ShiftMirror | None = None):
        from .siu import TargetMaskCollator

        self.collate = VisionTextCollator(processor, load_image, augment=augment, split_by_length=True)
        self.plain = VisionTextCollator(processor, load_image, split_by_length=True)
        self.forget_collate = TargetMaskCollator(processor, load_image, augment) if target_masks else self.collate
        self.alternative, self.rng = alternative, np.random.default_rng(seed)

    def __call__(self, items: list[dict]) -> dict:
        forget = [it["forget"] for it in items]
        batch = {"forget": self.forget_collate(forget)}
        if self.alternative == "refusal":
            batch["alternative"] = self.collate([with_refusal(ex, self.rng) for ex in forget])
        elif self.alternative == "random":
            batch["alternative"] = self.collate([{**ex, "answer": ex["substitute"]} for ex in forget])
        elif self.alternative is not None:
            raise ValueError(f"unknown alternative answers {self.alternative!r}: 'refusal' or 'random'")
        if all("guide" in it for it in items):
            guide = [it["guide"] for it in items]
            batch["guide"] = self.plain(guide)
            batch["teacher"] = self.plain([{**g, "question": g["teacher_question"]} for g in guide])
        if all("retain" in it for it in items):
            batch["retain"] = self.collate([it["retain"] for it in items])
        return batch
