"""The command line, run as users run it: ``python -m model ...`` in a subprocess.

Each command that needs the network loads TensorFlow (~5 s), so each flow is one
test that runs its commands in order (enroll, identify, verify, list and remove; import,
rename and list the classes). Flows that only check exit statuses and files run the
commands in this process (``_main``), loading TensorFlow once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from model.cli import EXIT_OK, EXIT_PARTLY, EXIT_USER, main
from model.core.images import encode_jpeg, encode_png
from model.school.attendance import AttendanceBook
from model.settings import ENV_DATA_DIR, ENV_GALLERY, REPO_ROOT

NAME = "Eileen Collins"


#: ``python -m model`` that fails when the command loaded TensorFlow.
_WITHOUT_TENSORFLOW = ("import sys; from model.cli import main; code = main(sys.argv[1:]); "
                       "assert 'tensorflow' not in sys.modules, 'TensorFlow was loaded'; "
                       "sys.exit(code)")


def _run(data_dir: Path, *args: str, network: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command; with ``network=False`` it also fails if the command loaded TensorFlow."""
    env = {k: v for k, v in os.environ.items() if k != ENV_GALLERY}
    env[ENV_DATA_DIR] = str(data_dir)
    command = ["-m", "model"] if network else ["-c", _WITHOUT_TENSORFLOW]
    return subprocess.run([sys.executable, *command, *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def _main(monkeypatch: pytest.MonkeyPatch, data_dir: Path, *args: str | Path) -> int:
    """Run a command in this process with ``data_dir`` as the data folder; its exit status.

    ``--gallery`` sets the gallery's variable in this process's environment, so it is put
    back (by ``monkeypatch``) after the test."""
    monkeypatch.setenv(ENV_DATA_DIR, str(data_dir))
    monkeypatch.setenv(ENV_GALLERY, str(data_dir / "gallery"))
    return main([str(a) for a in args])


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
    assert set(result) == {"verdict", "same", "score", "normalised", "threshold",
                           "maybe_threshold", "note", "boxes"}
    assert result["same"] == (result["normalised"] >= result["threshold"])
    assert result["same"] == (result["verdict"] == "same person")
    assert result["verdict"] in ("same person", "probably the same person - check",
                                 "different people")
    assert result["score"] == pytest.approx(1.0, abs=1e-4)  # a photo against itself
    assert result["note"] == "" and len(result["boxes"]) == 2

    # A group photo is answered for its main face, and the answer says so.
    group = _run(data, "verify", str(photos["pair"]), str(photos["face"]))
    assert group.returncode == 0, group.stderr
    first, *rest = group.stdout.strip().splitlines()
    assert first.split(" (")[0] in ("same person", "probably the same person - check",
                                    "different people")
    assert f"note: {photos['pair']} has 2 faces; the largest, most central one was used." in rest
    claimed = _run(data, "verify", str(photos["pair"]), "--person", NAME, "--json")
    assert claimed.returncode == 0, claimed.stderr
    claim = json.loads(claimed.stdout)
    assert claim["verdict"] in ("same person", "different people") and claim["maybe_threshold"] is None
    assert "2 faces" in claim["note"]
    _assert_user_error(_run(data, "verify", str(photos["blank"]), str(photos["face"])))

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


def test_verify_help_documents_the_answers_and_exit_statuses(tmp_path):
    result = _run(tmp_path / "data", "verify", "--help", network=False)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for words in ("probably the same person - check", "largest, most central face",
                  "exit status", "0 an answer was printed", "2 a photo could not be read",
                  "1 anything unexpected"):
        assert words in text


def test_roster_classes_and_import_refusals_need_no_network(tmp_path, astronaut_jpeg):
    data = tmp_path / "data"
    roster = tmp_path / "maths.csv"
    roster.write_text("name,student id\nAda Lovelace\nAlan Turing,T-1\nBad!Name\n\n"
                      "ada lovelace\n", encoding="utf-8")
    result = _run(data, "roster", str(roster), "--class", "Maths 7B", network=False)
    assert result.returncode == 2, result.stderr  # a line was refused
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("line 4 refused: ") and "!" in lines[0]
    assert "added 2 to Maths 7B: Ada Lovelace, Alan Turing (T-1)" in lines
    assert "2 on the roster still need photos: Ada Lovelace, Alan Turing (T-1)" in lines

    roster.write_text("Ada Lovelace\nGrace Hopper\n", encoding="utf-8")
    result = _run(data, "roster", str(roster), "--class", "maths 7b", "--json", network=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "class": "Maths 7B", "roster_size": 3, "added": ["Grace Hopper"],
        "needs_photos": ["Ada Lovelace", "Alan Turing (T-1)", "Grace Hopper"], "refused": []}

    listed = _run(data, "classes", network=False)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split("\t")[:2] == ["Maths 7B", "3 on the roster"]
    assert "0 session(s)" in listed.stdout
    listed = _run(data, "classes", "--json", network=False)
    assert listed.returncode == 0, listed.stderr
    (maths,) = json.loads(listed.stdout)["classes"]
    assert maths["name"] == "Maths 7B" and maths["roster_size"] == 3 and maths["sessions"] == 0
    assert maths["roster"] == ["Ada Lovelace", "Alan Turing (T-1)", "Grace Hopper"]
    assert maths["late_after_min"] > 0

    _assert_user_error(_run(data, "roster", str(tmp_path / "missing.csv"), "--class", "X",
                            network=False))
    _assert_user_error(_run(data, "roster", str(roster), "--class", " ", network=False))
    assert [c["name"] for c in json.loads(_run(data, "classes", "--json").stdout)["classes"]] \
        == ["Maths 7B"]

    folders = tmp_path / "photos"
    (folders / "Eileen Collins").mkdir(parents=True)
    (folders / "Eileen Collins" / "1.jpg").write_bytes(astronaut_jpeg.read_bytes())
    result = _run(data, "import", str(folders), network=False)
    _assert_user_error(result)
    assert "consent" in result.stderr
    result = _run(data, "import", str(tmp_path / "no such folder"), "--consent", network=False)
    _assert_user_error(result)
    assert "no such folder" in result.stderr
    result = _run(data, "import", str(folders / "Eileen Collins"), "--consent", network=False)
    _assert_user_error(result)  # a folder of photos, not of person folders
    result = _run(data, "import", str(roster), "--consent", network=False)
    _assert_user_error(result)  # neither a folder nor a zip
    _assert_user_error(_run(data, "import", str(folders), "--consent", "--class", "\x01",
                            network=False))
    assert not (data / "gallery").exists() or not any((data / "gallery").iterdir())
    _assert_user_error(_run(data, "rename", "Nobody Here", "Somebody", network=False))


@pytest.mark.slow
def test_import_rename_classes(tmp_path, astronaut, astronaut_jpeg):
    data = tmp_path / "data"
    gallery = data / "gallery"
    tree = tmp_path / "class photos"
    good, empty, bad = tree / "Eileen_Collins", tree / "Empty Person", tree / "Bad!Name"
    for folder in (good, empty, bad):
        folder.mkdir(parents=True)
    (good / "front.jpg").write_bytes(astronaut_jpeg.read_bytes())
    (good / "mirrored.png").write_bytes(encode_png(np.ascontiguousarray(astronaut[:, ::-1])))
    (good / "wall.png").write_bytes(encode_png(np.full((200, 300, 3), 60, dtype=np.uint8)))
    (good / "notes.txt").write_text("not a photo", encoding="utf-8")
    (empty / "notes.txt").write_text("not a photo", encoding="utf-8")
    (bad / "face.jpg").write_bytes(astronaut_jpeg.read_bytes())
    (tree / "list.txt").write_text("a stray file", encoding="utf-8")

    imported = _run(data, "import", str(tree), "--consent", "--class", "Maths 7B")
    assert imported.returncode == EXIT_PARTLY, imported.stderr  # two folders stored nothing
    assert "Traceback" not in imported.stderr
    assert [line for line in imported.stderr.splitlines() if line.startswith("[")] == [
        "[1/3] Bad!Name", "[2/3] Eileen Collins", "[3/3] Empty Person"]
    out = imported.stdout.splitlines()
    assert out[0].startswith("Bad!Name: nothing stored: ") and "!" in out[0]
    assert out[1] == "Eileen Collins: 2 photo(s) used, 2 refused"
    assert sorted(line.split(":")[0] for line in out[2:4]) == ["    notes.txt", "    wall.png"]
    assert "no face" in next(line for line in out[2:4] if "wall.png" in line)
    assert out[4] == "Empty Person: nothing stored: no photo in this folder"
    assert out[5] == "    notes.txt: not a photo (use JPEG, PNG, WebP, BMP or TIFF)"
    assert out[6].startswith("skipped list.txt: not a folder")
    assert out[7:] == ["enrolled 1 of 3 people (2 photos); 2 need attention",
                       "added to class Maths 7B"]
    assert len(list((gallery / "Eileen Collins").glob("*.jpg"))) == 2
    assert sorted(p.name for p in gallery.iterdir() if not p.name.startswith(".")) == [
        "Eileen Collins"]

    # The person folders as a zip of one class folder (the stray file left out: it would
    # make "7B" itself read as a person), as JSON.
    archive = tmp_path / "7B.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(tree.rglob("*")):
            if path.name != "list.txt":
                zipped.write(path, Path("7B") / path.relative_to(tree))
    imported = _run(data, "import", str(archive), "--consent", "--json")
    assert imported.returncode == EXIT_PARTLY, imported.stderr
    report = json.loads(imported.stdout)
    assert set(report) == {"people", "skipped", "class"} and report["class"] is None
    assert [(p["name"], p["used"], p["error"] is None) for p in report["people"]] == [
        ("Bad!Name", 0, False), ("Eileen Collins", 2, True), ("Empty Person", 0, False)]
    assert sorted(r["photo"] for r in report["people"][1]["refused"]) == ["notes.txt", "wall.png"]
    assert all(set(r) == {"photo", "why"} for p in report["people"] for r in p["refused"])
    assert report["skipped"] == []
    assert len(list((gallery / "Eileen Collins").glob("*.jpg"))) == 2  # the same photos again

    renamed = _run(data, "rename", "eileen collins", "Eileen M. Collins", "--student-id", "S-1",
                   network=False)
    assert renamed.returncode == 0, renamed.stderr
    assert renamed.stdout.strip() == "renamed Eileen Collins to Eileen M. Collins (S-1)"
    people = json.loads(_run(data, "people", "--json").stdout)["people"]
    assert [(p["name"], p["images"]) for p in people] == [("Eileen M. Collins (S-1)", 2)]
    listed = _run(data, "classes", "--json", network=False)
    assert listed.returncode == 0, listed.stderr
    assert [(c["name"], c["roster"]) for c in json.loads(listed.stdout)["classes"]] == [
        ("Maths 7B", ["Eileen M. Collins (S-1)"])]


def test_enroll_help_documents_the_exit_statuses(tmp_path):
    result = _run(tmp_path / "data", "enroll", "--help", network=False)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for words in ("exit status", "0 every photo was stored", "3 some photos were stored",
                  "2 nothing was stored", "1 anything unexpected"):
        assert words in text


@pytest.fixture
def three_good_photos(tmp_path, astronaut, astronaut_jpeg) -> list[Path]:
    """Three different photos of the astronaut: as taken, mirrored, brighter."""
    mirrored, brighter = tmp_path / "mirrored.png", tmp_path / "brighter.png"
    mirrored.write_bytes(encode_png(np.ascontiguousarray(astronaut[:, ::-1])))
    brighter.write_bytes(encode_png(np.clip(astronaut.astype(int) + 30, 0, 255).astype(np.uint8)))
    return [astronaut_jpeg, mirrored, brighter]


@pytest.mark.slow
def test_commands_off_the_register_never_make_the_attendance_book(tmp_path, monkeypatch,
                                                                  photos, three_good_photos):
    # Issue 17: any command made <data>/attendance.sqlite3, even with --gallery elsewhere.
    data, gallery = tmp_path / "data", tmp_path / "elsewhere"
    book = data / "attendance.sqlite3"
    face = photos["face"]
    for command in (["enroll", "--name", NAME, "--consent", *three_good_photos],
                    ["identify", face], ["verify", face, face], ["verify", face, "--person", NAME],
                    ["people"], ["classes"]):
        assert _main(monkeypatch, data, *command, "--gallery", gallery) == EXIT_OK, command
        assert not book.exists(), f"{command[0]} made the attendance book"
    assert (gallery / NAME).is_dir()

    # A command that uses the register still makes the book and writes to it.
    folders = tmp_path / "photos"
    (folders / "Eileen_Collins").mkdir(parents=True)
    (folders / "Eileen_Collins" / "1.jpg").write_bytes(face.read_bytes())
    assert _main(monkeypatch, data, "import", folders, "--consent", "--class", "Maths 7B",
                 "--gallery", gallery) == EXIT_OK
    maths = AttendanceBook(book).find_class("Maths 7B")
    assert maths is not None and AttendanceBook(book).roster(maths.id) == [NAME]


@pytest.mark.slow
def test_enroll_and_import_exit_statuses_say_how_much_was_stored(tmp_path, monkeypatch, capsys,
                                                                 photos, three_good_photos):
    # Issue 17: 3 of 4 photos stored exited 2, like nothing stored.
    data = tmp_path / "data"
    gallery = data / "gallery"
    assert _main(monkeypatch, data, "enroll", "--name", NAME, "--consent",
                 *three_good_photos) == EXIT_OK
    assert len(list((gallery / NAME).glob("*.jpg"))) == 3
    capsys.readouterr()

    assert _main(monkeypatch, data, "enroll", "--name", NAME, "--consent", *three_good_photos,
                 photos["blank"]) == EXIT_PARTLY
    out, err = capsys.readouterr()
    assert "3 photo(s) saved" in out
    refused = [line for line in err.splitlines() if line.startswith("refused: ")]
    assert len(refused) == 1 and str(photos["blank"]) in refused[0]

    assert _main(monkeypatch, data, "enroll", "--name", "Grace Hopper", "--consent",
                 photos["blank"], photos["corrupt"]) == EXIT_USER
    assert "nothing was stored" in capsys.readouterr().err
    assert not (gallery / "Grace Hopper").exists()

    # import: the same scheme, per person folder.
    tree = tmp_path / "class photos"
    (tree / "Eileen_Collins").mkdir(parents=True)
    (tree / "Eileen_Collins" / "front.jpg").write_bytes(photos["face"].read_bytes())
    assert _main(monkeypatch, data, "import", tree, "--consent") == EXIT_OK
    (tree / "Eileen_Collins" / "wall.png").write_bytes(photos["blank"].read_bytes())
    assert _main(monkeypatch, data, "import", tree, "--consent") == EXIT_PARTLY
    walls = tmp_path / "walls"
    (walls / "Blank_Wall").mkdir(parents=True)
    (walls / "Blank_Wall" / "wall.png").write_bytes(photos["blank"].read_bytes())
    assert _main(monkeypatch, data, "import", walls, "--consent") == EXIT_USER
    assert not (gallery / "Blank Wall").exists()
