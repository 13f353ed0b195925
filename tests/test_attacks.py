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
    """Two worlds, two people each: the method's and the oracle's name leak after 20 steps (and a step that must be
    ignored). Paired differences: world 1: (0.5 - 0.25, 1.0 - 0.5) -> mean 0.375; world 2: (0.25 - 0.25, 0.75 - 0.25)
    -> 0.25. Over worlds: mean 0.3125, standard error 0.0625, t(0.975, 1) = 12.706: the t interval reaches
    0.3125 + 0.794 = 1.107 above, cut to 1 (one leak rate less another is at most 1)."""
    leaks = {(1, "a"): (0.5, 0.25), (1, "b"): (1.0, 0.5), (2, "c"): (0.25, 0.25), (2, "d"): (0.75, 0.25)}
    frames = []
    for (world, person), values in leaks.items():
        for method, value in zip(("siu", "oracle"), values):
            samples = [{"person_id": person, "kind": "name", "step": 20, "leak": value},
                       {"person_id": person, "kind": "name", "step": 5, "leak": 1.0},
                       {"person_id": person, "kind": "fact by name", "step": 20, "leak": 1.0}]
            frames.append(attack_frame(samples, "relearn_named_photo", world=world, method=method))
    frame = pd.concat(frames)
    excess = excess_recovery(frame, "siu", "relearn_named_photo", 20)
    assert excess.estimate == pytest.approx(0.3125) and excess.level == "world" and excess.clusters == 2
    assert excess.standard_error == pytest.approx(0.0625)
    assert excess.estimate - excess.low == pytest.approx(12.706 * 0.0625, rel=1e-3) and excess.high == 1.0
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


def synthetic_attacks(siu_benign: float) -> pd.DataFrame:
    """Three worlds, one single-image person each: the oracle leaks 10% after 20 benign steps and with int4 weights,
    the base 90%, SIU `siu_benign` (plus a world-to-world spread of 1 point) and 10% with int4."""
    frames = []
    for world in (1, 2, 3):
        for method, benign, int4 in (("oracle", 0.1, 0.1), ("base", 0.9, 0.9), ("siu", siu_benign + (world - 2) * 0.01, 0.1)):
            person = f"w{world}p0"
            relearn = [{"person_id": person, "kind": "name", "step": s, "leak": (benign if s == 20 else 0.0)} for s in (0, 20)]
            weights = [{"person_id": person, "kind": "name", "weights": w, "leak": (int4 if w == "int4" else 0.0)} for w in ("full precision", "int4")]
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
