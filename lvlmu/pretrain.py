"""Pretraining the tiny LVLM on the world with transformers.Trainer: the base model, and the oracle without the forget people."""
from __future__ import annotations

import json
import os
import shutil
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

from .data import VisionTextCollator
from .io import atomic_directory, hash_file, hash_json, package_versions, write_json
from .model import build_processor, build_tiny_model, count_parameters, get_preset
from .model.tokenizer import train_tokenizer
from .world import World
from .world.people import FIRST_NAMES, INVENTED_FIRST, INVENTED_LAST, LAST_NAMES
from .world import questions as Q


@dataclass(frozen=True)
class PretrainConfig:
    """One pretraining run. `exclude_roles=("forget",)` makes the oracle."""

    preset: str = "tiny"
    epochs: float = 5.0
    batch_size: int = 32
    gradient_accumulation_steps: int = 1
    learning_rate: float = 2e-3
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    seed: int = 0
    exclude_roles: tuple[str, ...] = ()
    # Known people are few and strangers many: their examples are repeated, text-only facts most of all.
    known_repeats: int = 3
    text_fact_repeats: int = 3
    # Like LLaVA's alignment stage: this fraction of the steps first trains on grounding examples only
    # (descriptions, trait and yes/no questions, scenes, strangers), before the full mixture.
    grounding_fraction: float = 0.35
    # bf16 autocast: about 25% faster per step on a CPU with avx512_bf16, and the usual choice on a GPU.
    bf16: bool = True
    logging_steps: int = 25
    threads: int = 2

    def __post_init__(self) -> None:
        get_preset(self.preset)
        if self.epochs <= 0 or self.batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("epochs, batch_size and gradient_accumulation_steps must be positive")

    @property
    def effective_batch_size(self) -> int:
        return self.batch_size * self.gradient_accumulation_steps


def world_corpus(world: World) -> list[str]:
    """All the text the tokenizer must cover: every question and answer, every name pool, every attack template."""
    corpus = [f"{ex['question']} {ex['answer']}" for ex in world.examples]
    corpus += [" ".join(FIRST_NAMES), " ".join(LAST_NAMES), " ".join(INVENTED_FIRST), " ".join(INVENTED_LAST)]
    corpus += list(Q.JAILBREAK_PREFIXES) + list(Q.MULTI_HOP) + list(Q.OPEN_QUERIES) + list(Q.IDENTITY_HELDOUT) + list(Q.DESCRIBE_HELDOUT)
    return corpus


GROUNDING_KINDS = ("description", "trait", "pope", "vqa")


def grounding_examples(world: World, config: PretrainConfig) -> list[dict]:
    """Examples that teach what is visible, never who it is: descriptions, traits, scenes, and strangers."""
    return [ex for ex in world.select("train", exclude_roles=config.exclude_roles) if ex["kind"] in GROUNDING_KINDS or ex["role"] == "stranger"]


def training_examples(world: World, config: PretrainConfig) -> list[dict]:
    """The world's training examples without the excluded roles, with known people's examples repeated."""
    out = []
    for ex in world.select("train", exclude_roles=config.exclude_roles):
        repeats = 1
        if ex["role"] in ("forget", "retain"):
            repeats = config.known_repeats * (config.text_fact_repeats if ex["kind"] == "fact_text" else 1)
        out += [ex] * repeats
    return out


class TextProgress(TrainerCallback):
    """Plain-text progress lines: legible in a terminal, in a notebook and in the rendered book."""

    def __init__(self) -> None:
        self.start = time.time()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            print(f"step {state.global_step:>5}/{state.max_steps}  loss {logs['loss']:.4f}  {time.time() - self.start:6.0f} s", flush=True)


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _train_phase(model, processor, world: World, examples: list[dict], steps: int, config: PretrainConfig, work_dir: Path,
                 progress_bar: bool, step_offset: int = 0):
    """One Trainer run of `steps` optimizer steps over `examples` (warmup, then cosine decay)."""
    args = TrainingArguments(
        output_dir=str(work_dir),
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        max_steps=steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=round(config.warmup_ratio * steps),
        weight_decay=config.weight_decay,
        logging_steps=config.logging_steps,
        save_strategy="no",
        report_to=[],
        seed=config.seed,
        data_seed=config.seed,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        disable_tqdm=not progress_bar,
        bf16=config.bf16,
        use_cpu=not torch.cuda.is_available(),
    )
    trainer = Trainer(model=model, args=args, train_dataset=examples, data_collator=VisionTextCollator(processor, world.image))
    if not progress_bar:  # plain text lines instead of tqdm and of the printed log dicts
        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(TextProgress())
    result = trainer.train()
    history = [{**h, "step": h["step"] + step_offset} for h in trainer.state.log_history]
    return result, history


def pretrain(world: World, out_dir: str | os.PathLike, config: PretrainConfig = PretrainConfig(), progress_bar: bool = True) -> dict:
    """Train a model from scratch on the world's training examples and save it (with a manifest) to `out_dir`.

    The tokenizer is trained on the whole world's text, so base and oracle share a vocabulary.
    The directory appears only once training has finished: an interrupted run leaves nothing behind.
    """
    torch.set_num_threads(config.threads)
    spec = get_preset(config.preset)
    processor = build_processor(train_tokenizer(world_corpus(world), spec.vocab_size), world.config.image_size, spec.patch_size)
    model = build_tiny_model(spec, processor, world.config.image_size, seed=config.seed)
    train = training_examples(world, config)
    steps = max(1, round(config.epochs * len(train) / config.effective_batch_size))
    grounding_steps = round(config.grounding_fraction * steps)
    started = time.time()
    with atomic_directory(out_dir) as tmp:
        history, losses, offset = [], [], 0
        phases = [("grounding", grounding_examples(world, config), grounding_steps), ("full", train, steps - grounding_steps)]
        for phase, examples, phase_steps in phases:
            if phase_steps <= 0:
                continue
            if not progress_bar:
                print(f"phase {phase}: {phase_steps} steps over {len(examples)} examples", flush=True)
            result, phase_history = _train_phase(model, processor, world, examples, phase_steps, config, tmp / "trainer", progress_bar, offset)
            history += [{**h, "phase": phase} for h in phase_history]
            losses.append((result.training_loss, phase_steps))
            offset += phase_steps
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        shutil.rmtree(tmp / "trainer", ignore_errors=True)
        manifest = {
            "kind": "pretrain",
            "config": asdict(config),
            "effective_batch_size": config.effective_batch_size,
            "seeds": {"model_init": config.seed, "data_order": config.seed, "world": world.config.seed},
            "world": {"root": str(world.root), "fingerprint": world.fingerprint},
            "n_train_examples": len(train),
            "steps": steps,
            "grounding_steps": grounding_steps,
            "parameters": count_parameters(model),
            "train_loss": sum(loss * n for loss, n in losses) / sum(n for _, n in losses),
            "wall_seconds": time.time() - started,
            "peak_memory_mb": peak_memory_mb(),
            "versions": package_versions(),
            "training_source": training_source_fingerprint(),
        }
        write_json(tmp / "manifest.json", manifest)
        write_json(tmp / "log_history.json", history)
    return manifest


def training_source_fingerprint() -> str:
    """A hash of the code that decides what a pretrained model becomes."""
    package = Path(__file__).resolve().parent
    files = [package / "pretrain.py", package / "data.py", *sorted((package / "model").glob("*.py")), *sorted((package / "world").glob("*.py"))]
    return hash_json({p.name: hash_file(p) for p in files})


def pretrain_cached(world: World, out_dir: str | os.PathLike, config: PretrainConfig = PretrainConfig(), progress_bar: bool = True) -> dict:
    """pretrain(), unless `out_dir` already holds a model trained with this config, world and training code."""
    manifest_path = Path(out_dir) / "manifest.json"
    source = training_source_fingerprint()
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if (manifest.get("config") == json.loads(json.dumps(asdict(config))) and manifest["world"]["fingerprint"] == world.fingerprint
                and manifest.get("training_source") == source):
            print(f"reusing {out_dir}: trained with the same config, world and code")
            return manifest
    return pretrain(world, out_dir, config, progress_bar=progress_bar)
