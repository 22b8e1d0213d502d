"""Enrolling a class from group photos (model.group_enroll) and ``python -m model cluster``.

The only real face is the public-domain astronaut: two astronauts side by side make a
"group photo" of two faces that look the same, which only the same-photo rule keeps apart.
"""

from __future__ import annotations

import json
import zipfile

import cv2
import numpy as np
import pytest

from model.cli import EXIT_OK, EXIT_PARTLY, EXIT_USER, main
from model.core.images import encode_png
from model.errors import ConsentRequiredError
from model.group_enroll import NamedGroup, enroll_groups, group_photos
from model.settings import ENV_DATA_DIR, ENV_GALLERY

pytestmark = pytest.mark.slow


@pytest.fixture
def group_photos_of_two(two_astronauts) -> list[np.ndarray]:
    """Two 'group photos' of the two astronauts: as taken, and brighter and mirrored."""
    brighter = np.clip(two_astronauts.astype(int) + 25, 0, 255).astype(np.uint8)
    return [two_astronauts, np.ascontiguousarray(brighter[:, ::-1])]


def test_faces_are_grouped_one_face_a_photo_and_the_unusable_reported(attendance, group_photos_of_two,
                                                                     astronaut):
    tiny = cv2.resize(astronaut, (120, 120), interpolation=cv2.INTER_AREA)  # a ~25 px face
    small_face = np.full((400, 400, 3), 90, np.uint8)
    small_face[100:220, 100:220] = tiny
    wall = np.full((200, 300, 3), 60, np.uint8)
    grouping = group_photos(attendance, [*group_photos_of_two, wall],
                            labels=["one.jpg", "two.jpg", "wall.png"])
    assert grouping.photos == ["one.jpg", "two.jpg", "wall.png"]
    assert len(grouping.faces) == 4
    assert [f.photo for f in grouping.faces] == ["one.jpg", "one.jpg", "two.jpg", "two.jpg"]
    assert ("wall.png", None, "wall.png: no face was found.") in grouping.refused
    grouped = [i for group in grouping.groups for i in group]
    assert sorted(grouped + grouping.unsure) == [0, 1, 2, 3]
    for group in grouping.groups:  # the same face twice in one photo: never one group
        assert len({grouping.faces[i].photo for i in group}) == len(group)
    assert grouping.embeddings.shape[0] == 4
    for face in grouping.faces:
        assert face.crop.shape == (112, 112, 3) and len(face.box) == 4

    far = group_photos(attendance, [small_face], labels=["far.png"])
    assert far.faces == [] and far.groups == []
    (photo, box, why), = far.refused
    assert photo == "far.png" and box is not None and "too small" in why
    assert group_photos(attendance, []).faces == []


def test_named_groups_are_enrolled_and_put_on_the_class_roster(attendance, group_photos_of_two):
    grouping = group_photos(attendance, group_photos_of_two)
    faces = (0, 2)  # the left astronaut of each photo
    with pytest.raises(ConsentRequiredError):
        enroll_groups(attendance, grouping, [NamedGroup("Eileen Collins", faces)], consent=False)
    assert attendance.gallery.people() == []

    report = enroll_groups(attendance, grouping,
                           [NamedGroup("Eileen Collins", faces),
                            NamedGroup("Bad!Name", (1,)),
                            NamedGroup("Second Name", (0, 3))],  # face 0 already named
                           consent=True, class_name="Space 7B")
    by_name = {p.name: p for p in report.people}
    assert by_name["Eileen Collins"].ok and by_name["Eileen Collins"].used == 2
    assert not by_name["Bad!Name"].ok and by_name["Bad!Name"].error
    assert by_name["Second Name"].used == 1 and len(by_name["Second Name"].refused) == 1
    assert "already named" in by_name["Second Name"].refused[0][1]
    assert report.class_name == "Space 7B"
    school_class = attendance.book.find_class("Space 7B")
    assert sorted(attendance.book.roster(school_class.id)) == ["Eileen Collins", "Second Name"]

    # Picking someone enrolled adds the faces to them when they look alike.
    again = enroll_groups(attendance, grouping, [NamedGroup("eileen collins", (1,))],
                          consent=True)
    assert again.people[0].name == "Eileen Collins" and again.people[0].used == 1
    assert attendance.gallery.person("Eileen Collins").image_count == 3


def test_cluster_command_reads_a_folder_or_a_zip(tmp_path, monkeypatch, capsys, group_photos_of_two):
    folder = tmp_path / "class photos"
    folder.mkdir()
    for i, photo in enumerate(group_photos_of_two):
        (folder / f"photo{i + 1}.png").write_bytes(encode_png(photo))
    (folder / "notes.txt").write_text("not a photo", encoding="utf-8")
    data = tmp_path / "data"
    monkeypatch.setenv(ENV_DATA_DIR, str(data))
    monkeypatch.setenv(ENV_GALLERY, str(data / "gallery"))

    status = main(["cluster", str(folder), "--json"])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert status in (EXIT_OK, EXIT_PARTLY)
    assert printed["photos"] == ["photo1.png", "photo2.png"]
    assert len(printed["faces"]) == 4
    assert {"photo", "box", "group", "affinity", "sure"} <= set(printed["faces"][0])
    for group in printed["groups"]:
        assert len({printed["faces"][i]["photo"] for i in group}) == len(group)
    assert not (data / "gallery").exists() or not any((data / "gallery").iterdir())

    archive = tmp_path / "class.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(folder.iterdir()):
            zipped.write(path, f"7B/{path.name}")
    assert main(["cluster", str(archive)]) in (EXIT_OK, EXIT_PARTLY)
    shown = capsys.readouterr().out
    assert "7B/photo1.png at " in shown
    assert shown.strip().splitlines()[-1].startswith("4 usable face(s) in 2 photo(s): ")

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["cluster", str(empty)]) == EXIT_USER
    assert main(["cluster", str(tmp_path / "missing")]) == EXIT_USER
