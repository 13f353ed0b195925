"""Unlearning methods on a micro world: each moves the model the expected way, and retain data enters where it should."""
import json

import pytest
import torch

from lvlmu.model import load_model
from lvlmu.unlearn import METHODS, LossWeights, UnlearnConfig, forget_examples, get_method, nll, unlearn
from lvlmu.unlearn.data import PairedCollator, PairedDataset, resolve_forget, retain_examples


def forget_batches(world, model_dir, alternative="refusal"):
    _, processor = load_model(model_dir)
    people = resolve_forget(world, "split")
    dataset = PairedDataset(forget_examples(world, people), retain_examples(world, people), 16, seed=0)
    return PairedCollator(processor, world.image, alternative, seed=0)([dataset[i] for i in range(8)])


def mean_nll(model_dir, batch) -> float:
    model, _ = load_model(model_dir, dtype=torch.float32)
    with torch.no_grad():
        return nll(model, batch).item()


@pytest.mark.parametrize("method", sorted(METHODS))
def test_each_method_moves_the_model_the_expected_way(method, micro_world, micro_model_dir, tmp_path):
    config = UnlearnConfig(method=method, steps=6, batch_size=4, learning_rate=2e-3, logging_steps=1)
    out = tmp_path / method
    manifest = unlearn(micro_world, micro_model_dir, out, config, progress_bar=False)
    batch = forget_batches(micro_world, micro_model_dir)
    before = {k: mean_nll(micro_model_dir, batch[k]) for k in ("forget", "refusal")}
    after = {k: mean_nll(out, batch[k]) for k in ("forget", "refusal")}
    if method == "idk":
        assert after["refusal"] < before["refusal"], "IdK makes the refusal more likely"
    elif method == "dpo":
        assert after["refusal"] - after["forget"] < before["refusal"] - before["forget"], "DPO prefers the refusal more"
    else:
        assert after["forget"] > before["forget"], f"{method} makes the true forget answers less likely"
    assert manifest["effective_batch_size"] == 4 and manifest["forget_people"] == [p.person_id for p in micro_world.forget]
    assert (out / "manifest.json").exists() and not (out / "trainer").exists()


def test_retain_batches_enter_the_loss_exactly_where_a_method_uses_them(micro_world, micro_model_dir, tmp_path):
    batch = forget_batches(micro_world, micro_model_dir)
    model, processor = load_model(micro_model_dir, dtype=torch.float32)
    reference, _ = load_model(micro_model_dir, dtype=torch.float32)
    torch.manual_seed(0)
    with torch.no_grad():  # a reference unlike the model, so that KL terms are not zero
        for p in reference.parameters():
            p.add_(0.05 * torch.randn_like(p))
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    for name, cls in METHODS.items():
        trainer = cls(model=model, args=args, ref_model=reference, weights=LossWeights(retain=1.0))
        with torch.no_grad():
            full = trainer.compute_loss(model, batch)
            forget_only = trainer.forget_loss(model, batch)
        if cls.uses_retain:
            assert torch.isclose(full, forget_only + trainer.retain_loss(model, batch["retain"]), atol=1e-5), name
            assert not torch.isclose(full, forget_only), f"{name}: the retain term changes the loss"
            with pytest.raises(ValueError, match="retain"):
                trainer.compute_loss(model, {k: v for k, v in batch.items() if k != "retain"})
        else:
            assert torch.isclose(full, forget_only), f"{name} has no retain term"


def test_kl_is_zero_when_the_model_is_its_reference(micro_world, micro_model_dir, tmp_path):
    batch = forget_batches(micro_world, micro_model_dir)
    model, _ = load_model(micro_model_dir, dtype=torch.float32)
    reference, _ = load_model(micro_model_dir, dtype=torch.float32)
    from transformers import TrainingArguments

    trainer = METHODS["kl"](model=model, args=TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True), ref_model=reference)
    with torch.no_grad():
        assert trainer.retain_loss(model, batch["retain"]).item() == pytest.approx(0.0, abs=1e-6)


def test_lora_run_saves_adapter_and_merged_model(micro_world, micro_model_dir, tmp_path):
    config = UnlearnConfig(method="npo", steps=3, batch_size=4, learning_rate=5e-3, lora=True)
    unlearn(micro_world, micro_model_dir, tmp_path / "lora", config, progress_bar=False)
    assert (tmp_path / "lora" / "adapter" / "adapter_config.json").exists()
    adapter = json.loads((tmp_path / "lora" / "adapter" / "adapter_config.json").read_text())
    assert "language_model" in adapter["target_modules"]
    merged, _ = load_model(tmp_path / "lora", dtype=torch.float32)
    base, _ = load_model(micro_model_dir, dtype=torch.float32)
    changed = {n for (n, p), (_, q) in zip(merged.named_parameters(), base.named_parameters()) if not torch.equal(p, q)}
    assert changed and all("language_model" in n and ("q_proj" in n or "v_proj" in n) for n in changed), changed


def test_bad_requests_fail_clearly(micro_world, micro_model_dir, tmp_path):
    with pytest.raises(ValueError, match=r"unknown unlearning method 'forgetful'.*graddiff"):
        get_method("forgetful")
    with pytest.raises(ValueError, match="p999"):
        unlearn(micro_world, micro_model_dir, tmp_path / "x", UnlearnConfig(forget=("p999",)), progress_bar=False)
    with pytest.raises(ValueError, match="matches no linear module"):
        unlearn(micro_world, micro_model_dir, tmp_path / "y", UnlearnConfig(lora=True, lora_target=r".*nonexistent_proj"), progress_bar=False)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
