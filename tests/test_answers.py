"""Logits at the answer tokens only: the same values as the full logits there, and the model's own loss."""
import pytest
import torch

from lvlmu import answers
from lvlmu.answers import answer_logits, model_inputs
from lvlmu.data import VisionTextCollator, length_groups
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


def test_length_groups_cut_the_padding_and_keep_every_row_once():
    lengths = [21, 104, 22, 98, 20, 103, 85, 86]
    groups = length_groups(lengths)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    assert all(g == sorted(g) for g in groups)
    padded = sum(len(g) * max(lengths[i] for i in g) for g in groups)
    assert padded < len(lengths) * max(lengths)
    assert {tuple(g) for g in groups} >= {(0, 2, 4)}  # the three short rows go together
    assert length_groups([50] * 6) == [list(range(6))]  # equal lengths: one group, no overhead to pay
    assert length_groups([10, 200], overhead=10_000) == [[0, 1]]  # a forward costs more than the padding it saves


def test_a_batch_split_by_length_gives_the_logits_of_one_padded_batch(micro_world, micro_model_dir):
    """Text-only and image rows in one batch: split into parts, the model sees less padding, and every loss reads the
    same answer logits, in the same order, with the same gradient."""
    model, processor = load_model(micro_model_dir, dtype=torch.float32)
    examples = [ex for ex in micro_world.select("train") if not ex["image_id"]][:3] + [ex for ex in micro_world.select("train") if ex["image_id"]][:5]
    examples = examples[::2] + examples[1::2]  # interleaved, so parts do not follow the row order
    one = VisionTextCollator(processor, micro_world.image)(examples)
    collate = VisionTextCollator(processor, micro_world.image, split_by_length=True)
    collate(examples)  # the first batch teaches the collator how many tokens an image takes
    split = collate(examples)
    assert len(split["parts"]) > 1 and sum(len(p["rows"]) for p in split["parts"]) == len(examples)
    assert sum(p["input_ids"].numel() for p in split["parts"]) < one["input_ids"].numel()
    for key in ("input_ids", "attention_mask", "labels"):
        assert torch.equal(split[key], one[key])
    gradients, kept = [], []
    for batch in (one, split):
        model.zero_grad()
        kept.append(answer_logits(model, batch))
        kept[-1].per_row(kept[-1].token_logprobs()).sum().backward()
        gradients.append(model.model.language_model.layers[0].self_attn.q_proj.weight.grad.clone())
    whole, parts = kept
    assert torch.equal(parts.targets, whole.targets) and torch.equal(parts.rows, whole.rows)
    assert torch.allclose(parts.logits, whole.logits, atol=1e-5)
    assert torch.allclose(gradients[0], gradients[1], atol=1e-5)
