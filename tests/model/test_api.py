"""The FaceAttendance facade end to end on real faces (slow: detector and network)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model.core.images import encode_jpeg, encode_png
from model.errors import ConsentRequiredError, MultipleFacesError, NoFaceError, UnknownPersonError
from model.records import Match, Verdict, grade_pair

pytestmark = pytest.mark.slow

LFW_PEOPLE = ("George_W_Bush", "Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder")
LFW_STRANGER = "Aaron_Eckhart"


def assert_consistent(match: Match) -> None:
    """What the API promises about every Match, trained network or not."""
    assert -1.0 <= match.score <= 1.0
    if not match.candidates:
        assert match.name is None and match.score == 0.0
        return
    # Candidates are ranked by the rule's normalised score; the first is the closest person.
    assert match.closest == match.candidates[0][0]
    assert match.score == pytest.approx(match.candidates[0][1], abs=1e-4)
    if match.name is not None:
        assert match.name == match.closest and match.reason == ""
        assert match.normalised >= match.threshold
    else:
        assert match.reason in ("not close enough", "too close to two people")
        assert match.closest in match.explanation


def test_enroll_and_identify_the_astronaut(attendance, astronaut_jpeg, astronaut):
    report = attendance.enroll_person("Eileen Collins", [astronaut_jpeg], consent=True)
    assert report.rejected == [] and len(report.saved) == 1 and report.saved[0].exists()
    [person] = attendance.gallery.people()
    assert person.name == "Eileen Collins" and person.image_count == 1 and person.consent
    matches = attendance.identify_faces(astronaut)
    assert len(matches) == 1
    match = matches[0]
    assert_consistent(match)
    assert match.candidates[0][0] == "Eileen Collins"
    assert match.face is not None and match.box == match.face.box
    if attendance.recognizer.trained:
        assert match.name == "Eileen Collins"


def test_enroll_refuses_bad_photos_by_name_and_keeps_good_ones(attendance, astronaut_jpeg,
                                                               two_astronauts, tmp_path):
    blank = tmp_path / "blank.png"
    blank.write_bytes(encode_png(np.full((300, 300, 3), 90, dtype=np.uint8)))
    pair = tmp_path / "two people.jpg"
    pair.write_bytes(encode_jpeg(two_astronauts))
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 definitely not a whole jpeg")
    photos = [blank, astronaut_jpeg, pair, corrupt]
    report = attendance.enroll_person("Eileen Collins", photos, consent=True)
    assert len(report.saved) == 1
    rejected = dict(report.rejected)
    assert set(rejected) == {str(blank), str(pair), str(corrupt)}
    for label, why in rejected.items():
        assert label in why
    assert "no face" in rejected[str(blank)]
    assert "2 faces" in rejected[str(pair)]
    assert attendance.gallery.person("Eileen Collins").image_count == 1


def test_single_face_errors(attendance, two_astronauts):
    with pytest.raises(NoFaceError):
        attendance.aligned_face(np.zeros((200, 200, 3), dtype=np.uint8))
    with pytest.raises(MultipleFacesError):
        attendance.aligned_face(two_astronauts, label="group.jpg")


def test_no_consent_reads_and_stores_nothing(attendance, astronaut_jpeg):
    with pytest.raises(ConsentRequiredError):
        attendance.enroll_person("Eileen Collins", [astronaut_jpeg], consent=False)
    assert attendance.gallery.people() == []
    root = attendance.gallery.root
    assert not root.exists() or not [p for p in root.iterdir() if not p.name.startswith(".")]


def test_empty_gallery_and_empty_photo(attendance, astronaut):
    [match] = attendance.identify_faces(astronaut)
    assert match.name is None and match.score == 0.0 and match.candidates == ()
    assert attendance.identify_faces(np.zeros((240, 320, 3), dtype=np.uint8)) == []
    assert attendance.identify_crops([]) == []


def test_verify(attendance, astronaut, astronaut_jpeg):
    result = attendance.verify_faces(astronaut, astronaut_jpeg)
    rule = attendance.recognizer.rule
    assert result.threshold == rule.pair_threshold and -1 <= result.score <= 1
    assert result.same == (result.normalised >= rule.pair_threshold)
    with pytest.raises(UnknownPersonError):
        attendance.verify_person(astronaut, "Nobody Here")
    attendance.enroll_person("Eileen Collins", [astronaut_jpeg], consent=True)
    claimed = attendance.verify_person(astronaut, "eileen collins")
    assert claimed.same == (claimed.normalised >= claimed.threshold and claimed.score >= rule.min_cosine)
    assert claimed.person == "Eileen Collins" and claimed.verdict in (Verdict.SAME, Verdict.DIFFERENT)
    if attendance.recognizer.trained:
        assert result.same and claimed.same


def test_verify_uses_the_main_face_of_a_group_photo(attendance, two_astronauts, astronaut):
    result = attendance.verify_faces(two_astronauts, astronaut)
    assert result.note == "photo 1 has 2 faces; the largest, most central one was used."
    assert result.face_counts == (2, 1)
    # Two faces of one size: the right-hand copy's centre is nearer the middle (x 512).
    assert result.faces[0].box[0] > two_astronauts.shape[1] // 2
    assert result.verdict is grade_pair(result.normalised, result.threshold, result.maybe_threshold)
    if attendance.recognizer.trained:
        assert result.same
    attendance.enroll_person("Eileen Collins", [astronaut], consent=True)
    claimed = attendance.verify_person(two_astronauts, "Eileen Collins", label="group.jpg")
    assert claimed.note.startswith("group.jpg has 2 faces;")
    with pytest.raises(NoFaceError, match="photo 2: no face was found"):
        attendance.verify_faces(astronaut, np.zeros((200, 200, 3), dtype=np.uint8))


def test_identification_does_not_re_embed_the_gallery(attendance, astronaut_jpeg, astronaut):
    attendance.enroll_person("Eileen Collins", [astronaut_jpeg], consent=True)
    attendance.identify_faces(astronaut)
    recognizer = attendance.recognizer
    calls: list[int] = []
    original = recognizer.embed

    def counting(faces):
        calls.append(len(faces))
        return original(faces)

    recognizer.embed = counting  # type: ignore[method-assign]
    try:
        attendance.identify_faces(astronaut)
    finally:
        del recognizer.embed
    assert calls == [1]  # the query face only


# ----- LFW end to end ----------------------------------------------------------------

def _photos(lfw_dir: Path, person: str) -> list[Path]:
    return sorted((lfw_dir / person).glob("*.jpg"))


def _central(matches: list[Match], size: int = 250) -> Match:
    """The face nearest the centre of an LFW photo (LFW centres the named person)."""
    def distance(m: Match) -> float:
        x, y, w, h = m.box
        return float(np.hypot(x + w / 2 - size / 2, y + h / 2 - size / 2))

    return min(matches, key=distance)


@pytest.mark.lfw
def test_lfw_enroll_five_people_identify_a_fourth_photo(attendance, lfw_dir):
    queries: dict[str, Path] = {}
    for person in LFW_PEOPLE:
        photos = _photos(lfw_dir, person)
        assert len(photos) >= 4, f"{person} has fewer than 4 photos in {lfw_dir}"
        name = person.replace("_", " ")
        saved = 0
        for i, photo in enumerate(photos):  # some LFW photos show two faces: skip those
            report = attendance.enroll_person(name, [photo], consent=True)
            saved += len(report.saved)
            if saved == 3:
                queries[name] = photos[i + 1]
                break
        assert saved == 3, f"could not enroll 3 photos of {person}"
    assert [p.name for p in attendance.gallery.people()] == sorted(queries)
    correct = 0
    for name, photo in queries.items():
        matches = attendance.identify_faces(photo)
        assert matches, f"no face found in {photo}"
        match = _central(matches)
        for m in matches:
            assert_consistent(m)
        # Rank-1: the right person is the best candidate. Whether the face is also *named*
        # depends on the calibrated 1:N threshold (strict, to keep strangers out).
        correct += match.candidates[0][0] == name
        named_wrongly = match.name is not None and match.name != name
        assert not named_wrongly, f"{photo} was named {match.name}"
    stranger = _central(attendance.identify_faces(_photos(lfw_dir, LFW_STRANGER)[0]))
    assert_consistent(stranger)
    if attendance.recognizer.trained:
        assert correct >= 4, f"only {correct}/5 ranked first by {attendance.recognizer.label}"
        assert stranger.name is None, f"the stranger was named {stranger.name}"


def test_enroll_refuses_small_and_blurry_faces(attendance, astronaut):
    import cv2

    tiny = cv2.resize(astronaut, (128, 128), interpolation=cv2.INTER_AREA)  # face ~25 px wide
    tiny = cv2.copyMakeBorder(tiny, 60, 60, 60, 60, cv2.BORDER_CONSTANT, value=(90, 90, 90))
    blurry = cv2.GaussianBlur(astronaut, (0, 0), 4)
    faces = attendance.assess_faces(blurry)
    assert len(faces) == 1 and not faces[0].ok and "blurry" in (faces[0].problem or "")
    report = attendance.enroll_person("Eileen Collins", [tiny, blurry], consent=True,
                                      labels=["tiny.jpg", "blurry.jpg"])
    assert report.saved == []
    reasons = dict(report.rejected)
    assert "too small" in reasons["tiny.jpg"]
    assert "too blurry" in reasons["blurry.jpg"]
    assert attendance.gallery.people() == []


def _enroll_first(attendance, photos, name, count, **kwargs):
    """Enroll ``count`` photos of one LFW person (skipping two-face photos); returns the rest."""
    saved = 0
    for i, photo in enumerate(photos):
        saved += len(attendance.enroll_person(name, [photo], consent=True, **kwargs).saved)
        if saved == count:
            return photos[i + 1:]
    raise AssertionError(f"could not enroll {count} photos as {name}")


@pytest.mark.lfw
def test_photos_of_someone_else_under_an_enrolled_name_are_refused(attendance, lfw_dir):
    """Two students called Anna Smith are not merged: the second one's photos are refused
    unless the teacher says they are the same person, or a student id tells them apart."""
    from model.errors import DifferentPersonError

    bush = _enroll_first(attendance, _photos(lfw_dir, "George_W_Bush"), "Anna Smith", 3)
    powell = _enroll_first(attendance, _photos(lfw_dir, "Colin_Powell"), "Colin Powell", 3)
    before = {p.name: p.image_count for p in attendance.gallery.people()}
    with pytest.raises(DifferentPersonError, match="do not look like the Anna Smith"):
        attendance.enroll_person("anna smith", powell[:2], consent=True)
    assert {p.name: p.image_count for p in attendance.gallery.people()} == before
    # More photos of the same person are added as before.
    report = attendance.enroll_person("Anna Smith", bush[:2], consent=True)
    assert report.name == "Anna Smith" and report.saved
    # A namesake with a student id is a second person.
    report = attendance.enroll_person("Anna Smith", powell[2:4], consent=True, student_id="S-2")
    assert report.name == "Anna Smith (S-2)" and report.saved
    assert "Anna Smith (S-2)" in [p.name for p in attendance.gallery.people()]
    # The teacher insists: added to the existing person.
    count = attendance.gallery.person("Anna Smith").image_count
    report = attendance.enroll_person("Anna Smith", powell[4:5], consent=True,
                                      add_to_existing=True)
    assert attendance.gallery.person("Anna Smith").image_count == count + len(report.saved)
