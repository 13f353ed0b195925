"""Real architectures through the generic path: tiny random-weight LLaVA, Idefics3, Qwen2-VL and Qwen2.5-VL
checkpoints, saved and loaded like downloaded ones, unlearned with LoRA, probed, attacked, and their adapters reloaded.
The Qwen ones need torchvision: they run in the optional environment (`make test-qwen`) and are skipped elsewhere."""
import json
import math

import pytest
import torch

from lvlmu.model import load_adapter, load_model
from lvlmu.model.random_checkpoints import ARCHITECTURES, NEEDS_TORCHVISION, build_random_checkpoint
from lvlmu.pretrain import world_corpus
from lvlmu.probe.suite import METRICS, ProbeConfig, run_probes
from lvlmu.unlearn import UnlearnConfig, unlearn
from lvlmu.world import export_concept, load_concepts


EVERY_ARCHITECTURE = [pytest.param(a, marks=pytest.mark.qwen) if a in NEEDS_TORCHVISION else a for a in ARCHITECTURES]


@pytest.fixture(scope="module")
def concepts(micro_world, tmp_path_factory):
    return load_concepts(export_concept(micro_world, tmp_path_factory.mktemp("concepts") / "example", n_retain=2, n_holdout=2))


@pytest.mark.parametrize("architecture", EVERY_ARCHITECTURE)
def test_a_checkpoint_unlearns_with_lora_is_probed_and_its_adapter_reloads(architecture, micro_world, concepts, tmp_path):
    checkpoint = build_random_checkpoint(architecture, tmp_path / "checkpoint", world_corpus(micro_world))
    model, _ = load_model(checkpoint)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    for method in ("siu", "pubg"):  # both need the reference model: the adapter disabled
        out = tmp_path / method
        config = UnlearnConfig(method=method, images="single", lora=True, steps=2, batch_size=4, learning_rate=1e-2, logging_steps=1)
        manifest = unlearn(concepts, checkpoint, out, config, progress_bar=False)
        assert manifest["processes"] == 1 and len([h for h in json.loads((out / "log_history.json").read_text()) if "loss" in h]) == 2
        adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
        assert "vision" not in adapter["target_modules"] and adapter["target_modules"].endswith("(q_proj|v_proj)")
    merged, _ = load_model(out)
    changed = [k for k, v in merged.state_dict().items() if not torch.equal(v, base[k])]
    assert changed and all(("q_proj" in k or "v_proj" in k) and "vision" not in k for k in changed), changed[:4]
    reloaded, _ = load_adapter(out / "adapter", base=checkpoint)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(merged.state_dict().values(), reloaded.state_dict().values()))
    store = run_probes(out, concepts, tmp_path / "probes", ProbeConfig(batch_size=16, n_perturbed=3, perturbations=("flip",)), progress=False)
    assert set(store.data["metrics"]) == set(METRICS)
    assert all("unavailable" not in store.summary(m) for m in METRICS), "the example folder has every role"


def test_a_hub_id_and_a_missing_chat_template_explain_what_to_do(micro_world, tmp_path):
    with pytest.raises(FileNotFoundError, match="Hugging Face Hub id.*download the model first"):
        load_model("llava-hf/llava-1.5-7b-hf")
    checkpoint = build_random_checkpoint("llava", tmp_path / "checkpoint", world_corpus(micro_world))
    (checkpoint / "chat_template.jinja").unlink()
    with pytest.raises(ValueError, match="no chat template.*chat_template="):
        load_model(checkpoint)
    template = tmp_path / "template.jinja"
    template.write_text("{% for m in messages %}{{ m['content'] if m['content'] is string else '' }}{% endfor %}")
    _, processor = load_model(checkpoint, chat_template=template)
    assert processor.chat_template == template.read_text()


def test_the_settings_for_a_large_model_train_the_same_method(micro_world, concepts, tmp_path):
    """bf16 weights, bf16 autocast and gradient checkpointing (what a 7B model on one GPU needs) run the same LoRA
    unlearning as fp32, to within bf16's precision, and save a bf16 model."""
    checkpoint = build_random_checkpoint("llava", tmp_path / "checkpoint", world_corpus(micro_world))
    losses = {}
    for name, settings in {"fp32": {}, "bf16": {"dtype": "bf16", "precision": "bf16", "gradient_checkpointing": True}}.items():
        config = UnlearnConfig(method="npo", lora=True, steps=2, batch_size=4, logging_steps=1, **settings)
        losses[name] = unlearn(concepts, checkpoint, tmp_path / name, config, progress_bar=False)["train_loss"]
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.01)
    model, _ = load_model(tmp_path / "bf16")
    assert next(model.parameters()).dtype == torch.bfloat16


@pytest.mark.parametrize("architecture", EVERY_ARCHITECTURE)
def test_every_attack_runs_on_a_real_architecture_through_lora(architecture, micro_world, concepts, tmp_path):
    """The attacks take the same path as unlearning: LoRA relearning on the language model, its linear layers
    quantized, its decoder read by the logit lens, whatever the architecture calls them."""
    from lvlmu.attack import ATTACKS, AttackConfig, run_attacks

    checkpoint = build_random_checkpoint(architecture, tmp_path / "checkpoint", world_corpus(micro_world))
    config = AttackConfig(steps=(1,), lora=True, learning_rate=1e-2, distractors=2, generation_batch_size=16, group_size=16)
    store = run_attacks(checkpoint, concepts, tmp_path / "attacks", config, progress=False)
    assert set(store.data["metrics"]) == set(ATTACKS)
    assert store.summary("quantization")["quantized layers"]["int4"] > 0
    layers = store.summary("logit_lens")["identified"]
    assert len(layers) == load_model(checkpoint)[0].config.text_config.num_hidden_layers


@pytest.mark.parametrize("architecture", EVERY_ARCHITECTURE)
def test_every_method_trains_two_steps_on_a_real_architecture(architecture, micro_world, concepts, tmp_path):
    """Each registered method, in full fine-tuning, for two steps: the loss is finite and the language model's weights
    move; PUBG's guidance holds the reference model's own generated descriptions, one per forget image. (Every probe
    runs on the LoRA run of the first test.)"""
    from lvlmu.unlearn import METHODS

    checkpoint = build_random_checkpoint(architecture, tmp_path / "checkpoint", world_corpus(micro_world))
    base = load_model(checkpoint)[0].state_dict()
    for method in sorted(METHODS):
        out = tmp_path / method
        config = UnlearnConfig(method=method, images="single", steps=2, batch_size=4, learning_rate=1e-2, logging_steps=1)
        manifest = unlearn(concepts, checkpoint, out, config, progress_bar=False)
        assert math.isfinite(manifest["train_loss"]), f"{method}: the loss is not finite"
        moved = [k for k, v in load_model(out)[0].state_dict().items() if not torch.equal(v, base[k])]
        assert any("language_model" in k or "text_model" in k for k in moved), f"{method} left the language model as it was"
        if method == "pubg":
            guidance = [json.loads(line) for line in (out / "guidance.jsonl").read_text().splitlines()]
            assert {g["image_id"] for g in guidance} == {concepts.single_image(p.person_id)["image_id"] for p in concepts.forget}


@pytest.mark.parametrize("architecture", EVERY_ARCHITECTURE)
def test_siu_masks_exactly_the_target_phrase_under_the_architectures_chat_template(architecture, micro_world, concepts, tmp_path):
    """The Dual Masked KL's token mask falls on the target phrase of the answer (T1's invented name, T2's false
    traits), not on a token of the prompt, the image or the template, whatever the template wraps the answer in."""
    from lvlmu.unlearn.siu import TargetMaskCollator, siu_examples

    _, processor = load_model(build_random_checkpoint(architecture, tmp_path / "checkpoint", world_corpus(micro_world)))
    person = concepts.forget[0].person_id
    rows = [r for r in siu_examples(concepts, [person], images="single") if r.get("target")]
    assert {r["siu"] for r in rows} == {"T1", "T2"}
    batch = TargetMaskCollator(processor, concepts.image)(rows)
    for i, row in enumerate(rows):
        marked = batch["input_ids"][i][batch["target_mask"][i]]
        assert processor.tokenizer.decode(marked).strip() == row["target"], (architecture, row["siu"])
