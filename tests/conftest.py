"""Shared fixtures: a micro world and a micro pretrained model, built once per test session."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from lvlmu.numerics import use_portable_numerics  # noqa: E402  (before torch: the numbers of any x86-64 CPU)

use_portable_numerics()

import importlib.util

import pytest
import torch

from lvlmu.pretrain import PretrainConfig
from lvlmu.vision import VisionPretrainConfig
from lvlmu.world import WorldConfig, build_world

torch.set_num_threads(2)

MICRO_WORLD = WorldConfig(n_known=6, forget_fraction=0.34, n_strangers=30, n_holdout=3, trained_images=2, unseen_images=1,
                          stranger_trained_images=1, stranger_unseen_images=1, holdout_images=1, n_scenes=12, image_size=32, seed=3)
MICRO_VISION = VisionPretrainConfig(epochs=4, batch_size=16, logging_steps=2)
MICRO_PRETRAIN = PretrainConfig(epochs=2, batch_size=16, learning_rate=3e-3, logging_steps=2)


@pytest.fixture(scope="session")
def micro_world(tmp_path_factory):
    return build_world(MICRO_WORLD, tmp_path_factory.mktemp("world") / "world", progress=False)


@pytest.fixture(scope="session")
def micro_vision_dir(micro_world, tmp_path_factory):
    from lvlmu.vision import pretrain_vision

    out = tmp_path_factory.mktemp("models") / "vision"
    pretrain_vision(micro_world, out, MICRO_VISION, progress_bar=False)
    return out


@pytest.fixture(scope="session")
def micro_model_dir(micro_world, micro_vision_dir, tmp_path_factory):
    from lvlmu.pretrain import pretrain

    out = tmp_path_factory.mktemp("models") / "base"
    pretrain(micro_world, out, MICRO_PRETRAIN, vision_dir=micro_vision_dir, progress_bar=False)
    return out


def pytest_collection_modifyitems(config, items):
    """Tests marked `qwen` need torchvision (Qwen's processors): without it they are skipped, saying where they run."""
    if importlib.util.find_spec("torchvision") is not None:
        return
    skip = pytest.mark.skip(reason="needs torchvision (Qwen's processors): run `make test-qwen`, which builds .venv-qwen")
    for item in items:
        if "qwen" in item.keywords:
            item.add_marker(skip)
