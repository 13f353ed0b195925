"""Single Image Unlearning (SIU): its four fine-tuning targets, built from the world, and the Dual Masked KL loss.

For each forget person, from ONE image (or every trained image, when asked):
- T1 aligns the person with an unseen concept: "Who is this?" is answered with an invented name from outside the world,
  in every trained paraphrase;
- T2 assigns a new visual description: the description questions are answered with false traits;
- T3 decouples factual knowledge: the person's facts asked by name, without the image, keep their true answers;
- T4 preserves other knowledge: questions about other known people, with their true answers.

The loss is 0.9 CE over every answer token plus 0.75 Dual Masked KL, KL(reference || model) over the answer tokens
*outside* the target phrases (the invented name, the false description), with the forgotten names' token ids removed
from both distributions (their logits set to -inf, so both renormalise over the rest of the vocabulary).
"""
from __future__ import annotations

import numpy as np
import torch

from ..data import IGNORE_INDEX, VisionTextCollator, conversation_text
from ..world import World
from ..world import questions as Q
from ..world.people import INVENTED_FIRST, INVENTED_LAST
from ..world.traits import TRAIT_VALUES, Traits
from .data import retain_examples


def false_traits(traits: Traits, rng: np.random.Generator) -> Traits:
    """Every known trait changed to another value; a trait that is not known (a reader's concept) drawn at random."""
    values = {name: rng.choice([v for v in TRAIT_VALUES[name] if v != getattr(traits, name)]) for name in TRAIT_VALUES}
    return Traits(**{k: str(v) for k, v in values.items()})


def siu_examples(world: World, person_ids: list[str], images: str = "single", n_other: int = 8, seed: int = 0,
                 target_repeats: int = 1) -> list[dict]:
    """The four SIU targets for each person; T1 and T2 examples carry their target phrase in "target" and appear
    `target_repeats` times (their share of the data, against T3's and T4's)."""
    if target_repeats < 1 or n_other < 0:
        raise ValueError(f"target_repeats must be positive and n_other non-negative, got {target_repeats} and {n_other}")
    rng = np.random.default_rng(seed)
    rows = []
    for pid in person_ids:
        person = world.people[pid]
        chosen = [world.single_image(pid)] if images == "single" else world.images_of(pid, "trained")
        invented = f"{INVENTED_FIRST[rng.integers(len(INVENTED_FIRST))]} {INVENTED_LAST[rng.integers(len(INVENTED_LAST))]}"
        description = false_traits(person.traits, rng).describe()
        base = {"person_id": pid, "role": person.role, "kind": "siu", "split": "train"}
        for image in [im for im in chosen for _ in range(target_repeats)]:
            rows += [{**base, "image_id": image["image_id"], "question": q, "answer": f"This is {invented}.", "target": invented, "siu": "T1"}
                     for q in Q.IDENTITY_TRAIN]
            rows += [{**base, "image_id": image["image_id"], "question": q, "answer": description, "target": description, "siu": "T2"}
                     for q in Q.DESCRIBE]
        rows += [{**ex, "target": "", "siu": "T3"} for ex in world.select("train", kind="fact_text", person_id=pid)]
    others = [ex for ex in retain_examples(world, person_ids) if ex["role"] in ("forget", "retain")]
    for i in rng.choice(len(others), min(n_other, len(others)), replace=False):
        rows.append({**others[int(i)], "target": "", "siu": "T4"})
    return rows


def name_token_ids(tokenizer, names: list[str]) -> list[int]:
    """The token ids that spell the forgotten names, alone or after a space, capitalised or not."""
    ids: set[int] = set()
    for name in names:
        for part in name.split():
            for variant in (part, " " + part, part.lower(), " " + part.lower()):
                ids |= set(tokenizer(variant, add_special_tokens=False)["input_ids"])
    return sorted(ids)


class TargetMaskCollator:
    """VisionTextCollator plus `target_mask`: True at the positions of each example's target phrase.

    The conversation is tokenised as text alone, with character offsets, to find the target's tokens; since image
    tokens expand only inside the prompt, the answer sits at the same distance from the end of each (right-padded)
    row in both, whatever the chat template."""

    def __init__(self, processor, load_image, augment=None):
        self.collate, self.processor = VisionTextCollator(processor, load_image, augment=augment, split_by_length=True), processor

    def __call__(self, examples: list[dict]) -> dict:
        batch = self.collate(examples)
        mask = torch.zeros_like(batch["labels"], dtype=torch.bool)
        for i, ex in enumerate(examples):
            if not ex.get("target"):
                continue
            text = conversation_text(self.processor, ex["question"], ex["answer"], bool(ex.get("image_id")))
            encoded = self.processor.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            start = text.rindex(ex["answer"]) + ex["answer"].index(ex["target"])
            end = start + len(ex["target"])
            hits = [j for j, (a, b) in enumerate(encoded["offset_mapping"]) if a < end and b > start]
            shift = int(batch["attention_mask"][i].sum()) - len(encoded["input_ids"])
            row = batch["input_ids"][i, shift + hits[0] : shift + hits[-1] + 1].tolist()
            if row != encoded["input_ids"][hits[0] : hits[-1] + 1] or not bool((batch["labels"][i, shift + hits[0] :] != IGNORE_INDEX).any()):
                raise ValueError(f"the target {ex['target']!r} of {ex.get('question')!r} is not found among the answer tokens")
            mask[i, shift + hits[0] : shift + hits[-1] + 1] = True
        batch["target_mask"] = mask
        return batch


def dual_masked_kl(logits: torch.Tensor, ref_logits: torch.Tensor, outside_targets: torch.Tensor, forbidden_ids: list[int]) -> torch.Tensor:
    """KL(reference || model) per predicted answer token, averaged over the answer tokens outside the target phrases.

    `logits` and `ref_logits` (N, V) predict the N answer tokens of a batch (lvlmu.answers.AnswerLogits);
    `outside_targets` (N,) marks those that lie outside every target phrase. The forbidden token ids get probability
    zero in both distributions.
    """
    logits, ref_logits = logits.float().clone(), ref_logits.float().clone()
    if forbidden_ids:
        logits[..., forbidden_ids] = float("-inf")
        ref_logits[..., forbidden_ids] = float("-inf")
    log_p, log_ref = torch.log_softmax(logits, -1), torch.log_softmax(ref_logits, -1)
    difference = log_ref - log_p
    if forbidden_ids:
        difference[..., forbidden_ids] = 0.0  # -inf - -inf: those ids have probability zero on both sides
    kl = (log_ref.exp() * difference).sum(-1)
    return (kl * outside_targets).sum() / outside_targets.sum().clamp(min=1)
