"""The memory and FLOP estimator: exact parameter counts, and estimates that move the way their causes do."""
from dataclasses import replace

import pytest

from lvlmu.estimate import StepShape, estimate_unlearning_step, llava_15_config, llava_15_estimates, parameter_counts
from lvlmu.model import build_tiny, count_parameters


def test_parameter_counts_match_a_built_model():
    model, _ = build_tiny(["a tiny corpus for the tokenizer"], "tiny", 32)
    counts = parameter_counts(model.config, lora_rank=8)
    assert counts["total"] == count_parameters(model)
    text = model.config.text_config
    assert counts["lora"] == text.num_hidden_layers * 2 * 8 * (text.hidden_size + text.hidden_size)  # q and v, square


def test_llava_15_shapes_and_what_moves_the_estimates():
    counts = parameter_counts(llava_15_config("7b"))
    assert 7.0e9 < counts["total"] < 7.1e9, "LLaVA-1.5-7B has 7.06B parameters"
    assert counts["lora"] == 32 * 2 * 8 * (4096 + 4096)
    config = llava_15_config("13b")
    plain = estimate_unlearning_step(config, StepShape())
    checkpointed = estimate_unlearning_step(config, replace(StepShape(), gradient_checkpointing=True))
    full = estimate_unlearning_step(config, replace(StepShape(), lora=False))
    assert checkpointed["activations_gib"] < plain["activations_gib"] / 5 and checkpointed["tflops_per_step"] > plain["tflops_per_step"]
    assert full["trainable_state_gib"] > 100 * plain["trainable_state_gib"]
    assert estimate_unlearning_step(config, replace(StepShape(), batch_size=1))["total_gib"] < plain["total_gib"]
    table = llava_15_estimates()
    assert set(table["model"]) == {"LLaVA-1.5-7B", "LLaVA-1.5-13B"} and (table["total_gib"] > table["weights_gib"]).all()
    with pytest.raises(ValueError, match="unknown LLaVA-1.5 size"):
        llava_15_config("70b")
