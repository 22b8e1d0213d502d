"""The shared gallery: two kiosks (two gallery folders) and one throwaway PostgreSQL.

Synthetic crops only (random pixels): no real faces. Every test skips without PostgreSQL
(``make postgres``), as the register's do.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from model.core import registry
from model.errors import UnknownPersonError
from model.school.gallery import Gallery
from model.school.gallery_sync import (
    GalleryOffline,
    GallerySync,
    _active_unit,
    migrate_gallery,
)

#: What the issue asks of a change made at one kiosk: seen at every other within this.
SEEN_WITHIN_S = 5.0


class Kiosk:
    """One app instance: its gallery folder, its models folder and its sync."""

    def __init__(self, root: Path, url: str, **options: float) -> None:
        self.gallery = Gallery(root / "gallery")
        self.models_dir = root / "models"
        self.model_changes = 0
        self.sync = GallerySync(self.gallery, url, models_dir=self.models_dir,
                                on_model_change=self._model_changed, connect_timeout_s=2.0,
                                **options)

    def _model_changed(self) -> None:
        self.model_changes += 1

    def picture(self) -> dict[str, tuple[str, str | None, list[str]]]:
        """Everyone as shown: name -> (stable id, student id, SHA-1 of each photo file)."""
        return {p.name: (p.id, p.student_id,
                         sorted(hashlib.sha1(path.read_bytes()).hexdigest()
                                for path in self.gallery.image_paths(p.name)))
                for p in self.gallery.people()}


@pytest.fixture
def kiosks(tmp_path: Path, postgres_url: str) -> Iterator[Callable[..., Kiosk]]:
    """``kiosk(name, **options)``: a new kiosk on this test's database."""
    made: list[Kiosk] = []

    def kiosk(name: str, **options: float) -> Kiosk:
        made.append(Kiosk(tmp_path / name, postgres_url, **options))
        return made[-1]

    yield kiosk
    for k in made:
        k.sync.stop()


def crops(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (112, 112, 3), dtype=np.uint8) for _ in range(n)]


def server_version(url: str) -> int:
    with psycopg.connect(url) as db:
        row = db.execute("SELECT value::bigint FROM gallery_meta WHERE key = 'version'").fetchone()
    return int(row[0]) if row else 0


def wait_for(check: Callable[[], bool], timeout_s: float, *kiosks: Kiosk) -> float:
    """Seconds until ``check()`` held (fails the test after ``timeout_s``, saying where
    ``kiosks`` stand)."""
    start = time.monotonic()
    while not _holds(check):
        if time.monotonic() - start > timeout_s:
            pytest.fail(f"not seen within {timeout_s} s: " + "; ".join(
                f"{sorted(k.picture())} {k.sync.status()}" for k in kiosks))
        time.sleep(0.05)
    return time.monotonic() - start


def _holds(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except (UnknownPersonError, FileNotFoundError):
        return False  # a person renamed or removed by the sync thread while we looked


class FakeEmbedder:
    version = "fake-v1"

    def embed(self, faces) -> np.ndarray:  # type: ignore[no-untyped-def]
        vectors = np.random.default_rng(0).normal(size=(len(faces), 8)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_an_enrollment_on_one_kiosk_appears_on_another(kiosks) -> None:
    a, b = kiosks("a"), kiosks("b")
    a.gallery.add_crops("Ada Lovelace", crops(2, 1), consent=True, student_id="A1")
    report = a.sync.sync()
    assert len(report.published) == 1 and not report.refused
    report = b.sync.sync()
    assert len(report.created) == 1
    assert b.picture() == a.picture() and "Ada Lovelace (A1)" in b.picture()
    # Byte for byte, under the same file names, with the same card times.
    names = sorted(p.name for p in a.gallery.image_paths("Ada Lovelace (A1)"))
    assert sorted(p.name for p in b.gallery.image_paths("Ada Lovelace (A1)")) == names
    assert b.gallery.person("Ada Lovelace (A1)").consent_at == \
        a.gallery.person("Ada Lovelace (A1)").consent_at

    a.gallery.add_crops("Ada Lovelace", crops(1, 2), consent=True, student_id="A1")
    a.sync.sync()
    assert b.sync.sync().updated
    assert b.picture() == a.picture()
    assert len(b.gallery.image_paths("Ada Lovelace (A1)")) == 3


def test_a_second_sync_with_nothing_new_changes_nothing(kiosks, postgres_url) -> None:
    a, b = kiosks("a"), kiosks("b")
    a.gallery.add_crops("Grace Hopper", crops(2, 3), consent=True)
    a.sync.sync()
    b.sync.sync()
    version = server_version(postgres_url)
    stamps = {p: p.stat().st_mtime_ns for p in b.gallery.root.rglob("*")}
    for kiosk in (a, b):
        for full in (False, True):
            report = kiosk.sync.sync(full=full)
            assert not report.changed, report
    assert server_version(postgres_url) == version
    assert {p: p.stat().st_mtime_ns for p in b.gallery.root.rglob("*")} == stamps


def test_a_rename_a_removed_photo_and_a_deletion_reach_the_other_kiosk(kiosks) -> None:
    a, b = kiosks("a"), kiosks("b")
    a.gallery.add_crops("Alan Turing", crops(3, 4), consent=True)
    a.gallery.add_crops("Emmy Noether", crops(1, 5), consent=True)
    a.sync.sync()
    b.sync.sync()
    b.gallery.embeddings(FakeEmbedder())  # B has cached embeddings of everyone

    a.gallery.rename_person("Alan Turing", "Alan M. Turing", student_id="T9",
                            keep_student_id=False)
    a.gallery.remove_image("Alan M. Turing (T9)", a.gallery.image_paths("Alan M. Turing (T9)")[0])
    a.sync.sync()
    assert b.sync.sync().updated
    assert b.picture() == a.picture()
    assert (b.gallery.root / "Alan M. Turing (T9)").is_dir()  # the folder follows the name

    removal = a.gallery.remove_person("Emmy Noether")
    a.gallery.finish_removal(removal)
    a.sync.sync()
    report = b.sync.sync()
    assert report.removed == (removal.person_id,)
    assert b.gallery.find_person("Emmy Noether") is None
    assert not (b.gallery.root / "Emmy Noether").exists()
    # Her embeddings went with her: the cache holds only what the gallery still shows.
    with np.load(b.gallery.root / ".embeddings" / "fake-v1.npz") as cache:
        assert len(cache["keys"]) == 2
    assert b.picture() == a.picture()


def test_the_server_wins_a_conflict(kiosks) -> None:
    a, b = kiosks("a"), kiosks("b")
    a.gallery.add_crops("Marie Curie", crops(1, 6), consent=True)
    a.sync.sync()
    b.sync.sync()
    a.gallery.rename_person("Marie Curie", "Maria Sklodowska")
    b.gallery.rename_person("Marie Curie", "Marie S. Curie")  # not yet published
    a.sync.sync()
    report = b.sync.sync()
    assert len(report.refused) == 1
    assert list(b.picture()) == ["Maria Sklodowska"] == list(a.picture())


def test_a_deleted_person_never_comes_back_from_a_kiosk_that_was_away(kiosks) -> None:
    a, b = kiosks("a"), kiosks("b")
    a.gallery.add_crops("Rosalind Franklin", crops(1, 7), consent=True)
    a.sync.sync()
    b.sync.sync()
    a.gallery.finish_removal(a.gallery.remove_person("Rosalind Franklin"))
    a.sync.sync()
    b.gallery.add_crops("Rosalind Franklin", crops(1, 8), consent=True)  # B had not heard
    report = b.sync.sync()
    assert report.refused and report.removed
    assert b.picture() == {} == a.picture()
    assert a.sync.sync(full=True).created == ()


def test_a_model_activated_on_one_kiosk_reaches_another_and_goes_with_its_person(kiosks) -> None:
    a, b = kiosks("a"), kiosks("b")
    a.gallery.add_crops("Katherine Johnson", crops(2, 9), consent=True)
    person_id = a.gallery.person("Katherine Johnson").id
    unit = registry.store_model(lambda path: path.write_bytes(b"weights " * 1000), a.models_dir,
                                {"match_rule": {}, "training": {"trained_on_ids": [person_id]}})
    registry.activate_model(a.models_dir, unit)
    report = a.sync.sync()
    assert report.models_published
    report = b.sync.sync()
    name = registry.unit_name(unit)
    assert report.models_pulled == (name,) and report.active_changed
    assert b.model_changes == 1
    assert _active_unit(b.models_dir) == name
    assert (b.models_dir / name / registry.MODEL_FILE).read_bytes() == unit.read_bytes()
    assert registry.read_card(b.models_dir / name / registry.MODEL_FILE)["training"] == \
        {"trained_on_ids": [person_id]}
    assert not b.sync.sync().changed

    # Back to the shipped model on A: B follows.
    registry.activate_model(a.models_dir, None)
    a.sync.sync()
    assert b.sync.sync().active_changed and _active_unit(b.models_dir) is None
    registry.activate_model(a.models_dir, unit)
    a.sync.sync()
    b.sync.sync()
    assert _active_unit(b.models_dir) == name

    # Deleting the person deletes every model that learned from her, everywhere.
    removal = a.gallery.remove_person("Katherine Johnson")
    registry.forget_person_models(a.models_dir, removal.person_id, [removal.name])
    a.gallery.finish_removal(removal)
    a.sync.sync()
    report = b.sync.sync()
    assert report.models_removed == (name,) and report.removed
    assert registry.model_units(b.models_dir) == [] and _active_unit(b.models_dir) is None


def test_a_change_made_while_the_database_is_down_is_published_when_it_returns(
        kiosks, postgres) -> None:
    a = kiosks("a", poll_s=0.2, retry_s=0.5)
    b = kiosks("b", poll_s=0.2, retry_s=0.5)
    a.gallery.add_crops("Hedy Lamarr", crops(1, 10), consent=True)
    a.sync.start()
    b.sync.start()
    wait_for(lambda: "Hedy Lamarr" in b.picture(), SEEN_WITHIN_S, a, b)
    postgres.stop()
    try:
        wait_for(lambda: not a.sync.status().online, 10.0, a, b)
        a.gallery.add_crops("Ada Yonath", crops(2, 11), consent=True)
        a.gallery.rename_person("Hedy Lamarr", "Hedwig Kiesler")
        with pytest.raises(GalleryOffline):
            a.sync.sync()
    finally:
        postgres.start()
    # Both threads reconnect by themselves; A's journal goes out, B catches up.
    seen = wait_for(lambda: set(b.picture()) == {"Ada Yonath", "Hedwig Kiesler"}, 20.0, a, b)
    assert b.picture() == a.picture()
    assert a.sync.status().online and b.sync.status().online
    print(f"seen {seen:.1f} s after the server came back")


def test_a_dropped_connection_misses_no_change(kiosks, postgres_url) -> None:
    """With polling out of the way (one look a minute), only the notification and the full
    sync after a reconnection can bring a change: terminate the listening connection,
    make a change at once (its notification is lost), and it still arrives."""
    a = kiosks("a")
    b = kiosks("b", poll_s=60.0, retry_s=0.5)
    b.sync.start()
    wait_for(lambda: b.sync.status().online, SEEN_WITHIN_S)

    a.gallery.add_crops("Barbara Liskov", crops(1, 12), consent=True)
    a.sync.sync()
    wait_for(lambda: "Barbara Liskov" in b.picture(), SEEN_WITHIN_S)  # by the notification

    for attempt in range(3):
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()
        assert killed and killed[0] >= 1
        name = f"Frances Allen {attempt}"
        a.gallery.add_crops(name, crops(1, 20 + attempt), consent=True)
        a.sync.sync()
        seen = wait_for(lambda name=name: name in b.picture(), SEEN_WITHIN_S)
        print(f"seen {seen:.2f} s after a dropped connection")
    assert b.picture() == a.picture()


def test_the_thread_publishes_a_change_made_behind_its_back(kiosks) -> None:
    """An enrollment by the CLI (another process) or a page that wrote the folder itself:
    the thread notices the folders changed and publishes it."""
    a = kiosks("a", poll_s=0.2)
    b = kiosks("b", poll_s=0.2)
    a.sync.start()
    b.sync.start()
    wait_for(lambda: a.sync.status().online and b.sync.status().online, SEEN_WITHIN_S)
    a.gallery.add_crops("Lise Meitner", crops(2, 30), consent=True)
    wait_for(lambda: "Lise Meitner" in b.picture(), SEEN_WITHIN_S)
    b.gallery.remove_image("Lise Meitner", b.gallery.image_paths("Lise Meitner")[0])
    wait_for(lambda: len(a.gallery.image_paths("Lise Meitner")) == 1, SEEN_WITHIN_S)


def test_migrate_gallery_copies_once_and_checks(kiosks, postgres_url) -> None:
    a, b = kiosks("a"), kiosks("b")
    a.gallery.add_crops("Chien-Shiung Wu", crops(3, 40), consent=True)
    a.gallery.add_crops("Dorothy Hodgkin", crops(2, 41), consent=True)
    unit = registry.store_model(lambda path: path.write_bytes(b"w"), a.models_dir,
                                {"match_rule": {}})
    registry.activate_model(a.models_dir, unit)
    first = migrate_gallery(a.gallery, postgres_url, models_dir=a.models_dir)
    assert (first.people, first.crops, first.models) == (2, 5, 1)
    assert (first.copied_people, first.copied_crops, first.copied_models) == (2, 5, 1)
    again = migrate_gallery(a.gallery, postgres_url, models_dir=a.models_dir)
    assert (again.people, again.crops, again.models) == (2, 5, 1)
    assert (again.copied_people, again.copied_crops, again.copied_models) == (0, 0, 0)
    b.sync.sync()
    assert b.picture() == a.picture()
    assert _active_unit(b.models_dir) == registry.unit_name(unit)
    # The migrated kiosk's own first sync finds everything already there.
    assert not a.sync.sync().changed_here


def test_a_change_made_during_a_pass_is_kept_and_goes_out_with_the_next(kiosks, monkeypatch
                                                                        ) -> None:
    """A photo added here after the pass looked at the folders, while the server still has
    what the kiosk last agreed on: the pull leaves it alone (the next pass publishes it)."""
    a, b = kiosks("a"), kiosks("b")
    a.gallery.add_crops("Mary Somerville", crops(1, 50), consent=True)
    a.sync.sync()
    b.sync.sync()
    a.gallery.add_crops("Mary Somerville", crops(1, 51), consent=True)
    with monkeypatch.context() as patch:  # as if the photo came after the pass's look
        patch.setattr(type(a.sync), "_publish_people",
                      lambda self, db, bump, snapshot, local: ([], []))
        a.sync.sync(full=True)
    assert len(a.gallery.image_paths("Mary Somerville")) == 2
    a.sync.sync()
    b.sync.sync()
    assert len(b.gallery.image_paths("Mary Somerville")) == 2


def test_a_new_kiosk_without_a_gallery_folder_gets_everyone(kiosks, tmp_path) -> None:
    a = kiosks("a")
    a.gallery.add_crops("Sophie Germain", crops(2, 52), consent=True)
    a.sync.sync()
    b = kiosks("b")
    assert not b.gallery.root.exists()
    b.sync.sync()
    assert b.picture() == a.picture()


def test_python_m_model_migrate_copies_the_gallery_too(postgres_url, tmp_path, monkeypatch,
                                                       capsys) -> None:
    from model.cli import EXIT_OK, main

    monkeypatch.setenv("FACEATT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("FACEATT_GALLERY", raising=False)
    gallery = Gallery(tmp_path / "data" / "gallery")
    gallery.add_crops("Ida Noddack", crops(2, 60), consent=True)
    assert main(["migrate", "--to", postgres_url]) == EXIT_OK
    assert "1 people, 2 photos and 0 fine-tuned models" in capsys.readouterr().out
    assert main(["migrate", "--to", postgres_url]) == EXIT_OK
    assert "(0 people, 0 photos and 0 models copied now)" in capsys.readouterr().out


def test_two_kiosks_enrolling_at_once_end_up_equal(kiosks) -> None:
    a = kiosks("a", poll_s=0.1)
    b = kiosks("b", poll_s=0.1)
    a.sync.start()
    b.sync.start()
    for i in range(6):
        a.gallery.add_crops(f"Pupil A{i}", crops(1, 100 + i), consent=True)
        b.gallery.add_crops(f"Pupil B{i}", crops(1, 200 + i), consent=True)
        time.sleep(0.05)
    wait_for(lambda: "Pupil A0" in b.picture(), SEEN_WITHIN_S)
    b.gallery.rename_person("Pupil A0", "Pupil Zero")
    wait_for(lambda: len(a.picture()) == 12 and "Pupil Zero" in a.picture()
             and a.picture() == b.picture(), 15.0)
    assert a.sync.status().error is None and b.sync.status().error is None


def test_embeddings_travel_with_the_crops(kiosks) -> None:
    """A kiosk that joins later gets the embeddings another kiosk computed, per model,
    and does not run its network over those crops."""
    a = kiosks("a")
    a.gallery.add_crops("Mary Jackson", crops(3, 70), consent=True)
    a.sync.sync()
    computed = a.gallery.embeddings(FakeEmbedder())
    a.sync.sync()
    b = kiosks("b")
    b.sync.sync()

    class Refuses(FakeEmbedder):
        def embed(self, faces):  # type: ignore[no-untyped-def]
            if len(faces):
                raise AssertionError("B ran its network over crops it was sent embeddings of")
            return np.zeros((0, 8), np.float32)

    got = b.gallery.embeddings(Refuses())
    by_file = {path.name: row for path, row in zip(got.paths, got.matrix, strict=True)}
    assert by_file.keys() == {path.name for path in computed.paths}
    for path, row in zip(computed.paths, computed.matrix, strict=True):
        np.testing.assert_array_equal(by_file[path.name], row)


def test_a_pass_cut_short_still_remembers_who_it_wrote(kiosks, monkeypatch) -> None:
    """The server goes away after a pull wrote a new person here: deleting them here next
    must be published, not undone by the next pass (seen with a server restarted right
    after a change arrived)."""
    a, b = kiosks("a"), kiosks("b")
    a.gallery.add_crops("Gerty Cori", crops(1, 80), consent=True)
    a.sync.sync()

    def server_gone(*args: object, **kwargs: object) -> None:
        raise GalleryOffline("the server restarted")

    with monkeypatch.context() as patch:
        patch.setattr(GallerySync, "_pull_embeddings", server_gone)
        with pytest.raises(GalleryOffline):
            b.sync.sync()
    assert "Gerty Cori" in b.picture()
    b.gallery.finish_removal(b.gallery.remove_person("Gerty Cori"))
    b.sync.sync()
    a.sync.sync()
    assert b.picture() == {} == a.picture()


def test_a_pull_reads_one_consistent_snapshot(postgres_url) -> None:
    from model.school.gallery_sync import GalleryStore

    store = GalleryStore(postgres_url)
    try:
        with store.transaction(read_only=True) as db:
            assert db.execute("SHOW transaction_isolation").fetchone() == ("repeatable read",)
            assert db.execute("SHOW transaction_read_only").fetchone() == ("on",)
    finally:
        store.close()
