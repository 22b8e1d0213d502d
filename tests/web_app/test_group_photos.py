"""The Classes page's 'Enroll from group photos' (AppTest): three group photos in, the faces
grouped, two groups named, consent once, both on the class roster.

The group photos are the public-domain astronaut twice side by side (differently lit and
mirrored): two faces of one photo are never one person, so each photo gives one face to
each of two groups. The shipped network groups them (the untrained one's scores mean
nothing); without it the test skips.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import astronaut, encode
from test_pages import open_page, texts

from model.school.attendance import AttendanceBook
from model.settings import REPO_ROOT

BASE_MODEL = REPO_ROOT / "model" / "weights" / "base.keras"


def group_photos() -> list[tuple[str, bytes, str]]:
    """Three 'group photos' of two look-alike faces each, as uploads."""
    two = np.concatenate([astronaut(), astronaut()], axis=1)
    brighter = np.clip(two.astype(int) + 30, 0, 255).astype(np.uint8)[:, ::-1]
    darker = (two * 0.75).astype(np.uint8)
    return [(f"photo{i + 1}.png", encode(np.ascontiguousarray(photo)), "image/png")
            for i, photo in enumerate((two, brighter, darker))]


def class_with_photos(data_dir, name: str, photos):  # type: ignore[no-untyped-def]
    """The Classes page after making the class ``name`` and giving its group-photo
    uploader ``photos``: the page and the class's id."""
    at = open_page("classes")
    next(t for t in at.text_input if t.label == "Class name").set_value(name)
    next(b for b in at.button if b.label == "Make class").click()
    at.run()
    class_id = AttendanceBook(data_dir / "attendance.sqlite3").find_class(name).id
    at.file_uploader(key=f"group_photos_upload_{class_id}").set_value(photos)
    at.run()
    return at, class_id


@pytest.mark.slow
def test_group_photos_are_grouped_named_and_put_on_the_roster(data_dir, monkeypatch):
    if not BASE_MODEL.exists():
        pytest.skip("the shipped network is needed to group faces")
    monkeypatch.setenv("FACEATT_BASE_MODEL", str(BASE_MODEL))
    at, class_id = class_with_photos(data_dir, "Art club", group_photos())
    next(b for b in at.button if b.label == "Find and group the faces").click()
    at.run()
    assert not at.exception, at.exception
    assert "6 faces in 3 photos: 2 groups, 0 not sure." in texts(at, "markdown")
    work = at.session_state[f"group_photos_{class_id}"]
    for group in work.groups[:2]:
        assert sorted(work.grouping.faces[i].photo for i in group) == [
            "photo1.png", "photo2.png", "photo3.png"]

    # Nothing is enrolled without consent; the button says how many are named.
    at.text_input(key=f"group_name_{class_id}_0").set_value("Eileen Collins")
    at.text_input(key=f"group_name_{class_id}_1").set_value("Robin Example")
    at.run()
    enroll = at.button(key=f"group_enroll_{class_id}")
    assert enroll.label == "Enroll 2 named people into Art club" and enroll.disabled
    at.checkbox(key=f"group_consent_{class_id}").check()
    at.run()
    at.button(key=f"group_enroll_{class_id}").click()
    at.run()
    assert not at.exception, at.exception
    assert "Enrolled 2 of 2 people (6 photos) into Art club." in texts(at, "success")
    roster = at.dataframe[1].value
    assert list(roster["Name"]) == ["Eileen Collins", "Robin Example"]
    assert list(roster["Photos"]) == [3, 3]


@pytest.mark.slow
def test_faces_can_be_moved_split_and_left_out(data_dir, monkeypatch):
    if not BASE_MODEL.exists():
        pytest.skip("the shipped network is needed to group faces")
    monkeypatch.setenv("FACEATT_BASE_MODEL", str(BASE_MODEL))
    at, class_id = class_with_photos(data_dir, "Choir", group_photos()[:2])
    next(b for b in at.button if b.label == "Find and group the faces").click()
    at.run()
    work = at.session_state[f"group_photos_{class_id}"]
    first = list(work.groups[0])
    # Split the first group's faces into a new group, then drop one of them.
    at.multiselect(key=f"group_move_faces_{class_id}").set_value(first[1:])
    at.selectbox(key=f"group_move_to_{class_id}").set_value("a new group")
    next(b for b in at.button if b.label == "Move").click()
    at.run()
    assert not at.exception, at.exception
    work = at.session_state[f"group_photos_{class_id}"]
    assert work.groups[0] == first[:1] and first[1:] in work.groups
    at.multiselect(key=f"group_move_faces_{class_id}").set_value(first[:1])
    at.selectbox(key=f"group_move_to_{class_id}").set_value("nobody (leave the faces out)")
    next(b for b in at.button if b.label == "Move").click()
    at.run()
    work = at.session_state[f"group_photos_{class_id}"]
    assert all(first[0] not in group for group in work.groups)
    # Only named groups that are not left out count.
    at.text_input(key=f"group_name_{class_id}_1").set_value("Robin Example")
    at.checkbox(key=f"group_out_{class_id}_1").check()
    at.run()
    assert at.button(key=f"group_enroll_{class_id}").label == "Enroll 0 named people into Choir"
