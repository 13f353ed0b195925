"""Gathering unlearning runs: means with confidence intervals, missing runs named, and the study's expectations."""
import math

import pandas as pd
import pytest

from lvlmu.probe.compare import HEADLINE, mean_ci, task_rates
from lvlmu.unlearn.results import collect_runs, grid_shape


def test_mean_ci_matches_a_hand_computation():
    frame = pd.DataFrame({"method": ["a", "a", "a", "b"], "leak": [0.1, 0.2, 0.3, 0.5]})
    summary = mean_ci(frame, ["method"])
    assert summary.loc["a", ("leak", "mean")] == pytest.approx(0.2)
    # t(0.975, 2 df) = 4.3027; the standard error of (0.1, 0.2, 0.3) is 0.1 / sqrt(3).
    assert summary.loc["a", ("leak", "±")] == pytest.approx(4.3027 * 0.1 / math.sqrt(3), rel=1e-4)
    assert summary.loc["b", ("leak", "mean")] == 0.5 and pd.isna(summary.loc["b", ("leak", "±")]), "one seed has no interval"


def test_missing_runs_are_named_not_dropped_silently(micro_world, tmp_path):
    worlds = {"w1": {"world_dir": str(micro_world.root), "reference_results_dir": str(tmp_path)}}
    runs = {"split-ga-seed0": {"world": "w1", "setting": "split", "method": "ga", "seed": 0, "forget": "split",
                               "model_dir": str(tmp_path / "m"), "results_dir": str(tmp_path / "r")}}
    frame, missing = collect_runs(runs, worlds)
    assert frame.empty and missing == ["split-ga-seed0"]
    with pytest.raises(ValueError, match="names world 'w2'"):
        collect_runs({"x": {**runs["split-ga-seed0"], "world": "w2"}}, worlds)


def run_row(setting, method, seed, **values):
    row = {label: 0.0 for label in [*HEADLINE, *task_rates({})]}
    row.update({"retain names": 1.0, "other": 1.0}, **values)
    return {"setting": setting, "method": method, "seed": seed, **row}


def test_the_grid_shape_is_read_from_the_runs():
    rows = [{"setting": "split", "method": m, "seed": s, "forget": "split", "steps": 30.0, "people forgotten": 8.0}
            for m in ("ga", "siu") for s in (0, 1, 2)]
    rows += [{"setting": "single", "method": "siu", "seed": 0, "forget": p, "steps": 10.0, "people forgotten": 1.0} for p in ("p1", "p2")]
    assert grid_shape(pd.DataFrame(rows)) == ("This build, on 1 world: the forget split: 6 runs of 2 methods on 8 people, seeds 0, 1, 2, 30 steps each; "
                                              "one person from one image: 2 runs of 1 method on 2 people, one at a time, seed 0, 10 steps each.")
    assert grid_shape(pd.DataFrame(rows[-1:])).endswith("1 run of 1 method on 1 person, seed 0, 10 steps each.")
    assert grid_shape(pd.DataFrame()) == "This build has no finished runs."
    # Two worlds: their people are counted apart, though their ids are the same.
    two = pd.DataFrame([{**row, "world": w} for row in rows for w in ("w1", "w2")])
    assert grid_shape(two).startswith("This build, on 2 worlds: the forget split: 12 runs of 2 methods on 16 people")
    assert "4 runs of 1 method on 4 people, one at a time" in grid_shape(two)


def test_pubg_expectations_are_decided_on_intervals_against_every_baseline_and_the_oracle():
    from lvlmu.report.claims import FAILS, HOLDS, INCONCLUSIVE, pubg_targets

    def row(method, seed, leak, desirable, **values):
        return run_row("split", method, seed, **{"name leak: unseen images": leak, "task: desirable": desirable,
                                                  "grounding precision": 0.95, **values})

    rows = [row("pubg", s, 0.04, 0.80) for s in (0, 1)]
    rows += [row("ga", s, 0.0, 0.55) for s in (0, 1)] + [row("idk", s, 0.03, 0.10) for s in (0, 1)]
    rows += [row("ga-x4", s, 0.0, 0.79) for s in (0, 1)]  # a variant is no baseline
    oracle = {"task: desirable": 0.85}
    table = pubg_targets(pd.DataFrame(rows), base={"retain names": 1.0}, oracle=oracle).set_index("measure")
    assert (table["verdict"] == HOLDS).all(), table
    assert "forget quality against the oracle" not in table.index, "a KS p-value is never averaged or ranked"
    rows += [row("dpo", s, 0.0, 0.65) for s in (0, 1)]  # within 20 points of PUBG's desirable rate
    table = pubg_targets(pd.DataFrame(rows), base={"retain names": 1.0}, oracle=oracle).set_index("measure")["verdict"]
    assert table["desirable response rate (PUBG task)"] == FAILS
    assert table["name leak, unseen images"] == HOLDS and table["gap to the oracle's desirable rate"] == HOLDS
    # The same means, but PUBG's two seeds far apart: its interval straddles the bounds, and no row is decided on the mean.
    spread = [row("pubg", 0, 0.0, 0.45), row("pubg", 1, 0.08, 1.15)] + rows[2:]
    table = pubg_targets(pd.DataFrame(spread), base={"retain names": 1.0}, oracle=oracle).set_index("measure")["verdict"]
    assert table["name leak, unseen images"] == INCONCLUSIVE and table["gap to the oracle's desirable rate"] == INCONCLUSIVE
    with pytest.raises(ValueError, match="no pubg runs"):
        pubg_targets(pd.DataFrame(rows[2:]), base={"retain names": 1.0}, oracle=oracle)


def test_each_claim_is_decided_by_its_interval_and_says_when_it_cannot():
    from lvlmu.report.claims import FAILS, HOLDS, INCONCLUSIVE, UNMEASURED, claims_table

    base = {"name leak: unseen images": 0.97, "retain names": 0.98, "task: leak": 0.97, "visual QA": 0.9, "POPE F1": 0.9}
    oracle = {"MIA AUC (LOSS)": 0.45, "visual MIA AUC (LOSS)": 0.45, "fluency: perplexity": 5.0, "diversity": 0.8}

    def siu(person, seed, wobble):
        return {**run_row("single", "siu", seed, **{"name leak: unseen images": 0.02 + wobble, "name leak: held-out paraphrases": 0.0,
                                                   "name leak: jailbreak prompts": 0.30 + wobble, "name leak: perturbed": 0.0,
                                                   "retain names": 0.97 - wobble, "visual MIA AUC (LOSS)": 0.50 + wobble,
                                                   "visual QA": 0.9 + wobble, "POPE F1": 0.88 - wobble,
                                                   "fluency: perplexity": 30.0 + wobble, "diversity": 0.85 - wobble,
                                                   "MIA AUC (LOSS)": 0.9, "steps": 30,
                                                   # the oracle probed on the same person (lvlmu.unlearn.results.ORACLE_PAIRED)
                                                   "oracle: MIA AUC (LOSS)": 0.45, "oracle: visual MIA AUC (LOSS)": 0.45,
                                                   "oracle: fluency: perplexity": 5.0, "oracle: diversity": 0.8}),
                "forget": person}

    # four people, two seeds each, tight around their values: every interval clears its bound one way or the other
    rows = [siu(p, s, 0.01 * ((k + s) % 3 - 1)) for k, p in enumerate(("p1", "p2", "p3", "p4")) for s in (0, 1)]
    table = claims_table(pd.DataFrame(rows), base, oracle).set_index("claim")
    assert table.loc["forgets a person from one image", "verdict"] == HOLDS
    assert "(4 people)" in table.loc["forgets a person from one image", "measured here"]
    assert table.loc["with high generality", "verdict"] == FAILS and "jailbreak prompts 29.9% [" in table.loc["with high generality", "measured here"]
    specificity = "while keeping other people and general visual skills (specificity)"
    assert table.loc[specificity, "verdict"] == HOLDS and "POPE F1 88.1% [" in table.loc[specificity, "measured here"]
    # fluent enough in diversity, but 6 times the oracle's perplexity: fails on the perplexity alone
    assert table.loc["and answers fluently and diversely", "verdict"] == FAILS
    fluent = [{**row, "fluency: perplexity": 8.0 + k % 2} for k, row in enumerate(rows)]
    assert claims_table(pd.DataFrame(fluent), base, oracle).set_index("claim").loc["and answers fluently and diversely", "verdict"] == HOLDS
    blind = [{**row, "POPE F1": 0.5 + 0.01 * (k % 2)} for k, row in enumerate(rows)]
    assert claims_table(pd.DataFrame(blind), base, oracle).set_index("claim").loc[specificity, "verdict"] == FAILS
    assert table.loc["and resists membership inference", "verdict"] == HOLDS, "decided on the visual attack, not the text one"
    assert "text-fact attack" in table.loc["and resists membership inference", "measured here"]
    # Read against the oracle on the same person, not the split-wide figure: an oracle at 0.75 on these people fails it.
    known = [{**row, "oracle: visual MIA AUC (LOSS)": 0.75} for row in rows]
    assert claims_table(pd.DataFrame(known), base, oracle).set_index("claim").loc["and resists membership inference", "verdict"] == FAILS
    unpaired = [{k: v for k, v in row.items() if not k.startswith("oracle: ")} for row in rows]
    table = claims_table(pd.DataFrame(unpaired), base, oracle).set_index("claim")
    assert (table.loc[["and resists membership inference", "and answers fluently and diversely"], "verdict"] == UNMEASURED).all()
    assert table.loc["PUBG's answers are informative", "verdict"] == UNMEASURED, "no PUBG run: not measured, never guessed"
    # a leak whose people straddle the bound: inconclusive, not a point-mean verdict
    spread = [{**row, "name leak: unseen images": leak} for row, leak in zip(rows, (0.0, 0.0, 0.25, 0.25, 0.0, 0.0, 0.25, 0.25))]
    table = claims_table(pd.DataFrame(spread), base, oracle).set_index("claim")
    assert table.loc["forgets a person from one image", "verdict"] == INCONCLUSIVE
    # one person's two seeds: the interval is over the seeds, and says so; one run gives none at all
    table = claims_table(pd.DataFrame(rows[:2]), base, oracle).set_index("claim")
    assert "(2 seeds)" in table.loc["forgets a person from one image", "measured here"]
    table = claims_table(pd.DataFrame(rows[:1]), base, oracle).set_index("claim")
    assert table.loc["forgets a person from one image", "verdict"] == INCONCLUSIVE
    assert "one seed only: no interval" in table.loc["forgets a person from one image", "measured here"]


def test_forget_quality_is_read_per_run_on_enough_truth_ratios_and_never_holds():
    from lvlmu.report.claims import FAILS, INCONCLUSIVE, UNMEASURED, claims_table

    base, oracle = {"retain names": 0.98, "task: leak": 0.97}, {"MIA AUC (LOSS)": 0.45}
    claim = "unlearning approaches the retrained oracle"

    def split(method, seed, quality, counted):
        return {**run_row("split", method, seed), "forget": "split", "forget quality": quality, "truth ratios": counted}

    few = [split("ga", s, 0.9, 4) for s in (0, 1)]
    assert claims_table(pd.DataFrame(few), base, oracle).set_index("claim").loc[claim, "verdict"] == UNMEASURED
    apart = [split(m, s, 0.001, 32) for m in ("ga", "npo") for s in (0, 1)]
    table = claims_table(pd.DataFrame(apart), base, oracle).set_index("claim")
    assert table.loc[claim, "verdict"] == FAILS and "ga 2 of 2" in table.loc[claim, "measured here"]
    # a run the test cannot tell from the oracle is no evidence of closeness: inconclusive, never "holds"
    table = claims_table(pd.DataFrame(apart + [split("npo", 2, 0.6, 32)]), base, oracle).set_index("claim")
    assert table.loc[claim, "verdict"] == INCONCLUSIVE and "npo 2 of 3" in table.loc[claim, "measured here"]


def test_the_dmk_claim_reads_siu_against_its_ablation_paired_on_the_same_people():
    from lvlmu.report.claims import FAILS, HOLDS, UNMEASURED, claims_table

    base = {"name leak: unseen images": 0.97, "retain names": 0.98, "task: leak": 0.97}
    oracle = {"MIA AUC (LOSS)": 0.45, "visual MIA AUC (LOSS)": 0.45}
    claim = "its Dual Masked KL keeps other people's knowledge (ablation)"

    def single(method, world, person, retain):
        return {**run_row("single", method, 0, **{"retain names": retain, "steps": 30}), "world": world, "forget": person}

    # people differ a lot (0.5 to 0.9), but SIU keeps 5 to 7 points more than its CE-only ablation on each: paired, it holds
    people = [(w, p, 0.5 + 0.1 * k) for k, (w, p) in enumerate((w, p) for w in ("w1", "w2", "w3") for p in ("p1", "p2"))]
    rows = [single("siu", w, p, r + 0.05 + 0.01 * (k % 3)) for k, (w, p, r) in enumerate(people)]
    assert claims_table(pd.DataFrame(rows), base, oracle).set_index("claim").loc[claim, "verdict"] == UNMEASURED
    ablated = rows + [single("siu-ce-only", w, p, r) for w, p, r in people]
    table = claims_table(pd.DataFrame(ablated), base, oracle).set_index("claim")
    assert table.loc[claim, "verdict"] == HOLDS and "siu-ce-only 6.0% [" in table.loc[claim, "measured here"]
    worse = rows + [single("siu-ce-only", w, p, r + 0.2) for w, p, r in people]
    assert claims_table(pd.DataFrame(worse), base, oracle).set_index("claim").loc[claim, "verdict"] == FAILS


def test_augmentation_is_an_ablation_for_every_method_paired_on_the_same_people():
    from lvlmu.report.claims import augmentation_table

    def single(method, world, person, leak):
        return {**run_row("single", method, 0, **{"name leak: unseen images": leak}), "world": world, "forget": person}

    cells = [(w, p, 0.1 * k) for k, (w, p) in enumerate((w, p) for w in ("w1", "w2", "w3") for p in ("p1", "p2"))]
    rows = [single(m, w, p, leak) for m in ("ga", "siu") for w, p, leak in cells]
    assert augmentation_table(pd.DataFrame(rows)).empty, "no augmented run: no table"
    rows += [single("siu-augmented", w, p, leak - 0.05) for w, p, leak in cells]  # 5 points less leak on every person
    table = augmentation_table(pd.DataFrame(rows)).set_index("method")
    assert list(table.index) == ["siu"], "only a method with augmented runs"
    assert table.loc["siu", "name leak: unseen images: augmented - plain"].startswith("-5.0% [-5.0%, -5.0%] (3 worlds)")


def test_pubg_grounding_needs_recall_near_the_base_description_as_well_as_precision():
    from lvlmu.report.claims import FAILS, HOLDS, INCONCLUSIVE, claims_table

    oracle = {"MIA AUC (LOSS)": 0.45, "visual MIA AUC (LOSS)": 0.45}
    claim = "grounded in the image"

    def pubg(world, recall):
        return {**run_row("split", "pubg", 0, **{"grounding precision": 0.97 + 0.01 * int(world[1]) % 2, "grounding recall": recall}),
                "world": world, "forget": "split", "truth ratios": 0, "forget quality": None}

    rows = lambda recalls: [pubg(w, r) for w, r in zip(("w1", "w2", "w3"), recalls)]  # noqa: E731
    # The ceiling is the base's answer to "Describe this person.", not to the open query (where it names the person).
    base = {"name leak: unseen images": 0.97, "retain names": 0.98, "task: leak": 0.97, "description recall": 0.60, "grounding recall": 0.05}
    assert claims_table(pd.DataFrame(rows((0.58, 0.60, 0.59))), base, oracle).set_index("claim").loc[claim, "verdict"] == HOLDS
    table = claims_table(pd.DataFrame(rows((0.20, 0.22, 0.21))), base, oracle).set_index("claim")
    assert table.loc[claim, "verdict"] == FAILS, "precise but says little: not grounded as the base describes"
    assert "the base's description: 60.0%" in table.loc[claim, "measured here"]
    no_ceiling = {k: v for k, v in base.items() if k != "description recall"}
    assert claims_table(pd.DataFrame(rows((0.58, 0.60, 0.59))), no_ceiling, oracle).set_index("claim").loc[claim, "verdict"] == INCONCLUSIVE


def test_the_steps_curve_joins_the_short_runs_to_the_grid_runs_on_the_same_people_and_decides_few_steps():
    from lvlmu.report.claims import FAILS, HOLDS, claims_table
    from lvlmu.unlearn.results import steps_curve

    def run(setting, steps, world, person, leak):
        return {**run_row(setting, "siu", 0, **{"name leak: unseen images": leak, "retain names": 0.9, "steps": steps}),
                "world": world, "forget": person, "truth ratios": 0, "forget quality": None}

    leaks = {2: 0.8, 6: 0.05, 30: 0.0}
    rows = [run("curve" if steps < 30 else "single", steps, w, "p1", leak + 0.01 * k) for steps, leak in leaks.items() for k, w in enumerate(("w1", "w2", "w3"))]
    rows.append(run("single", 30, "w1", "p2", 0.9))  # a person off the curve: not part of its last point
    curve = steps_curve(pd.DataFrame(rows)).set_index("steps")
    assert list(curve.index) == [2, 6, 30]
    assert curve.loc[30, "name leak: unseen images mean"] == pytest.approx(0.01)  # p2's 0.9 left out
    assert curve.loc[6, "name leak: unseen images low"] < 0.06 < curve.loc[6, "name leak: unseen images high"]
    # the bands are cut to the range a share can take: the 30-step point's t interval would reach below 0
    assert curve.loc[30, "name leak: unseen images low"] == 0.0
    assert steps_curve(pd.DataFrame(rows), within=None).set_index("steps").loc[30, "name leak: unseen images low"] < 0
    base = {"name leak: unseen images": 0.97, "retain names": 0.98, "task: leak": 0.97}
    oracle = {"MIA AUC (LOSS)": 0.45, "visual MIA AUC (LOSS)": 0.45}
    assert claims_table(pd.DataFrame(rows), base, oracle).set_index("claim").loc["in a few steps (6)", "verdict"] == HOLDS
    slow = [{**r, "name leak: unseen images": 0.5 + r["name leak: unseen images"]} if r["steps"] == 6 else r for r in rows]
    assert claims_table(pd.DataFrame(slow), base, oracle).set_index("claim").loc["in a few steps (6)", "verdict"] == FAILS
