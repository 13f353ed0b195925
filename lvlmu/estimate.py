"""Estimates, not measurements: the memory and FLOPs of one unlearning step on a model too large to try here.

Parameters are counted exactly, on a model built on the `meta` device from its config (no weights, no memory). The rest
follows the usual accounting, and is labelled as an estimate wherever it is shown:
- weights: parameters x bytes per weight (2 for bf16/fp16);
- trainable state: LoRA's parameters in fp32 with their gradients and Adam's two moments (16 bytes each), or, for
  full-weight training, the same for every language-model parameter plus a frozen copy of the reference model;
- activations of the language model, per layer and token, about 34 x hidden bytes in 16-bit with fused attention
  (Korthikanti et al., 2022, without the attention-score term that SDPA/flash attention never stores); with gradient
  checkpointing, each layer's 2 x hidden-byte input plus one layer recomputed at a time. The frozen vision tower stores
  nothing for the backward pass. Logits add batch x tokens x vocabulary x 10 bytes (16-bit, their fp32 copy and the
  log-softmax);
- FLOPs: 2 per parameter and token for a forward pass; the backward pass through a frozen model with LoRA costs about
  one more forward (input gradients only), full training two; checkpointing recomputes one forward; methods with a
  reference model (KL, NPO, DPO, SIU, PUBG) add its forward passes.
Allocator fragmentation, CUDA context and temporary buffers are not counted: leave 10-20% headroom.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import torch

# The published shapes of LLaVA-1.5 (CLIP ViT-L/14 at 336 px, 576 image tokens; Vicuna 7B and 13B).
LLAVA_15_TEXT = {"7b": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32},
                 "13b": {"hidden_size": 5120, "intermediate_size": 13824, "num_hidden_layers": 40, "num_attention_heads": 40}}


def llava_15_config(size: str):
    """The config of LLaVA-1.5 `size` ("7b" or "13b"), built locally from its published shapes."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    if size not in LLAVA_15_TEXT:
        raise ValueError(f"unknown LLaVA-1.5 size {size!r}; choose from {sorted(LLAVA_15_TEXT)}")
    vision = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                              image_size=336, patch_size=14, projection_dim=768)
    text = LlamaConfig(vocab_size=32064, max_position_embeddings=4096, rms_norm_eps=1e-5, **LLAVA_15_TEXT[size])
    return LlavaConfig(vision_config=vision, text_config=text, image_seq_length=576, vision_feature_layer=-2)


@dataclass(frozen=True)
class StepShape:
    """One unlearning step: sequences of `tokens` (image tokens included; LLaVA-1.5: 576 + the text), `batch_size` per
    GPU, and the method's extra forward passes of the reference model."""

    batch_size: int = 8
    tokens: int = 640
    lora: bool = True
    lora_rank: int = 8
    bytes_per_weight: int = 2
    gradient_checkpointing: bool = False
    reference_forwards: int = 1


def parameter_counts(config, lora_target: str = "", lora_rank: int = 8) -> dict[str, int]:
    """Exact parameter counts of the model `config` describes (built on the meta device): total, language model,
    and LoRA's at `lora_rank` on `lora_target` (inferred as for unlearning when empty)."""
    from transformers import AutoModelForImageTextToText

    from .model.build import infer_lora_target, language_model_name

    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    prefix = language_model_name(model)
    pattern = re.compile(lora_target or infer_lora_target(model))
    lora = sum(lora_rank * (m.in_features + m.out_features) for name, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and pattern.fullmatch(name))
    language = sum(p.numel() for name, p in model.named_parameters() if name.startswith(prefix))
    return {"total": sum(p.numel() for p in model.parameters()), "language_model": language, "lora": lora}


def estimate_unlearning_step(config, shape: StepShape = StepShape()) -> dict:
    """Estimated memory (GiB) and FLOPs of one unlearning step of the model `config` describes, per GPU."""
    counts = parameter_counts(config, lora_rank=shape.lora_rank)
    text = config.get_text_config()
    hidden, layers, vocab = text.hidden_size, text.num_hidden_layers, text.vocab_size
    tokens = shape.batch_size * shape.tokens
    weights = counts["total"] * shape.bytes_per_weight
    if shape.lora:
        trainable = counts["lora"] * 16
    else:  # every language-model weight trains; the reference is a frozen copy
        trainable = counts["language_model"] * 16 + counts["total"] * shape.bytes_per_weight * (shape.reference_forwards > 0)
    per_layer = 34 * hidden * tokens * shape.bytes_per_weight // 2
    activations = (layers * 2 * hidden * tokens + per_layer) if shape.gradient_checkpointing else layers * per_layer
    logits = tokens * vocab * 10
    forward = 2 * counts["total"] * tokens
    backward = forward * (1 if shape.lora else 2)
    flops = forward + backward + forward * shape.gradient_checkpointing + forward * shape.reference_forwards
    gib = 2**30
    return {"parameters": counts["total"], "lora_parameters": counts["lora"] if shape.lora else 0,
            "weights_gib": weights / gib, "trainable_state_gib": trainable / gib, "activations_gib": activations / gib,
            "logits_gib": logits / gib, "total_gib": (weights + trainable + activations + logits) / gib,
            "tflops_per_step": flops / 1e12, **{f"shape.{k}": v for k, v in asdict(shape).items()}}


def llava_15_estimates(shapes: dict[str, StepShape] | None = None):
    """The estimate table of LoRA unlearning for LLaVA-1.5 7B and 13B, one row per (model, setting)."""
    import pandas as pd

    shapes = shapes or {"LoRA r=8, batch 8": StepShape(), "LoRA r=8, batch 8, checkpointing": StepShape(gradient_checkpointing=True),
                        "LoRA r=8, batch 1": StepShape(batch_size=1)}
    rows = [{"model": f"LLaVA-1.5-{size.upper()}", "setting": name, **estimate_unlearning_step(llava_15_config(size), shape)}
            for size in LLAVA_15_TEXT for name, shape in shapes.items()]
    return pd.DataFrame(rows)
