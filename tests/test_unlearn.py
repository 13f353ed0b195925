"""Unlearning methods on a micro world: each moves the model the expected way, and retain data enters where it should."""
import json

import pytest
import torch

from lvlmu.model import load_model
from lvlmu.unlearn import METHODS, LossWeights, UnlearnConfig, forget_examples, get_method, nll, unlearn
from lvlmu.unlearn.data import PairedCollator, PairedDataset, resolve_forget, retain_examples


def forget_batches(world, model_dir, alternative="refusal"):
    """Forget, alternative, retain and PUBG guidance batches (guided by the model's own descriptions)."""
    from lvlmu.unlearn.pubg import build_guidance

    model, processor = load_model(model_dir)
    people = resolve_forget(world, "split")
    forget = forget_examples(world, people)
    guide = build_guidance(world, forget, people, model, processor, "Describe this person.")
    dataset = PairedDataset(forget, retain_examples(world, people), 16, seed=0, guide=guide)
    return PairedCollator(processor, world.image, alternative, seed=0, target_masks=True)([dataset[i] for i in range(8)])


def mean_nll(model_dir, batch) -> float:
    model, _ = load_model(model_dir, dtype=torch.float32)
    with torch.no_grad():
        return nll(model, batch).item()


@pytest.mark.parametrize("method", sorted(METHODS))
def test_each_method_moves_the_model_the_expected_way(method, micro_world, micro_model_dir, tmp_path):
    config = UnlearnConfig(method=method, steps=6, batch_size=4, learning_rate=2e-3, logging_steps=1)
    out = tmp_path / method
    manifest = unlearn(micro_world, micro_model_dir, out, config, progress_bar=False)
    batch = forget_batches(micro_world, micro_model_dir)
    before = {k: mean_nll(micro_model_dir, batch[k]) for k in ("forget", "alternative")}
    after = {k: mean_nll(out, batch[k]) for k in ("forget", "alternative")}
    if method == "idk":
        assert after["alternative"] < before["alternative"], "IdK makes the refusal more likely"
    elif method == "dpo":
        assert after["alternative"] - after["forget"] < before["alternative"] - before["forget"], "DPO prefers the refusal more"
    else:
        assert after["forget"] > before["forget"], f"{method} makes the true forget answers less likely"
    assert manifest["effective_batch_size"] == 4 and manifest["forget_people"] == [p.person_id for p in micro_world.forget]
    assert (out / "manifest.json").exists() and not (out / "trainer").exists()


def test_retain_batches_enter_the_loss_exactly_where_a_method_uses_them(micro_world, micro_model_dir, tmp_path):
    batch = forget_batches(micro_world, micro_model_dir)
    model, processor = load_model(micro_model_dir, dtype=torch.float32)
    reference, _ = load_model(micro_model_dir, dtype=torch.float32)
    torch.manual_seed(0)
    with torch.no_grad():  # a reference unlike the model, so that KL terms are not zero
        for p in reference.parameters():
            p.add_(0.05 * torch.randn_like(p))
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    for name, cls in METHODS.items():
        trainer = cls(model=model, args=args, ref_model=reference, weights=LossWeights(retain=1.0))
        with torch.no_grad():
            full = trainer.compute_loss(model, batch)
            forget_only = trainer.forget_loss(model, batch)
        if cls.uses_retain:
            assert torch.isclose(full, forget_only + trainer.retain_loss(model, batch["retain"]), atol=1e-5), name
            assert not torch.isclose(full, forget_only), f"{name}: the retain term changes the loss"
            with pytest.raises(ValueError, match="retain"):
                trainer.compute_loss(model, {k: v for k, v in batch.items() if k != "retain"})
        else:
            assert torch.isclose(full, forget_only), f"{name} has no retain term"


def test_kl_is_zero_when_the_model_is_its_reference(micro_world, micro_model_dir, tmp_path):
    batch = forget_batches(micro_world, micro_model_dir)
    model, _ = load_model(micro_model_dir, dtype=torch.float32)
    reference, _ = load_model(micro_model_dir, dtype=torch.float32)
    from transformers import TrainingArguments

    trainer = METHODS["kl"](model=model, args=TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True), ref_model=reference)
    with torch.no_grad():
        assert trainer.retain_loss(model, batch["retain"]).item() == pytest.approx(0.0, abs=1e-6)


def test_lora_run_saves_adapter_and_merged_model(micro_world, micro_model_dir, tmp_path):
    config = UnlearnConfig(method="npo", steps=3, batch_size=4, learning_rate=5e-3, lora=True)
    unlearn(micro_world, micro_model_dir, tmp_path / "lora", config, progress_bar=False)
    assert (tmp_path / "lora" / "adapter" / "adapter_config.json").exists()
    adapter = json.loads((tmp_path / "lora" / "adapter" / "adapter_config.json").read_text())
    assert "language_model" in adapter["target_modules"]
    merged, _ = load_model(tmp_path / "lora", dtype=torch.float32)
    base, _ = load_model(micro_model_dir, dtype=torch.float32)
    changed = {n for (n, p), (_, q) in zip(merged.named_parameters(), base.named_parameters()) if not torch.equal(p, q)}
    assert changed and all("language_model" in n and ("q_proj" in n or "v_proj" in n) for n in changed), changed


def test_bad_requests_fail_clearly(micro_world, micro_model_dir, tmp_path):
    with pytest.raises(ValueError, match=r"unknown unlearning method 'forgetful'.*graddiff"):
        get_method("forgetful")
    with pytest.raises(ValueError, match="p999"):
        unlearn(micro_world, micro_model_dir, tmp_path / "x", UnlearnConfig(forget=("p999",)), progress_bar=False)
    with pytest.raises(ValueError, match="matches no linear module"):
        unlearn(micro_world, micro_model_dir, tmp_path / "y", UnlearnConfig(lora=True, lora_target=r".*nonexistent_proj"), progress_bar=False)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def _dmk_case():
    torch.manual_seed(0)
    logits, ref = torch.randn(1, 5, 4), torch.randn(1, 5, 4)
    labels = torch.tensor([[-100, -100, 2, 1, 3]])
    target = torch.tensor([[False, False, False, True, False]])
    return logits, ref, labels, target


def _hand_dmk(logits, ref, labels, target, forbidden, renormalise):
    """KL(ref || model) by hand at the answer tokens outside the target, over the vocabulary less `forbidden`:
    from the full softmaxes (the paper), or from both renormalised without `forbidden`."""
    import math

    def softmax(row):
        kept = [v for v in range(len(row)) if not (renormalise and v in forbidden)]
        total = sum(math.exp(row[v]) for v in kept)
        return {v: math.exp(row[v]) / total for v in kept}

    kls = []
    for t in range(labels.shape[1] - 1):  # logits at t predict the token at t + 1
        if labels[0, t + 1] == -100 or target[0, t + 1]:
            continue
        p, q = softmax(logits[0, t].tolist()), softmax(ref[0, t].tolist())
        kls.append(sum(q[v] * math.log(q[v] / p[v]) for v in q if v not in forbidden))
    assert len(kls) == 2
    return sum(kls) / len(kls)


def _dmk(logits, ref, labels, target, forbidden, form):  # at the answer tokens, as the SIU trainer passes them
    from lvlmu.answers import at_answer_tokens, predicts_answer
    from lvlmu.unlearn.siu import dual_masked_kl

    keep = predicts_answer(labels)
    return dual_masked_kl(logits[keep], ref[keep], ~at_answer_tokens(target, labels), forbidden, form)


def test_dual_masked_kl_as_the_paper_writes_it_matches_a_hand_computation():
    logits, ref, labels, target = _dmk_case()
    expected = _hand_dmk(logits, ref, labels, target, [0], renormalise=False)
    assert _dmk(logits, ref, labels, target, [0], "paper").item() == pytest.approx(expected, rel=1e-5)
    # The token mask: what the model predicts at the target's position does not count.
    changed = logits.clone()
    changed[0, 2] += 5.0
    assert _dmk(changed, ref, labels, target, [0], "paper").item() == pytest.approx(expected, rel=1e-5)
    # The vocabulary mask only selects terms: the model's mass on the forbidden id still moves every other term.
    shifted = logits.clone()
    shifted[0, :, 0] += 3.0
    assert _dmk(shifted, ref, labels, target, [0], "paper").item() > expected + 0.1
    # and its gradient pushes the model's logit of the forbidden id down (the student is not renormalised).
    leaf = logits.clone().requires_grad_(True)
    _dmk(leaf, ref, labels, target, [0], "paper").backward()
    assert (leaf.grad[0, [1, 3], 0] > 0).all(), "descending the loss lowers the forbidden id's logit at the answer tokens it holds"


def test_the_renormalised_dmk_ablation_matches_a_hand_computation_and_ignores_the_forbidden_ids():
    logits, ref, labels, target = _dmk_case()
    expected = _hand_dmk(logits, ref, labels, target, [0], renormalise=True)
    assert _dmk(logits, ref, labels, target, [0], "renormalised").item() == pytest.approx(expected, rel=1e-5)
    changed = logits.clone()
    changed[0, 2] += 5.0  # predicts the target token
    changed[0, :, 0] -= 3.0  # the forbidden id
    assert _dmk(changed, ref, labels, target, [0], "renormalised").item() == pytest.approx(expected, rel=1e-5)
    leaf = logits.clone().requires_grad_(True)
    _dmk(leaf, ref, labels, target, [0], "renormalised").backward()
    assert torch.equal(leaf.grad[..., 0], torch.zeros_like(leaf.grad[..., 0])), "no gradient reaches the forbidden id"
    # without masks both forms are the plain KL over every answer token
    plain = _dmk(logits, ref, labels, torch.zeros_like(target), [], "renormalised").item()
    assert plain == pytest.approx(_dmk(logits, ref, labels, torch.zeros_like(target), [], "paper").item())
    assert plain != pytest.approx(expected, rel=1e-3)
    with pytest.raises(ValueError, match="paper"):
        _dmk(logits, ref, labels, target, [0], "other")


def test_siu_settings_switch_the_masks_and_t1(micro_world, micro_model_dir):
    from lvlmu.unlearn.siu import SIUConfig, name_token_ids, siu_examples, vocabulary_mask_table
    from lvlmu.world.questions import stranger_answer

    person = micro_world.forget[0]
    unseen = [r for r in siu_examples(micro_world, [person.person_id], "single", t1="unseen") if r["siu"] == "T1"]
    assert unseen and all(r["answer"] == r["target"] == stranger_answer(person) for r in unseen)
    with pytest.raises(ValueError, match="t1 one of"):
        SIUConfig(t1="other")
    assert UnlearnConfig(method="siu", siu={"token_mask": False}).siu == SIUConfig(token_mask=False)
    _, processor = load_model(micro_model_dir)
    ids = name_token_ids(processor.tokenizer, [person.name])
    pieces = lambda text: set(processor.tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    spelled = set().union(*(pieces(part) | pieces(" " + part) for part in person.name.split()))
    lowercase_only = set().union(*(pieces(part.lower()) | pieces(" " + part.lower()) for part in person.name.split())) - spelled
    assert set(ids) == spelled and not set(ids) & lowercase_only
    table = vocabulary_mask_table(processor.tokenizer, [person.name])
    assert [row["token id"] for row in table] == ids
    # every masked piece comes from the name as answers spell it, capitalised
    assert all(row["decodes to"].strip() in person.name for row in table)


def test_siu_targets_from_one_image(micro_world, micro_model_dir):
    from lvlmu.probe.knowledge import leaks_name
    from lvlmu.unlearn.siu import TargetMaskCollator, siu_examples
    from lvlmu.world.traits import parse_traits

    person = micro_world.forget[0]
    rows = siu_examples(micro_world, [person.person_id], images="single")
    by = {t: [r for r in rows if r["siu"] == t] for t in ("T1", "T2", "T3", "T4")}
    assert all(by.values())
    assert {r["image_id"] for r in by["T1"] + by["T2"]} == {micro_world.single_image(person.person_id)["image_id"]}
    named = [p for p in micro_world.people.values() if p.is_named]
    assert not any(leaks_name(r["answer"], p) for r in by["T1"] for p in named), "the invented name is outside the world"
    for r in by["T2"]:
        found = parse_traits(r["answer"])
        assert all(getattr(person.traits, t) not in v for t, v in found.items()), "every trait of T2 is false"
    assert all(r["person_id"] == person.person_id and r["kind"] == "fact_text" for r in by["T3"])
    assert all(r["person_id"] != person.person_id for r in by["T4"])
    _, processor = load_model(micro_model_dir)
    batch = TargetMaskCollator(processor, micro_world.image)([by["T1"][0], by["T3"][0]])
    marked = batch["input_ids"][0][batch["target_mask"][0]]
    assert processor.tokenizer.decode(marked).strip() == by["T1"][0]["target"]
    assert not batch["target_mask"][1].any()


def test_siu_forgets_the_name_on_its_one_image(micro_world, micro_model_dir, tmp_path):
    person = micro_world.forget[0]
    config = UnlearnConfig(method="siu", forget=(person.person_id,), images="single", steps=10, batch_size=4, learning_rate=2e-3, other_qa=4)
    manifest = unlearn(micro_world, micro_model_dir, tmp_path / "siu", config, progress_bar=False)
    assert manifest["n_forget_examples"] > 0 and manifest["forget_people"] == [person.person_id]
    _, processor = load_model(micro_model_dir)
    single = [ex for ex in micro_world.select("train", kind="identity", person_id=person.person_id)
              if ex["image_id"] == micro_world.single_image(person.person_id)["image_id"]]
    from lvlmu.data import VisionTextCollator

    batch = VisionTextCollator(processor, micro_world.image)(single)
    assert mean_nll(tmp_path / "siu", batch) > mean_nll(micro_model_dir, batch), "the true name becomes less likely"


def test_a_run_freezes_the_vision_tower_logs_each_loss_term_and_is_reused(micro_world, micro_model_dir, tmp_path):
    from lvlmu.unlearn import unlearn_cached

    config = UnlearnConfig(method="graddiff", steps=4, batch_size=4, learning_rate=2e-3, logging_steps=2)
    out = tmp_path / "graddiff"
    manifest = unlearn_cached(micro_world, micro_model_dir, out, config, progress_bar=False)
    before, _ = load_model(micro_model_dir, dtype=torch.float32)
    after, _ = load_model(out, dtype=torch.float32)
    tower = {n: p for n, p in after.named_parameters() if ".vision_tower." in f".{n}"}
    assert tower and all(torch.equal(p, dict(before.named_parameters())[n]) for n, p in tower.items()), "the tower stays frozen"
    assert any(not torch.equal(p, dict(before.named_parameters())[n]) for n, p in after.named_parameters() if n not in tower)
    logged = [h for h in json.loads((out / "log_history.json").read_text()) if "loss" in h]
    assert len(logged) == 2 and all({"forget_loss", "retain_loss"} <= h.keys() for h in logged)
    assert logged[0]["forget_loss"] < 0, "GradDiff's forget term is the negated NLL"
    weights = sorted(out.glob("*.safetensors"))[0].stat().st_mtime_ns
    again = unlearn_cached(micro_world, micro_model_dir, out, config, progress_bar=False)
    assert again == manifest and sorted(out.glob("*.safetensors"))[0].stat().st_mtime_ns == weights, "the same run is reused"
    unlearn_cached(micro_world, micro_model_dir, out, UnlearnConfig(**{**config.__dict__, "seed": 1}), progress_bar=False)
    assert json.loads((out / "manifest.json").read_text())["config"]["seed"] == 1, "another config trains again"


def test_a_method_version_bump_unlearns_again_and_another_methods_does_not(micro_world, micro_model_dir, tmp_path, monkeypatch):
    from lvlmu.unlearn import unlearn_cached
    from lvlmu.unlearn.methods import METHODS

    config = UnlearnConfig(method="ga", steps=2, batch_size=4)
    out = tmp_path / "ga"
    first = unlearn_cached(micro_world, micro_model_dir, out, config, progress_bar=False)
    monkeypatch.setattr(METHODS["npo"], "version", METHODS["npo"].version + 1)
    assert unlearn_cached(micro_world, micro_model_dir, out, config, progress_bar=False) == first, "NPO's bump is not GA's"
    monkeypatch.setattr(METHODS["ga"], "version", METHODS["ga"].version + 1)
    again = unlearn_cached(micro_world, micro_model_dir, out, config, progress_bar=False)
    assert again["key"] != first["key"] and again["wall_seconds"] != first["wall_seconds"], "GA's bump trains GA again"


def test_forget_specs_and_freezing_fail_clearly(micro_world, micro_model_dir, tmp_path):
    assert resolve_forget(micro_world, "split:1") == [micro_world.forget[1].person_id]
    with pytest.raises(ValueError, match="numbered from 0"):
        resolve_forget(micro_world, f"split:{len(micro_world.forget)}")
    with pytest.raises(ValueError, match="matches no parameter"):
        unlearn(micro_world, micro_model_dir, tmp_path / "x", UnlearnConfig(frozen=r"nothing\..*", steps=1), progress_bar=False)


def test_siu_target_repeats_set_the_share_of_the_targets(micro_world):
    from collections import Counter

    from lvlmu.unlearn.siu import siu_examples

    person = micro_world.forget[0].person_id
    once, thrice = (Counter(r["siu"] for r in siu_examples(micro_world, [person], "single", 4, 0, k)) for k in (1, 3))
    assert thrice["T1"] == 3 * once["T1"] and thrice["T2"] == 3 * once["T2"]
    assert thrice["T3"] == once["T3"] and thrice["T4"] == once["T4"] == 4


def test_the_grid_names_every_run_and_checks_its_methods():
    from lvlmu.unlearn.grid import UnlearnGrid

    runs = UnlearnGrid(methods=("ga", "siu"), seeds=(0, 1), single_methods=("siu",), single_people=2, split_variants={"ga-fast": {"method": "ga", "learning_rate": 1.0}},
                       single_variants={"siu-ce-only": {"method": "siu", "weights": {"dmk": 0.0}}}, single_variant_people=1,
                       curve_methods=("siu",), curve_steps=(2, 6)).runs()
    names = [r.name for r in runs]
    # split, variant, single people, ablation, augmentation ablation, curve
    assert len(names) == len(set(names)) == 2 * (2 + 1 + 2 + 1 + 1 + 2)
    assert [r.config.steps for r in runs if r.setting == "curve"] == [2, 6] * 2
    assert [r.label for r in runs if r.name.startswith("split-ga-fast")] == ["ga-fast"] * 2
    single = [r for r in runs if r.setting == "single"]
    assert {r.config.forget for r in single} == {"split:0", "split:1"} and all(r.config.images == "single" for r in single)
    assert all(r.config.forget == "split" and r.config.images == "trained" for r in runs if r.setting == "split")
    with pytest.raises(ValueError, match="the methods are"):
        UnlearnGrid(methods=("gradient-ascent",))


def test_a_run_shorter_than_the_logging_interval_still_logs_its_terms(micro_world, micro_model_dir, tmp_path):
    config = UnlearnConfig(method="ga", steps=2, batch_size=2, logging_steps=5)
    unlearn(micro_world, micro_model_dir, tmp_path / "ga", config, progress_bar=False)
    logged = [h for h in json.loads((tmp_path / "ga" / "log_history.json").read_text()) if "forget_loss" in h]
    assert [h["step"] for h in logged] == [2]
    assert json.loads((tmp_path / "ga" / "manifest.json").read_text())["config"]["logging_steps"] == 5


def test_the_unlearn_command_names_the_valid_keys_of_a_bad_config(micro_world, micro_model_dir, tmp_path, capsys):
    """An unknown key in --config was a raw TypeError traceback; it is now one line that names the valid keys."""
    from lvlmu.__main__ import main

    code = main(["unlearn", "--model", str(micro_model_dir), "--world", str(micro_world.root), "--out", str(tmp_path / "out"),
                 "--config", '{"stpes": 3}'])
    error = capsys.readouterr().err
    assert code == 1 and "unknown key(s) ['stpes'] in --config" in error and "'steps'" in error and "Traceback" not in error
    assert not (tmp_path / "out").exists()
