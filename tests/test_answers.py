"""Logits at the answer tokens only: the same values as the full logits there, and the model's own loss."""
import pytest
import torch

from lvlmu.answers import answer_logits, model_inputs
from lvlmu.data import VisionTextCollator
from lvlmu.model import load_model


def test_answer_logits_are_the_full_logits_at_the_answer_tokens(micro_world, micro_model_dir):
    model, processor = load_model(micro_model_dir, dtype=torch.float32)
    batch = VisionTextCollator(processor, micro_world.image)(micro_world.examples[:6])
    with torch.no_grad():
        full = model(**model_inputs(batch)).logits
        answers = answer_logits(model, batch)
    labelled = batch["labels"][:, 1:] != -100
    assert answers.logits.shape == (int(labelled.sum()), full.shape[-1])
    assert torch.allclose(answers.logits, full[:, :-1][labelled], atol=1e-5)
    assert answers.tokens_per_row().tolist() == labelled.sum(1).tolist()
    assert -answers.token_logprobs().mean().item() == pytest.approx(model(**batch).loss.item(), rel=1e-5)

