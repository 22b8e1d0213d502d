"""A teacher's register through the pages (AppTest): make a class, import its photos from a
zip and its roster from a CSV, run two sessions, see present, late and absent, correct by
hand, download the CSVs and read their rows."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import pandas as pd
import pytest
from test_pages import PERSON, open_page, texts

from model.school.attendance import AttendanceBook

ROSTER_CSV = f"name,student id\n{PERSON}\nGrace Hopper\nAlan Turing,T-1\n".encode()


@pytest.fixture()
def downloads(monkeypatch) -> dict[str, bytes]:
    """What each download button would hand the browser, by file name."""
    import streamlit

    captured: dict[str, bytes] = {}
    real = streamlit.download_button

    def spy(label, data, file_name=None, *args, **kwargs):  # type: ignore[no-untyped-def]
        captured[file_name] = data
        return real(label, data, file_name, *args, **kwargs)

    monkeypatch.setattr(streamlit, "download_button", spy)
    return captured


def check_in_by_upload(png: bytes) -> None:
    at = open_page("checkin")
    at.radio(key="checkin_mode").set_value("Upload a photo")
    at.run()
    at.file_uploader(key="checkin_upload").set_value(("me.png", png, "image/png"))
    at.run()
    assert not at.exception, at.exception
    assert f"{PERSON} checked in" in texts(at, "success")


def test_a_class_from_a_zip_and_a_roster_to_its_register(zip_of, data_dir, lenient_engine,
                                                         downloads,
                                                         astronaut_png, blank_png):
    # 1. Make the class and import its photos: a good folder, a photo with no face.
    at = open_page("classes")
    assert "No class yet" in texts(at, "info")
    next(t for t in at.text_input if t.label == "Class name").set_value("Maths 7B")
    next(b for b in at.button if b.label == "Make class").click()
    at.run()
    assert "Made the class Maths 7B." in texts(at, "success")
    class_id = AttendanceBook(data_dir / "attendance.sqlite3").find_class("Maths 7B").id
    at.file_uploader(key=f"classes_zip_{class_id}").set_value(("7B.zip", zip_of({
        f"7B/{PERSON.replace(' ', '_')}/1.png": astronaut_png,
        "7B/Blank Wall/wall.png": blank_png}), "application/zip"))
    at.checkbox(key=f"classes_zip_consent_{class_id}").check()
    at.run()
    next(b for b in at.button if b.label == "Import photos").click()
    at.run()
    assert not at.exception, at.exception
    assert "Enrolled 1 of 2 people (1 photos) into Maths 7B." in texts(at, "success")
    report = at.dataframe[-2].value if len(at.dataframe) > 2 else at.dataframe[-1].value
    assert set(report["Person"]) >= {PERSON}

    # 2. The roster CSV adds two people without photos yet.
    at = open_page("classes")
    at.file_uploader(key=f"classes_roster_csv_{class_id}").set_value(
        ("7b.csv", ROSTER_CSV, "text/csv"))
    at.run()
    next(b for b in at.button if b.label == "Read the roster").click()
    at.run()
    assert "Added 2 to Maths 7B." in texts(at, "success")
    assert "2 on the roster still need photos: Alan Turing (T-1), Grace Hopper." in texts(
        at, "info")
    roster = at.dataframe[1].value
    assert list(roster["Name"]) == ["Alan Turing (T-1)", PERSON, "Grace Hopper"]

    # 3. A session started at the kiosk's teacher section; Eileen checks in on time.
    at = open_page("checkin")
    next(t for t in at.text_input if t.label == "Session name (optional)").set_value("Monday")
    next(b for b in at.button if b.label == "Start session").click()
    at.run()
    assert not at.exception, at.exception
    check_in_by_upload(astronaut_png)

    # 4. A second session that started 20 minutes ago: she is late for it.
    book = AttendanceBook(data_dir / "attendance.sqlite3")
    maths = book.find_class("Maths 7B")
    book.start_session("Tuesday", class_id=maths.id, open_it=True,
                       now=datetime.now() - timedelta(minutes=20))
    check_in_by_upload(astronaut_png)

    # 5. The register of each session: every roster member, with their status.
    at = open_page("attendance")
    register = at.dataframe[0].value
    assert dict(zip(register["Name"], register["Status"], strict=True)) == {
        "Alan Turing (T-1)": "Absent", PERSON: "Late", "Grace Hopper": "Absent"}
    at.selectbox(key="attendance_person").set_value("Alan Turing (T-1)")
    at.radio(key="attendance_status").set_value("present")
    next(b for b in at.button if b.label == "Save").click()
    at.run()
    assert "Marked Alan Turing (T-1) present." in texts(at, "success")
    monday = next(s for s in book.sessions() if s.name == "Monday")
    at.selectbox(key="attendance_session").set_value(monday.id)
    at.run()
    assert not at.exception, at.exception
    register = at.dataframe[0].value
    assert dict(zip(register["Name"], register["Status"], strict=True)) == {
        "Alan Turing (T-1)": "Absent", PERSON: "Present", "Grace Hopper": "Absent"}

    # 6. The CSVs the teacher downloads: one row per roster member, and the date range.
    session_csv = next(data for name, data in downloads.items() if "monday" in name)
    rows = pd.read_csv(io.BytesIO(session_csv), encoding="utf-8-sig", keep_default_na=False)
    assert list(zip(rows["person"], rows["status"], strict=True)) == [
        ("Alan Turing (T-1)", "absent"), (PERSON, "present"), ("Grace Hopper", "absent")]
    grid_csv = next(data for name, data in downloads.items()
                    if name.startswith("register-maths-7b-2"))
    grid = pd.read_csv(io.BytesIO(grid_csv), encoding="utf-8-sig",
                       keep_default_na=False).set_index("person")
    # Columns in time order: "Tuesday" started 20 minutes before "Monday".
    assert [c.split(" ", 2)[2] for c in grid.columns[:2]] == ["Tuesday", "Monday"]
    assert grid.loc[PERSON].tolist()[:4] == ["late", "present", 2, 2]
    assert grid.loc["Alan Turing (T-1)"].tolist()[:3] == ["present", "absent", 1]


def test_an_absent_students_score_is_blank_not_none(data_dir, downloads):
    # Issue 17: the register showed the word "None" as every absent student's score.
    book = AttendanceBook(data_dir / "attendance.sqlite3")
    maths = book.create_class("Maths 7B")
    book.add_to_roster(maths.id, [PERSON, "Grace Hopper"])
    session = book.start_session("Monday", class_id=maths.id, open_it=True)
    book.check_in(session.id, PERSON, score=0.93, how="live")

    at = open_page("attendance")
    register = at.dataframe[0].value
    assert dict(zip(register["Name"], register["Score"], strict=True)) == {
        PERSON: "0.930", "Grace Hopper": ""}

    session_csv = next(data for name, data in downloads.items() if "monday" in name)
    rows = pd.read_csv(io.BytesIO(session_csv), encoding="utf-8-sig", dtype=str,
                       keep_default_na=False).set_index("person")
    assert rows.loc["Grace Hopper", "score"] == ""
    assert rows.loc[PERSON, "score"] == "0.93"
