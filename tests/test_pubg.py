"""PUBG and its RANDOM baseline: the desirable answers it builds, its loss terms by hand, and what a few steps do."""
import dataclasses
import math

import pytest
import torch
from transformers import TrainingArguments

from lvlmu.answers import AnswerLogits, answer_logits, at_answer_tokens, predicts_answer
from lvlmu.data import VisionTextCollator
from lvlmu.model import load_model
from lvlmu.probe.knowledge import leaks_name, leaks_private, states_fact
from lvlmu.unlearn import LossWeights, UnlearnConfig, forget_examples, nll, unlearn
from lvlmu.unlearn.data import PairedCollator, PairedDataset, resolve_forget, retain_examples, with_random_answers
from lvlmu.unlearn.methods import METHODS, sequence_logprob
from lvlmu.unlearn.pubg import build_guidance, guidance_examples, guidance_kl

PROMPT = "Describe this person."


def test_guidance_targets_never_contain_a_forget_persons_name_or_fact(micro_world, micro_model_dir):
    model, processor = load_model(micro_model_dir)
    people = resolve_forget(micro_world, "split")
    forget = forget_examples(micro_world, people)
    guide = build_guidance(micro_world, forget, people, model, processor, PROMPT)
    persons = [micro_world.people[p] for p in people]
    assert guide and {g["person_id"] for g in guide} == set(people)
    for g in guide:
        assert g["teacher_question"] == PROMPT and g["image_id"] and g["source_kind"] in ("identity", "fact_image")
        assert not any(leaks_name(g["answer"], p) or any(states_fact(g["answer"], p, f) for f in p.facts) for p in persons)
    # Answers that leak are dropped, whichever forget person they leak about; the others are kept.
    first, second = persons[0], persons[-1]
    images = sorted({ex["image_id"] for ex in forget if ex["person_id"] == first.person_id and ex["image_id"]})
    answers = {images[0]: f"They have short hair. This is {first.first_name}.", images[1]: "They have brown eyes.",
               **{ex["image_id"]: f"They were born in {second.facts['birthplace']}." for ex in forget
                  if ex["person_id"] == second.person_id and ex["image_id"]}}
    with pytest.raises(ValueError, match=f"every description of {second.person_id}"):
        guidance_examples(forget, answers, persons, PROMPT)
    kept = guidance_examples([ex for ex in forget if ex["person_id"] == first.person_id], answers, [first], PROMPT)
    assert {g["answer"] for g in kept} == {"They have brown eyes."}
    assert leaks_private(answers[images[0]], [first]) and not leaks_private("They have brown eyes.", persons)


def test_pubg_inputs_fail_clearly_naming_what_is_missing(micro_world, micro_model_dir):
    model, processor = load_model(micro_model_dir)
    people = resolve_forget(micro_world, "split")
    forget = forget_examples(micro_world, people)
    text_only = [ex for ex in forget if ex["person_id"] != people[0] or not ex["image_id"]]
    with pytest.raises(ValueError, match=f"image of every forget person; {people[0]}"):
        build_guidance(micro_world, text_only, people, model, processor, PROMPT)
    no_descriptions = dataclasses.replace(micro_world, examples=[ex for ex in micro_world.examples if ex["kind"] != "description"])
    with pytest.raises(ValueError, match="no description questions"):
        build_guidance(no_descriptions, forget, people, model, processor, PROMPT)


def test_guidance_kl_matches_a_hand_computation():
    torch.manual_seed(0)
    # The student's prompt is one token longer: the k-th answer position of each side is matched.
    student, teacher = torch.randn(1, 6, 3), torch.randn(1, 5, 3)
    student_labels, teacher_labels = torch.tensor([[-100, -100, -100, 2, 1, 0]]), torch.tensor([[-100, -100, 2, 1, 0]])
    kls = []
    for s_pos, t_pos in ((2, 1), (3, 2), (4, 3)):  # positions whose logits predict the answer tokens
        p = torch.softmax(teacher[0, t_pos], -1).tolist()
        q = torch.softmax(student[0, s_pos], -1).tolist()
        kls.append(sum(pi * math.log(pi / qi) for pi, qi in zip(p, q)))

    def at_answers(logits, labels):  # what answer_logits returns for these logits
        keep = predicts_answer(labels)
        return AnswerLogits(logits[keep], at_answer_tokens(labels, labels), torch.zeros(int(keep.sum()), dtype=torch.long), 1)

    assert guidance_kl(at_answers(student, student_labels), at_answers(teacher, teacher_labels)).item() == pytest.approx(sum(kls) / 3, rel=1e-5)
    assert guidance_kl(at_answers(teacher, teacher_labels), at_answers(teacher, teacher_labels)).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="same number of answer tokens"):
        guidance_kl(at_answers(student, torch.tensor([[-100, -100, -100, -100, 1, 0]])), at_answers(teacher, teacher_labels))


def test_answer_log_probabilities_match_a_hand_computation():
    # Two rows: the first has two answer tokens, the second one.
    logits = torch.tensor([[0.0, 1.0, 2.0], [2.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
    answers = AnswerLogits(logits, targets=torch.tensor([2, 0, 1]), rows=torch.tensor([0, 0, 1]), batch_size=2)
    first = math.log(math.exp(2) / (1 + math.e + math.exp(2))) + math.log(math.exp(2) / (math.exp(2) + 2))
    second = math.log(math.exp(3) / (math.exp(3) + 2))
    assert sequence_logprob(answers).tolist() == pytest.approx([first, second], rel=1e-6)


def test_pubg_loss_is_its_three_weighted_terms(micro_world, micro_model_dir, tmp_path):
    model, processor = load_model(micro_model_dir, dtype=torch.float32)
    reference, _ = load_model(micro_model_dir, dtype=torch.float32)
    torch.manual_seed(0)
    with torch.no_grad():  # a reference unlike the model, so that the guidance term is not zero
        for p in reference.parameters():
            p.add_(0.05 * torch.randn_like(p))
    people = resolve_forget(micro_world, "split")
    forget = forget_examples(micro_world, people)
    guide = build_guidance(micro_world, forget, people, reference, processor, PROMPT)
    dataset = PairedDataset(forget, retain_examples(micro_world, people), 8, seed=0, guide=guide)
    batch = PairedCollator(processor, micro_world.image)([dataset[i] for i in range(4)])
    weights = LossWeights(retain=2.0, suppress=0.3, guide=1.5)
    trainer = METHODS["pubg"](model=model, args=TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True),
                              ref_model=reference, weights=weights)
    with torch.no_grad():
        kl = guidance_kl(answer_logits(model, batch["guide"]), answer_logits(reference, batch["teacher"]))
        expected = -0.3 * nll(model, batch["forget"]) + 1.5 * kl + 2.0 * nll(model, batch["retain"])
        assert trainer.compute_loss(model, batch).item() == pytest.approx(expected.item(), rel=1e-5)
        assert kl.item() > 0
    # The teacher sees its own prompt, the student the forget question, both with the same answer and image.
    assert torch.equal(batch["guide"]["pixel_values"], batch["teacher"]["pixel_values"])
    with pytest.raises(ValueError, match="guidance batches"):
        trainer.compute_loss(model, {k: v for k, v in batch.items() if k not in ("guide", "teacher")})


def test_a_few_pubg_steps_favour_the_grounded_answer_over_the_true_name(micro_world, micro_model_dir, tmp_path):
    # 16 steps at 1e-3: 8 steps at 2e-3 sat at the edge, and on some micro models the grounded answer lost
    config = UnlearnConfig(method="pubg", steps=16, batch_size=4, learning_rate=1e-3, weights={"suppress": 0.2})
    out = tmp_path / "pubg"
    manifest = unlearn(micro_world, micro_model_dir, out, config, progress_bar=False)
    assert manifest["n_guidance_examples"] > 0 and (out / "guidance.jsonl").exists()
    model, processor = load_model(micro_model_dir)
    people = resolve_forget(micro_world, "split")
    identity = micro_world.select("train", kind="identity", role="forget")
    guide = [g for g in build_guidance(micro_world, forget_examples(micro_world, people), people, model, processor, PROMPT)
             if g["source_kind"] == "identity"]
    collate = VisionTextCollator(processor, micro_world.image)
    name, grounded = collate(identity), collate(guide)

    def mean_nll(model_dir, batch):
        m, _ = load_model(model_dir, dtype=torch.float32)
        with torch.no_grad():
            return nll(m, batch).item()

    assert mean_nll(out, grounded) < mean_nll(micro_model_dir, grounded), "the described answer to 'Who is this?' gains"
    assert mean_nll(out, name) > mean_nll(micro_model_dir, name), "the true name loses"


def test_random_answers_are_another_known_persons(micro_world):
    people = resolve_forget(micro_world, "split")
    rows = with_random_answers(micro_world, forget_examples(micro_world, people), people, seed=0)
    forgotten = [micro_world.people[p] for p in people]
    others = {p.name for p in micro_world.retain}
    for row in rows:
        assert row["substitute"] != row["answer"] and not leaks_private(row["substitute"], forgotten)
        if row["kind"] == "identity":
            assert row["substitute"].removeprefix("This is ").rstrip(".") in others
    assert rows == with_random_answers(micro_world, forget_examples(micro_world, people), people, seed=0), "seeded"
