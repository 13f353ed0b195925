"""Likelihood-based probes: answer log-probabilities, membership inference scores, TOFU's truth ratio, forget quality.

Membership inference follows the usual convention: a higher score means "more likely a training member".
"""
from __future__ import annotations

import zlib
from typing import Callable

import numpy as np
import torch
from PIL import Image
from scipy.stats import ks_2samp
from sklearn.metrics import roc_auc_score
from tqdm.auto import tqdm
from transformers import BatchFeature

from ..answers import answer_logits, to_device
from ..data import VisionTextCollator, conversation_text, image_inputs, prompt_text


@torch.no_grad()
def answer_logprobs(model, processor, examples: list[dict], load_image: Callable[[str], Image.Image], batch_size: int = 32,
                    progress: bool = True) -> list[np.ndarray]:
    """Teacher-forced log-probability of each answer token (the end-of-turn token included), in input order."""
    model.eval()
    device = next(model.parameters()).device
    collate = VisionTextCollator(processor, load_image, split_by_length=True)
    out: list[np.ndarray] = []
    for start in tqdm(range(0, len(examples), batch_size), desc="scoring", disable=not progress, unit="batch"):
        answers = answer_logits(model, to_device(collate(examples[start : start + batch_size]), device))
        out.extend(row.cpu().numpy() for row in answers.token_logprobs().split(answers.tokens_per_row().tolist()))
    return out


@torch.no_grad()
def shared_prompt_logprobs(model, processor, prompts: list[dict], answers: list[list[str]], load_image: Callable[[str], Image.Image],
                           batch_size: int = 32, progress: bool = True) -> list[list[np.ndarray]]:
    """answer_logprobs of several answers to each prompt (its question, with its image when it has an `image_id`), the
    prompt computed once: its key-value cache is repeated for its answers, as beam search repeats it. Every prompt has
    the same number of answers. The values are answer_logprobs' (each answer scored after its own copy of the prompt),
    at a fraction of the cost when the prompt (the image's tokens) is most of the sequence. `batch_size` counts the
    answers scored at once, as in answer_logprobs (the repeated caches take the memory: on a 7B model, about 0.3 GB
    per answer row of 600 tokens)."""
    k = len(answers[0]) if answers else 0
    if any(len(a) != k for a in answers) or len(answers) != len(prompts):
        raise ValueError("shared_prompt_logprobs needs one list of answers per prompt, all of the same length")
    model.eval()
    device, tokenizer = next(model.parameters()).device, processor.tokenizer
    out: list[list[np.ndarray] | None] = [None] * len(prompts)
    per_batch = max(1, batch_size // max(k, 1))  # prompts
    for batch_rows, inputs in _unpadded_prompt_batches(processor, prompts, load_image, per_batch, progress):
        batch, batch_answers = [prompts[i] for i in batch_rows], [answers[i] for i in batch_rows]
        targets = []  # per (prompt, answer): the answer's tokens, end of turn included, as the collator labels them
        for ex, replies in zip(batch, batch_answers):
            h = bool(ex.get("image_id"))
            text = prompt_text(processor, ex["question"], h)
            prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            for reply in replies:
                full_ids = tokenizer(conversation_text(processor, ex["question"], reply, h), add_special_tokens=False)["input_ids"]
                if full_ids[: len(prompt_ids)] != prompt_ids:
                    raise ValueError(f"the chat template does not tokenise the prompt as a prefix of the conversation: {text!r}")
                targets.append(full_ids[len(prompt_ids) :])
        inputs = inputs.to(device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        prompt_out = model(**inputs, use_cache=True, logits_to_keep=1)
        first = torch.log_softmax(prompt_out.logits[:, -1].float(), -1).repeat_interleave(k, 0)  # predicts each answer's first token
        longest = max(len(t) for t in targets)
        ids = torch.full((len(targets), longest), tokenizer.pad_token_id, dtype=torch.long)
        for i, t in enumerate(targets):
            ids[i, : len(t)] = torch.tensor(t)
        ids = ids.to(device)
        rest = None
        if longest > 1:  # the answers' own tokens predict the next ones, after the repeated prompt cache
            cache = prompt_out.past_key_values
            cache.batch_repeat_interleave(k)
            # No attention mask: the prompts carry no padding, and an answer's padding comes after its tokens, which
            # causal attention never lets them see. Each model then places the answers right after the prompt as it
            # does when it generates (Qwen's multimodal positions included).
            rest = torch.log_softmax(model(input_ids=ids[:, :-1], past_key_values=cache).logits.float(), -1)
        for j, row in enumerate(batch_rows):
            out[row] = [torch.stack([first[j * k + a, t[0]]] + ([] if rest is None else
                                    list(rest[j * k + a, torch.arange(len(t) - 1), ids[j * k + a, 1 : len(t)]]))).cpu().numpy()
                        for a, t in enumerate(targets[j * k : (j + 1) * k])]
    return out


def _unpadded_prompt_batches(processor, prompts: list[dict], load_image: Callable[[str], Image.Image], per_batch: int,
                             progress: bool):
    """(rows, processor inputs) for batches of at most `per_batch` prompts that tokenise to the same length, images
    included: each prompt goes through the processor alone, and prompts of one length are concatenated along the
    batch axis (every processor stacks its tensors there)."""
    by_length: dict[tuple, list] = {}
    for i, ex in enumerate(tqdm(prompts, desc="scoring", disable=not progress, unit="prompt")):
        has_image, kwargs = image_inputs([ex], load_image)
        encoded = processor(text=[prompt_text(processor, ex["question"], has_image[0])], return_tensors="pt", **kwargs)
        key = (encoded["input_ids"].shape[1], tuple(sorted(encoded)))
        by_length.setdefault(key, []).append((i, encoded))
        if len(by_length[key]) == per_batch:
            yield _concatenated(by_length.pop(key))
    for group in by_length.values():
        yield _concatenated(group)


def _concatenated(group: list) -> tuple[list[int], BatchFeature]:
    return [i for i, _ in group], BatchFeature({key: torch.cat([enc[key] for _, enc in group]) for key in group[0][1]})


def loss_score(logprobs: np.ndarray, text: str = "") -> float:
    """LOSS attack: the mean token log-probability (the negative loss)."""
    return float(np.mean(logprobs))


def min_k_score(logprobs: np.ndarray, text: str = "", k: float = 0.2) -> float:
    """Min-K% Prob: the mean of the lowest k fraction of token log-probabilities (at least one token)."""
    n = max(1, int(np.ceil(k * len(logprobs))))
    return float(np.mean(np.sort(logprobs)[:n]))


def zlib_score(logprobs: np.ndarray, text: str) -> float:
    """zlib attack: the total log-probability over the zlib-compressed length of the text."""
    return float(np.sum(logprobs) / len(zlib.compress(text.encode("utf-8"))))


MIA_SCORES: dict[str, Callable[..., float]] = {"loss": loss_score, "min_k": min_k_score, "zlib": zlib_score}


def mia_auc(member_scores, nonmember_scores) -> float:
    """ROC AUC of telling members from non-members by their scores: 0.5 is chance, 1 perfect."""
    member_scores, nonmember_scores = np.asarray(member_scores, float), np.asarray(nonmember_scores, float)
    if not len(member_scores) or not len(nonmember_scores):
        raise ValueError("mia_auc needs at least one member and one non-member score")
    labels = np.r_[np.ones(len(member_scores)), np.zeros(len(nonmember_scores))]
    return float(roc_auc_score(labels, np.r_[member_scores, nonmember_scores]))


def truth_ratio(true_logprobs: np.ndarray, perturbed_logprobs: list[np.ndarray]) -> float:
    """TOFU's truth ratio: the geometric mean of the perturbed answers' length-normalised probabilities over the true
    answer's. Near 0 the model prefers the truth; near or above 1 it cannot tell the truth from the perturbations."""
    if not perturbed_logprobs:
        raise ValueError("truth_ratio needs at least one perturbed answer")
    perturbed = np.mean([np.mean(lp) for lp in perturbed_logprobs])
    return float(np.exp(perturbed - np.mean(true_logprobs)))


def forget_quality(truth_ratios, oracle_truth_ratios) -> float:
    """TOFU's forget quality: the p-value of the two-sample KS test between a model's truth ratios on the forget
    set and the oracle's. A small one tells the model from the oracle; a large one is no evidence that the two are
    alike (with few truth ratios the test cannot tell anything apart)."""
    return float(ks_2samp(np.asarray(truth_ratios, float), np.asarray(oracle_truth_ratios, float)).pvalue)


def name_examples(world, person, image_set: str = "unseen", question: str | None = None) -> list[dict]:
    """"Who is this?" on each of the person's images of `image_set`, answered with their true name."""
    from ..world.questions import IDENTITY_TRAIN

    question = question or IDENTITY_TRAIN[0]
    return [{"person_id": person.person_id, "image_id": im["image_id"], "question": question, "answer": f"This is {person.name}."}
            for im in world.images_of(person.person_id, image_set)]


def perturbed_names(world, person, n: int, seed: int = 0) -> list[str]:
    """`n` distractor names for one person's truth ratio, drawn reproducibly per person from the holdout people's:
    no compared model ever saw them, so the base, the oracle and every unlearned model treat them alike (the other
    forget people's names, say, are known to a run that forgot one person and unknown to the oracle). A world with
    too few (a reader's concept folder) completes them with invented names that belong to no one."""
    from ..world.people import INVENTED_FIRST, INVENTED_LAST

    holdout = sorted(p.name for p in world.people.values() if p.role == "holdout" and p.is_named and p.person_id != person.person_id)
    named = {p.name for p in world.people.values() if p.is_named}
    invented = sorted({f"{a} {b}" for a in INVENTED_FIRST for b in INVENTED_LAST} - named)
    if len(holdout) + len(invented) < n:
        raise ValueError(f"the world has {len(holdout)} holdout people (and {len(invented)} invented names); "
                         f"{n} distractor names were asked for")
    number = person.person_id.lstrip("p")
    rng = np.random.default_rng([seed, int(number) if number.isdigit() else zlib.crc32(person.person_id.encode())])
    if len(holdout) >= n:
        return [holdout[i] for i in rng.choice(len(holdout), n, replace=False)]
    return holdout + [invented[i] for i in rng.choice(len(invented), n - len(holdout), replace=False)]


def identity_truth_ratios(model, processor, world, people, image_set: str = "unseen", n_perturbed: int = 5,
                          batch_size: int = 32, progress: bool = True) -> list[dict]:
    """Per image of each person: the length-normalised probability of the true name and TOFU's truth ratio against
    `n_perturbed` other names of the world, all asked with the same image and question."""
    rows, examples, answers = [], [], []
    for person in people:
        images = image_set if world.images_of(person.person_id, image_set) else "trained"  # a concept without unseen images
        for true in name_examples(world, person, images):
            rows.append({"person_id": person.person_id, "role": person.role, "image_id": true["image_id"]})
            examples.append(true)
            answers.append([true["answer"]] + [f"This is {name}." for name in perturbed_names(world, person, n_perturbed)])
    # The true and the perturbed names follow the same photograph and question: that prompt is computed once.
    logprobs = shared_prompt_logprobs(model, processor, examples, answers, world.image, batch_size=batch_size, progress=progress)
    for row, (true, *perturbed) in zip(rows, logprobs):
        row["name_probability"] = float(np.exp(np.mean(true)))
        row["truth_ratio"] = truth_ratio(true, perturbed)
    return rows


def membership_scores(model, processor, world, people, batch_size: int = 32, progress: bool = True) -> list[dict]:
    """LOSS, Min-K% and zlib scores of each person's facts asked by name (the trained paraphrases), per example.

    Forget people's are training members of the base model; holdout people's, with the same templates, never are.
    """
    ids = {p.person_id for p in people}
    examples = [ex for ex in world.examples if ex["kind"] == "fact_text" and ex["paraphrase"] == "train" and ex["person_id"] in ids]
    logprobs = answer_logprobs(model, processor, examples, world.image, batch_size=batch_size, progress=progress)
    return [{"person_id": ex["person_id"], "role": ex["role"], "example_id": ex["example_id"],
             **{name: score(lp, ex["answer"]) for name, score in MIA_SCORES.items()}} for ex, lp in zip(examples, logprobs)]


def visual_membership_scores(model, processor, world, members, nonmembers, batch_size: int = 32, progress: bool = True) -> list[dict]:
    """LOSS, Min-K% and zlib scores of each person's name given their photograph ("Who is this?" answered with their
    own name), per image: `members` on the photographs the base was trained on, `nonmembers` on their own, which no
    model ever was. What SIU claims to remove is this visual recognition, not the facts asked by name."""
    examples = [ex for p in members for ex in name_examples(world, p, "trained")]
    examples += [ex for p in nonmembers for ex in name_examples(world, p, "unseen")]
    logprobs = answer_logprobs(model, processor, examples, world.image, batch_size=batch_size, progress=progress)
    return [{"person_id": ex["person_id"], "image_id": ex["image_id"], **{name: score(lp, ex["answer"]) for name, score in MIA_SCORES.items()}}
            for ex, lp in zip(examples, logprobs)]


def perplexities(model, processor, rows: list[dict], load_image, batch_size: int = 32, progress: bool = True) -> list[float]:
    """SIU's fluency: the perplexity of each answer (with its question and image) under `model`, usually the base."""
    return [float(np.exp(-np.mean(lp))) for lp in answer_logprobs(model, processor, rows, load_image, batch_size, progress)]
