"""Relearning attacks: a few optimizer steps of the model's own training recipe (a tenth of its peak rate: a
fine-tuning step) on a handful of examples, then the
leaks read again (Hu et al. 2024; Lucki et al. 2024 restore "unlearned" knowledge this way in language models).

One run at a constant learning rate reads the leaks after each requested number of steps: with no schedule, the
model after K steps of a 20-step run is the model of a K-step attack.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset
from transformers import SchedulerType, TrainerCallback

from ..data import VisionTextCollator
from ..model import infer_lora_target
from ..training import AnswerLossTrainer, training_arguments, use_text_progress
from ..world import World
from ..world import questions as Q

RELEARN_DATA = ("named photo", "benign", "unrelated")


class NoData(ValueError):
    """The world has no data for this attack (a concept folder has no scenes, say): stored as unavailable."""


def relearn_examples(world: World, people: list, data: str) -> list[dict]:
    """What a relearning attack trains on.

    - "named photo": one trained photograph of each forgotten person (the one SIU unlearns from), answered with the
      name: the attacker's single labelled photo. Their facts and other photographs are never shown.
    - "benign": the retained people's training examples (no forgotten person's data at all).
    - "unrelated": the scenes' questions (no person at all).
    """
    forgotten = {p.person_id for p in people}
    if data == "named photo":
        return [{"person_id": p.person_id, "image_id": world.single_image(p.person_id)["image_id"], "question": Q.IDENTITY_TRAIN[0],
                 "answer": f"This is {p.name}."} for p in people]
    if data == "benign":
        rows = [ex for ex in world.select("train", role="retain") if ex["person_id"] not in forgotten]
    elif data == "unrelated":
        rows = world.select("train", role="scene")
    else:
        raise ValueError(f"unknown relearning data {data!r}; choose from {list(RELEARN_DATA)}")
    if not rows:
        raise NoData(f"the world at {world.root} has no {data} training examples ({'retained people' if data == 'benign' else 'scenes'})")
    return rows


def trainable(model, config):
    """The model ready to relearn: its frozen parameters (the vision tower) left out of training, or a LoRA adapter
    on the language model's attention projections alone."""
    if config.lora:
        from peft import LoraConfig, get_peft_model

        target = config.lora_target or infer_lora_target(model)
        return get_peft_model(model, LoraConfig(r=config.lora_rank, lora_alpha=2 * config.lora_rank, lora_dropout=0.0, target_modules=target))
    frozen = re.compile(config.frozen) if config.frozen else None
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(not (frozen and frozen.fullmatch(name)))
    return model


class Repeated(Dataset):
    """`n` examples drawn in a reproducible order from `examples`, cycling through a fresh permutation each pass."""

    def __init__(self, examples: list[dict], n: int, seed: int):
        rng = np.random.default_rng(seed)
        order = []
        while len(order) < n:
            order += rng.permutation(len(examples)).tolist()
        self.examples, self.order = examples, order[:n]

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> dict:
        return self.examples[self.order[i]]


class ReadAt(TrainerCallback):
    """Reads the leaks after the steps listed, with the model in evaluation mode, then lets training go on."""

    def __init__(self, steps: tuple[int, ...], read):
        self.steps, self.read, self.rows = set(steps), read, []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step in self.steps:
            self.rows += [{**row, "step": state.global_step} for row in self.read(model, state.global_step)]
            model.train()


def relearn(ctx, data: str, read=None) -> list[dict]:
    """Relearn on `data` (see relearn_examples) for the largest of `ctx.config.steps`, and return what
    `read(model, step)` gives (default: the scored leaks) before the first step and after each of the steps, each row
    with its `step`."""
    from .suite import lineage_learning_rate

    config = ctx.config
    examples = relearn_examples(ctx.world, ctx.forget, data)
    model = trainable(ctx.fresh_model(), config)
    rows = [{**row, "step": 0} for row in (read(model, 0) if read else ctx.before())]
    read = read or (lambda m, step: ctx.leaks(m, desc=f"{data}, step {step}"))
    batch = min(config.batch_size, len(examples))
    callback = ReadAt(config.steps, read)
    recipe = _Recipe(config.learning_rate or config.rate_factor * lineage_learning_rate(ctx.model_dir), config.seed, config.precision)
    with tempfile.TemporaryDirectory(prefix="lvlmu-relearn-") as tmp:
        # Repeated already fixed the order (each pass a permutation): the sampler must not reshuffle it
        args = training_arguments(Path(tmp), recipe, max(config.steps), batch, progress_bar=False, train_sampling_strategy="sequential")
        args.lr_scheduler_type = SchedulerType.CONSTANT  # the shared recipe's cosine would make step K depend on the run's length
        trainer = AnswerLossTrainer(model=model, args=args, train_dataset=Repeated(examples, max(config.steps) * batch, config.seed),
                                    data_collator=VisionTextCollator(ctx.processor, ctx.world.image, split_by_length=True),
                                    callbacks=[callback])
        use_text_progress(trainer)
        trainer.train()
    return rows + callback.rows


class _Recipe:
    """The fields training_arguments reads: no warmup, a log line every step."""

    def __init__(self, learning_rate: float, seed: int, precision: str):
        self.learning_rate, self.seed, self.precision = learning_rate, seed, precision
        self.warmup_ratio, self.logging_steps = 0.0, 1
