"""Tuning apart from reporting: one budget, one selection rule, a settings file the study checks."""
import json
import warnings
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from lvlmu.study import StaleSettingsWarning, StudyConfig, choice_versions, tuned
from lvlmu.unlearn.grid import UnlearnGrid
from lvlmu.unlearn.tuning import LEAK, RETAIN, TuningPlan, choose, load_settings, pareto_front, select, settings_markdown, settings_record


def point(lr, leak, retain):
    return {"learning_rate": lr, LEAK: leak, RETAIN: retain}


def test_every_method_gets_the_same_budget_and_no_augmentation():
    plan = TuningPlan(learning_rates=(2e-4, 8e-4), single_people=2)
    grid = UnlearnGrid(methods=("ga", "pubg"), single_methods=("siu", "ga"), split_variants={"ga-x4": {"method": "ga", "learning_rate_factor": 4}})
    runs = plan.runs(grid)
    per_method = Counter((r.setting, r.config.method) for r in runs)
    assert per_method == {("split", "ga"): 2, ("split", "pubg"): 2, ("single", "siu"): 4, ("single", "ga"): 4}  # 2 rates x 2 people
    assert {r.config.batch_size for r in runs if r.setting == "single"} == {plan.single_batch_size}
    assert {r.config.augment_shift for r in runs} == {0} and {r.config.steps for r in runs} == {grid.steps}
    assert {r.config.forget for r in runs if r.setting == "single"} == {"split:0", "split:1"}
    assert len({r.name for r in runs}) == len(runs)


def test_a_variant_is_its_method_tuned_setting_pushed_by_a_fixed_factor():
    grid = UnlearnGrid(methods=("ga",), single_methods=(), split_hyperparameters={"ga": {"learning_rate": 3e-4, "batch_size": 32}},
                       split_variants={"ga-x4": {"method": "ga", "learning_rate_factor": 4}})
    variant = next(r for r in grid.runs() if r.label == "ga-x4")
    assert variant.config.learning_rate == pytest.approx(1.2e-3) and variant.config.batch_size == 32


def test_siu_ablations_run_at_siu_tuned_single_image_setting_on_the_first_people():
    grid = UnlearnGrid(methods=(), single_methods=("siu",), single_people=6, single_variant_people=4, split_variants={},
                       single_hyperparameters={"siu": {"learning_rate": 8e-4, "batch_size": 8}})
    ablations = [r for r in grid.runs() if r.label.startswith("siu-") and r.label != "siu-augmented" and r.setting == "single"]
    assert Counter(r.label for r in ablations) == {name: 4 for name in ("siu-renormalised", "siu-token-mask-only", "siu-vocabulary-mask-only",
                                                                        "siu-ce-only", "siu-t1-unseen")}
    assert {r.config.forget for r in ablations} == {f"split:{k}" for k in range(4)}
    assert {(r.config.learning_rate, r.config.batch_size, r.config.method) for r in ablations} == {(8e-4, 8, "siu")}
    by_label = {r.label: r.config for r in ablations}
    assert by_label["siu-ce-only"].weights.dmk == 0.0 and by_label["siu-renormalised"].siu.kl == "renormalised"
    assert not by_label["siu-token-mask-only"].siu.vocabulary_mask and by_label["siu-token-mask-only"].siu.token_mask
    assert by_label["siu-t1-unseen"].siu.t1 == "unseen"


def test_the_front_keeps_points_no_other_beats_on_both_measures():
    points = [point(1e-4, 0.5, 0.95), point(2e-4, 0.2, 0.90), point(4e-4, 0.3, 0.80), point(8e-4, 0.0, 0.40), point(1.6e-3, float("nan"), 0.9)]
    assert [p["learning_rate"] for p in pareto_front(points)] == [1e-4, 2e-4, 8e-4]


def test_the_rule_chooses_the_front_point_nearest_the_oracle_and_breaks_ties_low():
    oracle = {LEAK: 0.0, RETAIN: 0.95}
    points = [point(1e-4, 0.5, 0.95), point(2e-4, 0.2, 0.90), point(8e-4, 0.0, 0.40)]
    assert choose(points, oracle)["learning_rate"] == 2e-4  # distance 0.206, against 0.5 and 0.55
    # a dominated point nearer the oracle than nothing is never chosen; equal distances go to the lower rate
    assert choose([point(4e-4, 0.1, 0.95), point(2e-4, 0.1, 0.95)], oracle)["learning_rate"] == 2e-4
    with pytest.raises(ValueError, match="nothing to choose"):
        choose([point(1e-4, float("nan"), 0.9)], oracle)


def test_a_settings_file_missing_a_method_or_tuned_on_a_reporting_world_stops_the_study(tmp_path):
    path = tmp_path / "tuned.json"
    with pytest.raises(FileNotFoundError, match="make tune"):
        load_settings(path, {"split": ("ga",)}, (1, 2, 3))
    path.write_text(json.dumps({"tuning_world": {"seed": 100}, "chosen": {"split": {"ga": {"learning_rate": 2e-4}}, "single": {}}}))
    assert load_settings(path, {"split": ("ga",)}, (1, 2, 3)) == {"split": {"ga": {"learning_rate": 2e-4}}}
    with pytest.raises(ValueError, match="split: npo; single: ga"):
        load_settings(path, {"split": ("ga", "npo"), "single": ("ga",)}, (1, 2, 3))
    with pytest.raises(ValueError, match="seed 100, which is a reporting world"):
        load_settings(path, {"split": ("ga",)}, (100, 101))


def test_select_chooses_per_setting_and_method_from_the_means_over_people():
    plan = TuningPlan(learning_rates=(2e-4, 8e-4), single_people=2)
    rows = [("split", "ga", 2e-4, 0.6, 0.9), ("split", "ga", 8e-4, 0.0, 0.8),
            ("single", "ga", 2e-4, 0.5, 0.9), ("single", "ga", 2e-4, 0.1, 0.9),  # mean leak 0.3
            ("single", "ga", 8e-4, 0.0, 0.2), ("single", "ga", 8e-4, 0.0, 0.4)]  # mean retain 0.3
    frame = pd.DataFrame(rows, columns=["setting", "method", "learning rate", LEAK, RETAIN])
    oracles = {"split": {LEAK: 0.0, RETAIN: 0.9}, "single": {LEAK: 0.0, RETAIN: 0.9}}
    chosen, table = select(frame, oracles, plan)
    assert chosen == {"single": {"ga": {"learning_rate": 2e-4, "batch_size": 8}}, "split": {"ga": {"learning_rate": 8e-4, "batch_size": 32}}}
    assert table["chosen"].sum() == 2 and set(table["runs"]) == {1, 2}
    record = settings_record(chosen, table, oracles, {"seed": 0}, plan, "abc", "2026-12-04")
    page = settings_markdown(record)
    assert "world 0" in page and "2026-12-04" in page and "**chosen**" in page and "nearest the oracle" in page


def test_the_study_reads_its_settings_under_the_grid_own_and_names_what_the_file_lacks(tmp_path):
    path = tmp_path / "tuned.json"
    chosen = {"split": {"ga": {"learning_rate": 8e-4, "batch_size": 32}, "npo": {"learning_rate": 4e-4, "batch_size": 32}},
              "single": {"ga": {"learning_rate": 2e-4, "batch_size": 8}}}
    table = [{"setting": "single", "method": m, "chosen": True, "distance to the oracle": d} for m, d in (("ga", 0.3), ("npo", 0.1), ("kl", 0.2))]
    path.write_text(json.dumps({"tuning_world": {"seed": 0}, "chosen": chosen, "table": table, "versions": choice_versions(["ga", "kl", "npo", "siu"])}))
    grid = UnlearnGrid(methods=("ga", "npo"), single_methods=("ga",), single_people=1, split_variants={}, single_variants={}, curve_methods=(),
                       split_hyperparameters={"npo": {"learning_rate": 1e-4}})
    study = tuned(StudyConfig(unlearn=grid, settings=str(path)))
    configs = {(r.setting, r.config.method): r.config for r in study.unlearn.runs()}
    assert configs[("split", "ga")].learning_rate == 8e-4 and configs[("single", "ga")].batch_size == 8
    assert configs[("split", "npo")].learning_rate == 1e-4 and configs[("split", "npo")].batch_size == 32  # the grid's own wins
    assert tuned(study) == study  # reading the file again changes nothing
    # the steps curve follows the baselines nearest the oracle on the tuning world (here the single-image setting's ga)
    two = replace(grid, single_methods=("ga", "kl"), curve_methods=("siu",), curve_baselines=1)
    chosen["single"] |= {"kl": {"learning_rate": 1e-4, "batch_size": 8}, "siu": {"learning_rate": 8e-4, "batch_size": 8}}
    path.write_text(json.dumps({"tuning_world": {"seed": 0}, "chosen": chosen, "table": table, "versions": choice_versions(["ga", "kl", "npo", "siu"])}))
    assert tuned(StudyConfig(unlearn=two, settings=str(path))).unlearn.curve_methods == ("siu", "kl")  # kl (0.2) nearer than ga (0.3)
    assert tuned(StudyConfig(unlearn=replace(two, curve_methods=()), settings=str(path))).unlearn.curve_methods == ()  # no curve, no baselines
    with pytest.raises(ValueError, match="no tuned setting for split: kl"):
        tuned(StudyConfig(unlearn=replace(grid, methods=("ga", "kl")), settings=str(path)))
    with pytest.raises(ValueError, match="tuned on world seed 0, which is a reporting world"):
        tuned(StudyConfig(unlearn=grid, settings=str(path), worlds=(0,), world=replace(StudyConfig().world, seed=9)))


def test_settings_chosen_with_older_code_warn_naming_what_changed(tmp_path):
    path = tmp_path / "tuned.json"
    record = {"tuning_world": {"seed": 0}, "chosen": {"split": {m: {"learning_rate": 1e-4, "batch_size": 32} for m in ("ga", "npo")}}}
    grid = UnlearnGrid(methods=("ga", "npo"), single_methods=(), split_variants={}, single_variants={}, curve_methods=())
    path.write_text(json.dumps({**record, "versions": choice_versions(["ga", "npo"])}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tuned(StudyConfig(unlearn=grid, settings=str(path)))
    npo = choice_versions(["npo"])["method:npo"]
    path.write_text(json.dumps({**record, "versions": choice_versions(["ga", "npo"]) | {"method:npo": npo - 1}}))
    with pytest.warns(StaleSettingsWarning, match=f"method:npo version {npo - 1}, now {npo}") as caught:
        study = tuned(StudyConfig(unlearn=grid, settings=str(path)))
    assert "method:ga" not in str(caught[0].message)
    assert {r.config.learning_rate for r in study.unlearn.runs()} == {1e-4}  # the settings are still read
    with warnings.catch_warnings():  # a study without NPO is not concerned
        warnings.simplefilter("error")
        tuned(StudyConfig(unlearn=replace(grid, methods=("ga",)), settings=str(path)))
    path.write_text(json.dumps(record))
    with pytest.warns(StaleSettingsWarning, match="records no code versions"):
        tuned(StudyConfig(unlearn=replace(grid, methods=("ga",)), settings=str(path)))


def test_make_tune_runs_every_candidate_on_the_tuning_world_and_writes_the_settings_the_study_reads(tmp_path):
    from conftest import MICRO_PRETRAIN, MICRO_VISION, MICRO_WORLD
    from lvlmu.engine import run_study
    from lvlmu.probe.suite import ProbeConfig
    from lvlmu.study import jobs

    settings = tmp_path / "tuned.json"
    grid = UnlearnGrid(methods=("ga",), single_methods=("siu",), single_people=1, steps=2, split_variants={}, single_variants={},
                       curve_methods=("siu",), curve_baselines=0, curve_steps=(1,))
    study = StudyConfig(MICRO_WORLD, MICRO_VISION, replace(MICRO_PRETRAIN, epochs=1), eval_max_per_group=8,
                        probe=ProbeConfig(batch_size=32, n_perturbed=3, perturbations=("flip",)), unlearn=grid, worlds=(1,),
                        settings=str(settings), tuning=TuningPlan(learning_rates=(1e-4, 3e-3), split_batch_size=8, single_batch_size=4, single_people=1))
    book = tmp_path / "book"
    report = run_study(study, book_dir=book, tune=True, log=lambda *_: None)
    assert report["failed"] == {} and set(report["jobs"].values()) == {"ran"}
    # the tuning world alone (the micro world's seed, 3): no reporting world is touched, no book is built
    assert not (book / "artifacts" / "w1").exists() and report["book"] is None
    assert {"w3-base", "w3-oracle", "w3-tune-split-ga", "w3-tune-single-siu", "tune-select"} <= set(report["jobs"])
    record = json.loads(settings.read_text())
    assert record["tuning_world"]["seed"] == 3 and len(record["table"]) == 4  # 2 rates x (split ga, single siu)
    assert record["chosen"]["split"]["ga"]["learning_rate"] in (1e-4, 3e-3) and record["chosen"]["single"]["siu"]["batch_size"] == 4
    assert "**chosen**" in settings.with_suffix(".md").read_text()
    assert record["versions"] == choice_versions(["ga", "siu"])  # what the choice was made with, which the study checks
    # the study reads the choice: its runs use the chosen settings
    plan = jobs(study, book / "artifacts", book)
    configs = {run["name"]: run["config"] for job in plan.values() if job.kind == "grid" for run in job.spec["runs"]}
    assert configs["w1-split-ga-seed0"]["learning_rate"] == record["chosen"]["split"]["ga"]["learning_rate"]
    assert configs["w1-single-siu-person0-seed0"]["batch_size"] == 4
    assert configs["w1-curve-siu-steps1-person0-seed0"]["steps"] == 1
    # unchanged, nothing reruns; a deleted settings file is made again, and nothing else runs
    assert set(run_study(study, book_dir=book, tune=True, log=lambda *_: None)["jobs"].values()) == {"cached"}
    settings.unlink()
    again = run_study(study, book_dir=book, tune=True, log=lambda *_: None)["jobs"]
    assert {j for j, status in again.items() if status == "ran"} == {"tune-select"} and json.loads(settings.read_text())["chosen"] == record["chosen"]


def test_tuning_another_world_into_the_study_settings_is_refused():
    from lvlmu.study import get_profile, tuning_jobs

    with pytest.raises(ValueError, match="would overwrite the study's settings"):
        tuning_jobs(get_profile("quick"), Path("artifacts"), Path("."))


def test_augmentation_is_an_ablation_for_every_single_image_method_at_its_tuned_setting():
    from lvlmu.unlearn.grid import AUGMENT_SHIFT, NOT_AUGMENTED
    from lvlmu.unlearn.methods import METHODS

    grid = UnlearnGrid(methods=(), single_methods=tuple(METHODS), single_people=6, single_variant_people=2, split_variants={}, curve_methods=(),
                       single_hyperparameters={m: {"learning_rate": 1e-4 * (k + 1), "batch_size": 8} for k, m in enumerate(METHODS)})
    runs = grid.runs()
    plain = {r.config.method: r.config for r in runs if r.label == r.config.method and r.config.forget == "split:0"}
    augmented = [r for r in runs if r.label.endswith("-augmented")]
    assert Counter(r.label for r in augmented) == {f"{m}-augmented": 2 for m in METHODS if m not in NOT_AUGMENTED}
    assert "dpo" in NOT_AUGMENTED, "DPO's collator would augment its two answers' photographs apart"
    for run in augmented:
        assert run.label == f"{run.config.method}-augmented" and run.config.augment_shift == AUGMENT_SHIFT
        assert run.config.learning_rate == plain[run.config.method].learning_rate, "the method's own tuned setting"
    assert {r.config.augment_shift for r in runs if not r.label.endswith("-augmented")} == {0}, "no other run is augmented"
    # only the grid's own single-image methods, each paired with its plain runs; none when the grid says so
    only_siu = UnlearnGrid(methods=(), single_methods=("siu",), split_variants={}, single_variants={}, curve_methods=())
    assert {r.label for r in only_siu.runs() if r.label.endswith("-augmented")} == {"siu-augmented"}
    assert not [r for r in replace(only_siu, augmented=False).runs() if r.label.endswith("-augmented")]
    # tuning gives the variants no budget of their own: they take their method's setting
    assert not any("augmented" in r.name for r in TuningPlan(learning_rates=(2e-4,), single_people=1).runs(only_siu))
