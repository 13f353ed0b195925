"""Declared versions of the code that decides a result, the keys built from them, and the guard that keeps them honest.

A *unit* is a piece of lvlmu whose code decides results: the world builder, the shared training code, the vision and
pretraining recipes, the unlearning driver, each unlearning method, the probe driver and each probe metric, and the
report code the chapters draw with. Each declares a version where it lives (`WORLD_VERSION`, `@register("npo",
version=2)`, `@metric("privacy", version=1)`, ...). A result's key holds the versions of exactly the units it uses,
its config and the keys of its inputs: a comment changes no key, a version bump changes the keys of the results that
use the unit, and the engine reruns those alone.

The guard (`python -m lvlmu versions`, and the test suite) hashes each unit's code, its syntax tree without comments,
docstrings or its own version number, against the table recorded in `versions.json`, and names every unit whose code
changed while its version did not.
"""
from __future__ import annotations

import ast
import hashlib
import importlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
TABLE = PACKAGE_DIR / "versions.json"

# Modules whose code decides no number: storage, bookkeeping, the command line and the engine. The guard checks that
# every other module a result imports belongs to one of that result's units.
BOOKKEEPING = ("__init__.py", "__main__.py", "io.py", "versions.py", "numerics.py", "notebook.py", "study.py", "tasks.py",
               "engine.py", "probe/store.py", "probe/__init__.py", "unlearn/__init__.py", "world/__init__.py",
               "model/__init__.py", "report/__init__.py", "attack/__init__.py",
               "attack/command.py", "cli.py", "model/random_checkpoints.py", "unlearn/grid.py")
ENGINE = ("versions.py", "study.py", "tasks.py", "engine.py", "__main__.py")
# The modules of the shared units: where each declares its version, and the code it covers (paths in the package;
# a module that holds registered methods or metrics covers what is left of it once they are taken out).
CORE_UNITS: dict[str, tuple[str, tuple[str, ...]]] = {
    "world": ("world.build:WORLD_VERSION", ("world/build.py", "world/people.py", "world/traits.py", "world/render.py",
                                            "world/questions.py", "world/concepts.py")),
    "training": ("training:TRAINING_VERSION", ("training.py", "data.py", "answers.py", "precision.py", "model/build.py",
                                               "model/tokenizer.py")),
    "vision": ("vision:VISION_VERSION", ("vision.py",)),
    "pretrain": ("pretrain:PRETRAIN_VERSION", ("pretrain.py",)),
    # (unlearn/grid.py only names the runs: each run's key holds its whole config, so it decides no number itself.)
    "unlearn": ("unlearn.run:UNLEARN_VERSION", ("unlearn/run.py", "unlearn/data.py", "unlearn/methods.py")),
    # unlearn/results.py decides which people and references a grid run is probed on (probe_run).
    "probe": ("probe.suite:PROBE_VERSION", ("probe/suite.py", "probe/generate.py", "unlearn/results.py")),
    # The attack driver: what every attack reads its leaks with (lvlmu.attack.suite).
    "attack": ("attack.suite:ATTACK_VERSION", ("attack/suite.py", "probe/generate.py", "probe/knowledge.py")),
    # The tuning's selection rule (lvlmu.unlearn.tuning): which setting of each method the study runs.
    "tuning": ("unlearn.tuning:TUNING_VERSION", ("unlearn/tuning.py",)),
    "report": ("report:REPORT_VERSION", ("report/figures.py", "report/claims.py", "report/intervals.py", "report/findings.py", "report/attacks.py",
                                         "report/environment.py", "probe/compare.py",
                                         "probe/recall.py", "unlearn/results.py", "adapt.py", "estimate.py")),
}
# The modules a registered method or metric uses besides its own code (the guard checks that every lvlmu name it
# refers to comes from one of them or from its registry module).
METHOD_MODULES = {"siu": ("unlearn/siu.py",), "pubg": ("unlearn/pubg.py", "probe/generate.py", "probe/knowledge.py"),
                  "random": ("probe/knowledge.py",)}
METRIC_MODULES = {"privacy": ("probe/knowledge.py", "probe/perturb.py"), "truth_ratio": ("probe/likelihood.py", "probe/perturb.py"),
                  "membership": ("probe/likelihood.py",), "visual_membership": ("probe/likelihood.py",), "aftermath": ("probe/aftermath.py", "probe/grammar.py", "probe/knowledge.py", "probe/likelihood.py"),
                  "utility": ("probe/aftermath.py", "probe/knowledge.py")}
ATTACK_MODULES = {"relearn_named_photo": ("attack/relearn.py",), "relearn_benign": ("attack/relearn.py",),
                  "relearn_unrelated": ("attack/relearn.py",), "quantization": ("attack/quantize.py",),
                  "logit_lens": ("attack/lens.py", "probe/likelihood.py")}
REGISTRY_MODULES = {"method": "unlearn/methods.py", "metric": "probe/suite.py", "attack": "attack/suite.py"}


@dataclass(frozen=True)
class Unit:
    name: str
    version: int
    modules: tuple[str, ...]  # whole modules (less any registered objects they hold)
    objects: tuple[str, ...] = ()  # top-level classes or functions of the registry module, for a method or metric


def _registries() -> dict[str, dict]:
    from .attack.suite import ATTACKS
    from .probe.suite import METRICS
    from .unlearn.methods import METHODS

    return {"method": METHODS, "metric": METRICS, "attack": ATTACKS}


def units() -> dict[str, Unit]:
    """Every unit with its declared version and its code."""
    out = {}
    for name, (where, modules) in CORE_UNITS.items():
        module, attribute = where.split(":")
        out[name] = Unit(name, getattr(importlib.import_module(f"lvlmu.{module}"), attribute), modules)
    registries = _registries()
    for name, method in registries["method"].items():
        chain = [c.__name__ for c in method.__mro__ if c.__module__ == method.__module__ and getattr(c, "method_name", "")]
        out[f"method:{name}"] = Unit(f"method:{name}", method.version, METHOD_MODULES.get(name, ()), tuple(chain))
    for name, function in registries["metric"].items():
        out[f"metric:{name}"] = Unit(f"metric:{name}", function.version, METRIC_MODULES.get(name, ()), (function.__name__,))
    for name, function in registries["attack"].items():
        out[f"attack:{name}"] = Unit(f"attack:{name}", function.version, ATTACK_MODULES.get(name, ()), (function.__name__,))
    return out


def versions(names: Iterable[str]) -> dict[str, int]:
    """The declared versions of the named units ("metric:*" stands for every metric, "method:*" for every method)."""
    table = units()
    out = {}
    for name in names:
        matched = [u for u in table if u.startswith(name[:-1])] if name.endswith(":*") else [name]
        for unit in matched:
            if unit not in table:
                raise KeyError(f"no unit {unit!r}; the units are {sorted(table)}")
            out[unit] = table[unit].version
    return out


def changed_since(before: dict[str, int], names: Iterable[str]) -> list[str]:
    """What changed among the named units since `before` ({unit: version}, as `versions` gave it then): one line
    ("method:npo version 1, now 2") for each unit whose declared version is not the one recorded."""
    return [f"{unit} version {before.get(unit, 'none')}, now {version}" for unit, version in versions(names).items()
            if before.get(unit) != version]


def jsonable(config) -> object:
    """A config as its key sees it: a dataclass's fields, as JSON types (tuples become lists)."""
    return json.loads(json.dumps(asdict(config) if is_dataclass(config) else config))


def result_key(unit_names: Iterable[str], config, inputs: dict[str, str | None], numerics: bool = True) -> str:
    """A result's key: the versions of the units it uses, its config and the keys of its inputs, and (for anything
    computed with torch) the instruction-set variables, since a run held to AVX2 and one without compute other bits."""
    from .io import hash_json

    record = {"units": versions(unit_names), "config": jsonable(config), "inputs": inputs}
    if numerics:
        from .numerics import isa_variables

        record["numerics"] = isa_variables()
    return hash_json(record)[:16]


# ---- the guard: each unit's code, hashed without comments, docstrings or version numbers ----

def _strip(node: ast.AST) -> ast.AST:
    """The node without docstrings, version declarations (`X_VERSION = n`) or `version=` arguments of decorators."""
    for parent in ast.walk(node):
        body = getattr(parent, "body", None)
        if isinstance(body, list):
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                body = body[1:] or [ast.Pass()]
            parent.body = [s for s in body if not (isinstance(s, ast.Assign) and len(s.targets) == 1
                                                   and isinstance(s.targets[0], ast.Name) and s.targets[0].id.endswith("VERSION"))]
        for decorator in getattr(parent, "decorator_list", []):
            if isinstance(decorator, ast.Call):
                decorator.keywords = [k for k in decorator.keywords if k.arg != "version"]
    return node


def _tree(path: str, sources: dict[str, str] | None = None) -> ast.Module:
    text = sources[path] if sources and path in sources else (PACKAGE_DIR / path).read_text()
    return ast.parse(text)


def _claimed(table: dict[str, Unit]) -> dict[str, set[str]]:
    """The top-level objects that registered units take out of their registry modules."""
    claimed: dict[str, set[str]] = {}
    for unit in table.values():
        if unit.objects:
            kind = unit.name.split(":")[0]
            claimed.setdefault(REGISTRY_MODULES[kind], set()).update(unit.objects)
    return claimed


def _dump(node: ast.AST) -> str:
    return ast.dump(_strip(node), annotate_fields=False, include_attributes=False)


def code_hash(unit: Unit, table: dict[str, Unit] | None = None, sources: dict[str, str] | None = None) -> str:
    """The hash of a unit's code. `sources` replaces files' text by path (the tests edit code without touching files)."""
    claimed = _claimed(table if table is not None else units())
    parts = []
    for path in unit.modules:
        tree = _tree(path, sources)
        taken = claimed.get(path, set())
        parts.append(path + "\n" + "\n".join(_dump(n) for n in tree.body if getattr(n, "name", None) not in taken))
    if unit.objects:
        kind = unit.name.split(":")[0]
        nodes = {getattr(n, "name", None): n for n in _tree(REGISTRY_MODULES[kind], sources).body}
        parts += [_dump(nodes[name]) for name in unit.objects]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def recorded() -> dict[str, dict]:
    return json.loads(TABLE.read_text()) if TABLE.exists() else {}


def check(sources: dict[str, str] | None = None) -> list[str]:
    """What is wrong with the declared versions, one line per unit: code changed without a version bump, or a
    version or hash that the table does not record yet. Empty when all is well."""
    table, found, problems = units(), recorded(), []
    for name, unit in sorted(table.items()):
        now, before = code_hash(unit, table, sources), found.get(name)
        if before is None:
            problems.append(f"{name}: not in the table; record it with `python -m lvlmu versions --record`")
        elif now != before["code"] and unit.version == before["version"]:
            problems.append(f"{name}: its code changed but its version is still {unit.version}; bump the version "
                            f"(the results that use it will be recomputed), then `python -m lvlmu versions --record`")
        elif (now, unit.version) != (before["code"], before["version"]):
            problems.append(f"{name}: version {before['version']} -> {unit.version}; record it with `python -m lvlmu versions --record`")
    problems += [f"{name}: in the table but no longer a unit; record the table again" for name in sorted(set(found) - set(table))]
    return problems


def record() -> list[str]:
    """Write the table of versions and code hashes; refuses (returning the reasons) while a unit's code changed
    without a version bump."""
    refused = [p for p in check() if "bump the version" in p]
    if refused:
        return refused
    table = units()
    TABLE.write_text(json.dumps({name: {"version": u.version, "code": code_hash(u, table)} for name, u in sorted(table.items())}, indent=1) + "\n")
    return []


def _relative_imports(path: str):
    """Each name a module imports with a relative `from X import name` (inside functions too), as it is bound, with
    the package paths it may come from, in order: `name` as a module of X, X itself, X's __init__."""
    tree, package = _tree(path), Path(path).parent
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package
            for _ in range(node.level - 1):
                base = base.parent
            target = base / node.module.replace(".", "/") if node.module else base
            for alias in node.names:
                candidates = (target / f"{alias.name}.py", target.with_suffix(".py"), target / "__init__.py")
                yield alias.asname or alias.name, [str(c).removeprefix("./") for c in candidates if (PACKAGE_DIR / c).is_file()]


def imported_modules(path: str) -> set[str]:
    """The lvlmu modules (paths in the package) that a module imports, directly."""
    return {module for _, modules in _relative_imports(path) for module in modules}


def imported_names(path: str) -> dict[str, str]:
    """The names a module imports from lvlmu modules, anywhere in it (inside functions too), with the module each
    comes from: `from .siu import siu_examples` gives siu_examples -> unlearn/siu.py, and `from ..world import
    questions as Q` gives Q -> world/questions.py."""
    return {name: modules[0] for name, modules in _relative_imports(path) if modules}


def import_closure(path: str) -> set[str]:
    """Every lvlmu module a module imports, directly or not, itself included."""
    seen, todo = set(), [path]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            if module not in ENGINE:  # the key code and the engine import everything, and decide nothing
                todo += imported_modules(module)
    return seen
