"""Person names as people have them, and the folder names derived from them.

A name is shown to people ("J. R. R. Tolkien", "Anna Smith 2", "Nguyễn Thị Minh Khai",
"李小龍") and also names a folder in the gallery. We accept letters of any script with
their combining marks, digits, spaces, hyphens, apostrophes, periods and commas, and
at least one letter; we refuse control and invisible characters (they make two names
that look the same), path separators, names over 100 characters, and names that are
only dots. The folder name is derived (``folder_name``): the name itself when it fits,
else a shortened form with a hash, so any accepted name can be stored.

Two names that differ only by case, or by letters of another script that look the same
(Cyrillic "А" for Latin "A"), would be one person to a teacher reading a register:
``confusable_key`` is what the gallery compares to refuse the second.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from model.errors import InvalidNameError

MAX_NAME_LENGTH = 100
#: Longest folder name in bytes (UTF-8). Linux allows 255; we keep room for the suffix a
#: duplicate name gets and stay portable.
MAX_FOLDER_BYTES = 120
#: Longest student id (letters, digits, '-', '_', '.', '/').
MAX_STUDENT_ID_LENGTH = 40
_APOSTROPHES = {"\u2019": "'", "\u02bc": "'", "\u2018": "'"}
_PUNCTUATION = " -'.,"
#: Letters of Cyrillic and Greek that look like Latin ones (after case folding), so that
#: "Аnna" (Cyrillic А) counts as "Anna". Not every homoglyph of Unicode: the ones a
#: keyboard or a copy-paste of a name realistically produces.
_LOOK_ALIKES = str.maketrans({
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d",
    "ӏ": "l", "ԛ": "q", "ԝ": "w", "һ": "h", "ь": "b",
    # Greek
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
    "τ": "t", "υ": "u", "χ": "x", "γ": "y", "ζ": "z", "μ": "m",
})


def normalize_name(raw: str) -> str:
    """Return the canonical form of a person's name, or raise ``InvalidNameError``.

    NFC-normalises, folds typographic apostrophes to ``'``, collapses runs of spaces
    and trims. Refuses empty names, names over 100 characters, characters other than
    letters, marks, digits, spaces and ``-'.,``, names without a letter, and names
    that start with a period (a hidden folder)."""
    if not isinstance(raw, str):
        raise InvalidNameError("A name must be text.")
    name = unicodedata.normalize("NFC", raw)
    for fancy, plain in _APOSTROPHES.items():
        name = name.replace(fancy, plain)
    invisible = sorted({ch for ch in name if _invisible(ch)})
    if invisible:
        shown = ", ".join(f"U+{ord(ch):04X}" for ch in invisible[:3])
        raise InvalidNameError(
            f"The name contains invisible or control characters ({shown}); please type it again.")
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
            "A name may contain letters, digits, spaces, hyphens, apostrophes, periods and "
            f"commas (not {shown}).")
    if not any(unicodedata.category(ch).startswith("L") for ch in name):
        raise InvalidNameError("A name must contain at least one letter.")
    if name.startswith("."):
        raise InvalidNameError("A name cannot start with a period.")
    return name


def normalize_student_id(raw: str | None) -> str | None:
    """A student id as stored (trimmed), None when empty; ``InvalidNameError`` when it has
    characters other than letters, digits and ``-_.`` or is too long (no ``/``: the id
    is part of the person's folder name)."""
    if raw is None:
        return None
    value = unicodedata.normalize("NFC", str(raw)).strip()
    if not value:
        return None
    if len(value) > MAX_STUDENT_ID_LENGTH or not all(
            ch.isalnum() or ch in "-_." for ch in value):
        raise InvalidNameError(
            f"A student id has at most {MAX_STUDENT_ID_LENGTH} letters, digits, '-', '_' or '.'.")
    return value


def name_key(name: str) -> str:
    """Key under which two names count as the same name (case-insensitive)."""
    return unicodedata.normalize("NFC", name).casefold()


def confusable_key(name: str) -> str:
    """Key under which two names look the same to a reader: case folded, compatibility
    forms unified, and Cyrillic/Greek look-alikes read as the Latin letters they imitate."""
    return unicodedata.normalize("NFKC", name).casefold().translate(_LOOK_ALIKES)


def folder_name(name: str) -> str:
    """The gallery folder of a normalised name: the name itself when it fits in
    ``MAX_FOLDER_BYTES`` bytes, else its longest prefix that does plus ``~`` and a short
    hash of the whole name (so "a 100-character CJK name" is stored, never refused by
    the file system with "File name too long")."""
    if len(name.encode("utf-8")) <= MAX_FOLDER_BYTES:
        return name
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:10]
    budget = MAX_FOLDER_BYTES - len(digest) - 1
    prefix = name.encode("utf-8")[:budget].decode("utf-8", errors="ignore").rstrip(" .")
    return f"{prefix}~{digest}"


def display_name(name: str, student_id: str | None) -> str:
    """How a person is shown where two people may share a name: "Anna Smith (12345)"."""
    return f"{name} ({student_id})" if student_id else name


def _invisible(ch: str) -> bool:
    """Control, format (zero-width, bidi), private-use and unassigned characters. Tabs,
    newlines and every kind of space are not: they fold into one plain space."""
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp")


def _allowed(ch: str) -> bool:
    if ch in _PUNCTUATION:
        return True
    category = unicodedata.category(ch)
    return category.startswith("L") or category in ("Mn", "Mc", "Nd")
