"""Tiny random-weight checkpoints of real architectures, built offline: they stand in for LLaVA-1.5 or Idefics3
where no weights can be downloaded, and exercise the same generic path (Auto classes, chat template, LoRA).
(Qwen2-VL's processor needs a video processor, which needs torchvision: there is no CPU build of it here.)"""
from __future__ import annotations

import os
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
ARCHITECTURES = ("llava", "idefics3")


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


def _llava(corpus: list[str], image_size: int, seed: int):
    spec = get_preset("tiny")
    processor = build_processor(train_tokenizer(corpus, vocab_size=1000), image_size, spec.patch_size)
    return build_tiny_model(spec, processor, image_size, seed=seed), processor


def build_random_checkpoint(architecture: str, out_dir: str | os.PathLike, corpus: list[str], image_size: int = 32, seed: int = 0) -> Path:
    """Save a random-weight model of `architecture` ("llava" or "idefics3") with a tokenizer trained on `corpus`
    and the architecture's processor and chat template to `out_dir`; load it back with `lvlmu.model.load_model`."""
    builders = {"llava": _llava, "idefics3": _idefics3}
    if architecture not in builders:
        raise ValueError(f"unknown architecture {architecture!r}; choose from {ARCHITECTURES}")
    model, processor = builders[architecture](corpus, image_size, seed)
    save_model(model, processor, out_dir)
    return Path(out_dir)
