"""Logits at the answer tokens only: the same values as the full logits there, and the model's own loss."""
import pytest
import torch

from lvlmu import answers
from lvlmu.answers import answer_logits, model_inputs
from lvlmu.data import VisionTextCollator
from lvlmu.model import load_model


@pytest.mark.parametrize("boolean_mask", [True, False], ids=["boolean mask", "positions"])
def test_answer_logits_are_the_full_logits_at_the_answer_tokens(micro_world, micro_model_dir, boolean_mask, monkeypatch):
    # Both ways of asking for them: a boolean mask (recent transformers 5.x) and 1-D positions (earlier releases).
    if boolean_mask and not answers.BOOLEAN_LOGITS_TO_KEEP:
        pytest.skip("this transformers release takes positions only")
    monkeypatch.setattr(answers, "BOOLEAN_LOGITS_TO_KEEP", boolean_mask)
    model, processor = load_model(micro_model_dir, dtype=torch.float32)
    batch = VisionTextCollator(processor, micro_world.image)(micro_world.examples[:6])
    with torch.no_grad():
        full = model(**model_inputs(batch)).logits
        kept = answer_logits(model, batch)
    labelled = batch["labels"][:, 1:] != -100
    assert kept.logits.shape == (int(labelled.sum()), full.shape[-1])
    assert torch.allclose(kept.logits, full[:, :-1][labelled], atol=1e-5)
    assert kept.tokens_per_row().tolist() == labelled.sum(1).tolist()
    assert -kept.token_logprobs().mean().item() == pytest.approx(model(**batch).loss.item(), rel=1e-5)

