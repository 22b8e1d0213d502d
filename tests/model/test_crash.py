"""kill -9 at every durable step of enroll, remove and saving a model (and at a few
points of a real fine-tune): after the next start-up's recovery the gallery, the
active model and the embedding cache are whole, and hold the old state or the new one."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEmbedder, random_crop

from model.api import recover_after_crash
from model.core import registry
from model.school.gallery import CACHE_DIR, Gallery, _read_npz
from model.settings import get_settings

CHILD = Path(__file__).with_name("crash_child.py")
#: Hidden entries that belong in a gallery (everything else hidden is a leftover).
GALLERY_HIDDEN = {".lock", CACHE_DIR}


def _run(scenario: str, data: Path, at: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CHILD), scenario, str(data), str(at)],
                          capture_output=True, text=True, timeout=300)


def _seed(data: Path) -> None:
    gallery = Gallery(data / "gallery")
    gallery.add_crops("Ada Lovelace", [random_crop(i) for i in range(3)], consent=True)
    gallery.add_crops("Alan Turing", [random_crop(10 + i) for i in range(3)], consent=True)
    gallery.embeddings(FakeEmbedder())
    ids = gallery.person_ids()
    old = registry.store_model(lambda p: p.write_bytes(b"old weights"), data / "models",
                               {"match_rule": {}, "training": {"trained_on_ids": [ids["Ada Lovelace"]]}})
    registry.activate_model(data / "models", old)


def _state(data: Path) -> dict[str, object]:
    """What a user could observe: people and their photos, the active model's bytes."""
    gallery = Gallery(data / "gallery")
    active = registry.finetuned_model_path(data / "models")
    return {"people": {p.name: sorted(x.name for x in gallery.image_paths(p.name))
                       for p in gallery.people()},
            "active": active.read_bytes()[:11] if active else None}


def _check_whole(data: Path) -> None:
    settings = get_settings()
    gallery = Gallery(data / "gallery")
    recover_after_crash(settings.__class__(data_dir=data, gallery_dir=data / "gallery",
                                           lfw_dir=settings.lfw_dir,
                                           base_model_path=settings.base_model_path))
    hidden = {p.name for p in gallery.root.iterdir() if p.name.startswith(".")}
    assert hidden <= GALLERY_HIDDEN, hidden
    for person in gallery.people():
        folder = gallery.root / person.name
        assert person.image_count >= 1
        assert not [p for p in folder.iterdir() if p.name.startswith(".")]
        assert json.loads((folder / "person.json").read_text())["id"] == person.id
    for cache in (gallery.root / CACHE_DIR).glob("*.npz"):
        with np.load(cache) as loaded:
            assert len(loaded["keys"]) == len(loaded["vectors"])
        assert set(_read_npz(cache)) <= {gallery._memo_hash(p) for _, p, _ in
                                         ((n, x, None) for n, x, _ in gallery._listing())}
    models = data / "models"
    assert not [p for p in models.iterdir() if p.name.startswith(".")], list(models.iterdir())
    active = registry.finetuned_model_path(models)
    assert active is None or registry.read_card(active) is not None
    for unit in models.iterdir():
        if unit.is_dir():
            assert (unit / registry.MODEL_FILE).is_file() and registry.read_card(unit / registry.MODEL_FILE)


@pytest.mark.parametrize("scenario", ["enroll-new", "enroll-more", "remove", "save-model"])
def test_kill_minus_nine_at_every_step(tmp_path, scenario):
    reference = tmp_path / "reference"
    _seed(reference)
    old = _state(reference)
    done = _run(scenario, reference, 0)
    assert done.returncode == 0, done.stderr
    steps = int(done.stdout.split()[-1])
    new = _state(reference)
    assert old != new and steps >= 3
    for at in range(1, steps + 1):
        data = tmp_path / f"kill-{at}"
        _seed(data)
        killed = _run(scenario, data, at)
        assert killed.returncode == -signal.SIGKILL, (at, killed.stderr)
        _check_whole(data)
        assert _state(data) in (old, new), f"killed at step {at} of {steps}"


@pytest.mark.slow
def test_kill_minus_nine_during_a_real_fine_tune(tmp_path):
    """A real fine-tune (TensorFlow, a tiny network) killed at its first, middle and last
    durable steps: saving never leaves a half model, a card-less model or a temporary."""
    import keras

    from model.core import network
    from model.core.recognizer import save_recognizer

    def seed(data: Path) -> None:
        gallery = Gallery(data / "gallery")
        for p in range(3):
            colour = np.random.default_rng(p).integers(0, 256, 3)
            crops = [np.clip(colour + np.random.default_rng(10 * p + i).normal(0, 20, (112, 112, 3)),
                             0, 255).astype(np.uint8) for i in range(5)]
            gallery.add_crops("Person " + "ABC"[p], crops, consent=True)
        (data / "models").mkdir()
        keras.utils.set_random_seed(0)
        embedding = network.build_student_embedding(network.build_compact_backbone(32, 16, 8))
        cohort = np.random.default_rng(0).normal(size=(30, 16)).astype(np.float32)
        save_recognizer(network.build_cosine_siamese(embedding, cohort), data / "base.keras",
                        {"architecture": "student", "trained": True, "kind": "base",
                         "match_rule": {"name_threshold": 2.5}})

    reference = tmp_path / "reference"
    seed(reference)
    done = _run("finetune", reference, 0)
    assert done.returncode == 0, done.stderr
    assert registry.finetuned_model_path(reference / "models") is not None  # it did save one
    steps = int(done.stdout.split()[-1])
    for at in sorted({1, steps // 2, steps}):
        data = tmp_path / f"kill-{at}"
        seed(data)
        killed = _run("finetune", data, at)
        assert killed.returncode == -signal.SIGKILL, (at, killed.stderr[-2000:])
        _check_whole(data)
        active = registry.finetuned_model_path(data / "models")
        if active is not None:
            from model.core.recognizer import load_recognizer

            assert load_recognizer(active).embedding_dim == 16
