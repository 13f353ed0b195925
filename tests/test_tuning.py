"""Tuning apart from reporting: one budget, one selection rule, a settings file the study checks."""
import json

import pytest

from lvlmu.unlearn.tuning import LEAK, RETAIN, TuningPlan, choose, load_settings, pareto_front


def point(lr, leak, retain):
    return {"learning_rate": lr, LEAK: leak, RETAIN: retain}


def test_every_method_gets_the_same_budget():
    plan = TuningPlan(extra={"pubg": {"weights": {"suppress": 0.1}}})
    sizes = {len(plan.candidates(m, s)) for m in ("ga", "siu", "pubg") for s in ("split", "single")}
    assert sizes == {plan.budget}
    assert {c["batch_size"] for c in plan.candidates("ga", "single")} == {plan.single_batch_size}
    assert all(c["weights"] == {"suppress": 0.1} for c in plan.candidates("pubg", "split"))


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
