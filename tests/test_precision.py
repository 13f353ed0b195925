"""Precision, the instruction sets numbers are computed with, and what the re-run page reports about them."""
import json
import os
import subprocess
import sys
import warnings

import pytest
import torch

from lvlmu.numerics import AVX2_EMULATION, ISA_VARIABLES, PORTABLE_NUMERICS, has_avx2, use_portable_numerics
from lvlmu.precision import PRECISIONS, autocast_arguments, resolve_precision, runtime
from lvlmu.pretrain import PretrainConfig
from lvlmu.report.environment import build_environment, cross_cpu_by_metric, cross_cpu_comparison
from lvlmu.unlearn import UnlearnConfig
from lvlmu.vision import VisionPretrainConfig


@pytest.mark.skipif(torch.cuda.is_available(), reason="describes a CPU machine")
def test_auto_is_fp32_on_a_cpu_and_bad_choices_are_named():
    assert resolve_precision("auto") == "fp32" and autocast_arguments("auto") == {"bf16": False, "fp16": False}
    with warnings.catch_warnings():  # bf16 is not native under the suite's AVX2 hold: it warns, and still runs
        warnings.simplefilter("ignore")
        assert autocast_arguments("bf16") == {"bf16": True, "fp16": False}
    with pytest.raises(ValueError, match="fp16 mixed precision needs a GPU"):
        resolve_precision("fp16")
    for config in (PretrainConfig, VisionPretrainConfig, UnlearnConfig):
        assert config().precision == "auto"
        with pytest.raises(ValueError, match=r"unknown precision 'half'.*auto.*fp32.*bf16"):
            config(precision="half")
    assert set(PRECISIONS) == {"auto", "fp32", "bf16", "fp16"}


@pytest.mark.skipif(torch.cuda.is_available() or not has_avx2(), reason="emulates an x86-64 CPU with AVX2 alone")
def test_bf16_on_a_cpu_without_native_bf16_warns(tmp_path):
    """As a CPU with AVX2 alone (oneDNN held to AVX2): bf16 is not native, and asking for it says what it costs."""
    code = ("import warnings, json; from lvlmu.precision import native_bf16, resolve_precision, runtime\n"
            "with warnings.catch_warnings(record=True) as caught:\n    warnings.simplefilter('always'); resolve_precision('bf16')\n"
            "print(json.dumps({'native': native_bf16(), 'warned': [str(w.message) for w in caught], 'runtime': runtime('bf16')}))")
    env = {k: v for k, v in os.environ.items() if k not in ISA_VARIABLES} | AVX2_EMULATION
    out = json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout)
    assert out["native"] is False
    assert len(out["warned"]) == 1 and "without native bf16" in out["warned"][0] and "AVX2" in out["warned"][0]
    assert out["runtime"]["cpu_capability"] == "AVX2" and out["runtime"]["precision"] == "bf16"
    assert out["runtime"]["isa_variables"] == AVX2_EMULATION


def test_an_accelerate_config_cannot_change_the_precision_unsaid(monkeypatch):
    """`accelerate launch` hands its config's mixed_precision to the Trainer, which obeys it when lvlmu asks for no
    autocast: a disagreeing one is refused, an agreeing or empty one passes."""
    resolved = resolve_precision("auto")
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")
    assert autocast_arguments("auto") == {"bf16": resolved == "bf16", "fp16": False}
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16" if resolved != "fp16" else "bf16")
    with pytest.raises(ValueError, match="accelerate config asks for mixed_precision"):
        autocast_arguments("auto")


@pytest.mark.skipif(torch.cuda.is_available(), reason="describes a CPU machine")
def test_runtime_records_the_machine_and_the_variables_that_held_it():
    record = runtime("auto")
    assert record["device"] == "cpu" and record["precision"] == "fp32" and record["threads"] == torch.get_num_threads()
    assert record["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    if has_avx2():  # the test suite holds itself to AVX2 (conftest), so its numbers are any x86-64 CPU's
        assert record["cpu_capability"] == "AVX2" and record["isa_variables"] == PORTABLE_NUMERICS


def test_portable_numerics_leave_a_callers_choice_alone():
    if not has_avx2():
        assert use_portable_numerics({}) == {}
        return
    environ = {}
    assert use_portable_numerics(environ) == PORTABLE_NUMERICS and environ == PORTABLE_NUMERICS
    chosen = {"ATEN_CPU_CAPABILITY": "avx512"}
    assert use_portable_numerics(chosen) == {} and chosen == {"ATEN_CPU_CAPABILITY": "avx512"}


def test_the_environment_table_groups_models_by_machine(tmp_path):
    versions = {"python": "3.11", "torch": "2.13.0"}
    settings = {"device": "cpu", "cpu_capability": "AVX2", "native_bf16": False, "threads": 1, "precision": "fp32"}
    for name, extra in (("base", {}), ("oracle", {}), ("run", {"threads": 2})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "manifest.json").write_text(json.dumps({"runtime": settings | extra, "versions": versions}))
    table = build_environment({name: tmp_path / name for name in ("base", "oracle", "run", "missing")})
    assert table["models"].tolist() == ["base, oracle", "run"]
    assert table["torch threads"].tolist() == [1, 2] and set(table["precision"]) == {"fp32"}
    assert table["instruction-set variables"].tolist() == ["none", "none"] and table["torch"].tolist() == ["2.13.0"] * 2


def test_the_cross_cpu_sentence_follows_the_record(tmp_path):
    assert "No cross-CPU comparison is recorded" in cross_cpu_comparison(tmp_path / "none.json")[1]

    def result(differing, identical):
        return {"world_identical": True, "first_model_that_differs": "vision" if differing else None, "models_identical": identical,
                "models_compared": 5, "largest_weight_difference": 1e-3 if differing else 0.0, "figures_compared": 100,
                "figures_differing": differing, "by_metric": {"privacy": {"figures": 60, "differing": differing, "largest_difference": 0.25},
                                                              "utility": {"figures": 40, "differing": 0, "largest_difference": 0.0}}}

    record = {"reference": "avx2", "commit": "0123456789abc", "date": "2026-12-03",
              "environments": {"native": {"variables": {}, "runtime": {"cpu_capability": "AVX512"}},
                               "portable": {"variables": PORTABLE_NUMERICS, "runtime": {"cpu_capability": "AVX2"}}},
              "against_reference": {"native": result(37, 0), "portable": result(0, 5)}}
    path = tmp_path / "record.json"
    path.write_text(json.dumps(record))
    table, sentence = cross_cpu_comparison(path)
    assert "AVX512, 37 of 100 figures differed" in sentence and "vision" in sentence
    assert "Held to AVX2, as the study runs by default, 0 of 100 figures differed and 5 of 5 models were bit-identical" in sentence
    assert table["largest difference (metric)"].tolist() == ["0.25 (privacy)", "0"]
    by_metric = cross_cpu_by_metric(path).set_index("metric")
    assert by_metric.loc["privacy", "native: figures that differ"] == "37 of 60" and by_metric.loc["privacy", "native: largest difference"] == 0.25
    assert by_metric.loc["utility", "portable: figures that differ"] == "0 of 40" and cross_cpu_by_metric(tmp_path / "none.json").empty


def test_a_model_computed_in_another_precision_or_instruction_set_is_not_reused(micro_world, micro_vision_dir, tmp_path):
    """A finished run is reused only where this run would compute the same bits: same resolved precision, same
    instruction-set variables (the manifest's runtime)."""
    from conftest import MICRO_VISION
    from lvlmu.training import reusable_manifest
    from lvlmu.vision import vision_key

    manifest = json.loads((micro_vision_dir / "manifest.json").read_text())
    key = vision_key(MICRO_VISION, micro_world.fingerprint)
    assert reusable_manifest(micro_vision_dir, key, MICRO_VISION.precision) is not None
    for changed in ({"precision": "bf16"}, {"isa_variables": {"ATEN_CPU_CAPABILITY": "avx512"}}):
        (tmp_path / "manifest.json").write_text(json.dumps(manifest | {"runtime": manifest["runtime"] | changed}))
        # Not reused, and not silently retrained under the same key either (results built on it would look current).
        with pytest.raises(ValueError, match="another precision or with other instruction-set variables"):
            reusable_manifest(tmp_path, key, MICRO_VISION.precision)


def test_the_study_command_sets_the_hold_before_torch_is_imported():
    """python -m lvlmu study sets the instruction-set variables after importing lvlmu's command line, which must not
    have imported torch by then (its kernels read the variables once, when loaded)."""
    code = "import sys, lvlmu.__main__, lvlmu.numerics, lvlmu.precision; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
