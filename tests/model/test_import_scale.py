"""Bulk imports that scale: linked photos are read, a bulk import gives what one enrollment
after another gives, and the gallery's index grows by one person without being re-derived."""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from dataclasses import replace

import numpy as np
import pytest

from model.core.matching import GalleryIndex
from model.school.importing import ImportProblem, extract_zip, person_folders

# ----- links (no network) ---------------------------------------------------------------


def test_linked_photos_are_read_and_broken_links_said(tmp_path):
    library = tmp_path / "library"
    library.mkdir()
    (library / "a.jpg").write_bytes(b"x")
    (library / "b.png").write_bytes(b"y")
    root = tmp_path / "class"
    ada = root / "Ada_Lovelace"
    ada.mkdir(parents=True)
    os.symlink(library / "a.jpg", ada / "1.jpg")  # absolute, as a photo manager makes it
    os.symlink(os.path.join("..", "..", "library", "b.png"), ada / "2.png")  # relative
    os.symlink(library / "gone.jpg", ada / "3.jpg")  # broken
    (root / "Alan Turing").mkdir()
    (root / "Alan Turing" / "1.jpg").write_bytes(b"z")
    os.symlink(library, root / "Grace Hopper")  # a folder that is a link
    folders, skipped = person_folders(root)
    assert [f.name for f in folders] == ["Ada Lovelace", "Alan Turing"]
    assert [p.name for p in folders[0].photos] == ["1.jpg", "2.png"]
    assert [p.read_bytes() for p in folders[0].photos] == [b"x", b"y"]
    assert [name for name, _ in folders[0].left_out] == ["3.jpg"]
    assert "leads to no file" in folders[0].left_out[0][1]
    assert [name for name, _ in skipped] == ["Grace Hopper"]
    assert "link to a folder" in skipped[0][1]


def test_a_zip_holding_a_link_is_refused(tmp_path):
    path = tmp_path / "class.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("Ada/1.jpg", b"x")
        link = zipfile.ZipInfo("Ada/2.jpg")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(ImportProblem, match="is a link"):
        extract_zip(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ----- a bulk import against one enrollment after another (LFW, network) ------------------


@pytest.fixture
def lfw_class(lfw_dir, tmp_path):
    """Twelve LFW people with two photos each, and one of them again under another name
    (a duplicate the look-alike check must report). Copied into a temporary folder."""
    people = sorted(p for p in lfw_dir.iterdir() if p.is_dir() and len(list(p.glob("*.jpg"))) >= 2)[:12]
    root = tmp_path / "photos"
    for person in people:
        (root / person.name).mkdir(parents=True)
        for photo in sorted(person.glob("*.jpg"))[:2]:
            shutil.copy(photo, root / person.name / photo.name)
    shutil.copytree(root / people[3].name, root / "Zz_Same_Face")
    return root


def _engine(attendance, folder):
    from model.api import FaceAttendance
    from model.school.gallery import Gallery

    settings = replace(attendance.settings, data_dir=folder, gallery_dir=folder / "gallery")
    return FaceAttendance(attendance.detector, attendance.recognizer, Gallery(settings.gallery_dir), settings)


@pytest.mark.slow
def test_a_bulk_import_is_one_enrollment_after_another(attendance, lfw_class, tmp_path, monkeypatch):
    import model.api

    monkeypatch.setattr(model.api, "IMPORT_BATCH", 5)  # several batches and a partial one
    seen = []
    report = attendance.import_folders(lfw_class, consent=True,
                                       progress=lambda done, total, name: seen.append((done, total, name)))
    folders, _ = person_folders(lfw_class)
    assert seen == [(i, len(folders), f.name) for i, f in enumerate(folders)]
    one_by_one = _engine(attendance, tmp_path / "one-by-one")
    for folder, row in zip(folders, report.people, strict=True):
        alone = one_by_one.enroll_person(folder.name, folder.photos, consent=True,
                                         labels=[p.name for p in folder.photos])
        assert (row.name, row.used) == (alone.name, len(alone.saved))
        assert [n for n, _ in row.similar_to] == [n for n, _ in alone.similar_to]
        np.testing.assert_allclose([s for _, s in row.similar_to], [s for _, s in alone.similar_to],
                                   atol=1e-4)
    assert report.people[-1].similar_to[0][0] == folders[3].name.replace("_", " ")
    # Every stored photo's embedding reached the cache: identifying runs no network over it.
    calls = []
    real_embed = attendance.recognizer.embed
    monkeypatch.setattr(attendance.recognizer, "embed",
                        lambda faces: calls.append(len(faces)) or real_embed(faces))
    gallery = attendance.gallery.embeddings(attendance.recognizer)
    assert calls == [] and len(gallery) == sum(p.used for p in report.people)
    mine = one_by_one.gallery.embeddings(one_by_one.recognizer)
    assert gallery.people == mine.people
    np.testing.assert_allclose(gallery.matrix, mine.matrix, atol=1e-4)


@pytest.mark.slow
def test_one_more_person_grows_the_index_as_a_fresh_one(attendance, lfw_class):
    folders, _ = person_folders(lfw_class)
    for folder in folders[:6]:
        attendance.enroll_person(folder.name, folder.photos, consent=True)
    before = attendance.gallery_index()
    attendance.enroll_person("Aa First", folders[8].photos, consent=True)  # sorts first
    gallery = attendance.gallery.embeddings(attendance.recognizer)
    grown = attendance.gallery_index(attendance.recognizer, gallery)
    fresh = GalleryIndex.prepare(gallery.matrix, gallery.person_index, len(gallery.people),
                                 attendance.recognizer.cohort, attendance.recognizer.rule)
    assert grown is not before and grown.people == fresh.people == 7
    np.testing.assert_allclose(grown.z_mean, fresh.z_mean, atol=1e-9)
    np.testing.assert_allclose(grown.z_std, fresh.z_std, atol=1e-9)
    assert grown.threshold == pytest.approx(fresh.threshold, abs=1e-9)
    np.testing.assert_allclose(grown.impostor_scores, fresh.impostor_scores, atol=1e-9)
