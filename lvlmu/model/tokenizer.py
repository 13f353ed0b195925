"""A byte-level BPE tokenizer trained on the world's own text, so every name and fact is covered."""
from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS, UNK, IMAGE = "<pad>", "<s>", "</s>", "<unk>", "<image>"
USER, ASSISTANT = "USER:", "ASSISTANT:"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK, IMAGE, USER, ASSISTANT]

# One template for the tiny model; real checkpoints bring their own. Content may be a string or a list of parts.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: "
    "{% else %}ASSISTANT: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>\n{% else %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if message['role'] == 'user' %} {% else %}{{ eos_token }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def train_bpe(corpus: list[str], vocab_size: int, special_tokens: list[str]) -> Tokenizer:
    """Byte-level BPE trained on `corpus`: no text is ever unknown, and decoding is exact."""
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    raw.train_from_iterator(corpus, trainer=trainer)
    return raw


def train_tokenizer(corpus: list[str], vocab_size: int = 2000) -> PreTrainedTokenizerFast:
    """The tiny model's tokenizer: byte-level BPE on `corpus`, with LLaVA's special tokens."""
    raw = train_bpe(corpus, vocab_size, SPECIAL_TOKENS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        extra_special_tokens={"image_token": IMAGE},
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    return tokenizer
