"""Person names and the folder names derived from them.

A name is shown to people and is also the folder name in the gallery, so it must
be both friendly ("Zoë O'Brien-Núñez") and unable to escape the gallery folder.
We allow Unicode letters (and combining marks), spaces, hyphens and apostrophes;
that alphabet has no path separators, dots or control characters, so the folder
name is the normalised name itself.
"""

from __future__ import annotations

import re
import unicodedata

from model.errors import InvalidNameError

MAX_NAME_LENGTH = 100
_APOSTROPHES = {"\u2019": "'", "\u02bc": "'", "\u2018": "'"}


def normalize_name(raw: str) -> str:
    """Return the canonical form of a person's name, or raise ``InvalidNameError``.

    NFC-normalises, folds typographic apostrophes to ``'``, collapses runs of
    spaces and trims. Refuses empty names, names over 100 characters and any
    character other than letters, combining marks, spaces, hyphens and apostrophes.
    """
    if not isinstance(raw, str):
        raise InvalidNameError("A name must be text.")
    name = unicodedata.normalize("NFC", raw)
    for fancy, plain in _APOSTROPHES.items():
        name = name.replace(fancy, plain)
    name = re.sub(r"\s+", " ", name).strip()
    if not name:
        raise InvalidNameError("Please type the person's name.")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(
            f"That name is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}.")
    bad = sorted({ch for ch in name if not _allowed(ch)})
    if bad:
        shown = " ".join(repr(ch) for ch in bad[:5])
        raise InvalidNameError(
            f"A name may contain only letters, spaces, hyphens and apostrophes (not {shown}).")
    if not any(unicodedata.category(ch).startswith("L") for ch in name):
        raise InvalidNameError("A name must contain at least one letter.")
    return name


def _allowed(ch: str) -> bool:
    if ch in " -'":
        return True
    category = unicodedata.category(ch)
    return category.startswith("L") or category in ("Mn", "Mc")


def name_key(name: str) -> str:
    """Key under which two names count as the same person (case-insensitive)."""
    return unicodedata.normalize("NFC", name).casefold()
