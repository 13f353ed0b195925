"""The logits at answer tokens only.

Every loss and score in lvlmu falls on answer tokens, a small share of a sequence that is mostly image tokens and prompt
(about 400 of 3400 positions in a pretraining batch of the tiny model). Asking the model for logits only where a label
is predicted (`logits_to_keep`) skips the vocabulary projection, and the softmax, everywhere else. The values are those
of the full logits at the same positions.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import transformers.modeling_utils

from .data import IGNORE_INDEX

# Recent transformers 5.x releases take a boolean (B, T) mask as `logits_to_keep` (their models slice with
# slice_logits_to_keep); earlier 5.x releases take a 1-D tensor of positions, the same for every row.
BOOLEAN_LOGITS_TO_KEEP = hasattr(transformers.modeling_utils, "slice_logits_to_keep")


def predicts_answer(labels: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: position t holds the logits that predict a labelled token at t + 1."""
    mask = torch.zeros_like(labels, dtype=torch.bool)
    mask[:, :-1] = labels[:, 1:] != IGNORE_INDEX
    return mask


def at_answer_tokens(aligned: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The entries of a (B, T) tensor aligned with the input ids at the labelled tokens, flattened in row order."""
    return aligned[:, 1:][labels[:, 1:] != IGNORE_INDEX]


@dataclass(frozen=True)
class AnswerLogits:
    """Next-token logits at the positions that predict an answer token, flattened over the batch in row order."""

    logits: torch.Tensor  # (N, V) float32
    targets: torch.Tensor  # (N,) the answer tokens they predict
    rows: torch.Tensor  # (N,) the batch row of each
    batch_size: int

    def token_logprobs(self) -> torch.Tensor:
        """(N,) log p(answer token)."""
        return torch.log_softmax(self.logits, -1).gather(-1, self.targets.unsqueeze(-1)).squeeze(-1)

    def per_row(self, values: torch.Tensor) -> torch.Tensor:
        """(B,) sums of per-token `values` over each row's answer tokens."""
        return torch.zeros(self.batch_size, dtype=values.dtype, device=values.device).index_add(0, self.rows, values)

    def tokens_per_row(self) -> torch.Tensor:
        return torch.bincount(self.rows, minlength=self.batch_size)


def model_inputs(batch: dict) -> dict:
    """The batch without what only the losses use."""
    return {k: v for k, v in batch.items() if k not in ("labels", "target_mask", "parts", "rows")}


def answer_logits(model, batch: dict) -> AnswerLogits:
    """The model's logits at the answer tokens of `batch` (which holds labels, -100 where no loss falls).

    A batch split by length (lvlmu.data.VisionTextCollator's `parts`) runs the model once per part; the logits come
    back in the whole batch's row order, as one batch would give them."""
    if "parts" not in batch:
        return _answer_logits(model, batch)
    pieces = [_answer_logits(model, part) for part in batch["parts"]]
    rows = torch.cat([part["rows"].to(piece.rows.device)[piece.rows] for part, piece in zip(batch["parts"], pieces)])
    order = torch.argsort(rows, stable=True)  # each row's tokens stay in order
    return AnswerLogits(torch.cat([p.logits for p in pieces])[order], torch.cat([p.targets for p in pieces])[order], rows[order],
                        batch["labels"].shape[0])


def _answer_logits(model, batch: dict) -> AnswerLogits:
    labels = batch["labels"]
    keep = predicts_answer(labels)
    inputs = model_inputs(batch)
    dtype = getattr(getattr(model, "module", model), "dtype", None)  # a DDP-wrapped model's own is its module's
    if dtype is not None and "pixel_values" in inputs and inputs["pixel_values"].is_floating_point():
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
    if BOOLEAN_LOGITS_TO_KEEP:
        logits = model(**inputs, logits_to_keep=keep).logits.float()
    else:  # the positions any row needs, then each row's own
        positions = keep.any(0).nonzero().squeeze(1)
        logits = model(**inputs, logits_to_keep=positions).logits[keep[:, positions]].float()
    rows = torch.arange(labels.shape[0], device=labels.device).unsqueeze(1).expand_as(labels)[keep]
    return AnswerLogits(logits, at_answer_tokens(labels, labels), rows, labels.shape[0])


def to_device(batch: dict, device) -> dict:
    """A collated batch (its parts included) on `device`."""
    moved = {k: v.to(device) for k, v in batch.items() if k != "parts"}
    if "parts" in batch:
        moved["parts"] = [to_device(part, device) for part in batch["parts"]]
    return moved
