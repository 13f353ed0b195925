"""Model presets, the local processor, and save/load of any local image-text-to-text checkpoint."""
from __future__ import annotations

import json
import os
import re
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
    # About 1.4M parameters: the CPU default. 8 px patches, 16 image tokens of a 32 px image. Against 4 px patches (64
    # tokens), on the first reporting world (fp32, one thread): the pretrained tower described new faces exactly as
    # often (96.6% against 97.0%) and counted scene shapes less well (88% against 97%); the base named people on unseen
    # photos (100% against 97%), answered visual QA (68% against 67%) and POPE (F1 0.85 against 0.80) at least as well;
    # a pretraining step took 0.16 s instead of 0.35 and generation a quarter of the time. Image tokens were 64 of an
    # example's ~100 positions, and every pass is compute-bound on a CPU: fewer of them is the study's largest saving.
    # While PUBG's open query was never taught, the 16-token bases of two worlds answered it with a fact instead of a
    # description (benchmarks/results/pipeline-full-16-tokens.json); pretraining now teaches open queries
    # (lvlmu.world.questions.OPEN_QUERY_TRAIN) and holds PUBG's out.
    "tiny": ModelPreset(128, 4, 4, 384, 128, 2, 4, 256, patch_size=8),
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


# The attention the tiny models train with. In fp32 (a CPU's default) the fused (flash) and the plain matmul-softmax
# attention are equally fast at these short sequences (about 100 tokens); under bf16 autocast on a CPU the fused
# backward took 46% of a pretraining step, and the plain one made the step 1.5x faster (0.25 against 0.38 s, one
# thread, batch 32). save_model keeps the choice in config.json, so every model derived from a tiny one runs it too.
TRAINING_ATTENTION = "eager"


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
        attn_implementation=TRAINING_ATTENTION,
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


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
DTYPES: dict[str, torch.dtype | str] = {"auto": "auto", "fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
                                        "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}


def resolve_dtype(dtype: torch.dtype | str) -> torch.dtype | str:
    """A torch dtype, or one of DTYPES' names ("bf16", "fp16", "fp32", "auto": the checkpoint's own)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(DTYPES)}")
    return DTYPES[dtype]


def _check_checkpoint_dir(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        if HUB_ID.match(str(path)):
            raise FileNotFoundError(
                f"{path} is not a local directory; it looks like a Hugging Face Hub id. lvlmu never downloads weights: "
                f"download the model first (for instance `huggingface-cli download {path} --local-dir models/{path.name}`) "
                "and pass that directory")
        raise FileNotFoundError(f"checkpoint directory {path} does not exist")
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is a file; a checkpoint is a directory written by save_pretrained")
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} is not a checkpoint directory: it has no config.json (found: {sorted(p.name for p in path.iterdir())[:10]})")
    return path


def _file_text(candidate: str | os.PathLike) -> str | None:
    """The text of `candidate` when it names a file, else None (a template string is no file name)."""
    try:
        return Path(candidate).read_text() if Path(candidate).is_file() else None
    except OSError:
        return None


def use_chat_template(processor, path: Path, chat_template: str | os.PathLike | None = None) -> None:
    """Set `chat_template` (a Jinja string, or a file holding one) on the processor; fail clearly when it has none."""
    if chat_template is not None:
        processor.chat_template = _file_text(chat_template) or str(chat_template)
    if not getattr(processor, "chat_template", None):
        raise ValueError(
            f"the processor of {path} has no chat template, and lvlmu formats every prompt with it. Pass "
            "chat_template= (a Jinja template string, or the path of a .jinja file; the model card usually gives it), "
            f"or save it as {path / 'chat_template.jinja'}")


def load_model(path: str | os.PathLike, dtype: torch.dtype | str = "auto", device: str | None = None,
               chat_template: str | os.PathLike | None = None, gradient_checkpointing: bool = False):
    """Load any local image-text-to-text checkpoint and its processor, offline, through the Auto classes.

    `dtype`: a torch dtype or "bf16", "fp16", "fp32", "auto" (the checkpoint's). `chat_template` replaces or supplies
    the processor's. `gradient_checkpointing` trades compute for activation memory when training. A directory that
    holds a LoRA adapter alone (itself, or in `adapter/`) loads as its start model with the adapter merged.
    """
    adapter = adapter_dir(path)
    if adapter is not None:
        return load_adapter(adapter, dtype=dtype, device=device, chat_template=chat_template)
    path = _check_checkpoint_dir(path)
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=resolve_dtype(dtype), local_files_only=True)
    processor = AutoProcessor.from_pretrained(path, local_files_only=True)
    use_chat_template(processor, path, chat_template)
    if getattr(processor, "tokenizer", None) is not None and processor.tokenizer.pad_token is None:
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if device is not None:
        model.to(device)
    return model, processor


def adapter_dir(path: str | os.PathLike) -> Path | None:
    """Where a directory without a full checkpoint keeps a peft adapter (itself or `adapter/`), else None."""
    path = Path(path)
    if (path / "config.json").exists():
        return None
    return next((d for d in (path, path / "adapter") if (d / "adapter_config.json").exists()), None)


def load_adapter(adapter: str | os.PathLike, base: str | os.PathLike | None = None, dtype: torch.dtype | str = "auto",
                 device: str | None = None, chat_template: str | os.PathLike | None = None, merge: bool = True):
    """The start model (`base`, by default the one the adapter records) with the LoRA adapter in `adapter` applied:
    merged into the weights, or kept as a peft model (`merge=False`)."""
    from peft import PeftConfig, PeftModel

    base = base or PeftConfig.from_pretrained(adapter).base_model_name_or_path
    model, processor = load_model(base, dtype=dtype, chat_template=chat_template)
    model = PeftModel.from_pretrained(model, adapter)
    if merge:
        model = model.merge_and_unload()
    if device is not None:
        model.to(device)
    return model, processor


def language_model_name(model) -> str:
    """The module name of the model's language model (its decoder), as `named_modules` spells it."""
    decoder = model.get_decoder()
    names = [name for name, module in model.named_modules() if module is decoder and name]
    if not names:
        raise ValueError(f"cannot find the language model of {type(model).__name__}; pass lora_target explicitly")
    return names[0]


def infer_lora_target(model, projections: tuple[str, ...] = ("q_proj", "v_proj")) -> str:
    """A regex (peft's full-match form) for the language model's attention projections: LoRA's usual targets,
    whatever the architecture names its language model (`language_model` in LLaVA and Qwen2-VL, `text_model` in
    Idefics3). The vision tower's projections of the same names are left out."""
    prefix = language_model_name(model)
    pattern = rf"{re.escape(prefix)}\..*\.({'|'.join(projections)})"
    regex = re.compile(pattern)
    if not any(regex.fullmatch(name) and isinstance(m, torch.nn.Linear) for name, m in model.named_modules()):
        linear = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and name.startswith(prefix)][:8]
        raise ValueError(f"the language model {prefix!r} has no linear {projections} modules; pass lora_target "
                         f"(a regex over module names). Some of its linear modules: {linear}")
    return pattern


def save_model(model, processor, path: str | os.PathLike) -> None:
    """save_pretrained of model and processor (safetensors, chat template included), and the attention
    implementation the model ran with, which transformers does not save: a reloaded model computes what it did."""
    model.save_pretrained(path)
    processor.save_pretrained(path)
    config_path = Path(path) / "config.json"
    config = json.loads(config_path.read_text())
    config["attn_implementation"] = model.config._attn_implementation
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def preset_record(name: str) -> dict:
    return {"preset": name, **asdict(get_preset(name))}
