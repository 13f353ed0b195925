"""Pretraining the tiny LVLM on the world with transformers.Trainer: the base model, and the oracle without the forget people."""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from .data import ShiftMirror, VisionTextCollator
from .io import atomic_directory, package_versions, write_json
from .model import build_processor, build_tiny_model, count_parameters, get_preset, save_model
from .model.tokenizer import train_tokenizer
from .precision import check_precision, runtime
from .training import AnswerLossTrainer, peak_memory_mb, reusable_manifest, training_arguments, use_text_progress
from .versions import result_key
from .vision import load_vision_tower
from .world import World
from .world.people import FIRST_NAMES, INVENTED_FIRST, INVENTED_LAST, LAST_NAMES
from .world import questions as Q

PRETRAIN_VERSION = 2  # the pretraining recipe's code (see lvlmu.versions)


@dataclass(frozen=True)
class PretrainConfig:
    """One pretraining run. `exclude_roles=("forget",)` makes the oracle."""

    preset: str = "tiny"
    # Two epochs, the scenes twice in each: on the tiny preset, against three epochs without scene repeats (measured
    # on one reporting world), visual QA held (66% against 65%), every name and description was still learned, and
    # pretraining took 265 s instead of 370.
    epochs: float = 2.0
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
    # The scenes' general visual questions, repeated too: a tenth of the examples, they are what visual QA measures.
    scene_repeats: int = 2
    # Optionally, this fraction of the steps first trains on grounding examples only (descriptions, trait and
    # yes/no questions, scenes, strangers), before the full mixture. It helped a tower trained from scratch;
    # with a pretrained tower the full mixture from the first step is enough.
    grounding_fraction: float = 0.0
    # Augmentation: images shifted by up to max_shift pixels, and faces mirrored, at random.
    augment: bool = True
    max_shift: int = 2
    # Like LLaVA-1.5, keep the pretrained vision tower frozen: faster steps, and its features stay intact.
    freeze_vision: bool = True
    # "auto": bf16 autocast on a GPU, fp32 on a CPU (lvlmu.precision); "bf16" opts in on a CPU with native bf16.
    precision: str = "auto"
    logging_steps: int = 25
    # The study trains the base and the oracle side by side, one thread each (pretrain_side_by_side): the tiny model
    # gains little from a second thread.
    threads: int = 1

    def __post_init__(self) -> None:
        get_preset(self.preset)
        check_precision(self.precision)
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
        repeats = config.scene_repeats if ex["role"] == "scene" else 1
        if ex["role"] in ("forget", "retain"):
            repeats = config.known_repeats * (config.text_fact_repeats if ex["kind"] == "fact_text" else 1)
        out += [ex] * repeats
    return out


def _train_phase(model, processor, world: World, examples: list[dict], steps: int, config: PretrainConfig, work_dir: Path,
                 progress_bar: bool, step_offset: int = 0):
    """One Trainer run of `steps` optimizer steps over `examples` (warmup, then cosine decay)."""
    args = training_arguments(work_dir, config, steps, config.batch_size, progress_bar,
                              gradient_accumulation_steps=config.gradient_accumulation_steps, weight_decay=config.weight_decay)
    collator = VisionTextCollator(processor, world.image, augment=ShiftMirror(config.max_shift, config.seed) if config.augment else None,
                                  split_by_length=True)
    trainer = AnswerLossTrainer(model=model, args=args, train_dataset=examples, data_collator=collator)
    if not progress_bar:
        use_text_progress(trainer)
    result = trainer.train()
    history = [{**h, "step": h["step"] + step_offset} for h in trainer.state.log_history]
    return result, history


def _vision_input(vision_dir: str | os.PathLike | None) -> str | None:
    """What identifies a pretrained vision tower: its key (lvlmu.vision.vision_key), from its manifest."""
    if vision_dir is None:
        return None
    manifest = Path(vision_dir) / "manifest.json"
    if not manifest.exists():
        raise FileNotFoundError(f"no pretrained vision tower at {vision_dir} (no manifest.json); train one with lvlmu.vision.pretrain_vision")
    return json.loads(manifest.read_text())["key"]


def pretrain_key(config: PretrainConfig, world_key: str, vision_key: str | None) -> str:
    """The key of a model pretrained with `config` on the world with `world_key` from the tower with `vision_key`."""
    return result_key(("training", "vision", "pretrain"), config, {"world": world_key, "vision_tower": vision_key})


def pretrain(world: World, out_dir: str | os.PathLike, config: PretrainConfig = PretrainConfig(),
             vision_dir: str | os.PathLike | None = None, progress_bar: bool = True) -> dict:
    """Train a model on the world's training examples and save it (with a manifest) to `out_dir`.

    The vision tower starts from `vision_dir` (see lvlmu.vision) and the rest from scratch. The tokenizer is
    trained on the whole world's text, so base and oracle share a vocabulary. The directory appears only once
    training has finished: an interrupted run leaves nothing behind.
    """
    if config.freeze_vision and vision_dir is None:
        raise ValueError("freeze_vision=True needs a pretrained vision tower: pass vision_dir (see lvlmu.vision.pretrain_vision)")
    torch.set_num_threads(config.threads)
    spec = get_preset(config.preset)
    processor = build_processor(train_tokenizer(world_corpus(world), spec.vocab_size), world.config.image_size, spec.patch_size)
    model = build_tiny_model(spec, processor, world.config.image_size, seed=config.seed)
    if vision_dir is not None:
        model.model.vision_tower.load_state_dict(load_vision_tower(vision_dir).state_dict())
    model.model.vision_tower.requires_grad_(not config.freeze_vision)
    train = training_examples(world, config)
    # Epochs count over the whole world's training set, so the oracle trains for as many steps as the base:
    # the two differ in their data alone.
    reference = training_examples(world, replace(config, exclude_roles=()))
    steps = max(1, round(config.epochs * len(reference) / config.effective_batch_size))
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
        save_model(model, processor, tmp)
        shutil.rmtree(tmp / "trainer", ignore_errors=True)
        manifest = {
            "kind": "pretrain",
            "config": asdict(config),
            "effective_batch_size": config.effective_batch_size,
            "seeds": {"model_init": config.seed, "data_order": config.seed, "world": world.config.seed},
            "world": {"root": str(world.root), "fingerprint": world.fingerprint},
            "inputs": {"vision_tower": _vision_input(vision_dir)},
            "n_train_examples": len(train),
            "steps": steps,
            "grounding_steps": grounding_steps,
            "parameters": count_parameters(model),
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "train_loss": sum(loss * n for loss, n in losses) / sum(n for _, n in losses),
            "wall_seconds": time.time() - started,
            "peak_memory_mb": peak_memory_mb(),
            "versions": package_versions(),
            "runtime": runtime(config.precision),
            "key": pretrain_key(config, world.fingerprint, _vision_input(vision_dir)),
        }
        write_json(tmp / "manifest.json", manifest)
        write_json(tmp / "log_history.json", history)
    return manifest


def pretrain_cached(world: World, out_dir: str | os.PathLike, config: PretrainConfig = PretrainConfig(),
                    vision_dir: str | os.PathLike | None = None, progress_bar: bool = True) -> dict:
    """pretrain(), unless `out_dir` already holds a model trained with this config, world, vision tower and code."""
    manifest = reusable_manifest(out_dir, pretrain_key(config, world.fingerprint, _vision_input(vision_dir)), config.precision)
    return manifest or pretrain(world, out_dir, config, vision_dir, progress_bar=progress_bar)


def _pretrain_in_process(world_dir: str, out_dir: str, config: PretrainConfig, vision_dir: str | None) -> dict:
    from .world import load_world

    return pretrain_cached(load_world(world_dir), out_dir, config, vision_dir, progress_bar=False)


def pretrain_side_by_side(world: World, models: dict[str, tuple[str | os.PathLike, PretrainConfig]],
                          vision_dir: str | os.PathLike | None = None, workers: int = 2) -> dict[str, dict]:
    """pretrain_cached() for several models, `workers` at a time, each in its own process with its config's threads.
    `models` maps a name to (out_dir, config); returns the manifests by name. A failure names its model."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    manifests = {}
    for name, (out_dir, config) in models.items():  # a model already trained is read here, not in a new process
        found = reusable_manifest(out_dir, pretrain_key(config, world.fingerprint, _vision_input(vision_dir)), config.precision)
        if found:
            manifests[name] = found
    todo = {name: model for name, model in models.items() if name not in manifests}
    with ProcessPoolExecutor(max(1, min(workers, len(todo))), mp_context=get_context("spawn")) as pool:
        futures = {name: pool.submit(_pretrain_in_process, str(world.root), str(out_dir), config, None if vision_dir is None else str(vision_dir))
                   for name, (out_dir, config) in todo.items()}
        for name, future in futures.items():
            try:
                manifests[name] = future.result()
            except Exception as error:
                raise RuntimeError(f"pretraining {name} ({models[name][0]}) failed: {error}") from error
    manifests = {name: manifests[name] for name in models}
    for name, manifest in manifests.items():
        print(f"{name}: {manifest['steps']} steps, {manifest['wall_seconds']:.0f} s", flush=True)
    return manifests
