"""From (image, question, answer) examples to model tensors, with the loss on answer tokens only."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from PIL import Image, ImageChops, ImageOps

IGNORE_INDEX = -100


def user_message(question: str, has_image: bool) -> dict:
    content = ([{"type": "image"}] if has_image else []) + [{"type": "text", "text": question}]
    return {"role": "user", "content": content}


def prompt_text(processor, question: str, has_image: bool) -> str:
    """The chat-formatted prompt, ending where the assistant's answer starts."""
    return processor.apply_chat_template([user_message(question, has_image)], add_generation_prompt=True, tokenize=False)


def conversation_text(processor, question: str, answer: str, has_image: bool) -> str:
    messages = [user_message(question, has_image), {"role": "assistant", "content": [{"type": "text", "text": answer}]}]
    return processor.apply_chat_template(messages, tokenize=False)


def image_inputs(examples: list[dict], load_image: Callable[[str], Image.Image]) -> tuple[list[bool], dict]:
    """Which examples carry an image, and the processor keyword holding those images in order (none if no image)."""
    has_image = [bool(ex.get("image_id")) for ex in examples]
    images = [load_image(ex["image_id"]) for ex, h in zip(examples, has_image) if h]
    return has_image, ({"images": images} if images else {})


class ShiftMirror:
    """Random augmentation of PIL images: a circular shift of up to `max_shift` pixels each way, and a mirror image
    (with probability 1/2) where the caller allows it. On PIL images, so it suits any processor and architecture."""

    def __init__(self, max_shift: int = 2, seed: int = 0):
        if max_shift < 0:
            raise ValueError(f"max_shift must be non-negative, got {max_shift}")
        self.max_shift, self.rng = max_shift, np.random.default_rng(seed)

    def __call__(self, images: list[Image.Image], mirrorable: list[bool]) -> list[Image.Image]:
        out = []
        for image, can_mirror in zip(images, mirrorable):
            dx, dy = self.rng.integers(-self.max_shift, self.max_shift + 1, size=2)
            image = ImageChops.offset(image, int(dx), int(dy))
            if can_mirror and self.rng.random() < 0.5:
                image = ImageOps.mirror(image)
            out.append(image)
        return out


def can_mirror(example: dict) -> bool:
    """Faces are left-right symmetric; scenes are not, since which shape is on the left is asked about."""
    return bool(example.get("person_id"))


def length_groups(lengths: list[int], max_groups: int = 4, overhead: int = 64) -> list[list[int]]:
    """Row indices grouped so that padding each group to its own longest row costs least: the groups cut the rows
    sorted by length, chosen by dynamic programming to minimise the padded area (rows x longest) plus `overhead`
    positions per extra group (a forward's fixed cost). Each group lists its rows in their original order."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    ranked = [lengths[i] for i in order]
    cuts = [j for j in range(1, len(ranked)) if ranked[j] != ranked[j - 1]] + [len(ranked)]  # group ends worth trying
    # best[g][end]: (cost, previous end) of covering the shortest `end` rows with g + 1 groups
    best = [{end: (end * ranked[end - 1], 0) for end in cuts}]
    for _ in range(1, max_groups):
        best.append({end: min(((best[-1][start][0] + overhead + (end - start) * ranked[end - 1], start)
                                for start in cuts if start < end), default=(float("inf"), 0)) for end in cuts})
    layer = min(range(len(best)), key=lambda g: best[g][len(ranked)][0])
    groups, end = [], len(ranked)
    for g in range(layer, -1, -1):
        start = best[g][end][1] if g else 0
        groups.append(sorted(order[start:end]))
        end = start
    return groups[::-1]


@dataclass
class VisionTextCollator:
    """Collates examples {"question", "answer", "image_id"} into input_ids, attention_mask, pixel_values and labels.

    The labels are the input ids with every prompt, image and padding position set to -100, so the loss falls on
    the answer tokens (and the end-of-turn token) alone. The prompt is rendered by the processor's own chat template,
    so the same code serves the tiny model and any real checkpoint.

    With `split_by_length`, rows of very different lengths (a text-only fact and a described photograph) are not padded
    to one length: the batch also holds `parts`, each a batch of rows of similar length with their `rows` in the whole
    batch, and lvlmu.answers.answer_logits runs the model on each part. The whole batch then keeps input_ids,
    attention_mask and labels for the losses, which read the same values as without parts.
    """

    processor: object
    load_image: Callable[[str], Image.Image]
    max_length: int | None = None
    augment: ShiftMirror | None = None
    split_by_length: bool = False
    image_tokens: int = field(default=0, init=False, repr=False)  # learned from the first batch with images

    def __call__(self, examples: list[dict]) -> dict:
        """input_ids, attention_mask, labels and the processor's image tensors; split by length, also `parts`: the
        same rows as separate batches (each with its `rows`)."""
        has_image, kwargs = image_inputs(examples, self.load_image)
        images = kwargs.get("images", [])
        if self.augment is not None and images:
            images = self.augment(images, [can_mirror(ex) for ex, h in zip(examples, has_image) if h])
        image_of = dict(zip([i for i, h in enumerate(has_image) if h], images))
        fulls = [conversation_text(self.processor, ex["question"], ex["answer"], h) for ex, h in zip(examples, has_image)]
        prompts = [prompt_text(self.processor, ex["question"], h) for ex, h in zip(examples, has_image)]
        groups = [list(range(len(examples)))]
        if self.split_by_length:
            text_lengths = [len(ids) for ids in self.processor.tokenizer(fulls, add_special_tokens=False)["input_ids"]]
            groups = length_groups([n + self.image_tokens * h for n, h in zip(text_lengths, has_image)])
        parts = [self.encode([fulls[i] for i in rows], [prompts[i] for i in rows], [image_of[i] for i in rows if i in image_of])
                 for rows in groups]
        if self.split_by_length and images:  # how many tokens an image expands into, to group the next batches by length
            self.image_tokens = max(int(part["attention_mask"][j].sum()) - text_lengths[i]
                                    for rows, part in zip(groups, parts) for j, i in enumerate(rows) if has_image[i])
        if len(parts) == 1:
            return parts[0]
        for rows, part in zip(groups, parts):
            part["rows"] = torch.tensor(rows)
        return {**merge_rows(parts, groups, len(examples), self.processor.tokenizer.pad_token_id), "parts": parts}

    def encode(self, fulls: list[str], prompts: list[str], images: list[Image.Image]) -> dict[str, torch.Tensor]:
        """One padded batch of conversations, labels on the answer tokens only."""
        kwargs = {"images": images} if images else {}
        batch = self.processor(text=fulls, padding=True, padding_side="right", return_tensors="pt", **kwargs)
        # The prompts go through the processor again (images included) so that image-token expansion, whatever
        # the architecture, is counted exactly: about 5 ms per batch of 32 here.
        prompt_ids = self.processor(text=prompts, padding=False, **kwargs)["input_ids"]
        labels = batch["input_ids"].clone()
        for i, ids in enumerate(prompt_ids):
            if batch["input_ids"][i, : len(ids)].tolist() != list(ids):
                raise ValueError(f"the chat template does not tokenise the prompt as a prefix of the conversation: {prompts[i]!r}")
            labels[i, : len(ids)] = IGNORE_INDEX
        labels[batch["attention_mask"] == 0] = IGNORE_INDEX
        if self.max_length is not None and labels.shape[1] > self.max_length:
            raise ValueError(f"a batch of {labels.shape[1]} tokens exceeds max_length={self.max_length}")
        batch["labels"] = labels
        return dict(batch)


def merge_rows(parts: list[dict], groups: list[list[int]], n_rows: int, pad_token_id: int) -> dict[str, torch.Tensor]:
    """input_ids, attention_mask and labels of the parts, placed at their rows and right-padded to the longest: what
    one batch of all the rows would hold."""
    length = max(part["input_ids"].shape[1] for part in parts)
    merged = {"input_ids": torch.full((n_rows, length), pad_token_id, dtype=parts[0]["input_ids"].dtype),
              "attention_mask": torch.zeros((n_rows, length), dtype=parts[0]["attention_mask"].dtype),
              "labels": torch.full((n_rows, length), IGNORE_INDEX, dtype=parts[0]["labels"].dtype)}
    for rows, part in zip(groups, parts):
        for key, tensor in merged.items():
            tensor[rows, : part[key].shape[1]] = part[key]
    return merged
