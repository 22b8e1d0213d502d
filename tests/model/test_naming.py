"""Person names: friendly Unicode names in, path tricks and nonsense out."""

from __future__ import annotations

import pytest

from model.errors import InvalidNameError, NameTakenError
from model.naming import (
    MAX_FOLDER_BYTES,
    MAX_NAME_LENGTH,
    confusable_key,
    folder_name,
    name_key,
    normalize_name,
    normalize_student_id,
)
from model.school.gallery import Gallery


@pytest.mark.parametrize("name", [
    "Zoë O'Brien-Núñez", "Ada Lovelace", "李小龍", "Ólafur Arnalds", "J. R. R. Tolkien",
    "Anna Smith 2", "Nguyễn Thị Minh Khai", "Smith, Anna", "Ахмед Петров", "محمد علي",
    "सत्यजित राय", "Dr. Martin Luther King Jr.", "Ngũgĩ wa Thiongʼo".replace("ʼ", "'"),
])
def test_names_as_people_have_them_are_accepted_unchanged(name):
    assert normalize_name(name) == name


def test_decomposed_accents_are_composed():
    assert normalize_name("Zoe\u0308") == "Zoë"


def test_typographic_apostrophe_is_folded():
    assert normalize_name("Zoë O\u2019Brien") == "Zoë O'Brien"
    assert normalize_name("O\u02bcNeil") == "O'Neil"


def test_whitespace_is_collapsed_and_trimmed():
    assert normalize_name("  Ada \t\n  Lovelace  ") == "Ada Lovelace"


@pytest.mark.parametrize("bad", [
    "../x", "", "   ", "a" * (MAX_NAME_LENGTH + 1), "a/b", "a\\b", "x\x00", "12345", ".", "..",
    "Ada\nLovelace\x07", "--", "'", ".Ada", "Ada\u200bLovelace", "Ada\u202eecalevoL",
    "Ada\ufeff", "Ada\u00adLovelace", "Ada_Lovelace", "Ada:Lovelace", "Ada*", "<b>Ada</b>",
    "Ada\U000f0000",
])
def test_bad_names_are_refused(bad):
    with pytest.raises(InvalidNameError) as info:
        normalize_name(bad)
    assert str(info.value)  # a sentence for the user


def test_longest_name_is_accepted():
    assert normalize_name("a" * MAX_NAME_LENGTH) == "a" * MAX_NAME_LENGTH


def test_name_key_ignores_case():
    assert name_key("Zoë O'Brien") == name_key("ZOË O'BRIEN")


def test_case_variant_is_refused_but_same_name_adds_photos(tmp_path, make_crop):
    gallery = Gallery(tmp_path)
    gallery.add_crops("Zoë O'Brien-Núñez", [make_crop(1)], consent=True)
    with pytest.raises(NameTakenError):
        gallery.add_crops("zoë o'brien-núñez", [make_crop(2)], consent=True)
    gallery.add_crops("Zoë O\u2019Brien-Núñez", [make_crop(3)], consent=True)  # same after folding
    [person] = gallery.people()
    assert person.name == "Zoë O'Brien-Núñez" and person.image_count == 2
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [person.name]


def test_look_alike_letters_of_another_script_count_as_the_same_name():
    cyrillic_a = "\u0410nna Smith"  # Cyrillic capital A
    assert cyrillic_a != "Anna Smith" and normalize_name(cyrillic_a) == cyrillic_a
    assert confusable_key(cyrillic_a) == confusable_key("ANNA SMITH")
    assert confusable_key("Anna Smith") != confusable_key("Anne Smith")


@pytest.mark.parametrize("name", ["李" * MAX_NAME_LENGTH, "é" * MAX_NAME_LENGTH,
                                  "a" * MAX_NAME_LENGTH, "J. R. R. Tolkien."])
def test_every_accepted_name_has_a_folder_that_fits(name, tmp_path):
    folder = folder_name(normalize_name(name))
    assert len(folder.encode("utf-8")) <= MAX_FOLDER_BYTES and "/" not in folder
    assert not folder.startswith(".")
    (tmp_path / folder).mkdir()  # the file system takes it
    assert folder_name(normalize_name(name)) == folder  # stable


def test_long_cjk_name_enrolls_and_reads_back(tmp_path, make_crop):
    name = "李" * MAX_NAME_LENGTH
    gallery = Gallery(tmp_path)
    gallery.add_crops(name, [make_crop(1)], consent=True)
    [person] = gallery.people()
    assert person.name == name and person.image_count == 1
    gallery.rename_person(name, "李小龍")
    assert [p.name for p in gallery.people()] == ["李小龍"]


def test_look_alike_and_case_twins_are_refused(tmp_path, make_crop):
    gallery = Gallery(tmp_path)
    gallery.add_crops("Anna Smith", [make_crop(1)], consent=True)
    with pytest.raises(NameTakenError, match="looks the same"):
        gallery.add_crops("\u0410nna Smith", [make_crop(2)], consent=True)
    with pytest.raises(NameTakenError):
        gallery.add_crops("ANNA SMITH", [make_crop(3)], consent=True)
    gallery.add_crops("Anna Smith", [make_crop(4)], consent=True)  # the same person
    assert [(p.name, p.image_count) for p in gallery.people()] == [("Anna Smith", 2)]


def test_a_student_id_tells_two_people_with_one_name_apart(tmp_path, make_crop):
    gallery = Gallery(tmp_path)
    gallery.add_crops("Anna Smith", [make_crop(1)], consent=True, student_id="1001")
    gallery.add_crops("Anna Smith", [make_crop(2)], consent=True, student_id="1002")
    people = gallery.people()
    assert [(p.name, p.student_id) for p in people] == [("Anna Smith (1001)", "1001"),
                                                         ("Anna Smith (1002)", "1002")]
    assert people[0].id != people[1].id
    assert gallery.find_person("anna smith (1002)") == "Anna Smith (1002)"
    assert normalize_student_id("  A-12.3 ") == "A-12.3" and normalize_student_id("") is None
    for bad in ("../../x y", "A/12", "a\\b", "x" * 41):
        with pytest.raises(InvalidNameError):
            normalize_student_id(bad)
