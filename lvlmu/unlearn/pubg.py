"""PUBG (Post-Unlearning Behavior Guidance; Kim, Yang, Jung, arXiv 2506.02541): forget a person while steering what
the model says instead toward a privacy-preserving, informative and visually grounded answer.

The loss, for a forget example (image x, question q, private answer y) and a guidance example built on the same image:

    L = w_s · L_suppress + w_g · L_guide + w_r · L_retain

- L_suppress = -NLL(y | x, q): gradient ascent on the private answer (the names and facts);
- L_guide = 1/N Σ_t KL( p_ref(· | x, q*, ŷ_<t) ‖ p_θ(· | x, q, ŷ_<t) ): context distillation. The teacher is the frozen
  original model asked to describe the image (q* = `guidance_prompt`, "Describe this person."); ŷ is the teacher's own
  greedy answer to q* on the same image; the student is the model being unlearned, asked the forget question q. The
  KL is taken at every token of ŷ (and its end of turn) and averaged over the N tokens of the batch;
- L_retain = NLL on retain examples (other known people, general questions).

Choices the text leaves open, made here and tested:
- the desirable answer ŷ is the reference model's own description of the image, so it is visually grounded by
  construction, not written by hand; descriptions that name a forget person or state one of their private facts are
  dropped before training (exact string checks), and each person must keep at least one;
- KL(teacher ‖ student) (forward, mode-covering), token by token along ŷ, as in context distillation;
- the guided questions are every forget question asked with an image (identity and fact questions); text-only fact
  questions are only suppressed. The open query of the probes is never trained;
- the suppression term is plain gradient ascent, as the summaries of the paper describe it; its weight w_s is a
  hyperparameter (LossWeights.suppress).
"""
from __future__ import annotations

import torch

from ..answers import AnswerLogits
from ..probe.generate import generate_answers
from ..probe.knowledge import leaks_private
from ..world import World

GUIDED_KINDS = ("identity", "fact_image")


def teacher_answers(world: World, model, processor, image_ids: list[str], prompt: str, batch_size: int = 64) -> dict[str, str]:
    """The reference model's greedy answer to `prompt` on each image."""
    if world.config is not None and not world.select(kind="description"):  # the synthetic world; a real model describes untaught
        raise ValueError(f"PUBG asks the reference model to describe each image, but the world at {world.root} has no "
                         "description questions (kind 'description'): the model was never taught to describe a person")
    asks = [{"image_id": i, "question": prompt} for i in image_ids]
    return dict(zip(image_ids, generate_answers(model, processor, asks, world.image, batch_size=batch_size, progress=False)))


def guidance_examples(forget: list[dict], answers: dict[str, str], people: list, prompt: str) -> list[dict]:
    """One guidance example per forget question asked with an image: the student's question, the teacher's prompt,
    and the teacher's answer on that image as the desirable answer. Answers that leak anything private of `people`
    (or are empty) are dropped; every person must keep at least one example."""
    safe = {image: a for image, a in answers.items() if a.strip() and not leaks_private(a, people)}
    rows = [{**ex, "answer": safe[ex["image_id"]], "teacher_question": prompt, "kind": "guidance", "source_kind": ex["kind"]}
            for ex in forget if ex["kind"] in GUIDED_KINDS and ex.get("image_id") in safe]
    for person in people:
        if not any(ex["person_id"] == person.person_id and ex.get("image_id") for ex in forget):
            raise ValueError(f"PUBG needs an image of every forget person; {person.person_id} ({person.name}) has no forget "
                             "example with an image")
        if not any(r["person_id"] == person.person_id for r in rows):
            raise ValueError(f"every description of {person.person_id} by the reference model leaks a name or a private "
                             "fact (or is empty), so PUBG has no desirable answer to guide toward")
    return rows


def build_guidance(world: World, forget: list[dict], people_ids: list[str], model, processor, prompt: str) -> list[dict]:
    """guidance_examples from the reference `model`'s own descriptions of the forget examples' images."""
    people = [world.people[p] for p in people_ids]
    images = sorted({ex["image_id"] for ex in forget if ex["kind"] in GUIDED_KINDS and ex.get("image_id")})
    return guidance_examples(forget, teacher_answers(world, model, processor, images, prompt), people, prompt)


def guidance_kl(student: AnswerLogits, teacher: AnswerLogits) -> torch.Tensor:
    """KL(teacher ‖ student) at each answer token, averaged over the answer tokens of the batch.

    The two prompts may differ in length: the k-th answer token of a student row is matched with the k-th of the
    teacher row (both are flattened in row order), so both rows must label the same answer.
    """
    if not torch.equal(student.tokens_per_row(), teacher.tokens_per_row()):
        raise ValueError("the student and teacher rows do not label the same number of answer tokens")
    log_student, log_teacher = torch.log_softmax(student.logits, -1), torch.log_softmax(teacher.logits, -1)
    return (log_teacher.exp() * (log_teacher - log_student)).sum(-1).mean()
