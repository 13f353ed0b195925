"""Models: the tiny LLaVA presets, the locally trained tokenizer and processor, and checkpoint I/O."""
from .build import PRESETS, ModelPreset, build_image_processor, build_processor, build_tiny, build_tiny_model, count_parameters, get_preset, infer_lora_target, load_adapter, load_model, resolve_dtype, save_model, vision_tower_config

__all__ = ["PRESETS", "ModelPreset", "build_image_processor", "build_processor", "build_tiny", "build_tiny_model", "count_parameters", "get_preset", "infer_lora_target", "load_adapter", "load_model", "resolve_dtype", "save_model", "vision_tower_config"]
