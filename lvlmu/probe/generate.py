"""Batched greedy generation: left padding, the KV cache, a progress bar."""
from __future__ import annotations

from typing import Callable

import torch
from PIL import Image
from tqdm.auto import tqdm

from ..data import image_inputs, prompt_text


@torch.no_grad()
def generate_answers(
    model,
    processor,
    examples: list[dict],
    load_image: Callable[[str], Image.Image],
    batch_size: int = 64,
    max_new_tokens: int = 48,
    progress: bool = True,
    desc: str = "generating",
    use_cache: bool = True,
) -> list[str]:
    """Greedy answers to each example's question (with its image when it has an `image_id`), in input order."""
    model.eval()
    device = next(model.parameters()).device
    # Batches of similar prompts pad little: sort by question length, then restore the order.
    order = sorted(range(len(examples)), key=lambda i: (bool(examples[i].get("image_id")), len(examples[i]["question"])))
    answers: list[str] = [""] * len(examples)
    for start in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress, unit="batch"):
        idx = order[start : start + batch_size]
        batch_examples = [examples[i] for i in idx]
        has_image, kwargs = image_inputs(batch_examples, load_image)
        prompts = [prompt_text(processor, ex["question"], h) for ex, h in zip(batch_examples, has_image)]
        inputs = processor(text=prompts, padding=True, padding_side="left", return_tensors="pt", **kwargs).to(device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, use_cache=use_cache,
                                pad_token_id=processor.tokenizer.pad_token_id)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        for i, text in zip(idx, processor.batch_decode(new_tokens, skip_special_tokens=True)):
            answers[i] = text.strip()
    return answers
