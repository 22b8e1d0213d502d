"""Person names: friendly Unicode names in, path tricks and nonsense out."""

from __future__ import annotations

import pytest

from model.errors import InvalidNameError, NameTakenError
from model.gallery import Gallery
from model.naming import MAX_NAME_LENGTH, name_key, normalize_name


@pytest.mark.parametrize("name", ["Zoë O'Brien-Núñez", "Ada Lovelace", "李小龍", "Ólafur Arnalds"])
def test_friendly_names_are_accepted_unchanged(name):
    assert normalize_name(name) == name


def test_decomposed_accents_are_composed():
    assert normalize_name("Zoe\u0308") == "Zoë"


def test_typographic_apostrophe_is_folded():
    assert normalize_name("Zoë O\u2019Brien") == "Zoë O'Brien"
    assert normalize_name("O\u02bcNeil") == "O'Neil"


def test_whitespace_is_collapsed_and_trimmed():
    assert normalize_name("  Ada \t\n  Lovelace  ") == "Ada Lovelace"


@pytest.mark.parametrize("bad", [
    "../x", "", "   ", "a" * (MAX_NAME_LENGTH + 1), "a/b", "a\\b", "x\x00", "12345", "Ada.", ".", "..",
    "Ada\nLovelace\x07", "--", "'",
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
