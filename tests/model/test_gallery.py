"""The gallery and its embedding cache (a fake embedder: no TensorFlow needed)."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEmbedder, random_crop

from model.errors import ConsentRequiredError, NameTakenError, UnknownPersonError
from model.school.gallery import CACHE_DIR, PERSON_FILE, Gallery, _file_hash, _read_npz


def _cache_keys(root: Path) -> dict[str, set[str]]:
    return {p.name: set(_read_npz(p)) for p in sorted((root / CACHE_DIR).glob("*.npz"))}


@pytest.fixture
def gallery(tmp_path) -> Gallery:
    g = Gallery(tmp_path / "gallery")
    g.add_crops("Ada Lovelace", [random_crop(i) for i in range(3)], consent=True)
    g.add_crops("Alan Turing", [random_crop(10 + i) for i in range(2)], consent=True)
    return g


def test_empty_gallery(tmp_path, fake_embedder):
    g = Gallery(tmp_path / "nothing")
    assert g.people() == [] and len(g) == 0
    emb = g.embeddings(fake_embedder)
    assert len(emb) == 0 and emb.people == ()
    assert fake_embedder.calls == 0


def test_layout_and_people(gallery):
    people = gallery.people()
    assert [(p.name, p.image_count, p.consent) for p in people] == [
        ("Ada Lovelace", 3, True), ("Alan Turing", 2, True)]
    info = json.loads((gallery.root / "Ada Lovelace" / PERSON_FILE).read_text(encoding="utf-8"))
    assert info["name"] == "Ada Lovelace" and info["consent"] is True
    crops = gallery.image_paths("Ada Lovelace")
    assert len(crops) == 3 and all(p.suffix == ".jpg" for p in crops)
    assert gallery.load_crops("ada lovelace")[0].shape == (112, 112, 3)


def test_embeddings_are_cached(gallery, fake_embedder):
    first = gallery.embeddings(fake_embedder)
    assert fake_embedder.calls == 5
    assert first.matrix.shape == (5, fake_embedder.dim) and first.matrix.dtype == np.float32
    assert first.people == ("Ada Lovelace", "Alan Turing")
    assert list(first.person_index) == [0, 0, 0, 1, 1]
    assert list(first.names) == ["Ada Lovelace"] * 3 + ["Alan Turing"] * 2
    gallery.embeddings(fake_embedder)
    assert fake_embedder.calls == 5  # nothing changed: nothing embedded
    # A new process (a fresh Gallery object) reads the cache from disk.
    again = FakeEmbedder()
    reopened = Gallery(gallery.root).embeddings(again)
    assert again.calls == 0
    np.testing.assert_array_equal(reopened.matrix, first.matrix)


def test_adding_a_crop_embeds_only_that_one(gallery, fake_embedder):
    gallery.embeddings(fake_embedder)
    gallery.add_crops("Alan Turing", [random_crop(99)], consent=True)
    emb = gallery.embeddings(fake_embedder)
    assert fake_embedder.calls == 6 and fake_embedder.batches[-1] == 1
    assert len(emb) == 6 and emb.names.count("Alan Turing") == 3


def test_changed_crop_bytes_are_re_embedded(gallery, fake_embedder):
    before = gallery.embeddings(fake_embedder)
    path = gallery.image_paths("Ada Lovelace")[0]
    row = before.paths.index(path)
    from model.core.images import encode_jpeg

    path.write_bytes(encode_jpeg(np.full((112, 112, 3), 7, dtype=np.uint8)))
    after = gallery.embeddings(fake_embedder)
    assert fake_embedder.calls == 6 and fake_embedder.batches[-1] == 1
    row = after.paths.index(path)
    assert not np.allclose(after.matrix[row], before.matrix[before.paths.index(path)])
    assert _file_hash(path) in _cache_keys(gallery.root)[f"{fake_embedder.version}.npz"]


def test_removing_an_image_purges_every_cache(gallery, fake_embedder):
    gallery.embeddings(fake_embedder)
    gallery.embeddings(FakeEmbedder(version="fake-2"))
    path = gallery.image_paths("Ada Lovelace")[1]
    digest = _file_hash(path)
    gallery.remove_image("Ada Lovelace", path)
    assert not path.exists()
    caches = _cache_keys(gallery.root)
    assert set(caches) == {"fake-1.npz", "fake-2.npz"}
    for keys in caches.values():
        assert digest not in keys and len(keys) == 4
    emb = gallery.embeddings(fake_embedder)
    assert len(emb) == 4 and fake_embedder.calls == 5
    with pytest.raises(UnknownPersonError):
        gallery.remove_image("Ada Lovelace", path)


def test_shared_crop_stays_cached_while_still_used(tmp_path, fake_embedder):
    g = Gallery(tmp_path)
    crop = random_crop(5)
    g.add_crops("Ada Lovelace", [crop], consent=True)
    g.add_crops("Alan Turing", [crop], consent=True)  # the same bytes in two folders
    g.embeddings(fake_embedder)
    calls = fake_embedder.calls
    g.remove_person("Ada Lovelace")
    assert len(_cache_keys(tmp_path)["fake-1.npz"]) == 1
    assert len(g.embeddings(fake_embedder)) == 1 and fake_embedder.calls == calls


def test_remove_person_deletes_folder_and_cache_rows(gallery, fake_embedder):
    gallery.embeddings(fake_embedder)
    gallery.embeddings(FakeEmbedder(version="fake-2"))
    digests = {_file_hash(p) for p in gallery.image_paths("Ada Lovelace")}
    gallery.remove_person("ADA LOVELACE")
    assert not (gallery.root / "Ada Lovelace").exists()
    assert [p.name for p in gallery.root.iterdir() if not p.name.startswith(".")] == ["Alan Turing"]
    assert not [p for p in gallery.root.iterdir() if p.name.startswith(".deleting")]
    for keys in _cache_keys(gallery.root).values():
        assert not digests & keys and len(keys) == 2
    emb = gallery.embeddings(fake_embedder)
    assert emb.people == ("Alan Turing",) and fake_embedder.calls == 5
    with pytest.raises(UnknownPersonError):
        gallery.remove_person("Ada Lovelace")


def test_new_model_version_recomputes(gallery, fake_embedder):
    gallery.embeddings(fake_embedder)
    newer = FakeEmbedder(version="fake-2")
    gallery.embeddings(newer)
    assert newer.calls == 5
    gallery.embeddings(fake_embedder)
    assert fake_embedder.calls == 5  # the old version's cache is still valid


def test_damaged_cache_is_rebuilt(gallery, fake_embedder):
    first = gallery.embeddings(fake_embedder)
    cache = gallery.root / CACHE_DIR / f"{fake_embedder.version}.npz"
    cache.write_bytes(b"garbage, not a zip file")
    fresh = FakeEmbedder()
    emb = Gallery(gallery.root).embeddings(fresh)
    assert fresh.calls == 5
    np.testing.assert_allclose(emb.matrix, first.matrix)
    assert len(_read_npz(cache)) == 5  # rewritten whole


def test_no_consent_stores_nothing(tmp_path):
    root = tmp_path / "gallery"
    with pytest.raises(ConsentRequiredError):
        Gallery(root).add_crops("Ada Lovelace", [random_crop(1)], consent=False)
    assert not root.exists() or not [p for p in root.iterdir() if not p.name.startswith(".")]


def test_rename_keeps_embeddings(gallery, fake_embedder):
    before = gallery.embeddings(fake_embedder)
    assert gallery.rename_person("ada lovelace", "Ada King") == "Ada King"
    assert not (gallery.root / "Ada Lovelace").exists()
    info = json.loads((gallery.root / "Ada King" / PERSON_FILE).read_text(encoding="utf-8"))
    assert info["name"] == "Ada King"
    after = gallery.embeddings(fake_embedder)
    assert fake_embedder.calls == 5
    assert after.people == ("Ada King", "Alan Turing")
    np.testing.assert_array_equal(after.matrix, before.matrix)
    with pytest.raises(NameTakenError):
        gallery.rename_person("Ada King", "alan turing")
    assert gallery.rename_person("Ada King", "ADA KING") == "ADA KING"  # case change of oneself


def _enroll_worker(root: str, worker: int, count: int) -> None:
    g = Gallery(root)
    embedder = FakeEmbedder()
    for i in range(count):
        g.add_crops("Shared Person", [random_crop(1000 * worker + i)], consent=True)
        g.add_crops(f"Person {'AB'[worker]}", [random_crop(5000 + 1000 * worker + i)], consent=True)
        if i % 3 == 0:
            g.embeddings(embedder)


def test_two_processes_enrolling_at_once(tmp_path):
    root = tmp_path / "gallery"
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_enroll_worker, args=(str(root), w, 10)) for w in range(2)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=120)
    assert [p.exitcode for p in workers] == [0, 0]
    g = Gallery(root)
    assert {p.name: p.image_count for p in g.people()} == {
        "Person A": 10, "Person B": 10, "Shared Person": 20}
    for folder in root.iterdir():
        assert not folder.name.startswith((".new-", ".tmp-", ".deleting")), folder
    embedder = FakeEmbedder()
    emb = g.embeddings(embedder)
    assert len(emb) == 40
    # Every crop embedded by a worker is in the cache, and the cache is readable.
    cached = _read_npz(root / CACHE_DIR / "fake-1.npz")
    assert embedder.calls == 40 - len(cached)
    assert len(cached) >= 2 and set(cached) <= {_file_hash(p) for p in emb.paths}
    for digest, vector in cached.items():
        row = [_file_hash(p) for p in emb.paths].index(digest)
        np.testing.assert_allclose(emb.matrix[row], vector)


# ----- stable ids, all-or-nothing writes, recovery, races --------------------------------

def test_a_person_keeps_their_id_through_a_rename(gallery):
    before = gallery.person("Ada Lovelace").id
    assert before and before != gallery.person("Alan Turing").id
    gallery.rename_person("Ada Lovelace", "Ada King")
    assert gallery.person("Ada King").id == before
    assert gallery.person_ids()["Ada King"] == before


def test_a_new_person_appears_with_all_photos_or_not_at_all(tmp_path, monkeypatch):
    from model.core import files

    g = Gallery(tmp_path / "g")

    def boom(staging, target):
        raise OSError("disk full")

    monkeypatch.setattr(files, "publish_folder", boom)
    with pytest.raises(OSError):
        g.add_crops("Ada Lovelace", [random_crop(i) for i in range(3)], consent=True)
    assert g.people() == [] and g.find_person("Ada Lovelace") is None
    assert [p.name for p in (tmp_path / "g").iterdir()] == [".lock"]  # nothing left behind


def test_recover_takes_back_an_unfinished_addition(gallery, monkeypatch):
    import model.school.gallery as module

    before = set(gallery.image_paths("Ada Lovelace"))
    real = module.atomic_write_bytes
    written = []

    def dies_after_one_photo(path, data):
        if Path(path).suffix == ".jpg" and written:
            raise KeyboardInterrupt  # the process stops here, as with kill -9
        real(path, data)
        if Path(path).suffix == ".jpg":
            written.append(path)

    monkeypatch.setattr(module, "atomic_write_bytes", dies_after_one_photo)
    with pytest.raises(KeyboardInterrupt):
        gallery.add_crops("Ada Lovelace", [random_crop(50 + i) for i in range(3)], consent=True)
    monkeypatch.undo()
    assert len(written) == 1 and len(gallery.image_paths("Ada Lovelace")) == 4  # half-done
    removed = Gallery(gallery.root).recover()  # the next start-up
    assert set(gallery.image_paths("Ada Lovelace")) == before
    assert written[0] in removed
    assert not [p for p in (gallery.root / "Ada Lovelace").iterdir() if p.name.startswith(".")]


def test_a_folder_without_photos_is_not_a_person(gallery):
    leftover = gallery.root / "Grace Hopper"
    leftover.mkdir()
    (leftover / PERSON_FILE).write_text('{"name": "Grace Hopper"}')
    handmade = gallery.root / "Empty By Hand"
    handmade.mkdir()
    (handmade / "notes.txt").write_text("keep me")
    assert [p.name for p in gallery.people()] == ["Ada Lovelace", "Alan Turing"]
    gallery.recover()
    assert not leftover.exists()  # made by the app, never got a photo: removed
    assert (handmade / "notes.txt").exists()  # someone else's: left alone


def test_the_last_photo_is_not_deleted_alone(gallery):
    from model.errors import LastPhotoError

    only = gallery.image_paths("Alan Turing")
    gallery.remove_image("Alan Turing", only[0])
    with pytest.raises(LastPhotoError, match="only photo"):
        gallery.remove_image("Alan Turing", only[1])
    assert gallery.person("Alan Turing").image_count == 1


def test_hand_made_folders_with_other_names_still_work(gallery):
    odd = gallery.root / "George_W_Bush.2"
    odd.mkdir()
    (odd / "a.jpg").write_bytes((gallery.image_paths("Ada Lovelace")[0]).read_bytes())
    assert "George_W_Bush.2" in [p.name for p in gallery.people()]
    assert len(gallery.image_paths("George_W_Bush.2")) == 1
    gallery.rename_person("George_W_Bush.2", "George Bush")
    assert gallery.person("George Bush").image_count == 1
    gallery.remove_person("George Bush")


def test_an_unreadable_folder_is_reported_not_fatal(gallery, monkeypatch):
    import model.school.gallery as module

    real = module._list_crops

    def refuses(folder):
        if folder.name == "Alan Turing":
            raise PermissionError(13, "Permission denied")
        return real(folder)

    monkeypatch.setattr(module, "_list_crops", refuses)
    assert [p.name for p in gallery.people()] == ["Ada Lovelace"]
    assert gallery.unreadable_folders() == [("Alan Turing", "cannot be read (Permission denied)")]


def test_removal_during_identify_leaves_no_cache_rows(gallery):
    """An identify that started embedding Ada's photos before she was removed must not
    write her embeddings into the cache afterwards."""
    import threading

    started, release = threading.Event(), threading.Event()

    class SlowEmbedder(FakeEmbedder):
        def embed(self, faces):
            started.set()
            release.wait(10)
            return super().embed(faces)

    slow = SlowEmbedder(version="slow")
    ada = {_file_hash(p) for p in gallery.image_paths("Ada Lovelace")}
    worker = threading.Thread(target=gallery.embeddings, args=(slow,))
    worker.start()
    assert started.wait(10)
    Gallery(gallery.root).remove_person("Ada Lovelace")  # another process, meanwhile
    release.set()
    worker.join(10)
    cached = _cache_keys(gallery.root).get("slow.npz", set())
    assert not ada & cached and len(cached) == 2  # Alan's two photos only
    assert gallery.embeddings(FakeEmbedder(version="slow")).people == ("Alan Turing",)
