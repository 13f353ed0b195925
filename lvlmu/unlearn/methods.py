"""Unlearning methods as Trainer subclasses in a registry. A method that differs from another by one term overrides
only that term: GradDiff is GA with a retain loss, NPO is GradDiff with another forget loss, and so on."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import Trainer

from ..answers import AnswerLogits, answer_logits, at_answer_tokens


@dataclass(frozen=True)
class LossWeights:
    retain: float = 1.0  # weight of the retain term, for methods that have one
    beta: float = 0.1  # NPO's and DPO's inverse temperature
    ce: float = 0.9  # SIU's cross-entropy weight
    dmk: float = 0.75  # SIU's Dual Masked KL weight
    suppress: float = 1.0  # PUBG's gradient-ascent weight on the private answers
    guide: float = 1.0  # PUBG's behaviour-guidance (KL to the teacher) weight


def sequence_logprob(answers: AnswerLogits) -> torch.Tensor:
    """Sum over each sequence's answer tokens of log p(token): one value per sequence."""
    return answers.per_row(answers.token_logprobs())


def nll(model, batch: dict) -> torch.Tensor:
    """Mean negative log-likelihood over the answer tokens of the batch."""
    return -answer_logits(model, batch).token_logprobs().mean()


METHODS: dict[str, type["UnlearnTrainer"]] = {}


def register(name: str, version: int):
    """Register a method under `name` with the version of its code (see lvlmu.versions): bump it when its loss or
    data change, and only its runs are recomputed."""
    def add(cls):
        cls.method_name, cls.version = name, version
        METHODS[name] = cls
        return cls
    return add


def get_method(name: str) -> type["UnlearnTrainer"]:
    if name not in METHODS:
        raise ValueError(f"unknown unlearning method {name!r}; the methods are {sorted(METHODS)}")
    return METHODS[name]


class UnlearnTrainer(Trainer):
    """loss = forget_loss + weights.retain * retain_loss (the latter only for methods with `uses_retain`).

    The reference model is the frozen starting point: `ref_model` for full-weight training, or the same model with
    its LoRA adapter disabled, so no second copy is kept.
    """

    method_name = ""
    uses_retain = False
    needs_reference = False
    # The collator's alternative answers to the forget questions, in inputs["alternative"]: "refusal" or "random"
    alternative: str | None = None
    data = "forget"  # "forget": the examples that taught the forget people; "siu": SIU's four targets
    guided = False  # PUBG: the data also holds guidance examples, answered by the reference model itself

    def __init__(self, *args, weights: LossWeights = LossWeights(), ref_model=None, forbidden_ids: list[int] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if ref_model is not None:  # Trainer places the trained model on its device; the reference goes with it
            ref_model = ref_model.to(self.args.device)
        self.weights, self.ref_model, self.forbidden_ids = weights, ref_model, forbidden_ids or []
        self.term_values: dict[str, list[float]] = {}
        if self.needs_reference and ref_model is None and not hasattr(self.model, "disable_adapter"):
            raise ValueError(f"{self.method_name} needs a reference model: pass ref_model, or train a LoRA adapter")

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss = self.forget_loss(model, inputs)
        self.record("forget_loss", loss)
        if self.uses_retain:
            if "retain" not in inputs:
                raise ValueError(f"{self.method_name} needs retain examples, and the batch has none")
            retain = self.retain_loss(model, inputs["retain"])
            self.record("retain_loss", retain)
            loss = loss + self.weights.retain * retain
        return (loss, None) if return_outputs else loss

    def record(self, name: str, value: torch.Tensor) -> None:
        """Keep a loss term's value for the next log line."""
        self.term_values.setdefault(name, []).append(float(value.detach()))

    def log(self, logs: dict, *args, **kwargs) -> None:
        """Trainer's log, plus each loss term's mean since the last log (forget_loss, retain_loss)."""
        if "loss" in logs:
            logs.update({name: sum(v) / len(v) for name, v in self.term_values.items() if v})
            self.term_values = {}
        super().log(logs, *args, **kwargs)

    def forget_loss(self, model, inputs) -> torch.Tensor:
        raise NotImplementedError

    def retain_loss(self, model, batch) -> torch.Tensor:
        return nll(model, batch)

    @torch.no_grad()
    def reference(self, model, batch: dict) -> AnswerLogits:
        """answer_logits under the frozen reference: a separate model, or this one with its adapter disabled."""
        if self.ref_model is not None:
            return answer_logits(self.ref_model, batch)
        with model.disable_adapter() if hasattr(model, "disable_adapter") else nullcontext():
            return answer_logits(model, batch)


@register("ga", version=1)
class GradientAscent(UnlearnTrainer):
    """Gradient ascent: maximise the loss on the forget answers."""

    def forget_loss(self, model, inputs):
        return -nll(model, inputs["forget"])


@register("graddiff", version=1)
class GradDiff(GradientAscent):
    """GA plus the NLL on retain examples."""

    uses_retain = True


@register("kl", version=1)
class KLMinimization(GradientAscent):
    """GA plus KL(reference || model) on the retain answers' next-token distributions."""

    uses_retain = True
    needs_reference = True

    def retain_loss(self, model, batch):
        logits, ref_logits = answer_logits(model, batch).logits, self.reference(model, batch).logits
        return F.kl_div(torch.log_softmax(logits, -1), torch.log_softmax(ref_logits, -1), log_target=True, reduction="none").sum(-1).mean()


@register("npo", version=1)
class NPO(GradDiff):
    """Negative preference optimisation: -(2/β) log σ(-β log(π/π_ref)) per forget sequence, averaged, plus retain NLL."""

    needs_reference = True

    def forget_loss(self, model, inputs):
        batch = inputs["forget"]
        log_ratio = sequence_logprob(answer_logits(model, batch)) - sequence_logprob(self.reference(model, batch))
        return (-2.0 / self.weights.beta * F.logsigmoid(-self.weights.beta * log_ratio)).mean()


@register("idk", version=1)
class IdK(GradDiff):
    """Fine-tune toward refusals ("I don't know") on the forget questions, plus retain NLL."""

    alternative = "refusal"

    def forget_loss(self, model, inputs):
        return nll(model, inputs["alternative"])


@register("random", version=2)
class RandomAnswers(IdK):
    """PUBG's RANDOM baseline: fine-tune toward another known person's answer to each forget question (a random
    other name, another person's facts), plus retain NLL. It replaces the private answer by a false one."""

    alternative = "random"


@register("dpo", version=1)
class DPO(GradDiff):
    """DPO with the refusal preferred and the true answer dispreferred, plus retain NLL."""

    alternative = "refusal"
    needs_reference = True

    def forget_loss(self, model, inputs):
        margins = []
        for batch in (inputs["alternative"], inputs["forget"]):
            margins.append(sequence_logprob(answer_logits(model, batch)) - sequence_logprob(self.reference(model, batch)))
        chosen, rejected = margins
        return -F.logsigmoid(self.weights.beta * (chosen - rejected)).mean()


@register("siu", version=2)
class SIU(UnlearnTrainer):
    """Single Image Unlearning: weights.ce * CE on the four targets + weights.dmk * Dual Masked KL to the reference,
    with the masks and the KL form of its `siu` settings (lvlmu.unlearn.siu.SIUConfig)."""

    needs_reference = True
    data = "siu"

    def __init__(self, *args, siu=None, **kwargs):
        from .siu import SIUConfig

        super().__init__(*args, **kwargs)
        self.siu = siu or SIUConfig()

    def forget_loss(self, model, inputs):
        from .siu import dual_masked_kl

        batch = inputs["forget"]
        if "target_mask" not in batch:
            raise ValueError("SIU needs target masks in its forget batches (PairedCollator(..., target_masks=True))")
        answers, reference = answer_logits(model, batch), self.reference(model, batch)
        ce = -answers.token_logprobs().mean()
        # The token mask: the KL holds the answer tokens outside the target phrases (all of them, without the mask).
        targets = at_answer_tokens(batch["target_mask"], batch["labels"])
        outside_targets = ~targets if self.siu.token_mask else torch.ones_like(targets)
        dmk = dual_masked_kl(answers.logits, reference.logits, outside_targets, self.forbidden_ids, self.siu.kl)
        self.record("ce_loss", ce)
        self.record("dmk_loss", dmk)
        return self.weights.ce * ce + self.weights.dmk * dmk


@register("pubg", version=2)
class PUBG(GradDiff):
    """PUBG: weights.suppress * GA on the private answers + weights.guide * KL(teacher || student) along the
    reference model's own description of the image (lvlmu.unlearn.pubg), plus retain NLL."""

    needs_reference = True
    guided = True

    def forget_loss(self, model, inputs):
        from .pubg import guidance_kl

        if "guide" not in inputs or "teacher" not in inputs:
            raise ValueError("PUBG needs guidance batches (PairedDataset(..., guide=...)): none are in the batch")
        suppress = -nll(model, inputs["forget"])
        guide = guidance_kl(answer_logits(model, inputs["guide"]), self.reference(model, inputs["teacher"]))
        self.record("suppress_loss", suppress)
        self.record("guide_loss", guide)
        return self.weights.suppress * suppress + self.weights.guide * guide
