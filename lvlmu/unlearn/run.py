"""Run one unlearning method on a model: forget people, images, full weights or LoRA, and a manifest."""
from __future__ import annotations

import contextlib
import copy
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from ..data import ShiftMirror
from ..io import atomic_directory, package_versions, write_json, write_jsonl
from ..model import infer_lora_target, load_model, save_model
from ..precision import check_precision, runtime
from ..probe.store import model_key
from ..training import peak_memory_mb, reusable_manifest, training_arguments, use_text_progress
from ..versions import result_key
from ..world import World
from .data import PairedCollator, PairedDataset, forget_examples, resolve_forget, retain_examples, with_random_answers
from .methods import LossWeights, get_method
from .pubg import build_guidance
from .siu import SIUConfig, name_token_ids, siu_examples

UNLEARN_VERSION = 9  # the unlearning driver's code, shared by every method (see lvlmu.versions)


@dataclass(frozen=True)
class UnlearnConfig:
    """One unlearning run. `forget` is "split" (the world's forget split) or a list of known people's ids."""

    method: str = "graddiff"
    forget: str | tuple[str, ...] = "split"
    images: str = "trained"  # "single": SIU's one image per person; "trained": every trained image
    steps: int = 30
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-4
    warmup_ratio: float = 0.0
    weights: LossWeights = field(default_factory=LossWeights)
    lora: bool = False
    lora_rank: int = 8
    # A regex over module names. Empty: inferred from the architecture, the language model's q_proj and v_proj
    # (lvlmu.model.infer_lora_target; a plain ["q_proj", "v_proj"] would also match the CLIP tower).
    lora_target: str = ""
    # Parameters left frozen, a regex over their names: the vision tower, as LLaVA's fine-tuning keeps it (transformers
    # names it `vision_tower` in LLaVA, `visual` in Qwen2-VL, `vision_model` in Idefics3). Empty: train every weight.
    frozen: str = r".*\b(vision_tower|visual|vision_model)\..*"
    # SIU's data: how many other people's QA pairs (T4) keep their knowledge, and how often the target examples
    # (T1, T2) repeat against T3 and T4. On an early sweep of the default world (SIU's defaults since; not tuned by `make tune`), 8 pairs
    # cost up to 20 points of retain recognition, 32 pairs without repeats left names on some people's new photos,
    # and 32 with 3 repeats kept retain recognition within 3 points with almost no leak.
    other_qa: int = 32
    target_repeats: int = 3
    siu: SIUConfig = field(default_factory=SIUConfig)  # SIU's DMK form, masks and T1 (the paper's by default)
    # PUBG's teacher prompt: the reference model's answer to it on each forget image is the desirable answer.
    guidance_prompt: str = "Describe this person."
    # Shift-and-mirror augmentation of the images (as in pretraining): max shift in pixels, 0 for none.
    augment_shift: int = 0
    seed: int = 0
    # Autocast in training: "auto" is bf16 on a GPU and fp32 on a CPU; "bf16", "fp16" (GPU only) or "fp32" choose.
    precision: str = "auto"
    dtype: str = "fp32"  # the weights' dtype on loading: "fp32", "bf16", "fp16" or "auto" (the checkpoint's)
    gradient_checkpointing: bool = False
    chat_template: str = ""  # for a checkpoint whose processor has none: a Jinja string or a .jinja file
    logging_steps: int = 5
    threads: int = 2

    def __post_init__(self) -> None:
        get_method(self.method)
        check_precision(self.precision)
        if not isinstance(self.forget, str):
            object.__setattr__(self, "forget", tuple(self.forget))
        if isinstance(self.weights, dict):
            object.__setattr__(self, "weights", LossWeights(**self.weights))
        if isinstance(self.siu, dict):
            object.__setattr__(self, "siu", SIUConfig(**self.siu))
        if self.steps < 1 or self.batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("steps, batch_size and gradient_accumulation_steps must be positive")

    @property
    def effective_batch_size(self) -> int:
        return self.batch_size * self.gradient_accumulation_steps


def add_lora(model, config: UnlearnConfig):
    """Wrap the model in a LoRA adapter on the modules that `config.lora_target` matches (inferred when empty); fail
    clearly if none does."""
    from peft import LoraConfig, get_peft_model

    target = config.lora_target or infer_lora_target(model)
    pattern = re.compile(target)
    matches = [name for name, module in model.named_modules() if pattern.fullmatch(name) and isinstance(module, torch.nn.Linear)]
    if not matches:
        linear = [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)][:8]
        raise ValueError(f"lora_target {target!r} matches no linear module of the model; some are: {linear}")
    lora = LoraConfig(r=config.lora_rank, lora_alpha=2 * config.lora_rank, lora_dropout=0.0, target_modules=target)
    return get_peft_model(model, lora)


def checkpointing_arguments(enabled: bool) -> dict:
    """Trainer arguments for gradient checkpointing, only when it is on: recent transformers 5.x call it
    activation_checkpointing and warn at the old name, which is the only one earlier 5.x releases know."""
    return {"gradient_checkpointing": True, "gradient_checkpointing_kwargs": {"use_reentrant": False}} if enabled else {}


def freeze(model, pattern: str) -> int:
    """Freeze the parameters whose names match `pattern`; fail clearly if it matches none. Returns how many froze."""
    if not pattern:
        return 0
    regex = re.compile(pattern)
    matched = [p for name, p in model.named_parameters() if regex.fullmatch(name)]
    if not matched:
        raise ValueError(f"frozen={pattern!r} matches no parameter of the model; set frozen='' to train every weight")
    for parameter in matched:
        parameter.requires_grad_(False)
    return len(matched)


def forget_data(world: World, config: UnlearnConfig) -> list[dict]:
    """The forget-side examples the method trains on: SIU's four targets, or the examples that taught the people."""
    people = resolve_forget(world, config.forget)
    method = get_method(config.method)
    if method.data == "siu":
        return siu_examples(world, people, config.images, config.other_qa, config.seed, config.target_repeats, config.siu.t1)
    examples = forget_examples(world, people, config.images)
    return with_random_answers(world, examples, people, config.seed) if method.alternative == "random" else examples


@contextlib.contextmanager
def scratch_directory() -> Iterator[Path]:
    """A directory that is thrown away: where processes other than the main one of a multi-GPU run write nothing."""
    with tempfile.TemporaryDirectory(prefix="lvlmu-unlearn-") as tmp:
        yield Path(tmp)


def unlearn(world: World, model_dir: str | os.PathLike, out_dir: str | os.PathLike, config: UnlearnConfig = UnlearnConfig(),
            progress_bar: bool = True) -> dict:
    """Unlearn `config.forget` from the model in `model_dir`; save the result (merged, so any loader reads it) to
    `out_dir`, with the adapter alone in `out_dir/adapter` for LoRA runs, and a manifest.

    Under `accelerate launch` (DDP, FSDP, DeepSpeed) every process trains and the main process writes. A sharded LoRA
    run (FSDP, ZeRO-3) writes the adapter only, and `load_model(out_dir)` merges it into the start model on loading.
    """
    from accelerate import PartialState

    torch.set_num_threads(config.threads)
    state = PartialState(cpu=not torch.cuda.is_available())  # as TrainingArguments will: several CPU processes use gloo
    method = get_method(config.method)
    people = resolve_forget(world, config.forget)
    retain = retain_examples(world, people)
    forget = forget_data(world, config)
    model, processor = load_model(model_dir, dtype=config.dtype, chat_template=config.chat_template or None)
    siu = config.siu if method.data == "siu" else None
    forbidden = name_token_ids(processor.tokenizer, [world.people[p].name for p in people]) if siu and siu.vocabulary_mask else None
    guide = build_guidance(world, forget, people, model, processor, config.guidance_prompt) if method.guided else None
    freeze(model, config.frozen)
    ref_model = None
    if config.lora:
        model = add_lora(model, config)
    elif method.needs_reference:
        ref_model = copy.deepcopy(model).eval().requires_grad_(False)
    effective_batch_size = config.effective_batch_size * state.num_processes
    dataset = PairedDataset(forget, retain if method.uses_retain else [], config.steps * effective_batch_size, seed=config.seed, guide=guide)
    started = time.time()
    with atomic_directory(out_dir) if state.is_main_process else scratch_directory() as tmp:
        logged = replace(config, logging_steps=min(config.logging_steps, config.steps))  # a short run still logs its terms
        args = training_arguments(tmp / "trainer", logged, config.steps, config.batch_size, progress_bar,
                                  gradient_accumulation_steps=config.gradient_accumulation_steps,
                                  **checkpointing_arguments(config.gradient_checkpointing))
        augment = ShiftMirror(config.augment_shift, config.seed) if config.augment_shift else None
        collator = PairedCollator(processor, world.image, method.alternative, config.seed, target_masks=method.data == "siu", augment=augment)
        trainer = method(model=model, args=args, train_dataset=dataset, weights=config.weights, ref_model=ref_model,
                         forbidden_ids=forbidden, data_collator=collator, **({"siu": siu} if siu else {}))
        if not progress_bar:
            use_text_progress(trainer)
        result = trainer.train()
        sharded = trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled
        if sharded:  # Trainer gathers the shards; a LoRA run keeps its adapter only
            trainer.save_model(str(tmp / "adapter") if config.lora else str(tmp))
        elif state.is_main_process:
            if config.lora:
                model.save_pretrained(tmp / "adapter")
                model = model.merge_and_unload()
            save_model(model, processor, tmp)
        state.wait_for_everyone()
        if not state.is_main_process:
            return {}
        if sharded:
            processor.save_pretrained(tmp / "adapter" if config.lora else tmp)
        shutil.rmtree(tmp / "trainer", ignore_errors=True)
        manifest = {
            "kind": "unlearn",
            "config": asdict(config),
            "method": config.method,
            "forget_people": people,
            "n_forget_examples": len(forget),
            "n_retain_examples": len(retain) if method.uses_retain else 0,
            "n_guidance_examples": len(guide) if guide else 0,
            "effective_batch_size": effective_batch_size,
            "processes": state.num_processes,
            "seeds": {"data_order": config.seed, "refusals": config.seed},
            "start_model": {"path": str(Path(model_dir)), "key": model_key(model_dir)},
            "world": {"root": str(world.root), "fingerprint": world.fingerprint},
            "key": unlearn_key(config, world.fingerprint, model_key(model_dir)),
            "train_loss": result.training_loss,
            "wall_seconds": time.time() - started,
            "peak_memory_mb": peak_memory_mb(),
            "versions": package_versions(),
            "runtime": runtime(config.precision),
        }
        write_json(tmp / "manifest.json", manifest)
        write_json(tmp / "log_history.json", trainer.state.log_history)
        if guide:  # the desirable answers PUBG guided toward, for inspection
            write_jsonl(tmp / "guidance.jsonl", [{k: g[k] for k in ("person_id", "image_id", "question", "teacher_question", "answer")} for g in guide])
    return manifest


def unlearn_key(config: UnlearnConfig, world_key: str, start_key: str) -> str:
    """The key of an unlearned model: the versions of the training code, the unlearning driver and its method, the
    run's config, the world's key and the start model's (lvlmu.probe.store.model_key)."""
    return result_key(("training", "unlearn", f"method:{config.method}"), config, {"world": world_key, "start_model": start_key})


def reusable_unlearned(out_dir: str | os.PathLike, world: World, model_dir: str | os.PathLike, config: UnlearnConfig) -> dict | None:
    """The manifest in `out_dir` when it holds this run's result (the same key); else None."""
    return reusable_manifest(out_dir, unlearn_key(config, world.fingerprint, model_key(model_dir)), config.precision)


def unlearn_cached(world: World, model_dir: str | os.PathLike, out_dir: str | os.PathLike, config: UnlearnConfig = UnlearnConfig(),
                   progress_bar: bool = True) -> dict:
    """unlearn(), unless `out_dir` already holds the result of the same run."""
    return reusable_unlearned(out_dir, world, model_dir, config) or unlearn(world, model_dir, out_dir, config, progress_bar)
