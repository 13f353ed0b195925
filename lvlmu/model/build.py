"""Model presets, the local processor, and save/load of any local image-text-to-text checkpoint."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerBase,
)
from transformers.models.clip import CLIPImageProcessorPil

from .tokenizer import CHAT_TEMPLATE, train_tokenizer


@dataclass(frozen=True)
class ModelPreset:
    """The shape of a LLaVA-architecture model trained from scratch: a CLIP tower, a projector and a Llama."""

    text_hidden: int
    text_layers: int
    text_heads: int
    text_intermediate: int
    vision_hidden: int
    vision_layers: int
    vision_heads: int
    vision_intermediate: int
    patch_size: int
    vocab_size: int = 2000
    max_positions: int = 256


PRESETS: dict[str, ModelPreset] = {
    # About 1.4M parameters (1.37M with the world's tokenizer): the CPU default. 4 px patches: at 8 px, eye colour and accessories were learned
    # no better than chance in 500 steps by a tower trained from scratch.
    "tiny": ModelPreset(128, 4, 4, 384, 128, 2, 4, 256, patch_size=4),
    # Tens of millions of parameters: for a GPU.
    "small": ModelPreset(512, 8, 8, 1536, 256, 4, 8, 768, patch_size=8, vocab_size=4000),
}


def get_preset(name: str) -> ModelPreset:
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; the presets are {sorted(PRESETS)}")
    return PRESETS[name]


def build_image_processor(image_size: int) -> CLIPImageProcessorPil:
    """CLIP's image processor at the world's size. Its defaults would resize and crop to 224 px."""
    return CLIPImageProcessorPil(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})


def vision_tower_config(preset: ModelPreset | str, image_size: int) -> CLIPVisionConfig:
    """The CLIP vision tower of a preset: shared by vision pretraining and the LLaVA model."""
    preset = get_preset(preset) if isinstance(preset, str) else preset
    return CLIPVisionConfig(
        hidden_size=preset.vision_hidden,
        intermediate_size=preset.vision_intermediate,
        num_hidden_layers=preset.vision_layers,
        num_attention_heads=preset.vision_heads,
        image_size=image_size,
        patch_size=preset.patch_size,
    )


def build_processor(tokenizer: PreTrainedTokenizerBase, image_size: int, patch_size: int) -> LlavaProcessor:
    """A LlavaProcessor built locally. CLIP's defaults would resize to 224 px, so the sizes are set explicitly."""
    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
    return LlavaProcessor(
        image_processor=build_image_processor(image_size),
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS token, dropped by the "default" strategy
        chat_template=CHAT_TEMPLATE,
    )


def build_tiny_model(preset: ModelPreset | str, processor: LlavaProcessor, image_size: int, seed: int = 0) -> LlavaForConditionalGeneration:
    """A randomly initialised LlavaForConditionalGeneration of the given preset."""
    preset = get_preset(preset) if isinstance(preset, str) else preset
    tokenizer = processor.tokenizer
    vision = vision_tower_config(preset, image_size)
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=preset.text_hidden,
        intermediate_size=preset.text_intermediate,
        num_hidden_layers=preset.text_layers,
        num_attention_heads=preset.text_heads,
        num_key_value_heads=preset.text_heads,
        max_position_embeddings=preset.max_positions,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids(processor.image_token),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,  # a 2-layer tower trained from scratch: use its last layer
        image_seq_length=(image_size // preset.patch_size) ** 2,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def build_tiny(corpus: list[str], preset: str, image_size: int, seed: int = 0):
    """Tokenizer, processor and random model for a corpus: the starting point of pretraining."""
    spec = get_preset(preset)
    tokenizer = train_tokenizer(corpus, vocab_size=spec.vocab_size)
    processor = build_processor(tokenizer, image_size, spec.patch_size)
    return build_tiny_model(spec, processor, image_size, seed=seed), processor


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _check_checkpoint_dir(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint directory {path} does not exist")
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is a file; a checkpoint is a directory written by save_pretrained")
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} is not a checkpoint directory: it has no config.json (found: {sorted(p.name for p in path.iterdir())[:10]})")
    return path


def load_model(path: str | os.PathLike, dtype: torch.dtype | str = "auto", device: str | None = None):
    """Load any local image-text-to-text checkpoint and its processor, offline."""
    path = _check_checkpoint_dir(path)
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype, local_files_only=True)
    processor = AutoProcessor.from_pretrained(path, local_files_only=True)
    if getattr(processor, "tokenizer", None) is not None and processor.tokenizer.pad_token is None:
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    if device is not None:
        model.to(device)
    return model, processor


def save_model(model, processor, path: str | os.PathLike) -> None:
    """save_pretrained of model and processor (safetensors, chat template included)."""
    model.save_pretrained(path)
    processor.save_pretrained(path)


def preset_record(name: str) -> dict:
    return {"preset": name, **asdict(get_preset(name))}
