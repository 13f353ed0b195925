"""Tiny random-weight checkpoints of real architectures, built offline: they stand in for LLaVA-1.5, Idefics3,
Qwen2-VL or Qwen2.5-VL where no weights can be downloaded, and exercise the same generic path (Auto classes, chat
template, LoRA). Each is laid out as its Hub checkpoints are: its processor (with Qwen's image and video processors),
its own chat template, its configuration (Qwen's multimodal rotary embedding included).

The Qwen processors need torchvision (their video processor, and the image processor their checkpoints name), which
the main environment does not install: `make test-qwen` builds the optional one that does."""
from __future__ import annotations

import importlib.util
import os
from functools import partial
from pathlib import Path

import torch

from .build import build_processor, build_tiny_model, get_preset, save_model
from .tokenizer import train_bpe, train_tokenizer

# Idefics3's own template (as its checkpoints ship it): "User:<image>question<end_of_utterance>\nAssistant: answer".
IDEFICS3_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'] is string %}{{ ': ' + message['content'] }}"
    "{% else %}{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% elif part['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
IDEFICS3_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>", "<image>", "<global-img>"]
# Qwen2-VL's template (as Qwen2-VL-7B-Instruct and Qwen2.5-VL ship it): a default system turn, then
# "<|im_start|>role\n...<|im_end|>\n", an image as <|vision_start|><|image_pad|><|vision_end|>.
QWEN_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
                "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
                "<|image_pad|>", "<|video_pad|>"]
ARCHITECTURES = ("llava", "idefics3", "qwen2_vl", "qwen2_5_vl")
NEEDS_TORCHVISION = ("qwen2_vl", "qwen2_5_vl")  # built and tested in the optional environment (make test-qwen)


def _idefics3(corpus: list[str], image_size: int, seed: int):
    """Idefics3 (SigLIP tower, pixel-shuffle connector, Llama): 8 px patches, shuffled 2 x 2, so 4 tokens an image."""
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor, PreTrainedTokenizerFast
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=train_bpe(corpus, 1000, IDEFICS3_SPECIAL), bos_token="<|im_start|>", eos_token="<end_of_utterance>",
                                        pad_token="<|endoftext|>", padding_side="left", clean_up_tokenization_spaces=False)
    patch, scale = 8, 2
    images = Idefics3ImageProcessorPil(do_image_splitting=False, size={"longest_edge": image_size},
                                       max_image_size={"longest_edge": image_size})
    processor = Idefics3Processor(image_processor=images, tokenizer=tokenizer, chat_template=IDEFICS3_CHAT_TEMPLATE,
                                  image_seq_len=(image_size // patch) ** 2 // scale**2)
    config = Idefics3Config(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": image_size, "patch_size": patch},
        text_config={"model_type": "llama", "vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128,
                     "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512,
                     "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id},
        scale_factor=scale, image_token_id=processor.image_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model, processor


def _qwen(corpus: list[str], image_size: int, seed: int, version: str):
    """Qwen2-VL or Qwen2.5-VL (`version` "2" or "2.5"): a ViT over 14 px patches (2 frames deep), merged 2 x 2 into
    the Qwen2 language model with multimodal rotary embeddings. Every image is resized to 56 px: 4 tokens."""
    import transformers
    from transformers import PreTrainedTokenizerFast, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=train_bpe(corpus, 1000, QWEN_SPECIAL), eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>", padding_side="left", clean_up_tokenization_spaces=False)
    patch, merge, side = 14, 2, 56
    pixels = {"min_pixels": side * side, "max_pixels": side * side, "patch_size": patch, "merge_size": merge}
    name = {"2": "Qwen2VL", "2.5": "Qwen2_5_VL"}[version]
    processor = getattr(transformers, f"{name}Processor")(
        image_processor=Qwen2VLImageProcessor(**pixels), video_processor=Qwen2VLVideoProcessor(**pixels), tokenizer=tokenizer,
        chat_template=QWEN_CHAT_TEMPLATE)
    head_dim = 16
    text = {"vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512,
            # the rotary halves of a head split over time, height and width, as [16, 24, 24] of 64 in the 7B models
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
            "bos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"), "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id}
    assert sum(text["rope_parameters"]["mrope_section"]) * 2 == head_dim == text["hidden_size"] // text["num_attention_heads"]
    vision = {"depth": 2, "num_heads": 2, "patch_size": patch, "spatial_merge_size": merge, "temporal_patch_size": 2}
    if version == "2":
        vision |= {"embed_dim": 32, "mlp_ratio": 2, "hidden_size": text["hidden_size"]}
    else:  # windowed attention in every block but the last, a SwiGLU MLP, and the merger's width named out_hidden_size
        vision |= {"hidden_size": 32, "intermediate_size": 64, "out_hidden_size": text["hidden_size"], "window_size": side,
                   "fullatt_block_indexes": [1]}
    config = getattr(transformers, f"{name}Config")(
        text_config=text, vision_config=vision, image_token_id=processor.image_token_id, video_token_id=processor.video_token_id,
        vision_start_token_id=tokenizer.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tokenizer.convert_tokens_to_ids("<|vision_end|>"))
    torch.manual_seed(seed)
    model = getattr(transformers, f"{name}ForConditionalGeneration")(config)
    # Like the Instruct checkpoints: generation ends at the end of the turn, or at the end of the text.
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, tokenizer.pad_token_id]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, processor


def _llava(corpus: list[str], image_size: int, seed: int):
    spec = get_preset("tiny")
    processor = build_processor(train_tokenizer(corpus, vocab_size=1000), image_size, spec.patch_size)
    return build_tiny_model(spec, processor, image_size, seed=seed), processor


def build_random_checkpoint(architecture: str, out_dir: str | os.PathLike, corpus: list[str], image_size: int = 32, seed: int = 0) -> Path:
    """Save a random-weight model of `architecture` (one of ARCHITECTURES) with a tokenizer trained on `corpus`
    and the architecture's processor and chat template to `out_dir`; load it back with `lvlmu.model.load_model`."""
    builders = {"llava": _llava, "idefics3": _idefics3, "qwen2_vl": partial(_qwen, version="2"),
                "qwen2_5_vl": partial(_qwen, version="2.5")}
    if architecture not in builders:
        raise ValueError(f"unknown architecture {architecture!r}; choose from {ARCHITECTURES}")
    if architecture in NEEDS_TORCHVISION and importlib.util.find_spec("torchvision") is None:
        raise ImportError(f"{architecture}'s processor needs torchvision, which this environment lacks; build the optional "
                          "environment that has it with `make test-qwen` (torch 2.14.1 with torchvision 0.29.1, in .venv-qwen)")
    model, processor = builders[architecture](corpus, image_size, seed)
    save_model(model, processor, out_dir)
    return Path(out_dir)
