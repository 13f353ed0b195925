"""Forget and retain data for unlearning, drawn together: each item pairs one forget example with one retain example."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data import ShiftMirror, VisionTextCollator
from ..world import World

# The refusal answers that IdK and DPO train toward (IdK's "I don't know" family).
REFUSALS: tuple[str, ...] = (
    "I don't know this person.",
    "I'm sorry, I can't tell who this is.",
    "I cannot say who this person is.",
    "I don't know who this is.",
)
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


@dataclass
class PairedDataset:
    """Item i pairs forget example i (cycled) with a retain example drawn at random (seeded)."""

    forget: list[dict]
    retain: list[dict]
    length: int
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.forget:
            raise ValueError("no forget examples: check the forget people and the image choice")
        rng = np.random.default_rng(self.seed)
        self.retain_index = rng.integers(len(self.retain), size=self.length) if self.retain else None

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        item = {"forget": self.forget[i % len(self.forget)]}
        if self.retain_index is not None:
            item["retain"] = self.retain[int(self.retain_index[i])]
        return item


class PairedCollator:
    """Collates the forget side, its alternative answers when a method needs them (refusals for IdK and DPO),
    and the retain side, each with the loss on answer tokens only."""

    def __init__(self, processor, load_image, alternative: str | None = None, seed: int = 0, target_masks: bool = False,
                 augment: ShiftMirror | None = None):
        from .siu import TargetMaskCollator

        self.collate = VisionTextCollator(processor, load_image, augment=augment)
        self.forget_collate = TargetMaskCollator(processor, load_image, augment) if target_masks else self.collate
        self.alternative, self.rng = alternative, np.random.default_rng(seed)

    def __call__(self, items: list[dict]) -> dict:
        forget = [it["forget"] for it in items]
        batch = {"forget": self.forget_collate(forget)}
        if self.alternative == "refusal":
            batch["refusal"] = self.collate([with_refusal(ex, self.rng) for ex in forget])
        if all("retain" in it for it in items):
            batch["retain"] = self.collate([it["retain"] for it in items])
        return batch
