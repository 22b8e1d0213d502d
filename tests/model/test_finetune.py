"""Fine-tuning on a tiny synthetic gallery: reads the folders, trains, checks, versions."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from model.core import registry
from model.core.registry import activate_model, finetuned_model_path
from model.learning import finetune
from model.school.gallery import Gallery

pytestmark = pytest.mark.slow


def _write_gallery(root, people: int = 3, per_person: int = 5, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for p in range(people):
        folder = root / f"Person {p}"
        folder.mkdir(parents=True)
        colour = rng.integers(0, 256, 3)
        for i in range(per_person):
            crop = np.clip(colour + rng.normal(0, 20, (112, 112, 3)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / f"{i}.jpg"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
        (folder / "person.json").write_text(json.dumps({"name": f"Person {p}"}))
        cv2.imwrite(str(folder / "ignored.png"), np.zeros((112, 112, 3), np.uint8))
    hidden = root / ".trash" / "Old Person"
    hidden.mkdir(parents=True)
    cv2.imwrite(str(hidden / "0.jpg"), np.zeros((112, 112, 3), np.uint8))


@pytest.fixture
def base_model(tmp_path):
    import keras

    from model.core import network
    from model.core.recognizer import save_recognizer

    keras.utils.set_random_seed(0)
    embedding = network.build_student_embedding(network.build_compact_backbone(32, 16, 8))
    cohort = np.random.default_rng(0).normal(size=(30, 16)).astype(np.float32)
    siamese = network.build_cosine_siamese(embedding, cohort)
    path = tmp_path / "base.keras"
    save_recognizer(siamese, path, {"architecture": "student", "trained": True, "kind": "base",
                                    "match_rule": {"name_threshold": 2.5}})
    return path


def test_read_gallery_skips_other_files_and_hidden_folders(tmp_path):
    _write_gallery(tmp_path / "gallery", people=2, per_person=3)
    crops, names = finetune.read_gallery(tmp_path / "gallery")
    assert crops.shape == (6, 112, 112, 3) and crops.dtype == np.uint8
    assert sorted(set(names)) == ["Person 0", "Person 1"]
    empty, none = finetune.read_gallery(tmp_path / "missing")
    assert len(empty) == 0 and len(none) == 0


def test_split_holds_out_part_of_each_person():
    labels = np.array(["a"] * 10 + ["b"] * 3 + ["c"] * 2)
    train, held = finetune.split_held_out(labels, 0.3, seed=0)
    assert sorted(np.r_[train, held].tolist()) == list(range(15))
    assert (labels[held] == "a").sum() == 3 and (labels[held] == "b").sum() == 1
    assert (labels[held] == "c").sum() == 0


def test_finetune_a_tiny_gallery(tmp_path, base_model):
    _write_gallery(tmp_path / "gallery")
    models = tmp_path / "models"
    events = []
    result = finetune.finetune_gallery(tmp_path / "gallery", base_model, models,
                                       progress=events.append, epochs=3, learning_rate=1e-3)
    assert result.people == 3 and result.held_out_crops == 6 and result.train_crops == 9
    assert result.before is not None and result.after is not None
    assert [e.done for e in events if e.stage == "train"] == [1, 2, 3]
    assert all(e.loss is not None for e in events if e.stage == "train")
    if result.replaced:
        assert result.model_path is not None and result.model_path.parent.parent == models
        assert finetuned_model_path(models) == result.model_path
        meta = json.loads(result.model_path.with_suffix(".json").read_text())
        assert meta["match_rule"] == {"name_threshold": 2.5}  # never loosened by a class
        assert meta["kind"] == "finetuned" and meta["trained"] is True
        # Whose photos it learned from, by stable id (a rename keeps it), never by name.
        ids = Gallery(tmp_path / "gallery").person_ids()
        assert meta["training"]["trained_on_ids"] == sorted(ids.values()) and len(ids) == 3
        assert "Person 0" not in json.dumps(meta["training"])
        # Only the adapter moved, so the recognizer maps the stored cohort into the new space.
        from model.core.recognizer import load_recognizer

        tuned, base = load_recognizer(result.model_path), load_recognizer(base_model)
        assert tuned.cohort.shape == base.cohort.shape
        adapter = tuned.embedding_model.get_layer("adapter").get_weights()[0]
        assert not np.allclose(adapter, np.eye(16))
        assert meta["training"]["finetuned_from"] == str(base_model)
        assert result.after.pair_accuracy >= result.before.pair_accuracy
        assert registry.restore_previous(models) is None  # back to the base model
        assert finetuned_model_path(models) is None
    else:
        assert result.active_path == base_model and not models.exists()


def test_too_small_a_gallery_is_refused_politely(tmp_path, base_model):
    _write_gallery(tmp_path / "gallery", people=1, per_person=4)
    result = finetune.finetune_gallery(tmp_path / "gallery", base_model, tmp_path / "models")
    assert not result.replaced and result.before is None and "two people" in result.message


def test_older_cards_that_name_people_are_still_forgotten_by_name(tmp_path):
    models = tmp_path / "models"
    models.mkdir()

    def fake_model(stem: str, people: list[str]) -> Path:
        path = models / f"{stem}.keras"
        path.write_bytes(b"weights")
        path.with_suffix(".json").write_text(json.dumps({"training": {"trained_on": people},
                                                         "match_rule": {}}))
        return path

    older = fake_model("finetuned-1", ["Ada Lovelace", "Grace Hopper"])
    newer = fake_model("finetuned-2", ["Ada Lovelace", "Grace Hopper", "Zoë O'Brien-Núñez"])
    activate_model(models, newer, previous=older)
    assert finetuned_model_path(models) == newer
    assert registry.models_trained_on(models, "some-id", ["zoë o'brien-núñez"]) == [newer]
    assert registry.forget_person_models(models, "some-id", ["Zoë O'Brien-Núñez"]) == [newer]
    assert not newer.exists() and not newer.with_suffix(".json").exists() and older.exists()
    assert finetuned_model_path(models) is None  # back to the shipped base model
    assert registry.forget_person_models(models, "other-id", ["Nobody Here"]) == []
    assert registry.forget_person_models(models, None, ["Ada Lovelace"]) == [older]
    assert list(models.glob("*.keras")) == []


def test_a_model_fine_tuned_from_an_older_design_is_not_used(tmp_path):
    """Its card has no open-set rule: the shipped base model takes over."""
    models = tmp_path / "models"
    models.mkdir()
    legacy = models / "finetuned-old.keras"
    legacy.write_bytes(b"weights")
    legacy.with_suffix(".json").write_text(json.dumps({"threshold": 0.5, "identification_threshold": 0.98}))
    activate_model(models, legacy)
    assert finetuned_model_path(models) is None
