"""Representation probe: does the name survive inside the model? A logit lens (nostalgebraist 2020) reads each
decoder layer's hidden states through the model's own final norm and output head, as if the model stopped there.

On each unseen photograph of a forgotten person, "Who is this?" is answered "This is <name>." with the true name and
with `distractors` names no compared model ever saw (the truth ratio's, lvlmu.probe.likelihood.perturbed_names). At
each layer the lens scores every candidate answer by its mean token log-probability; the photograph counts as
*identified* at that layer when the true name scores highest. Chance is 1 / (distractors + 1). A model that stopped
saying the name but still identifies the person at its last layers hides the name rather than having lost it; the
oracle, which never saw the person, gives the rate that owes nothing to memory.

The lens needs no training (unlike a linear probe, whose own fitting would have to be calibrated too), reads every
layer with the same readout the model uses to speak, and is the same code for any decoder with a final `norm`.
"""
from __future__ import annotations

import numpy as np
import torch

from ..answers import at_answer_tokens, predicts_answer, to_device
from ..data import VisionTextCollator
from ..probe.likelihood import name_examples, perturbed_names


def decoder_parts(model):
    """The decoder's layers, its final norm and the output head: what the lens reads with."""
    decoder = model.get_decoder()
    layers, norm = getattr(decoder, "layers", None), getattr(decoder, "norm", None)
    if layers is None or norm is None:
        raise ValueError(f"the logit lens needs a decoder with `layers` and a final `norm`; {type(decoder).__name__} has "
                         f"{'no layers' if layers is None else 'no norm'}")
    return layers, norm, model.get_output_embeddings()


@torch.no_grad()
def lens_logprobs(model, batch: dict) -> torch.Tensor:
    """(layers, rows) mean log-probability of each row's answer tokens, read through the lens after each layer."""
    layers, norm, head = decoder_parts(model)
    labels = batch["labels"]
    keep = predicts_answer(labels)
    targets = at_answer_tokens(labels, labels)
    rows = torch.arange(labels.shape[0], device=labels.device).unsqueeze(1).expand_as(labels)[keep]
    captured = []

    def hook(module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        captured.append(hidden[keep])  # only the positions that predict an answer token

    handles = [layer.register_forward_hook(hook) for layer in layers]
    try:
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "parts", "rows")}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        model(**inputs, logits_to_keep=1)
    finally:
        for handle in handles:
            handle.remove()
    counts = torch.bincount(rows, minlength=labels.shape[0]).clamp(min=1)
    out = []
    for hidden in captured:
        logprobs = torch.log_softmax(head(norm(hidden)).float(), -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        out.append(torch.zeros(labels.shape[0], device=labels.device).index_add(0, rows, logprobs) / counts)
    return torch.stack(out)


def lens_identification(model, processor, world, people, distractors: int = 5, batch_size: int = 24, seed: int = 0) -> list[dict]:
    """Per photograph and layer: the true name's rank among the candidates under the lens (0: first) and whether it
    is first (`identified`)."""
    model.eval()
    device = next(model.parameters()).device
    collate = VisionTextCollator(processor, world.image)
    prompts, candidates = [], []
    for person in people:
        for true in name_examples(world, person, world.probe_image_set(person.person_id)):
            prompts.append(true)
            candidates.append([true["answer"]] + [f"This is {name}." for name in perturbed_names(world, person, distractors, seed)])
    flat = [{**p, "answer": a} for p, answers in zip(prompts, candidates) for a in answers]
    k = distractors + 1
    per_batch = max(1, batch_size // k) * k  # whole photographs per batch
    scores = torch.cat([lens_logprobs(model, to_device(collate(flat[s : s + per_batch]), device)).cpu()
                        for s in range(0, len(flat), per_batch)], 1)  # (layers, photographs * k)
    scores = scores.view(scores.shape[0], len(prompts), k).numpy()
    out = []
    for i, prompt in enumerate(prompts):
        for layer in range(scores.shape[0]):
            rank = int(np.sum(scores[layer, i, 1:] > scores[layer, i, 0]))
            out.append({"person_id": prompt["person_id"], "image_id": prompt["image_id"], "layer": layer + 1, "rank": rank,
                        "identified": rank == 0})
    return out
