"""The admin passcode: environment first, then secrets.toml; constant-time check."""

from __future__ import annotations

from model.access import ENV_ADMIN_PASSCODE, admin_passcode, check_passcode, passcode_is_set


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
