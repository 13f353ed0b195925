"""Likelihood probes: log-probabilities from a real tiny model, MIA AUC and forget quality checked independently."""
import zlib

import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp, mannwhitneyu

from lvlmu.model import load_model
from lvlmu.probe.likelihood import (MIA_SCORES, answer_logprobs, forget_quality, loss_score, mia_auc, min_k_score,
                                    shared_prompt_logprobs, truth_ratio, zlib_score)


def test_answer_logprobs_match_the_models_own_loss(micro_world, micro_model_dir):
    model, processor = load_model(micro_model_dir, dtype=torch.float32)
    examples = micro_world.select("train", kind="identity")[:3] + micro_world.select("train", kind="fact_text")[:2]
    logprobs = answer_logprobs(model, processor, examples, micro_world.image, batch_size=2, progress=False)
    from lvlmu.data import VisionTextCollator

    for example, lp in zip(examples, logprobs):
        batch = VisionTextCollator(processor, micro_world.image)([example])
        n_answer = int((batch["labels"] != -100).sum())
        assert len(lp) == n_answer, "one log-probability per answer token"
        with torch.no_grad():
            loss = model(**batch).loss.item()
        assert np.isclose(-lp.mean(), loss, atol=1e-4), "batched, padded scoring equals the model's loss on the example alone"
        assert (lp <= 0).all()


def test_answers_after_one_shared_prompt_score_as_each_after_its_own(micro_world, micro_model_dir):
    """Names of different lengths after one photograph and question, and text-only prompts of different lengths (left
    padding): the prompt's cache, repeated, gives each answer the log-probabilities of scoring it alone."""
    model, processor = load_model(micro_model_dir, dtype=torch.float32)
    prompts = micro_world.select("train", kind="identity")[:2] + micro_world.select("train", kind="fact_text")[:1]
    names = [p.name for p in micro_world.people.values() if p.is_named][:3]
    answers = [[f"This is {n}." for n in names], ["This is Ana.", "This is Ana Costa Da Silva.", "No."], ["Paris.", "It is Lisbon.", "?"]]
    shared = shared_prompt_logprobs(model, processor, prompts, answers, micro_world.image, batch_size=9, progress=False)  # one batch
    alone = answer_logprobs(model, processor, [{**p, "answer": a} for p, row in zip(prompts, answers) for a in row], micro_world.image,
                            batch_size=1, progress=False)
    assert [len(lp) for row in shared for lp in row] == [len(lp) for lp in alone]
    for got, expected in zip([lp for row in shared for lp in row], alone):
        assert np.allclose(got, expected, atol=1e-4)
    with pytest.raises(ValueError, match="the same length"):
        shared_prompt_logprobs(model, processor, prompts[:2], [["a"], ["b", "c"]], micro_world.image)


def test_mia_auc_equals_the_mann_whitney_statistic():
    rng = np.random.default_rng(0)
    members, others = rng.normal(0.5, 1, 40), rng.normal(0, 1, 55)
    u = mannwhitneyu(members, others).statistic
    assert np.isclose(mia_auc(members, others), u / (len(members) * len(others)))
    assert mia_auc([3, 4], [1, 2]) == 1.0 and mia_auc([1, 2], [3, 4]) == 0.0
    with pytest.raises(ValueError, match="at least one"):
        mia_auc([], [1.0])


def test_forget_quality_is_the_ks_p_value():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 30), rng.normal(2, 1, 30)
    assert np.isclose(forget_quality(a, b), ks_2samp(a, b).pvalue)
    assert forget_quality(a, b) < 0.01 and forget_quality(a, a) == 1.0


def test_scores_by_hand():
    lp = np.log(np.array([0.5, 0.25, 0.125, 0.5, 0.9]))
    assert np.isclose(loss_score(lp), lp.mean())
    assert np.isclose(min_k_score(lp, k=0.2), np.log(0.125)), "the lowest 20% of 5 tokens is one token"
    assert np.isclose(min_k_score(lp, k=0.4), np.log([0.125, 0.25]).mean())
    assert np.isclose(zlib_score(lp, "abc abc"), lp.sum() / len(zlib.compress(b"abc abc")))
    assert set(MIA_SCORES) == {"loss", "min_k", "zlib"}


def test_truth_ratio_by_hand():
    true = np.log([0.8, 0.8])
    perturbed = [np.log([0.1]), np.log([0.4, 0.4, 0.4])]
    expected = np.exp(np.mean([np.log(0.1), np.log(0.4)])) / 0.8
    assert np.isclose(truth_ratio(true, perturbed), expected)
    with pytest.raises(ValueError):
        truth_ratio(true, [])


def test_truth_ratios_and_name_probabilities_per_image(micro_world, micro_model_dir):
    from lvlmu.probe.likelihood import identity_truth_ratios, perturbed_names

    model, processor = load_model(micro_model_dir)
    person = micro_world.forget[0]
    names = perturbed_names(micro_world, person, 3)
    assert person.name not in names and len(set(names)) == 3 and names == perturbed_names(micro_world, person, 3)
    # the distractors are names no compared model ever learned: the holdout people's, then invented ones
    holdout = {p.name for p in micro_world.by_role("holdout")}
    assert set(names) <= holdout and set(perturbed_names(micro_world, person, 2)) <= holdout
    more = perturbed_names(micro_world, person, len(holdout) + 2)
    assert holdout <= set(more) and not set(more) & {p.name for p in micro_world.people.values() if p.role != "holdout"}
    rows = identity_truth_ratios(model, processor, micro_world, [person], n_perturbed=3, progress=False)
    assert [r["image_id"] for r in rows] == [im["image_id"] for im in micro_world.images_of(person.person_id, "unseen")]
    for row in rows:
        assert 0 < row["name_probability"] <= 1 and row["truth_ratio"] > 0
    with pytest.raises(ValueError, match="holdout people"):
        perturbed_names(micro_world, person, 1000)


def test_membership_scores_cover_members_and_non_members(micro_world, micro_model_dir):
    from lvlmu.probe.likelihood import membership_scores

    model, processor = load_model(micro_model_dir)
    people = micro_world.forget + micro_world.by_role("holdout")
    rows = membership_scores(model, processor, micro_world, people, progress=False)
    assert {r["role"] for r in rows} == {"forget", "holdout"}
    assert all(r["loss"] <= 0 and r["min_k"] <= r["loss"] and np.isfinite(r["zlib"]) for r in rows)
