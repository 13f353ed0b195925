"""The attacks on the micro model: each moves the model the way it should, results are stored and reused, the excess
over the oracle is the hand-computed one, and bad requests say what is wrong."""
import json
import math
import subprocess
import sys
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from lvlmu.attack.lens import lens_identification, lens_logprobs
from lvlmu.attack.quantize import quantized
from lvlmu.attack.relearn import relearn, relearn_examples
from lvlmu.attack.suite import ATTACKS, AttackConfig, AttackContext, leak_asks, lineage_learning_rate, run_attacks
from lvlmu.answers import to_device
from lvlmu.data import VisionTextCollator
from lvlmu.model import load_model
from lvlmu.probe.likelihood import answer_logprobs, name_examples
from lvlmu.report.attacks import attack_frame, excess_recovery
from lvlmu.unlearn import UnlearnConfig, unlearn

STEPS = (1, 3)


@pytest.fixture(scope="module")
def suppressed_dir(micro_world, micro_model_dir, tmp_path_factory):
    """The micro base with its first forget person's name pushed down by gradient ascent."""
    out = tmp_path_factory.mktemp("attack") / "ga"
    person = micro_world.forget[0].person_id
    unlearn(micro_world, micro_model_dir, out, UnlearnConfig(method="ga", forget=(person,), steps=4, batch_size=4, learning_rate=3e-3),
            progress_bar=False)
    return out


def context(world, model_dir, **config):
    model, processor = load_model(model_dir, dtype="fp32")
    person = world.forget[0].person_id
    return AttackContext(model, processor, world, AttackConfig(steps=STEPS, forget_people=(person,), **config), model_dir, progress=False)


def name_logprob(ctx):
    """The mean log-probability of "This is <name>." on the person's unseen photographs."""
    examples = [ex for p in ctx.forget for ex in name_examples(ctx.world, p, "unseen")]
    return lambda model, step: [{"logprob": float(np.mean([lp.mean() for lp in answer_logprobs(model, ctx.processor, examples, ctx.world.image, progress=False)]))}]


def test_relearning_on_a_named_photo_raises_the_suppressed_name_on_unseen_photos(micro_world, suppressed_dir):
    ctx = context(micro_world, suppressed_dir, learning_rate=3e-4)
    rows = relearn(ctx, "named photo", name_logprob(ctx))
    assert [r["step"] for r in rows] == [0, *STEPS]
    assert rows[-1]["logprob"] > rows[0]["logprob"] + 0.05, rows
    # the attack's one example per person: a trained photograph, never an unseen one, answered with the name
    (example,) = relearn_examples(micro_world, ctx.forget, "named photo")
    assert example["image_id"] == micro_world.single_image(ctx.forget[0].person_id)["image_id"]
    assert example["answer"] == f"This is {ctx.forget[0].name}."


@pytest.mark.parametrize("data, role", [("benign", "retain"), ("unrelated", "scene")])
def test_benign_and_unrelated_relearning_train_on_their_data_alone(micro_world, micro_model_dir, data, role):
    ctx = context(micro_world, micro_model_dir, learning_rate=3e-4)
    examples = relearn_examples(micro_world, ctx.forget, data)
    assert examples and {ex["role"] for ex in examples} == {role}
    assert not {ex["person_id"] for ex in examples} & {p.person_id for p in ctx.forget}
    before = [p.detach().clone() for p in ctx.model.parameters()]

    def loss_on_data(model, step):  # on all of it: a few examples' likelihood moves either way in the first steps
        return [{"logprob": float(np.mean([lp.mean() for lp in answer_logprobs(model, ctx.processor, examples, micro_world.image, progress=False)]))}]

    rows = relearn(ctx, data, loss_on_data)
    assert rows[-1]["logprob"] > rows[0]["logprob"], rows  # it learned its data
    assert all(torch.equal(a, b) for a, b in zip(before, ctx.model.parameters()))  # the attacked model itself is untouched


def test_quantized_weights_differ_and_still_generate(micro_world, micro_model_dir):
    ctx = context(micro_world, micro_model_dir)
    original = {n: p.detach().clone() for n, p in ctx.model.named_parameters()}
    for scheme in ("int8", "int4"):
        model, layers = quantized(ctx.fresh_model(), scheme, group_size=32)
        assert layers > 0
        lm = [n for n in original if ".language_model." in n and n.endswith("q_proj.weight")][0]
        weight = dict(model.named_parameters())[lm]
        dequantized = weight.dequantize() if hasattr(weight, "dequantize") else weight
        assert not torch.equal(dequantized.float(), original[lm]) and torch.allclose(dequantized.float(), original[lm], atol=0.2)
        tower = [n for n in original if "vision_tower" in n and n.endswith("weight")][0]
        assert torch.equal(dict(model.named_parameters())[tower], original[tower])  # the language model alone
        rows = ctx.leaks(model)
        assert len(rows) == len(leak_asks(micro_world, ctx.forget)) and all(isinstance(r["answer"], str) for r in rows)
        assert any(r["answer"].strip() for r in rows)


def test_the_lens_at_the_last_layer_reads_what_the_model_says(micro_world, micro_model_dir):
    ctx = context(micro_world, micro_model_dir)
    examples = [ex for p in micro_world.forget for ex in name_examples(micro_world, p, "unseen")]
    batch = VisionTextCollator(ctx.processor, micro_world.image)(examples)
    lens = lens_logprobs(ctx.model, to_device(batch, "cpu"))
    assert lens.shape == (ctx.model.config.text_config.num_hidden_layers, len(examples))
    said = [lp.mean() for lp in answer_logprobs(ctx.model, ctx.processor, examples, micro_world.image, progress=False)]
    np.testing.assert_allclose(lens[-1].numpy(), said, atol=1e-4)
    rows = lens_identification(ctx.model, ctx.processor, micro_world, ctx.forget, distractors=2)
    assert len(rows) == len(micro_world.images_of(ctx.forget[0].person_id, "unseen")) * lens.shape[0]
    assert all(0 <= r["rank"] <= 2 and r["identified"] == (r["rank"] == 0) for r in rows)


def test_attacks_are_stored_and_reused(micro_world, micro_model_dir, tmp_path):
    config = AttackConfig(steps=(1,), attacks=("relearn_named_photo", "quantization", "logit_lens"),
                          forget_people=(micro_world.forget[0].person_id,), quantizations=("int8",), distractors=2)
    store = run_attacks(micro_model_dir, micro_world, tmp_path / "attacks", config, progress=False)
    assert set(store.data["metrics"]) == set(config.attacks)
    named = store.summary("relearn_named_photo")
    assert set(named) == {"0", "1"} and set(named["1"]) == {"name", "fact with photo", "fact by name"}
    assert set(store.summary("quantization")) == {"full precision", "int8", "quantized layers"}
    rows = store.samples("relearn_named_photo")
    assert named["1"]["name"] == pytest.approx(np.mean([r["leak"] for r in rows if r["step"] == 1 and r["kind"] == "name"]))
    stamp = (tmp_path / "attacks" / "summary.json").stat().st_mtime_ns
    run_attacks(micro_model_dir, micro_world, tmp_path / "attacks", config, progress=False)
    assert (tmp_path / "attacks" / "summary.json").stat().st_mtime_ns == stamp  # nothing recomputed


def test_the_relearning_rate_is_the_models_own_unless_given(micro_world, micro_model_dir, suppressed_dir, tmp_path):
    pretrained = json.loads((micro_model_dir / "manifest.json").read_text())["config"]["learning_rate"]
    assert lineage_learning_rate(suppressed_dir) == lineage_learning_rate(micro_model_dir) == pretrained
    bare = tmp_path / "bare"
    model, processor = load_model(micro_model_dir)
    model.save_pretrained(bare)
    processor.save_pretrained(bare)
    with pytest.raises(ValueError, match="give learning_rate"):
        run_attacks(bare, micro_world, tmp_path / "out", AttackConfig(attacks=("relearn_benign",)))
    with pytest.raises(ValueError, match="unknown attacks"):
        run_attacks(micro_model_dir, micro_world, tmp_path / "out", AttackConfig(attacks=("relearn-everything",)))
    with pytest.raises(ValueError, match="increasing positive"):
        AttackConfig(steps=(5, 2))
    assert set(ATTACKS) == {"relearn_named_photo", "relearn_benign", "relearn_unrelated", "quantization", "logit_lens"}


def test_excess_recovery_is_paired_within_world_and_person_by_hand():
    """Two worlds, two people each, four unseen photographs a person: the method's and the oracle's name leaks after
    20 steps (and a step and a kind that must be ignored). Paired differences: world 1: (2/4 - 1/4, 4/4 - 2/4) -> mean
    0.375; world 2: (1/4 - 1/4, 3/4 - 1/4) -> 0.25. Over worlds: mean 0.3125, standard error 0.0625, t(0.975, 1) =
    12.706: the t interval is 0.3125 -+ 0.794, cut to at most 1 (one leak rate less another is at most 1). The pooled
    difference (10 of 16 less 5 of 16, Newcombe's hybrid on the exact intervals) lies inside it, so the t interval
    and its standard error stand."""
    leaks = {(1, "a"): (2, 1), (1, "b"): (4, 2), (2, "c"): (1, 1), (2, "d"): (3, 1)}  # leaking photographs of 4
    frames = []
    for (world, person), counts in leaks.items():
        for method, count in zip(("siu", "oracle"), counts):
            samples = [{"person_id": person, "kind": "name", "step": 20, "leak": k < count} for k in range(4)]
            samples += [{"person_id": person, "kind": "name", "step": 5, "leak": True},
                        {"person_id": person, "kind": "fact by name", "step": 20, "leak": True}]
            frames.append(attack_frame(samples, "relearn_named_photo", world=world, method=method))
    frame = pd.concat(frames)
    excess = excess_recovery(frame, "siu", "relearn_named_photo", 20)
    assert excess.estimate == pytest.approx(0.3125) and excess.level == "world" and excess.clusters == 2
    assert excess.estimate - excess.low == pytest.approx(12.706 * 0.0625, rel=1e-3) and excess.high == 1.0

    def exact(k, n):  # Clopper-Pearson from the beta quantiles
        return stats.beta.ppf(0.025, k, n - k + 1), stats.beta.ppf(0.975, k + 1, n - k)

    (low1, high1), (low2, high2) = exact(10, 16), exact(5, 16)
    pooled_low = 10 / 16 - 5 / 16 - math.hypot(10 / 16 - low1, high2 - 5 / 16)
    pooled_high = 10 / 16 - 5 / 16 + math.hypot(high1 - 10 / 16, 5 / 16 - low2)
    assert excess.low < pooled_low and pooled_high < 1.0
    assert excess.standard_error == pytest.approx(0.0625)
    with pytest.raises(ValueError, match="no leak rows"):
        attack_frame([], "logit_lens")


def test_the_command_attacks_a_model_against_a_reference(micro_world, micro_model_dir, suppressed_dir, tmp_path):
    config = json.dumps({"steps": [1], "quantizations": ["int8"], "forget_people": [micro_world.forget[0].person_id]})
    command = [sys.executable, "-m", "lvlmu", "attack", "--model", str(suppressed_dir), "--world", str(micro_world.root),
               "--reference", str(micro_model_dir), "--out", str(tmp_path), "--attacks", "relearn_named_photo,quantization",
               "--config", config]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "was unlearned by lvlmu" in result.stdout and "model: excess over reference" in result.stdout
    assert (tmp_path / "model" / "summary.json").exists() and (tmp_path / "reference" / "summary.json").exists()
    bad = subprocess.run([*command[:-2], "--config", '{"stpes": [1]}'], capture_output=True, text=True)
    assert bad.returncode == 1 and "stpes" in bad.stderr and "steps" in bad.stderr
    alone = subprocess.run([sys.executable, "-m", "lvlmu", "attack", "--model", str(micro_model_dir), "--world", str(micro_world.root),
                            "--out", str(tmp_path / "base"), "--attacks", "logit_lens", "--config", json.dumps({"distractors": 2})],
                           capture_output=True, text=True)
    assert alone.returncode == 0, alone.stderr[-2000:]
    assert "never unlearned" in alone.stdout and "no --reference" in alone.stdout
    assert not math.isnan(json.loads((tmp_path / "base" / "model" / "summary.json").read_text())["metrics"]["logit_lens"]["summary"]["chance"])


def synthetic_attacks(siu_benign: float, photographs: int = 100) -> pd.DataFrame:
    """Three worlds, one single-image person each with `photographs` answers (one a photograph, leaking or not): the
    oracle leaks 10% after 20 benign steps and with int4 weights, the base 90%, SIU `siu_benign` (plus a world-to-world
    spread of 1 point) and 10% with int4. So many answers a side make the pooled floor narrower than 10 points."""
    frames = []
    for world in (1, 2, 3):
        for method, benign, int4 in (("oracle", 0.1, 0.1), ("base", 0.9, 0.9), ("siu", siu_benign + (world - 2) * 0.01, 0.1)):
            person = f"w{world}p0"
            leaking = lambda rate, k: k < round(rate * photographs)  # the first round(rate x n) photographs leak
            relearn = [{"person_id": person, "kind": "name", "step": s, "leak": s == 20 and leaking(benign, k)}
                       for s in (0, 20) for k in range(photographs)]
            weights = [{"person_id": person, "kind": "name", "weights": w, "leak": w == "int4" and leaking(int4, k)}
                       for w in ("full precision", "int4") for k in range(photographs)]
            labels = {"world": world, "method": method, "setting": "single"}
            frames += [attack_frame(relearn, "relearn_benign", **labels), attack_frame(weights, "quantization", **labels)]
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("siu_benign, verdict", [(0.6, "does not hold"), (0.1, "holds")])
def test_the_chapter_and_the_claims_read_the_excess_over_the_oracle(siu_benign, verdict):
    from lvlmu.report.attacks import attack_findings, excess_table
    from lvlmu.report.claims import attack_claims

    frame = synthetic_attacks(siu_benign)
    table = excess_table(frame, "single")
    assert list(table.index) == ["siu", "base"] and set(table.columns) == {"relearn_benign (20 steps)", "quantization (int4)"}
    assert table.loc["base", "relearn_benign (20 steps)"].startswith("+80 [")
    assert float(table.loc["siu", "relearn_benign (20 steps)"].split(" [")[0]) == pytest.approx((siu_benign - 0.1) * 100, abs=0.5)
    text = attack_findings(frame, "single")
    hidden = "hidden knowledge found) for siu" in text
    assert hidden == (siu_benign > 0.5), text
    [siu, pubg] = attack_claims(frame)
    assert siu["verdict"] == verdict and "SIU forgets rather than hides" in siu["claim"] and "int4 weights" in siu["measured here"]
    assert pubg["verdict"] == "not measured"  # no attacked PUBG run on the forget split
    assert attack_claims(None)[0]["verdict"] == "not measured"
    if verdict == "holds":  # on 4 photographs a person, 12 answers a side cannot show a difference under 10 points
        assert attack_claims(synthetic_attacks(siu_benign, photographs=4))[0]["verdict"] == "inconclusive"


def test_a_concept_folder_without_unseen_images_or_scenes_says_what_it_used(micro_world, micro_model_dir, tmp_path):
    """No unseen/ folder: the attacks ask about the trained images and say so; no scenes: the unrelated relearning is
    stored as unavailable, with the reason, and the rest still runs."""
    import shutil

    from lvlmu.world import export_concept, load_concepts

    folder = export_concept(micro_world, tmp_path / "concept", n_retain=2, n_holdout=2)
    shutil.rmtree(folder / "unseen", ignore_errors=True)
    concepts = load_concepts(folder)
    config = AttackConfig(steps=(1,), attacks=("relearn_unrelated", "logit_lens"), distractors=2, learning_rate=3e-4)
    store = run_attacks(micro_model_dir, concepts, tmp_path / "attacks", config, progress=False)
    assert "scenes" in store.summary("relearn_unrelated")["unavailable"]
    assert "no unseen photographs" in store.summary("logit_lens")["note"]
    assert store.summary("logit_lens")["identified"]
