"""The command line, run as users run it: ``python -m model ...`` in a subprocess.

Each command that needs the network loads TensorFlow (~5 s), so the flow is one
test that enrolls, identifies, verifies, lists and removes in order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model.images import encode_jpeg, encode_png
from model.settings import ENV_DATA_DIR, ENV_GALLERY, REPO_ROOT

NAME = "Eileen Collins"


def _run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != ENV_GALLERY}
    env[ENV_DATA_DIR] = str(data_dir)
    return subprocess.run([sys.executable, "-m", "model", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def _assert_user_error(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def photos(tmp_path, astronaut_jpeg, two_astronauts) -> dict[str, Path]:
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff not really a jpeg")
    blank = tmp_path / "blank.png"
    blank.write_bytes(encode_png(np.full((200, 300, 3), 60, dtype=np.uint8)))
    pair = tmp_path / "pair.jpg"
    pair.write_bytes(encode_jpeg(two_astronauts))
    return {"face": astronaut_jpeg, "corrupt": corrupt, "blank": blank, "pair": pair}


def test_user_errors_need_no_network(tmp_path, photos):
    data = tmp_path / "data"
    result = _run(data, "enroll", "--name", NAME, str(photos["face"]))
    _assert_user_error(result)
    assert "consent" in result.stderr
    assert not (data / "gallery" / NAME).exists()
    result = _run(data, "enroll", "--name", "../x", "--consent", str(photos["face"]))
    _assert_user_error(result)
    assert not (data / "gallery").exists() or not any((data / "gallery").iterdir())
    result = _run(data, "enroll", "--name", NAME, "--student-id", "../1", "--consent",
                  str(photos["face"]))
    _assert_user_error(result)
    assert "student id" in result.stderr
    _assert_user_error(_run(data, "remove", "Nobody Here"))


@pytest.mark.slow
def test_enroll_identify_verify_people_remove(tmp_path, photos):
    data = tmp_path / "data"
    gallery = data / "gallery"
    enrolled = _run(data, "enroll", "--name", NAME, "--consent", str(photos["face"]))
    assert enrolled.returncode == 0, enrolled.stderr
    assert len(list((gallery / NAME).glob("*.jpg"))) == 1
    assert json.loads((gallery / NAME / "person.json").read_text(encoding="utf-8"))["consent"] is True

    order = [photos["face"], photos["corrupt"], photos["pair"], photos["blank"]]
    identified = _run(data, "identify", "--json", *map(str, order))
    assert identified.returncode == 2, identified.stderr
    assert "Traceback" not in identified.stderr
    lines = [json.loads(line) for line in identified.stdout.strip().splitlines()]
    assert [line["image"] for line in lines] == [str(p) for p in order]
    assert set(lines[1]) == {"image", "error"} and str(photos["corrupt"]) in lines[1]["error"]
    assert lines[3]["faces"] == []
    assert len(lines[2]["faces"]) == 2
    for line in (lines[0], lines[2]):
        assert set(line) == {"image", "faces"}
        for face in line["faces"]:
            assert set(face) == {"box", "name", "score", "normalised", "threshold", "reason", "candidates"}
            assert len(face["box"]) == 4 and all(isinstance(v, int) for v in face["box"])
            assert face["candidates"][0][0] == NAME
            assert face["score"] == pytest.approx(face["candidates"][0][1], abs=1e-4)
            assert face["name"] in (NAME, None)
            assert (face["name"] is None) == (face["reason"] is not None)

    verified = _run(data, "verify", "--json", str(photos["face"]), str(photos["face"]))
    assert verified.returncode == 0, verified.stderr
    result = json.loads(verified.stdout)
    assert set(result) == {"same", "score", "normalised", "threshold"}
    assert result["same"] == (result["normalised"] >= result["threshold"])
    assert result["score"] == pytest.approx(1.0, abs=1e-4)  # a photo against itself

    people = _run(data, "people", "--json")
    assert people.returncode == 0, people.stderr
    listed = json.loads(people.stdout)["people"]
    assert [(p["name"], p["images"]) for p in listed] == [(NAME, 1)]

    removed = _run(data, "remove", "eileen collins")
    assert removed.returncode == 0, removed.stderr
    assert not (gallery / NAME).exists()
    for cache in (gallery / ".embeddings").glob("*.npz"):
        with np.load(cache) as saved:
            assert len(saved["keys"]) == 0
