"""The admin passcode: where it comes from and how a typed code is checked.

The passcode is read, in this order, from

1. the environment variable ``FACEATT_ADMIN_PASSCODE``;
2. the key ``admin_passcode`` of ``.streamlit/secrets.toml`` (the project's folder,
   then the current folder, then the home folder; the same places Streamlit reads).

An empty value counts as "not set": the app then runs for local use only and
says so on every admin page. Codes are compared with ``hmac.compare_digest`` so
the time taken does not reveal how much of a guess was right.
"""

from __future__ import annotations

import hmac
import os
import tomllib
from collections.abc import Sequence
from pathlib import Path

from model.settings import REPO_ROOT

ENV_ADMIN_PASSCODE = "FACEATT_ADMIN_PASSCODE"
SECRETS_KEY = "admin_passcode"


def secrets_files() -> list[Path]:
    """Where ``secrets.toml`` is looked for, first match wins."""
    return [REPO_ROOT / ".streamlit" / "secrets.toml",
            Path.cwd() / ".streamlit" / "secrets.toml",
            Path.home() / ".streamlit" / "secrets.toml"]


def admin_passcode(*, environ: dict[str, str] | None = None,
                   secrets: Sequence[Path] | None = None) -> str | None:
    """The configured admin passcode, or ``None`` when none is set.

    ``environ`` and ``secrets`` default to ``os.environ`` and ``secrets_files()``
    (tests pass their own). An unreadable or malformed secrets file is skipped.
    """
    env = os.environ if environ is None else environ
    value = env.get(ENV_ADMIN_PASSCODE, "")
    if value.strip():
        return value
    for path in secrets_files() if secrets is None else secrets:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        found = data.get(SECRETS_KEY)
        if isinstance(found, (str, int)) and str(found).strip():
            return str(found)
    return None


def passcode_is_set(**kwargs: object) -> bool:
    """Whether an admin passcode is configured (see ``admin_passcode``)."""
    return admin_passcode(**kwargs) is not None  # type: ignore[arg-type]


def check_passcode(typed: str | None, expected: str | None) -> bool:
    """True when ``typed`` equals ``expected``, compared in constant time.

    Always False when no passcode is expected or nothing was typed (an unset
    passcode means "no login", not "any code works").
    """
    if not expected or not typed:
        return False
    return hmac.compare_digest(typed.encode("utf-8"), expected.encode("utf-8"))
