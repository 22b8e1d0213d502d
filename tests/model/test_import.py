"""Bulk import: folders named after people, a zip of them, a roster CSV."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from model.core.images import encode_jpeg, encode_png
from model.errors import ConsentRequiredError
from model.school.importing import (
    ImportProblem,
    RosterEntry,
    extract_zip,
    person_folders,
    read_roster,
)

# ----- reading folders, zips and rosters (no network) ------------------------------------

def test_person_folders_read_the_seed_layout(tmp_path):
    for name in ("Ada_Lovelace", "Alan Turing", ".hidden", "__MACOSX"):
        (tmp_path / name).mkdir()
    (tmp_path / "Ada_Lovelace" / "1.JPG").write_bytes(b"x")
    (tmp_path / "Ada_Lovelace" / "notes.txt").write_text("hi")
    (tmp_path / "Ada_Lovelace" / ".DS_Store").write_bytes(b"x")
    (tmp_path / "loose.jpg").write_bytes(b"x")
    folders, skipped = person_folders(tmp_path)
    assert [f.name for f in folders] == ["Ada Lovelace", "Alan Turing"]
    assert [p.name for p in folders[0].photos] == ["1.JPG"]
    assert folders[0].not_photos == ["notes.txt"] and folders[1].photos == []
    assert [name for name, _ in skipped] == ["loose.jpg"]


def test_a_zip_of_one_class_folder_is_read_inside_it(zip_of, tmp_path):
    root = extract_zip(zip_of({"7B/Ada/1.jpg": b"a", "7B/Alan/2.png": b"b",
                             "__MACOSX/7B/._Ada": b"junk"}), tmp_path / "out")
    folders, _ = person_folders(root)
    assert [f.name for f in folders] == ["Ada", "Alan"]


@pytest.mark.parametrize("name", ["../evil/1.jpg", "/etc/x.jpg", "a/../../x.jpg", "C:/x.jpg"])
def test_a_zip_pointing_outside_is_refused_before_writing(zip_of, tmp_path, name):
    with pytest.raises(ImportProblem, match="outside"):
        extract_zip(zip_of({"Ada/1.jpg": b"a", name: b"b"}), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_zip_bomb_and_a_non_zip_are_refused(zip_of, tmp_path, monkeypatch):
    import model.school.importing as importing

    monkeypatch.setattr(importing, "MAX_ZIP_BYTES", 1000)
    with pytest.raises(ImportProblem, match="unpacks to"):
        extract_zip(zip_of({"Ada/1.jpg": bytes(2000)}), tmp_path / "out")
    with pytest.raises(ImportProblem, match="not a zip"):
        extract_zip(b"PK\x03\x04 broken", tmp_path / "out2")
    with pytest.raises(ImportProblem, match="holds no folder"):
        person_folders(extract_zip(zip_of({"loose.jpg": b"a"}), tmp_path / "out3"))


def test_zip_names_written_in_utf8_without_the_flag_keep_their_accents(tmp_path):
    """macOS's Archive Utility writes UTF-8 names without the zip's UTF-8 flag; Python
    would read them as CP437 ("Zo├½ Ng")."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("Zoë Ng/1.jpg")
        archive.writestr(info, b"a")
    data = bytearray(buffer.getvalue())
    # Clear the UTF-8 flag (general purpose bit 11) in the local and central headers.
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.index(signature) + offset
        data[at:at + 2] = (int.from_bytes(data[at:at + 2], "little") & ~0x800).to_bytes(2, "little")
    root = extract_zip(bytes(data), tmp_path / "out")
    assert [f.name for f in person_folders(root)[0]] == ["Zoë Ng"]


def test_a_roster_saved_by_excel_in_windows_1252_keeps_its_accents():
    entries, refused = read_roster("Zoë Núñez;12\nÅsa Öberg\n".encode("cp1252"))
    assert entries == [RosterEntry("Zoë Núñez", "12"), RosterEntry("Åsa Öberg")]
    assert refused == []


def test_a_roster_csv_with_header_ids_and_bad_lines():
    text = ("Name;Student id\n"
            "J. R. R. Tolkien;T-1\n"
            "Anna Smith 2;\n"
            "Nguyễn Thị Minh Khai;N.7\n"
            "李小龍\n"
            "../x;1\n"
            "\n"
            "Anna Smith 2;\n")
    entries, refused = read_roster(("\ufeff" + text).encode("utf-8"))
    assert entries == [RosterEntry("J. R. R. Tolkien", "T-1"), RosterEntry("Anna Smith 2"),
                       RosterEntry("Nguyễn Thị Minh Khai", "N.7"), RosterEntry("李小龍")]
    assert [line for line, _ in refused] == [6]


# ----- importing through the facade (detector and network) -------------------------------

@pytest.fixture
def tree(tmp_path, astronaut, two_astronauts):
    """Good, bad and empty person folders."""
    root = tmp_path / "photos"
    good = root / "Eileen_Collins"
    good.mkdir(parents=True)
    (good / "1.jpg").write_bytes(encode_jpeg(astronaut))
    (good / "2.png").write_bytes(encode_png(astronaut[:, ::-1].copy()))
    (good / "group.jpg").write_bytes(encode_jpeg(two_astronauts))
    (good / "readme.txt").write_text("not a photo")
    (root / "Nobody Here").mkdir()
    blank = root / "Blank Wall"
    blank.mkdir()
    (blank / "wall.png").write_bytes(encode_png(np.full((200, 200, 3), 90, np.uint8)))
    bad = root / "Bad!Name"
    bad.mkdir()
    (bad / "1.jpg").write_bytes(encode_jpeg(astronaut))
    return root


@pytest.mark.slow
def test_import_folders_reports_per_person_and_fills_the_class(attendance, tree):
    with pytest.raises(ConsentRequiredError):
        attendance.import_folders(tree, consent=False)
    assert attendance.gallery.people() == []
    report = attendance.import_folders(tree, consent=True, class_name="Maths 7B")
    rows = {p.name: p for p in report.people}
    assert sorted(rows) == ["Bad!Name", "Blank Wall", "Eileen Collins", "Nobody Here"]
    eileen = rows["Eileen Collins"]
    assert eileen.ok and eileen.used == 2
    assert sorted(label for label, _ in eileen.refused) == ["group.jpg", "readme.txt"]
    assert rows["Nobody Here"].error == "no photo in this folder"
    assert rows["Blank Wall"].error and not rows["Blank Wall"].used
    assert "may contain letters" in rows["Bad!Name"].error
    assert report.enrolled == ["Eileen Collins"] and report.class_name == "Maths 7B"
    assert [p.name for p in attendance.gallery.people()] == ["Eileen Collins"]
    maths = attendance.book.find_class("maths 7b")
    assert attendance.book.roster(maths.id) == ["Eileen Collins"]
    # Importing again adds the photos to the same person (the same face) and no duplicate.
    again = attendance.import_folders(tree, consent=True, class_name="Maths 7B")
    assert {p.name: p.used for p in again.people}["Eileen Collins"] >= 1
    assert attendance.book.roster(maths.id) == ["Eileen Collins"]


@pytest.mark.slow
def test_import_zip_and_roster(zip_of, attendance, astronaut):
    data = zip_of({"Class 7B/Eileen Collins/1.jpg": encode_jpeg(astronaut),
                 "Class 7B/Eileen Collins/2.jpg": encode_jpeg(astronaut[:, ::-1].copy())})
    report = attendance.import_zip(data, consent=True, class_name="Art club")
    assert report.enrolled == ["Eileen Collins"]
    roster = attendance.import_roster("Eileen Collins\nAnna Smith 2,S-2\n", "Art club")
    assert roster.added == ["Anna Smith 2 (S-2)"]
    assert roster.needs_photos == ["Anna Smith 2 (S-2)"]
    assert attendance.book.roster(roster.school_class.id) == ["Anna Smith 2 (S-2)",
                                                              "Eileen Collins"]
    other = attendance.import_roster("eileen collins\n", "Maths 7B")
    assert other.added == ["Eileen Collins"] and other.needs_photos == []
