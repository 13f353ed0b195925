"""What every training run of lvlmu shares: Trainer arguments, text progress, memory, and the reuse of a finished run."""
from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

import torch
from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

from .answers import answer_logits
from .precision import autocast_arguments, same_machine_numerics

# The version of the code every training shares (this module, data, answers, precision, the model builders): bump it
# when a change there changes what a model becomes, and every model is trained again (see lvlmu.versions).
TRAINING_VERSION = 4


class TextProgress(TrainerCallback):
    """Plain-text progress lines: legible in a terminal, in a notebook and in the rendered book."""

    def __init__(self) -> None:
        self.start = time.time()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            print(f"step {state.global_step:>5}/{state.max_steps}  loss {logs['loss']:.4f}  {time.time() - self.start:6.0f} s", flush=True)


def training_arguments(output_dir: Path, config, steps: int, batch_size: int, progress_bar: bool, **overrides) -> TrainingArguments:
    """Arguments for `steps` optimizer steps with warmup then cosine decay, no checkpoints, CPU when there is no GPU.

    `config` is any lvlmu config with learning_rate, warmup_ratio, seed, precision and logging_steps fields.
    """
    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=batch_size,
        max_steps=steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=round(config.warmup_ratio * steps),
        logging_steps=config.logging_steps,
        save_strategy="no",
        report_to=[],
        seed=config.seed,
        data_seed=config.seed,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        disable_tqdm=not progress_bar,
        **autocast_arguments(config.precision),
        use_cpu=not torch.cuda.is_available(),
        **overrides,
    )


class AnswerLossTrainer(Trainer):
    """Trainer whose loss is the model's own next-token cross-entropy on the answer tokens, computed from the logits
    at those tokens alone (lvlmu.answers): the same loss, without projecting image and prompt positions onto the
    vocabulary."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if return_outputs:
            raise ValueError("AnswerLossTrainer computes the loss without the model's full outputs")
        answers = answer_logits(model, inputs)
        # Like transformers' causal-LM loss: summed, over the batch's answer tokens (all accumulated steps' when given).
        total = -answers.token_logprobs().sum()
        return total / (num_items_in_batch if num_items_in_batch is not None else answers.targets.numel())


def use_text_progress(trainer: Trainer) -> Trainer:
    """Replace tqdm and the printed log dicts with plain lines (for notebooks: widgets do not render offline)."""
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(TextProgress())
    return trainer


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reusable_manifest(out_dir: str | os.PathLike, key: str, precision: str) -> dict | None:
    """The manifest in `out_dir` when the result there has this key (lvlmu.versions.result_key: the versions of the
    code that makes it, its config and its inputs' keys) and was computed at this precision with these instruction-set
    variables; otherwise None."""
    manifest_path = Path(out_dir) / "manifest.json"
    if not manifest_path.exists():
        return None
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("key") != key:
        return None
    if not same_machine_numerics(manifest, precision):
        # Retrained under the same key, it would leave results computed from the old weights looking current.
        raise ValueError(f"{out_dir} holds this run's result (key {key}) computed at another precision or with other "
                         f"instruction-set variables ({manifest.get('runtime')}); delete it, or run the study with --force")
    print(f"reusing {out_dir}: its key {key} is this run's (same code versions, config and inputs)")
    return manifest
