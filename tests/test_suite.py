"""The probe suite on a micro model: every metric runs, is stored, is reused, and refuses mismatched results."""
import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from lvlmu.probe.perturb import PERTURBATIONS, perturbed_loader
from lvlmu.probe.store import ProbeStore, ResultsMismatch
from lvlmu.probe.suite import METRICS, ProbeConfig, evaluation_scenes, run_probes

CONFIG = ProbeConfig(batch_size=32, n_perturbed=3, perturbations=("flip", "grayscale"))


@pytest.fixture(scope="module")
def probed(micro_world, micro_model_dir, tmp_path_factory):
    results = tmp_path_factory.mktemp("probe") / "base"
    config = replace(CONFIG, reference_dir=str(micro_model_dir))
    return run_probes(micro_model_dir, micro_world, results, config, progress=False), results


def test_every_metric_is_stored_with_samples_and_summary(probed, micro_world):
    store, results = probed
    summary = json.loads((results / "summary.json").read_text())
    assert set(summary["metrics"]) == set(METRICS)
    assert summary["manifest"]["world_fingerprint"] == micro_world.fingerprint and summary["manifest"]["versions"]["torch"]
    privacy = store.summary("privacy")
    assert {"trained images", "unseen images", "held-out paraphrases", "jailbreak prompts", "perturbed: flip", "perturbed: grayscale"} <= set(privacy)
    rows = store.samples("privacy")
    n_forget_unseen = sum(len(micro_world.images_of(p.person_id, "unseen")) for p in micro_world.forget)
    assert sum(r["condition"] == "perturbed: flip" for r in rows) == n_forget_unseen
    for condition, values in privacy.items():  # the summary is recomputable from the samples
        group = [r for r in rows if r["condition"] == condition and r["kind"] != "fact"]
        assert values["name leak"] == pytest.approx(np.mean([r["name_leak"] for r in group]))
        facts = [r for r in rows if r["condition"] == condition and r["kind"] == "fact"]
        assert values["fact leak"] == (pytest.approx(np.mean([r["fact_leak"] for r in facts])) if facts else None)
    assert set(store.summary("membership")) == {"loss", "min_k", "zlib"}
    assert all(0 <= v <= 1 for v in store.summary("membership").values())
    aftermath = store.summary("aftermath")
    assert set(aftermath) == {"identity", "open query", "description"}
    assert aftermath["identity"]["fluency (perplexity, median)"] >= 1.0
    assert sum(aftermath["identity"][k] for k in ("degenerate", "hallucinated", "informative", "refusal", "other")) == pytest.approx(1.0)
    utility = store.summary("utility")
    assert {"retain names", "retain facts", "forget facts by name", "visual QA", "POPE", "over-refusal"} <= set(utility)
    assert 0 <= utility["POPE"]["F1"] <= 1


def test_utility_asks_about_the_first_scenes_alone(micro_world, micro_model_dir, tmp_path):
    questions = micro_world.select("eval", role="scene")
    scenes = list(dict.fromkeys(q["image_id"] for q in questions))
    assert len(scenes) >= 2, "the micro world has several evaluation scenes"
    first = evaluation_scenes(micro_world, 1)
    assert first == [q for q in questions if q["image_id"] == scenes[0]] and len(first) < len(questions)
    assert evaluation_scenes(micro_world, 0) == questions == evaluation_scenes(micro_world, len(scenes) + 5), "0, or more than there are: all"
    store = run_probes(micro_model_dir, micro_world, tmp_path / "one-scene", replace(CONFIG, scenes=1, metrics=("utility",)), progress=False)
    utility = store.summary("utility")
    assert sum(utility[c]["answers"] for c in ("visual QA", "POPE") if c in utility) == len(first)
    with pytest.raises(ValueError, match="scenes"):
        ProbeConfig(scenes=-1)


def test_a_rerun_reuses_every_stored_metric(probed, micro_world, micro_model_dir):
    store, results = probed
    before = (results / "summary.json").stat().st_mtime_ns
    run_probes(micro_model_dir, micro_world, results, replace(CONFIG, reference_dir=str(micro_model_dir)), progress=False)
    assert (results / "summary.json").stat().st_mtime_ns == before


def test_a_metric_version_bump_recomputes_that_metric_alone(probed, micro_world, micro_model_dir, tmp_path, monkeypatch):
    """Probe results were keyed by settings, model and world, never by probe code: a fix to a leak rule recomputed
    nothing. Each metric now carries the versions of its code, and a bump recomputes it, and nothing else."""
    _, results = probed
    copy = tmp_path / "copy"
    shutil.copytree(results, copy)
    before = {name: entry["wall_seconds"] for name, entry in json.loads((copy / "summary.json").read_text())["metrics"].items()}
    monkeypatch.setattr(METRICS["privacy"], "version", METRICS["privacy"].version + 1)
    store = run_probes(micro_model_dir, micro_world, copy, replace(CONFIG, reference_dir=str(micro_model_dir)), progress=False)
    after = {name: entry["wall_seconds"] for name, entry in store.data["metrics"].items()}
    assert [name for name in after if after[name] != before[name]] == ["privacy"]
    assert store.data["metrics"]["privacy"]["parameters"]["versions"]["metric:privacy"] == METRICS["privacy"].version


def test_results_of_another_model_or_world_are_refused_or_replaced_explicitly(probed, micro_world, micro_model_dir, tmp_path, capsys):
    _, results = probed
    with pytest.raises(ResultsMismatch, match="another results directory"):
        ProbeStore(results, tmp_path, micro_world.fingerprint)
    with pytest.raises(ResultsMismatch, match="world_fingerprint"):
        ProbeStore(results, micro_model_dir, "another-world")
    copy = tmp_path / "copy"
    shutil.copytree(results, copy)
    fresh = ProbeStore(copy, micro_model_dir, "another-world", replace_stale=True)
    assert "replacing them" in capsys.readouterr().out and not fresh.data["metrics"] and not copy.exists()


def test_bad_requests_fail_clearly(micro_world, micro_model_dir, tmp_path):
    with pytest.raises(ValueError, match="unknown metrics"):
        run_probes(micro_model_dir, micro_world, tmp_path / "r", ProbeConfig(metrics=("nonsense",)), progress=False)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        run_probes(tmp_path, micro_world, tmp_path / "r2", ProbeConfig(metrics=("privacy",)), progress=False)
    with pytest.raises(ValueError, match="unknown perturbation"):
        perturbed_loader(micro_world.image, "blur")


def test_perturbations_change_the_image_and_keep_its_size(micro_world):
    image_id = micro_world.images[0]["image_id"]
    original = np.asarray(micro_world.image(image_id))
    for name in PERTURBATIONS:
        out = np.asarray(perturbed_loader(micro_world.image, name)(image_id))
        assert out.shape == original.shape and not np.array_equal(out, original), name


def test_a_metric_that_a_world_cannot_support_is_stored_as_unavailable(micro_world, micro_model_dir, tmp_path):
    from dataclasses import replace as replace_field

    no_holdout = replace_field(micro_world, people={k: p for k, p in micro_world.people.items() if p.role != "holdout"})
    store = run_probes(micro_model_dir, no_holdout, tmp_path / "r", ProbeConfig(metrics=("membership",)), progress=False)
    assert "no holdout people" in store.summary("membership")["unavailable"] and store.samples("membership") == []


def test_probes_of_one_forgotten_person_ask_about_that_person_only(micro_world, micro_model_dir, tmp_path):
    person = micro_world.forget[1].person_id
    config = ProbeConfig(batch_size=32, perturbations=(), metrics=("privacy", "truth_ratio"), forget_people=(person,))
    store = run_probes(micro_model_dir, micro_world, tmp_path / "one", config, progress=False)
    assert {r["person_id"] for r in store.samples("privacy")} == {person}
    roles = {r["person_id"]: r["role"] for r in store.samples("truth_ratio")}
    assert roles[person] == "forget" and person in roles
    assert not any(p.person_id in roles for p in micro_world.forget if p.person_id != person), "other forget people are left out"
    with pytest.raises(ValueError, match="not people of the world"):
        run_probes(micro_model_dir, micro_world, tmp_path / "bad", ProbeConfig(metrics=("privacy",), forget_people=("nobody",)), progress=False)
