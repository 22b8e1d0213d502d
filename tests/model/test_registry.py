"""The saved-model registry and the files helper (no TensorFlow: models are fake bytes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import random_crop

from model.api import remove_person
from model.core import files, registry
from model.school.gallery import Gallery


def _save_fake(path: Path) -> None:
    path.write_bytes(b"keras weights")


def _store(models: Path, ids: list[str], names: list[str] | None = None) -> Path:
    card = {"match_rule": {}, "training": {registry.TRAINED_ON_IDS: ids}}
    if names is not None:
        card["training"][registry.TRAINED_ON] = names
    return registry.store_model(_save_fake, models, card)


def test_a_model_and_its_card_are_published_as_one_unit(tmp_path):
    models = tmp_path / "models"
    path = _store(models, ["id-1"])
    assert path.name == registry.MODEL_FILE and path.parent.parent == models
    assert json.loads(registry.sidecar_path(path).read_text())["training"]["trained_on_ids"] == ["id-1"]
    assert [p.name for p in models.iterdir()] == [path.parent.name]  # no temporaries left
    registry.activate_model(models, path)
    assert registry.finetuned_model_path(models) == path
    assert registry.model_units(models) == [path]
    second = _store(models, ["id-2"])
    assert second.parent != path.parent


def test_a_failed_save_leaves_nothing(tmp_path):
    models = tmp_path / "models"

    def fails(path: Path) -> None:
        path.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        registry.store_model(fails, models, {})
    assert list(models.iterdir()) == []


def test_deletion_follows_the_person_through_a_rename(tmp_path):
    """The issue's case: rename a person, then delete them: the fine-tuned model that
    learned from their photos must go too (its card holds their id, not a name)."""
    gallery = Gallery(tmp_path / "gallery")
    gallery.add_crops("Ada Lovelace", [random_crop(1), random_crop(2)], consent=True)
    gallery.add_crops("Alan Turing", [random_crop(3), random_crop(4)], consent=True)
    ids = gallery.person_ids()
    models = tmp_path / "models"
    both = _store(models, sorted(ids.values()))
    alan_only = _store(models, [ids["Alan Turing"]])
    registry.activate_model(models, both, previous=alan_only)
    gallery.rename_person("Ada Lovelace", "Ada King")

    class Book:
        def forget_person(self, person: str) -> int:
            assert person == "Ada King"
            return 3

    removal = remove_person(gallery, models, "ada king", forget_attendance=Book())
    assert removal.models == [both] and removal.attendance_rows == 3 and removal.photos == 2
    assert not both.parent.exists() and alan_only.exists()
    assert registry.finetuned_model_path(models) is None  # back to the shipped base model
    assert [p.name for p in gallery.people()] == ["Alan Turing"]


def test_sweep_removes_dead_writers_temporaries_only(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    left = models / f"{files.TEMP_PREFIX}{dead}-abc.keras"
    left.write_bytes(b"partial")
    staging = models / f"{files.TEMP_PREFIX}{dead}-def"
    staging.mkdir()
    mine = files.temporary_path(models / "x", ".keras")
    mine.write_bytes(b"being written")
    cardless = models / "finetuned-old.keras"
    cardless.write_bytes(b"no card")
    whole = _store(models, [])
    removed = registry.sweep(models)
    assert set(removed) == {left, staging, cardless}
    assert mine.exists() and whole.exists()
    # Old enough and without a pid, a temporary is an orphan too.
    legacy = models / ".tmp-k2j3h4.keras"
    legacy.write_bytes(b"x")
    os.utime(legacy, (0, 0))
    assert files.sweep_temporaries(models) == [legacy]


def test_atomic_write_replaces_whole_files(tmp_path):
    target = tmp_path / "a" / "card.json"
    files.atomic_write_text(target, "one")
    files.atomic_write_text(target, "two")
    assert target.read_text() == "two" and os.listdir(target.parent) == ["card.json"]
