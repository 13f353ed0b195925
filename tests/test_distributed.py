"""Data parallel unlearning through `accelerate launch` with the repository's DDP config: on a machine without GPUs, two
CPU processes (gloo) train together, and the main one writes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lvlmu.model import load_model
from lvlmu.model.random_checkpoints import build_random_checkpoint
from lvlmu.pretrain import world_corpus
from lvlmu.world import export_concept

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(torch.cuda.is_available() and torch.cuda.device_count() < 2, reason="two processes need two GPUs here")
def test_two_processes_unlearn_with_lora_and_the_main_one_writes(micro_world, tmp_path):
    checkpoint = build_random_checkpoint("llava", tmp_path / "checkpoint", world_corpus(micro_world))
    concepts = export_concept(micro_world, tmp_path / "concept", n_retain=2, n_holdout=2)
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [str(accelerate), "launch", "--config_file", str(REPO / "accelerate" / "ddp.yaml"), "--num_processes", "2",
               "-m", "lvlmu", "unlearn", "--model", str(checkpoint), "--concepts", str(concepts), "--method", "graddiff",
               "--lora", "--out", str(tmp_path / "out"), "--config", json.dumps({"steps": 2, "batch_size": 2, "threads": 1})]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["processes"] == 2 and manifest["effective_batch_size"] == 4
    assert result.stdout.count("[lvlmu] unlearned") == 1, "only the main process reports and writes"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")], "no temporary directory is left behind"
    load_model(tmp_path / "out")
