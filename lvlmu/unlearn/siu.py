"""Single Image Unlearning (SIU): its four fine-tuning targets, built from the world, and the Dual Masked KL loss.

For each forget person, from ONE image (or every trained image, when asked):
- T1 aligns the person with an unseen concept: "Who is this?" is answered with an invented name from outside the world,
  in every trained paraphrase (or, as an ablation, with the answer the world gives a person the model never saw);
- T2 assigns a new visual description: the description questions are answered with false traits;
- T3 decouples factual knowledge: the person's facts asked by name, without the image, keep their true answers;
- T4 preserves other knowledge: questions about other known people, with their true answers.

The loss is 0.9 CE over every answer token plus 0.75 Dual Masked KL. As the paper writes it, the DMK is the KL from
the reference to the model at the answer tokens *outside* the target phrases (the token mask), summed over the
vocabulary *except* the forgotten names' token ids (the vocabulary mask): both distributions are the full softmax, so
the mask only selects terms, and matching the model to the reference on the other tokens also pushes the model's mass
off the names. `SIUConfig` switches each mask off, and selects lvlmu's first form, which renormalised both
distributions without the names (the model's mass on them then got no gradient), for the ablations.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data import IGNORE_INDEX, VisionTextCollator, conversation_text
from ..world import World
from ..world import questions as Q
from ..world.questions import stranger_answer
from ..world.people import INVENTED_FIRST, INVENTED_LAST
from ..world.traits import TRAIT_VALUES, Traits
from .data import retain_examples


KL_FORMS = ("paper", "renormalised")
T1_ANSWERS = ("invented", "unseen")


@dataclass(frozen=True)
class SIUConfig:
    """SIU's own settings; the defaults are the paper's, the others its ablations."""

    kl: str = "paper"  # "paper": the vocabulary mask selects KL terms; "renormalised": both sides renormalise without the names
    token_mask: bool = True  # leave the target phrases' tokens out of the KL
    vocabulary_mask: bool = True  # leave the forgotten names' token ids out of the KL
    t1: str = "invented"  # "invented": T1 answers with an invented name; "unseen": with the world's answer for a person never seen

    def __post_init__(self) -> None:
        if self.kl not in KL_FORMS or self.t1 not in T1_ANSWERS:
            raise ValueError(f"SIU's kl must be one of {KL_FORMS} and t1 one of {T1_ANSWERS}; got {self.kl!r} and {self.t1!r}")


def false_traits(traits: Traits, rng: np.random.Generator) -> Traits:
    """Every known trait changed to another value; a trait that is not known (a reader's concept) drawn at random."""
    values = {name: rng.choice([v for v in TRAIT_VALUES[name] if v != getattr(traits, name)]) for name in TRAIT_VALUES}
    return Traits(**{k: str(v) for k, v in values.items()})


def siu_examples(world: World, person_ids: list[str], images: str = "single", n_other: int = 8, seed: int = 0,
                 target_repeats: int = 1, t1: str = "invented") -> list[dict]:
    """The four SIU targets for each person; T1 and T2 examples carry their target phrase in "target" and appear
    `target_repeats` times (their share of the data, against T3's and T4's). T1's answer is an invented name, or with
    `t1="unseen"` the answer the world gives a person the model never saw (the whole answer is then the target)."""
    if target_repeats < 1 or n_other < 0:
        raise ValueError(f"target_repeats must be positive and n_other non-negative, got {target_repeats} and {n_other}")
    rng = np.random.default_rng(seed)
    rows = []
    for pid in person_ids:
        person = world.people[pid]
        chosen = [world.single_image(pid)] if images == "single" else world.images_of(pid, "trained")
        invented = f"{INVENTED_FIRST[rng.integers(len(INVENTED_FIRST))]} {INVENTED_LAST[rng.integers(len(INVENTED_LAST))]}"
        description = false_traits(person.traits, rng).describe()
        unseen = stranger_answer(person)
        identity = (f"This is {invented}.", invented) if t1 == "invented" else (unseen, unseen)
        base = {"person_id": pid, "role": person.role, "kind": "siu", "split": "train"}
        for image in [im for im in chosen for _ in range(target_repeats)]:
            rows += [{**base, "image_id": image["image_id"], "question": q, "answer": identity[0], "target": identity[1], "siu": "T1"}
                     for q in Q.IDENTITY_TRAIN]
            rows += [{**base, "image_id": image["image_id"], "question": q, "answer": description, "target": description, "siu": "T2"}
                     for q in Q.DESCRIBE]
        rows += [{**ex, "target": "", "siu": "T3"} for ex in world.select("train", kind="fact_text", person_id=pid)]
    others = [ex for ex in retain_examples(world, person_ids) if ex["role"] in ("forget", "retain")]
    for i in rng.choice(len(others), min(n_other, len(others)), replace=False):
        rows.append({**others[int(i)], "target": "", "siu": "T4"})
    return rows


def name_token_ids(tokenizer, names: list[str]) -> list[int]:
    """The token ids that spell the forgotten names as answers write them: each part capitalised, at the start of a
    text or after a space. (Lowercase spellings, which answers never use, are left out: with a small vocabulary
    their pieces are common sub-words, and masking them would widen the mask past the names.)"""
    ids: set[int] = set()
    for name in names:
        for part in name.split():
            for variant in (part, " " + part):
                ids |= set(tokenizer(variant, add_special_tokens=False)["input_ids"])
    return sorted(ids)


def vocabulary_mask_table(tokenizer, names: list[str]) -> list[dict]:
    """What the vocabulary mask removes for `names`: each token id with the text it decodes to."""
    return [{"token id": i, "decodes to": tokenizer.decode([i])} for i in name_token_ids(tokenizer, names)]


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


def dual_masked_kl(logits: torch.Tensor, ref_logits: torch.Tensor, outside_targets: torch.Tensor, forbidden_ids: list[int],
                   form: str = "paper") -> torch.Tensor:
    """The Dual Masked KL, KL(reference || model) per predicted answer token, averaged over the tokens `outside_targets`
    marks (N,) among the N answer tokens whose next-token `logits` and `ref_logits` (N, V) are given.

    "paper": sum over the vocabulary less `forbidden_ids` of p_ref(v) (log p_ref(v) - log p_model(v)), both full
    softmaxes. "renormalised": the forbidden ids get probability zero in both distributions, which renormalise over the
    rest of the vocabulary (the model's mass on them then gets no gradient).
    """
    if form not in KL_FORMS:
        raise ValueError(f"unknown DMK form {form!r}; choose from {KL_FORMS}")
    logits, ref_logits = logits.float().clone(), ref_logits.float().clone()
    if forbidden_ids and form == "renormalised":
        logits[..., forbidden_ids] = float("-inf")
        ref_logits[..., forbidden_ids] = float("-inf")
    log_p, log_ref = torch.log_softmax(logits, -1), torch.log_softmax(ref_logits, -1)
    difference = log_ref - log_p
    if forbidden_ids:  # the vocabulary mask drops their terms (renormalised: -inf - -inf, probability zero on both sides)
        difference[..., forbidden_ids] = 0.0
    kl = (log_ref.exp() * difference).sum(-1)
    return (kl * outside_targets).sum() / outside_targets.sum().clamp(min=1)
