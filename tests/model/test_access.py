"""The admin passcode: environment first, then secrets.toml; hashes; constant-time check;
the throttle that slows guessing; ``python -m model passcode-hash``."""

from __future__ import annotations

import hashlib
import io
import logging
import re
import threading
import tomllib

import pytest

from model.school.access import (
    ENV_ADMIN_PASSCODE,
    ENV_ADMIN_PASSCODE_HASH,
    FREE_TRIES,
    MAX_DELAY_S,
    MIN_ITERATIONS,
    AdminPasscode,
    PasscodeHash,
    PasscodeHashError,
    PasscodeThrottle,
    admin_passcode,
    check_passcode,
    configured_passcode,
    hash_passcode,
    passcode_is_set,
)


def test_environment_wins(tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('admin_passcode = "from-file"\n')
    assert admin_passcode(environ={ENV_ADMIN_PASSCODE: "from-env"}, secrets=[secrets]) == "from-env"


def test_secrets_file_used_when_env_empty(tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('admin_passcode = "from-file"\n')
    assert admin_passcode(environ={ENV_ADMIN_PASSCODE: "  "}, secrets=[secrets]) == "from-file"


def test_missing_or_broken_files_mean_not_set(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("this is = = not toml")
    other = tmp_path / "other.toml"
    other.write_text('something_else = "x"\n')
    assert admin_passcode(environ={}, secrets=[tmp_path / "none.toml", broken, other]) is None
    assert not passcode_is_set(environ={}, secrets=[])


def test_first_secrets_file_wins(tmp_path):
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text('admin_passcode = "A"\n')
    b.write_text('admin_passcode = "B"\n')
    assert admin_passcode(environ={}, secrets=[a, b]) == "A"


def test_check_passcode():
    assert check_passcode("s3cret", "s3cret")
    assert not check_passcode("s3cre", "s3cret")
    assert not check_passcode("", "s3cret")
    assert not check_passcode(None, "s3cret")
    assert not check_passcode("anything", None)
    assert not check_passcode("", "")
    assert check_passcode("pässwörd", "pässwörd")


# ----- hashes ----------------------------------------------------------------------------

FAST = MIN_ITERATIONS  # the fewest rounds accepted: keeps these tests quick


def test_hash_round_trip():
    line = hash_passcode("correct horse", iterations=FAST)
    scheme, rounds, salt, digest = line.split("$")
    assert (scheme, int(rounds)) == ("pbkdf2_sha256", FAST)
    assert len(bytes.fromhex(salt)) == 16 and len(bytes.fromhex(digest)) == 32
    parsed = PasscodeHash.parse(line)
    assert str(parsed) == line
    assert parsed.matches("correct horse")
    assert not parsed.matches("correct hors")
    assert not parsed.matches("")
    assert not parsed.matches(None)
    assert "correct horse" not in line


def test_hash_is_pbkdf2_sha256_and_salted():
    salt = bytes(range(16))
    line = hash_passcode("pässwörd", iterations=FAST, salt=salt)
    expected = hashlib.pbkdf2_hmac("sha256", "pässwörd".encode(), salt, FAST).hex()
    assert line == f"pbkdf2_sha256${FAST}${salt.hex()}${expected}"
    assert hash_passcode("pässwörd", iterations=FAST) != hash_passcode("pässwörd", iterations=FAST)


@pytest.mark.parametrize(("line", "says"), [
    ("", "four parts"),
    ("correct horse", "four parts"),
    ("md5$1$aa$bb", "four parts"),
    ("pbkdf2_sha256$lots$00112233445566778899aabbccddeeff$" + "00" * 32, "whole number"),
    ("pbkdf2_sha256$1000$00112233445566778899aabbccddeeff$" + "00" * 32, "1000 iterations"),
    ("pbkdf2_sha256$999999999999$00112233445566778899aabbccddeeff$" + "00" * 32, "iterations"),
    (f"pbkdf2_sha256${FAST}$not-hex$" + "00" * 32, "hexadecimal"),
    (f"pbkdf2_sha256${FAST}$00$" + "00" * 32, "too short"),
    (f"pbkdf2_sha256${FAST}$00112233445566778899aabbccddeeff$00", "too short"),
])
def test_malformed_hash_is_refused_with_a_sentence(line, says):
    with pytest.raises(PasscodeHashError, match=re.escape(says)) as caught:
        PasscodeHash.parse(line)
    assert "python -m model passcode-hash" in str(caught.value)


def test_hash_from_environment_wins_and_checks(tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('admin_passcode = "from-file"\n')
    line = hash_passcode("from-hash", iterations=FAST)
    found = configured_passcode(environ={ENV_ADMIN_PASSCODE_HASH: line,
                                         ENV_ADMIN_PASSCODE: "from-env"}, secrets=[secrets])
    assert found is not None and found.hashed is not None and found.plain is None
    assert found.matches("from-hash")
    assert not found.matches("from-env") and not found.matches("from-file")
    assert admin_passcode(environ={ENV_ADMIN_PASSCODE_HASH: line}, secrets=[]) is None
    assert passcode_is_set(environ={ENV_ADMIN_PASSCODE_HASH: line}, secrets=[])


def test_hash_from_secrets_file(tmp_path):
    line = hash_passcode("from-file", iterations=FAST)
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'admin_passcode = "ignored"\nadmin_passcode_hash = "{line}"\n')
    found = configured_passcode(environ={}, secrets=[secrets])
    assert found is not None and found.matches("from-file") and not found.matches("ignored")


def test_a_malformed_hash_locks_rather_than_opens(tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('admin_passcode_hash = "pbkdf2_sha256$12$zz$zz"\n')
    with pytest.raises(PasscodeHashError):
        configured_passcode(environ={}, secrets=[secrets])
    assert passcode_is_set(environ={}, secrets=[secrets])  # set, so nothing runs open
    with pytest.raises(PasscodeHashError):
        configured_passcode(environ={ENV_ADMIN_PASSCODE_HASH: "nonsense"}, secrets=[])


def test_marker_is_a_digest_never_the_passcode():
    plain_code = AdminPasscode(plain="correct horse")
    line = hash_passcode("correct horse", iterations=FAST)
    hashed = AdminPasscode(hashed=PasscodeHash.parse(line))
    for passcode in (plain_code, hashed):
        assert "correct horse" not in passcode.marker and len(passcode.marker) == 64
    assert plain_code.marker != hashed.marker
    assert hashed.marker == AdminPasscode(hashed=PasscodeHash.parse(line)).marker
    assert AdminPasscode(plain="other").marker != plain_code.marker
    assert line not in hashed.marker


def test_codes_are_compared_in_constant_time(monkeypatch):
    import hmac

    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("model.school.access.hmac.compare_digest", spy)
    assert AdminPasscode(plain="s3cret").matches("s3cret")
    assert not PasscodeHash.parse(hash_passcode("s3cret", iterations=FAST)).matches("guess")
    assert len(calls) == 2
    assert calls[0] == (b"s3cret", b"s3cret")
    assert all(len(a) == len(b) == 32 for a, b in calls[1:])  # derived keys, not the codes


# ----- the throttle ----------------------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_delays_grow_after_five_failures_and_are_capped():
    clock = FakeClock()
    throttle = PasscodeThrottle(clock=clock)
    waits = [throttle.failed("session:a") for _ in range(4)]
    assert waits == [0.0] * 4
    assert throttle.check("session:a") == 0.0
    assert [throttle.delay_after(n) for n in range(4, 12)] == [0, 2, 4, 8, 16, 32, 60, 60]
    assert throttle.failed("session:a") == 2.0  # the fifth wrong try
    assert throttle.check("session:a") == 2.0
    clock.now += 1.5
    assert throttle.check("session:a") == pytest.approx(0.5)
    clock.now += 0.5
    assert throttle.check("session:a") == 0.0
    assert throttle.failed("session:a") == 4.0
    for _ in range(10):
        clock.now += 100
        last = throttle.failed("session:a")
    assert last == MAX_DELAY_S
    assert throttle.check("session:b") == 0.0  # another browser is not slowed


def test_throttle_keys_by_address_survive_a_new_browser_session():
    clock = FakeClock()
    throttle = PasscodeThrottle(clock=clock)
    for _ in range(FREE_TRIES):
        throttle.failed("session:first", "address:10.0.0.7")
    # The page reloaded: a new browser session, the same machine.
    assert throttle.check("session:second", "address:10.0.0.7") == 2.0
    assert throttle.check("session:second", None) == 0.0  # no address known: only the session
    assert throttle.check("session:first") == 2.0


def test_throttle_resets_after_success():
    clock = FakeClock()
    throttle = PasscodeThrottle(clock=clock)
    for _ in range(7):
        throttle.failed("session:a", "address:x")
    assert throttle.check("session:a", "address:x") == 8.0
    throttle.succeeded("session:a", "address:x")
    assert throttle.check("session:a", "address:x") == 0.0
    assert throttle.failed("session:a", "address:x") == 0.0  # five free tries again


def test_throttle_forgets_old_records_and_bounds_its_memory():
    clock = FakeClock()
    throttle = PasscodeThrottle(clock=clock, max_records=3, forget_after_s=100)
    for _ in range(6):
        throttle.failed("session:a")
    clock.now += 101
    throttle.failed("session:b")  # a failure elsewhere tidies the stale record
    assert throttle.failed("session:a") == 0.0  # counted from one again
    for key in ("c", "d", "e"):
        throttle.failed(f"session:{key}")
    assert len(throttle._records) == 3


def test_throttle_logs_a_warning_without_the_passcode(caplog):
    throttle = PasscodeThrottle(clock=FakeClock())
    with caplog.at_level(logging.WARNING, logger="model.school.access"):
        for _ in range(FREE_TRIES - 1):
            throttle.failed("session:a", "address:10.0.0.7")
        assert not caplog.records
        throttle.failed("session:a", "address:10.0.0.7")
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "5 wrong tries" in message and "address:10.0.0.7" in message and "2 s" in message


def test_throttle_is_thread_safe():
    throttle = PasscodeThrottle(clock=FakeClock(), max_delay_s=1e9)
    threads = [threading.Thread(target=lambda: [throttle.failed("k") for _ in range(200)])
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert throttle._records["k"].failures == 1600


# ----- python -m model passcode-hash -----------------------------------------------------

def test_cli_prints_the_secrets_line_from_stdin(monkeypatch, capsys):
    from model import cli

    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse\n"))
    assert cli.main(["passcode-hash", "--iterations", str(FAST)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("admin_passcode_hash = ")
    assert PasscodeHash.parse(tomllib.loads(out)["admin_passcode_hash"]).matches("correct horse")
    assert "correct horse" not in out + err
    assert "secrets.toml" in err


def test_cli_refuses_an_empty_or_mistyped_passcode(monkeypatch, capsys):
    from model import cli

    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert cli.main(["passcode-hash"]) == 2
    assert "empty" in capsys.readouterr().err

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    typed = iter(["one code", "another code"])
    monkeypatch.setattr("sys.stdin", Terminal())
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(typed))
    assert cli.main(["passcode-hash"]) == 2
    captured = capsys.readouterr()
    assert "differ" in captured.err and "one code" not in captured.out + captured.err
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse\n"))
    assert cli.main(["passcode-hash", "--iterations", "1000"]) == 2
    assert "200000" in capsys.readouterr().err
