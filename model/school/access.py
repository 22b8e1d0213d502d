"""The admin passcode: where it comes from, how a typed code is checked, how guessing is slowed.

The passcode is read, in this order, from

1. the environment: ``FACEATT_ADMIN_PASSCODE_HASH`` (a hash, see below), then
   ``FACEATT_ADMIN_PASSCODE`` (the code itself);
2. the keys ``admin_passcode_hash`` then ``admin_passcode`` of ``.streamlit/secrets.toml``
   (the project's folder, then the current folder, then the home folder; the same places
   Streamlit reads; the first file holding either key wins).

An empty value counts as "not set": the app then runs for local use only and
says so on every admin page. A hash that is set but malformed is an error, never
"not set": the teacher pages then stay locked until it is fixed (fail closed).

A hash is one line, ``pbkdf2_sha256$<iterations>$<salt-hex>$<hash-hex>``
(``hashlib.pbkdf2_hmac`` with SHA-256, at least ``MIN_ITERATIONS`` rounds); make one
with ``python -m model passcode-hash``. Codes are compared with ``hmac.compare_digest``
so the time taken does not reveal how much of a guess was right.

``PasscodeThrottle`` slows guessing: after ``FREE_TRIES`` wrong codes, each further
try must wait 2, 4, 8 ... seconds (at most 60) after the last wrong one.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets as _secrets
import threading
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from model.errors import FaceAttendanceError
from model.settings import REPO_ROOT

log = logging.getLogger(__name__)

ENV_ADMIN_PASSCODE = "FACEATT_ADMIN_PASSCODE"
ENV_ADMIN_PASSCODE_HASH = "FACEATT_ADMIN_PASSCODE_HASH"
SECRETS_KEY = "admin_passcode"
SECRETS_HASH_KEY = "admin_passcode_hash"

#: The one hash scheme we read and write.
HASH_SCHEME = "pbkdf2_sha256"
#: PBKDF2 rounds: fewer are refused (too cheap to guess offline), the default is
#: OWASP's 2023 advice for PBKDF2-SHA256 (about 0.3 s per check on a laptop core;
#: raising it slows every unlock and every guess alike). The maximum keeps a typo
#: ("6000000000") from freezing the page on each unlock.
MIN_ITERATIONS = 200_000
DEFAULT_ITERATIONS = 600_000
MAX_ITERATIONS = 50_000_000
#: Bytes of random salt in a new hash, and the fewest accepted in a configured one.
SALT_BYTES = 16
MIN_SALT_BYTES = 8
#: Bytes of the derived key (SHA-256's size); a configured hash must have 16 or more.
HASH_BYTES = 32
MIN_HASH_BYTES = 16

#: Throttle: wrong tries allowed without waiting, the first wait and the longest
#: (seconds), how long after its last wrong try a record is forgotten, and how many
#: records are kept at most (the oldest go first). Lower ``FREE_TRIES`` or raise the
#: delays to slow guessing further; a teacher who mistypes pays the same price.
FREE_TRIES = 5
FIRST_DELAY_S = 2.0
MAX_DELAY_S = 60.0
FORGET_AFTER_S = 3600.0
MAX_RECORDS = 10_000


class PasscodeHashError(FaceAttendanceError):
    """The configured passcode hash is not a ``pbkdf2_sha256$...`` line we can use."""


def secrets_files() -> list[Path]:
    """Where ``secrets.toml`` is looked for, first match wins."""
    return [REPO_ROOT / ".streamlit" / "secrets.toml",
            Path.cwd() / ".streamlit" / "secrets.toml",
            Path.home() / ".streamlit" / "secrets.toml"]


# ----- hashes ----------------------------------------------------------------------------

@dataclass(frozen=True)
class PasscodeHash:
    """A PBKDF2-SHA256 hash of the passcode: rounds, salt and derived key."""

    iterations: int
    salt: bytes
    digest: bytes

    def __str__(self) -> str:
        return f"{HASH_SCHEME}${self.iterations}${self.salt.hex()}${self.digest.hex()}"

    @classmethod
    def parse(cls, text: str) -> PasscodeHash:
        """Read a ``pbkdf2_sha256$<iterations>$<salt-hex>$<hash-hex>`` line.

        Raises ``PasscodeHashError`` with a sentence saying what is wrong.
        """
        parts = text.strip().split("$")
        remedy = " Make a new one with: python -m model passcode-hash"
        if len(parts) != 4 or parts[0] != HASH_SCHEME:
            raise PasscodeHashError(
                f"The admin passcode hash must look like {HASH_SCHEME}$<iterations>$<salt>$<hash> "
                f"(four parts separated by $).{remedy}")
        _, rounds, salt_hex, digest_hex = parts
        if not rounds.isdigit():
            raise PasscodeHashError(f"The admin passcode hash's iteration count is not a whole "
                                    f"number.{remedy}")
        iterations = int(rounds)
        if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
            raise PasscodeHashError(
                f"The admin passcode hash uses {iterations} iterations; between {MIN_ITERATIONS} "
                f"and {MAX_ITERATIONS} are accepted.{remedy}")
        try:
            salt, digest = bytes.fromhex(salt_hex), bytes.fromhex(digest_hex)
        except ValueError:
            raise PasscodeHashError(f"The admin passcode hash's salt and hash must be "
                                    f"hexadecimal.{remedy}") from None
        if len(salt) < MIN_SALT_BYTES or len(digest) < MIN_HASH_BYTES:
            raise PasscodeHashError(f"The admin passcode hash's salt or hash is too short.{remedy}")
        return cls(iterations, salt, digest)

    def matches(self, typed: str | None) -> bool:
        """Whether ``typed`` is the code this hash was made from (constant-time compare)."""
        if not typed:
            return False
        derived = hashlib.pbkdf2_hmac("sha256", typed.encode("utf-8"), self.salt,
                                      self.iterations, dklen=len(self.digest))
        return hmac.compare_digest(derived, self.digest)


def hash_passcode(code: str, *, iterations: int = DEFAULT_ITERATIONS,
                  salt: bytes | None = None) -> str:
    """The ``pbkdf2_sha256$...`` line for ``code`` (a fresh random salt unless given)."""
    if not code:
        raise PasscodeHashError("The passcode is empty.")
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise PasscodeHashError(f"Use between {MIN_ITERATIONS} and {MAX_ITERATIONS} iterations.")
    salt = _secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha256", code.encode("utf-8"), salt, iterations,
                                 dklen=HASH_BYTES)
    return str(PasscodeHash(iterations, salt, digest))


# ----- the configured passcode -----------------------------------------------------------

@dataclass(frozen=True)
class AdminPasscode:
    """The configured admin passcode: the code itself, or its hash (``hashed``)."""

    plain: str | None = None
    hashed: PasscodeHash | None = None

    def matches(self, typed: str | None) -> bool:
        """Whether ``typed`` is the passcode, compared in constant time."""
        if self.hashed is not None:
            return self.hashed.matches(typed)
        return check_passcode(typed, self.plain)

    @property
    def marker(self) -> str:
        """What a browser session keeps to remember it unlocked: a digest of the
        configured value (of the hash line when hashed), never the passcode itself.
        Changing the passcode changes it, so every unlocked session locks again."""
        source = str(self.hashed) if self.hashed is not None else f"plain:{self.plain}"
        return hashlib.sha256(f"faceatt-admin:{source}".encode()).hexdigest()


def _read_secrets(paths: Sequence[Path]) -> dict[str, str]:
    """The passcode keys of the first readable secrets file that has either."""
    for path in paths:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        found = {key: str(data[key]) for key in (SECRETS_HASH_KEY, SECRETS_KEY)
                 if isinstance(data.get(key), (str, int)) and str(data[key]).strip()}
        if found:
            return found
    return {}


def configured_passcode(*, environ: Mapping[str, str] | None = None,
                        secrets: Sequence[Path] | None = None) -> AdminPasscode | None:
    """The configured admin passcode, or ``None`` when none is set.

    ``environ`` and ``secrets`` default to ``os.environ`` and ``secrets_files()``
    (tests pass their own). An unreadable or malformed secrets file is skipped; a
    malformed hash raises ``PasscodeHashError`` (it is set, so nothing opens).
    """
    env = os.environ if environ is None else environ
    places = [{key: env.get(name, "") for key, name in ((SECRETS_HASH_KEY, ENV_ADMIN_PASSCODE_HASH),
                                                         (SECRETS_KEY, ENV_ADMIN_PASSCODE))}]
    places.append(_read_secrets(secrets_files() if secrets is None else secrets))
    for place in places:
        if place.get(SECRETS_HASH_KEY, "").strip():
            return AdminPasscode(hashed=PasscodeHash.parse(place[SECRETS_HASH_KEY]))
        if place.get(SECRETS_KEY, "").strip():
            return AdminPasscode(plain=place[SECRETS_KEY])
    return None


def admin_passcode(*, environ: Mapping[str, str] | None = None,
                   secrets: Sequence[Path] | None = None) -> str | None:
    """The configured plain admin passcode, or ``None`` (also when only a hash is set)."""
    try:
        found = configured_passcode(environ=environ, secrets=secrets)
    except PasscodeHashError:
        return None
    return None if found is None else found.plain


def passcode_is_set(*, environ: Mapping[str, str] | None = None,
                    secrets: Sequence[Path] | None = None) -> bool:
    """Whether an admin passcode (or its hash, even a malformed one) is configured."""
    try:
        return configured_passcode(environ=environ, secrets=secrets) is not None
    except PasscodeHashError:
        return True


def check_passcode(typed: str | None, expected: str | None) -> bool:
    """True when ``typed`` equals ``expected``, compared in constant time.

    Always False when no passcode is expected or nothing was typed (an unset
    passcode means "no login", not "any code works").
    """
    if not expected or not typed:
        return False
    return hmac.compare_digest(typed.encode("utf-8"), expected.encode("utf-8"))


# ----- slowing down guesses --------------------------------------------------------------

@dataclass
class _Record:
    failures: int
    last_failure: float


class PasscodeThrottle:
    """Wrong passcode tries per key (a browser session, a client address), thread-safe.

    One instance serves the whole app process (every browser session), so reloading
    the page, which starts a new browser session, does not reset the wait when the
    client address is a key too. ``clock`` returns seconds (``time.monotonic``).

    >>> throttle = PasscodeThrottle()
    >>> wait = throttle.check("session:abc", "ip:10.0.0.7")   # 0.0: may try now
    """

    def __init__(self, *, free_tries: int = FREE_TRIES, first_delay_s: float = FIRST_DELAY_S,
                 max_delay_s: float = MAX_DELAY_S, forget_after_s: float = FORGET_AFTER_S,
                 max_records: int = MAX_RECORDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.free_tries = free_tries
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self.forget_after_s = forget_after_s
        self.max_records = max_records
        self._clock = clock
        self._lock = threading.Lock()
        self._records: dict[str, _Record] = {}

    def delay_after(self, failures: int) -> float:
        """Seconds to wait after ``failures`` wrong tries in a row: 0 for the first
        ``free_tries - 1``, then 2, 4, 8 ... up to ``max_delay_s``."""
        if failures < self.free_tries:
            return 0.0
        return min(self.max_delay_s,
                   self.first_delay_s * 2.0 ** min(failures - self.free_tries, 32))

    def check(self, *keys: str | None) -> float:
        """Seconds before another try may be checked (0.0: now). ``None`` keys are skipped."""
        now = self._clock()
        with self._lock:
            return max((self._wait(self._records.get(key), now) for key in keys if key),
                       default=0.0)

    def failed(self, *keys: str | None) -> float:
        """Record a wrong try for every key; returns the seconds before the next one."""
        now = self._clock()
        with self._lock:
            self._forget_old(now)
            for key in filter(None, keys):
                record = self._records.pop(key, None) or _Record(0, now)
                record.failures += 1
                record.last_failure = now
                self._records[key] = record  # re-inserted: the dict stays oldest-first
            while len(self._records) > self.max_records:
                del self._records[next(iter(self._records))]
            worst = max((self._records[k].failures for k in keys if k), default=0)
            wait = max((self._wait(self._records.get(k), now) for k in keys if k), default=0.0)
        if worst >= self.free_tries:
            # Never the typed code: only who (these keys) and how often.
            log.warning("Admin passcode: %d wrong tries in a row from %s; next try in %.0f s.",
                        worst, ", ".join(k for k in keys if k), wait)
        return wait

    def succeeded(self, *keys: str | None) -> None:
        """The right code was typed: forget the wrong tries of these keys."""
        with self._lock:
            for key in filter(None, keys):
                self._records.pop(key, None)

    def _wait(self, record: _Record | None, now: float) -> float:
        if record is None:
            return 0.0
        return max(0.0, record.last_failure + self.delay_after(record.failures) - now)

    def _forget_old(self, now: float) -> None:
        stale = [key for key, record in self._records.items()
                 if now - record.last_failure > max(self.forget_after_s,
                                                    self.delay_after(record.failures))]
        for key in stale:
            del self._records[key]
