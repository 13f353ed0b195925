"""Where one model's probe results live: a summary JSON (manifest and one summary per metric) and per-sample JSONL.

Each metric is saved as soon as it is computed, samples first and summary last, so an interrupted run keeps every
finished metric and a rerun computes only what is missing. Results of another model or another world version are
never mixed in or overwritten: opening them raises.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from ..io import hash_json, package_versions, read_jsonl, write_json, write_jsonl
from ..precision import runtime


class ResultsMismatch(ValueError):
    """The results directory holds results of another model or world version."""


def model_key(model_dir: str | os.PathLike) -> str:
    """A model's key: the one its lvlmu manifest records (the versions of the code that made it, its config and its
    inputs), or for a checkpoint lvlmu did not make, its config and weight files' sizes and times (cheap, even for
    large ones)."""
    model_dir = Path(model_dir)
    manifest = model_dir / "manifest.json"
    key = json.loads(manifest.read_text()).get("key") if manifest.exists() else None
    if key:
        return key
    weights = sorted(p for p in model_dir.glob("*.safetensors")) + sorted(model_dir.glob("*.bin"))
    return hash_json({"config": (model_dir / "config.json").read_text() if (model_dir / "config.json").exists() else None,
                      "weights": [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in weights]})


class ProbeStore:
    def __init__(self, directory: str | os.PathLike, model_dir: str | os.PathLike, world_fingerprint: str, seed: int = 0,
                 replace_stale: bool = False):
        """Open (or start) the results of the model in `model_dir` on the world with `world_fingerprint`.

        Results of another model, model version or world raise ResultsMismatch; with `replace_stale`, they are
        deleted, and the fact printed.
        """
        self.directory = Path(directory)
        self.summary_path = self.directory / "summary.json"
        identity = {"model": str(Path(model_dir).resolve()), "model_key": model_key(model_dir),
                    "world_fingerprint": world_fingerprint}
        self.data = {"manifest": {**identity, "seed": seed, "versions": package_versions(), "runtime": runtime(), "created": time.time()}, "metrics": {}}
        if self.summary_path.exists():
            found = json.loads(self.summary_path.read_text())
            stale = {k: found["manifest"].get(k) for k in identity if found["manifest"].get(k) != identity[k]}
            if not stale:
                self.data = found
            elif replace_stale:
                print(f"{self.directory} held results of another model, model version or world ({sorted(stale)}): replacing them")
                shutil.rmtree(self.directory)
            else:
                raise ResultsMismatch(f"{self.directory} holds results whose {sorted(stale)} differ from this model and world: "
                                      "choose another results directory, delete this one, or pass replace_stale=True")

    @classmethod
    def read(cls, directory: str | os.PathLike) -> "ProbeStore":
        """Open stored results for reading, without the model (say, to compare runs); a missing one names itself."""
        path = Path(directory) / "summary.json"
        if not path.exists():
            raise FileNotFoundError(f"no probe results at {directory}: run the probes (or the pipeline stage that makes them) first")
        store = cls.__new__(cls)
        store.directory, store.summary_path, store.data = Path(directory), path, json.loads(path.read_text())
        return store

    def has_metric(self, metric: str) -> bool:
        return metric in self.data["metrics"]

    def has(self, metric: str, parameters: dict) -> bool:
        entry = self.data["metrics"].get(metric)
        return entry is not None and entry["parameters"] == json.loads(json.dumps(parameters)) and self.samples_path(metric).exists()

    def samples_path(self, metric: str) -> Path:
        return self.directory / "samples" / f"{metric.replace('/', '__')}.jsonl"

    def save(self, metric: str, parameters: dict, samples: list[dict], summary: dict, wall_seconds: float) -> None:
        if metric in self.data["metrics"] and not self.has(metric, parameters):
            print(f"recomputed {metric}: its parameters changed; the new results replace the old ones")
        write_jsonl(self.samples_path(metric), samples)
        self.data["metrics"][metric] = {"parameters": parameters, "summary": summary, "wall_seconds": wall_seconds}
        write_json(self.summary_path, self.data)

    def summary(self, metric: str) -> dict:
        return self.data["metrics"][metric]["summary"]

    def samples(self, metric: str) -> list[dict]:
        return read_jsonl(self.samples_path(metric))
