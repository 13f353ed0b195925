import json

import pytest
import torch

import numpy as np

from lvlmu.data import IGNORE_INDEX, ShiftMirror, VisionTextCollator
from lvlmu.model import build_tiny, count_parameters, get_preset, load_model, save_model
from lvlmu.pretrain import world_corpus
from lvlmu.world.people import FIRST_NAMES, INVENTED_FIRST, INVENTED_LAST, LAST_NAMES


@pytest.fixture(scope="module")
def tiny(micro_world):
    return build_tiny(world_corpus(micro_world), "tiny", micro_world.config.image_size, seed=0)


def test_tokenizer_round_trip_covers_every_text_and_name(micro_world, tiny):
    tokenizer = tiny[1].tokenizer
    texts = [t for ex in micro_world.examples for t in (ex["question"], ex["answer"])]
    for text in texts + FIRST_NAMES + LAST_NAMES + INVENTED_FIRST + INVENTED_LAST:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids) == text
    for person in micro_world.people.values():
        if person.is_named:  # names of the world's people are whole tokens or close to it
            assert len(tokenizer(" " + person.first_name, add_special_tokens=False)["input_ids"]) <= 2


def test_special_tokens_are_stripped_on_decode(tiny):
    processor = tiny[1]
    text = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Who is this?"}]}],
                                         add_generation_prompt=True, tokenize=False)
    assert text.startswith(processor.tokenizer.bos_token) and "<image>" in text and text.endswith("ASSISTANT:")
    ids = processor.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert "USER" not in processor.tokenizer.decode(ids, skip_special_tokens=True)


def test_collator_puts_the_loss_on_answer_tokens_only(micro_world, tiny):
    model, processor = tiny
    tokenizer = processor.tokenizer
    examples = [micro_world.select("train", kind="identity")[0], micro_world.select("train", kind="fact_text")[0],
                micro_world.select("train", kind="description")[0]]
    batch = VisionTextCollator(processor, micro_world.image)(examples)
    image_token_id = tokenizer.convert_tokens_to_ids(processor.image_token)
    assert batch["pixel_values"].shape[0] == 2, "two of the three examples have an image"
    for i, ex in enumerate(examples):
        ids, labels, attention = batch["input_ids"][i].tolist(), batch["labels"][i].tolist(), batch["attention_mask"][i].tolist()
        answer_ids = tokenizer(" " + ex["answer"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        n_real = sum(attention)
        start = n_real - len(answer_ids)
        for position, (token, label, real) in enumerate(zip(ids, labels, attention)):
            if not real or position < start:
                assert label == IGNORE_INDEX, f"example {i}: position {position} ({tokenizer.decode([token])!r}) must be masked"
            else:
                assert label == token == answer_ids[position - start], f"example {i}: answer position {position} must be labelled"
        assert all(label == IGNORE_INDEX for token, label in zip(ids, labels) if token == image_token_id)
        assert ids.count(image_token_id) == (model.config.image_seq_length if ex["image_id"] else 0)
    output = model(**batch)
    assert torch.isfinite(output.loss)


def test_augmentation_shifts_every_image_and_mirrors_only_where_allowed(micro_world):
    image = micro_world.image(micro_world.images[0]["image_id"])
    pixels = np.asarray(image)
    shifted = [np.asarray(im) for im in ShiftMirror(max_shift=2, seed=0)([image] * 40, [False] * 40)]
    for out in shifted:  # a circular shift: the same pixels, moved by at most 2 in each direction
        assert any(np.array_equal(out, np.roll(pixels, (dy, dx), axis=(0, 1))) for dx in range(-2, 3) for dy in range(-2, 3))
    assert any(not np.array_equal(out, pixels) for out in shifted)
    mirrored = [np.asarray(im) for im in ShiftMirror(max_shift=0, seed=0)([image] * 40, [True] * 40)]
    flips = [np.array_equal(out, pixels[:, ::-1]) for out in mirrored]
    assert all(f or np.array_equal(out, pixels) for f, out in zip(flips, mirrored)) and 5 < sum(flips) < 35
    again = [np.asarray(im) for im in ShiftMirror(max_shift=2, seed=0)([image] * 40, [False] * 40)]
    assert all(np.array_equal(a, b) for a, b in zip(shifted, again)), "the same seed gives the same augmentation"
    with pytest.raises(ValueError, match="max_shift"):
        ShiftMirror(max_shift=-1)


def test_save_and_reload_offline_is_identical(micro_world, tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, processor = tiny
    save_model(model, processor, tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "model.safetensors").exists() and (tmp_path / "ckpt" / "chat_template.jinja").exists()
    again, again_processor = load_model(tmp_path / "ckpt")
    batch = VisionTextCollator(processor, micro_world.image)(micro_world.select("train")[:4])
    batch_again = VisionTextCollator(again_processor, micro_world.image)(micro_world.select("train")[:4])
    for key in batch:
        # Where torchvision is installed, the reloaded processor is CLIP's fast (torch) one: pixels agree to 3e-7.
        assert torch.allclose(batch[key], batch_again[key], rtol=0, atol=1e-6) if key == "pixel_values" else torch.equal(batch[key], batch_again[key]), key
    model.eval(), again.eval()
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, again(**batch).logits)


def test_presets_and_their_errors(tmp_path):
    assert 1_000_000 < count_parameters(build_tiny(["a b c"], "tiny", 32)[0]) < 6_000_000
    with pytest.raises(ValueError, match=r"unknown model preset 'huge'.*small.*tiny"):
        get_preset("huge")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_model(tmp_path / "empty")


def test_micro_pretraining_loss_falls_and_manifest_is_complete(micro_model_dir):
    history = json.loads((micro_model_dir / "log_history.json").read_text())
    losses = [h["loss"] for h in history if "loss" in h]
    assert len(losses) >= 3 and losses[-1] < 0.6 * losses[0]
    manifest = json.loads((micro_model_dir / "manifest.json").read_text())
    assert manifest["effective_batch_size"] == 16 and manifest["seeds"]["model_init"] == 0
    assert manifest["versions"]["torch"] and manifest["versions"]["transformers"]
    assert not (micro_model_dir / "trainer").exists()
    load_model(micro_model_dir)


def test_grounding_stage_teaches_what_is_visible_never_who(micro_world):
    from lvlmu.pretrain import PretrainConfig, grounding_examples, training_examples
    from lvlmu.probe import leaks_name

    config = PretrainConfig()
    grounding = grounding_examples(micro_world, config)
    assert {ex["kind"] for ex in grounding} >= {"description", "identity", "vqa", "pope"}
    named = [p for p in micro_world.people.values() if p.is_named]
    for ex in grounding:
        assert not any(leaks_name(ex["answer"], p) for p in named), ex
    oracle = training_examples(micro_world, PretrainConfig(exclude_roles=("forget",)))
    assert not any(ex["role"] == "forget" for ex in oracle)
    base = training_examples(micro_world, config)
    text_facts = [ex for ex in base if ex["kind"] == "fact_text"]
    assert len(text_facts) == config.known_repeats * config.text_fact_repeats * len(micro_world.select("train", kind="fact_text"))
    scenes = [ex for ex in base if ex["role"] == "scene"]
    assert len(scenes) == config.scene_repeats * len(micro_world.select("train", role="scene")) and config.scene_repeats > 1
