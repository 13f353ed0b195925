"""Declared versions: the guard that names a unit whose code changed without a bump, and keys that follow versions,
configs and inputs, never comments or file times."""
import ast
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from lvlmu import versions as V
from lvlmu.probe import suite
from lvlmu.study import get_profile, jobs, tuned
from lvlmu.unlearn.methods import METHODS

PACKAGE = Path(V.__file__).parent


def source(path: str) -> str:
    return (PACKAGE / path).read_text()


def test_every_unit_matches_the_recorded_table():
    assert V.check() == [], "run `python -m lvlmu versions` for the reasons"


def test_comments_and_docstrings_change_no_unit_but_code_does():
    methods = source("unlearn/methods.py")
    commented = methods.replace('    """Negative preference optimisation:', '    # a comment\n    """Reworded: negative preference optimisation:', 1)
    commented = commented.replace("        batch = inputs[\"forget\"]\n", "        batch = inputs[\"forget\"]  # the forget half\n", 1)
    assert commented.count("# a comment") == 1 and V.check({"unlearn/methods.py": commented}) == []
    assert "(-2.0 / self.weights.beta" in methods
    edited = methods.replace("(-2.0 / self.weights.beta", "(-3.0 / self.weights.beta", 1)
    problems = V.check({"unlearn/methods.py": edited})
    assert [p.split(":")[0] + ":" + p.split(":")[1] for p in problems] == ["method:npo"], problems
    assert "bump the version" in problems[0]


def test_a_change_to_a_base_class_names_every_method_built_on_it():
    methods = source("unlearn/methods.py")
    edited = methods.replace("class GradDiff(GradientAscent):\n", "class GradDiff(GradientAscent):\n    extra = 1\n", 1)
    named = {p.split(": ")[0] for p in V.check({"unlearn/methods.py": edited})}
    assert named == {"method:graddiff", "method:npo", "method:idk", "method:random", "method:dpo", "method:pubg"}


def test_a_change_to_the_leak_rules_names_the_methods_and_metrics_that_use_them():
    """The hand-kept list of unlearning sources missed probe/knowledge.py (RANDOM's answers, PUBG's guidance) and
    probe/generate.py (PUBG's teacher answers): an edit there reused old models. Now each names its units."""
    knowledge = source("probe/knowledge.py") + "\nEXTRA_RULE = 1\n"
    assert {p.split(": ")[0] for p in V.check({"probe/knowledge.py": knowledge})} == {
        "method:random", "method:pubg", "metric:privacy", "metric:aftermath", "metric:utility", "attack"}
    generate = source("probe/generate.py") + "\nEXTRA = 1\n"
    assert {p.split(": ")[0] for p in V.check({"probe/generate.py": generate})} == {"method:pubg", "probe", "attack"}


def test_a_change_to_the_renderer_names_the_world():
    """The world was keyed on its config while training hashed world/*.py: an edit to render.py retrained every model
    on a world never redrawn. Now it names the world unit, whose version is in the world's key."""
    render = source("world/render.py") + "\nEXTRA = 1\n"
    assert [p.split(": ")[0] for p in V.check({"world/render.py": render})] == ["world"]


def test_every_module_a_result_imports_belongs_to_its_units():
    """The units a result's key holds (with its inputs' units) cover every lvlmu module it imports."""
    table = V.units()
    methods = [u for u in table if u.startswith("method:")]
    metrics = [u for u in table if u.startswith("metric:")]
    attacks = [u for u in table if u.startswith("attack:")]
    results = {"world/build.py": ["world"], "vision.py": ["world", "training", "vision"],
               "pretrain.py": ["world", "training", "vision", "pretrain"],
               "unlearn/run.py": ["world", "training", "vision", "pretrain", "unlearn", *methods],
               "probe/suite.py": ["world", "training", "probe", *metrics],
               "attack/suite.py": ["world", "training", "attack", *attacks]}
    for entry, names in results.items():
        covered = {m for n in names for m in table[n].modules} | set(V.REGISTRY_MODULES.values())
        loose = sorted(V.import_closure(entry) - covered - set(V.BOOKKEEPING))
        assert not loose, f"{entry} imports {loose}, which no unit of its key covers"


@pytest.mark.parametrize("kind", ["method", "metric", "attack"])
def test_a_registered_unit_declares_the_modules_it_uses(kind):
    """Every lvlmu name a method's class or a metric's function refers to comes from a module of its unit, or of the
    core units its key also holds."""
    table = V.units()
    registry = V.REGISTRY_MODULES[kind]
    tree = ast.parse(source(registry))
    imported = V.imported_names(registry)  # inside functions too: SIU and PUBG import their modules there
    assert ("unlearn/siu.py" if kind == "method" else "world/questions.py") in imported.values()
    core = {m for name in ("training", {"method": "unlearn", "metric": "probe", "attack": "attack"}[kind], "world") for m in table[name].modules}
    for unit in (u for u in table.values() if u.name.startswith(kind)):
        nodes = [n for n in tree.body if getattr(n, "name", None) in unit.objects]
        used = {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name)}
        missing = {imported[name] for name in used if name in imported} - set(unit.modules) - core - set(V.BOOKKEEPING)
        assert not missing, f"{unit.name} uses {sorted(missing)} without declaring them in lvlmu.versions"


def keys(monkeypatch=None) -> dict[str, str]:
    plan = jobs(get_profile("quick"), Path("artifacts"), Path("."))
    return {name: job.key for name, job in plan.items()}


def changed(before: dict, after: dict) -> set[str]:
    return {name for name in before if before[name] != after[name]}


def test_keys_are_stable_and_a_method_bump_changes_only_its_grid_jobs_and_the_chapters(monkeypatch):
    before = keys()
    assert keys() == before
    monkeypatch.setattr(METHODS["npo"], "version", METHODS["npo"].version + 1)
    after = keys()
    chapters = {n for n in before if n.startswith("chapter-")}
    # its runs' models change, so their attacks run again too; the forget split's runs are one job per world, and its
    # single-image runs share a job with every third method's (lvlmu.study.SINGLE_METHOD_JOBS), whose other runs are
    # reused; and its augmentation ablation's job
    jobs_of_npo = ("grid-split", "grid-single-ga-npo-dpo", "grid-single-augmented", "attack-split", "attack-single")
    assert changed(before, after) == {f"{w}-{j}" for w in ("w1", "w2") for j in jobs_of_npo} | chapters


def test_an_attack_bump_changes_no_model_and_no_probe(monkeypatch):
    from lvlmu.attack.suite import ATTACKS

    before = keys()
    monkeypatch.setattr(ATTACKS["quantization"], "version", ATTACKS["quantization"].version + 1)
    chapters = {n for n in before if n.startswith("chapter-")}
    assert changed(before, keys()) == {f"{w}-attack-{j}" for w in ("w1", "w2") for j in ("references", "split", "single")} | chapters


def test_a_metric_bump_changes_no_model(monkeypatch):
    before = keys()
    monkeypatch.setattr(suite.METRICS["privacy"], "version", suite.METRICS["privacy"].version + 1)
    moved = changed(before, keys())
    assert not moved & {"w0-world", "vision", *(f"{w}-{m}" for w in ("w1", "w2") for m in ("world", "base", "oracle")), "w1-oracle_seed1"}
    assert {f"{w}-{j}" for w in ("w1", "w2") for j in ("probe-base", "probe-oracle", "references")} <= moved
    assert "w1-probe-oracle_seed1" not in moved, "the second oracle is probed for truth ratios alone"
    from lvlmu.unlearn.run import unlearn_key

    study = get_profile("quick")
    plan = jobs(study, Path("artifacts"), Path("."))
    planned = {run["name"]: run["config"] for job in plan.values() if job.kind == "grid" for run in job.spec["runs"]}
    # the runs as planned (their settings read from the tuning's file) are the runs the probes' bump leaves unchanged
    assert planned == {f"{w}-{run.name}": asdict(run.config) for w in ("w1", "w2") for run in tuned(study).unlearn.runs()}
    assert {name[:2] for name in planned if "-augmented-" in name} == {"w1", "w2"}, "the augmentation ablation runs on every world"
    runs = {run.name: unlearn_key(run.config, plan["w1-world"].key, plan["w1-base"].key) for run in tuned(study).unlearn.runs()}
    monkeypatch.undo()
    plan = jobs(study, Path("artifacts"), Path("."))
    assert runs == {run.name: unlearn_key(run.config, plan["w1-world"].key, plan["w1-base"].key) for run in tuned(study).unlearn.runs()}


def test_a_world_bump_changes_every_key(monkeypatch):
    from lvlmu.world import build

    before = keys()
    monkeypatch.setattr(build, "WORLD_VERSION", build.WORLD_VERSION + 1)
    assert changed(before, keys()) == set(before)


def test_a_grid_change_moves_only_the_affected_jobs():
    study = get_profile("quick")
    before = {n: j.key for n, j in jobs(study, Path("artifacts"), Path(".")).items()}
    grid = replace(study.unlearn, split_hyperparameters={**study.unlearn.split_hyperparameters, "ga": {"learning_rate": 5e-4}})
    plan = jobs(replace(study, unlearn=grid), Path("artifacts"), Path("."))
    # GA's split runs move; its single-image runs have their own tuned setting and do not.
    moved = {f"{w}-grid-split" for w in ("w1", "w2")}
    readers, grown = set(), True
    while grown:  # every job downstream of the moved ones (the attacks chapter reads the grid through its attacks)
        downstream = {n for n, j in plan.items() if (moved | readers) & set(j.needs)}
        grown, readers = not downstream <= readers, readers | downstream
    assert readers >= {"chapter-compare", "chapter-claims", "chapter-intro", "chapter-rerun", "chapter-attacks", "w1-attack-split"}
    assert changed(before, {n: j.key for n, j in plan.items()}) == moved | readers
