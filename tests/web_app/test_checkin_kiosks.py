"""The Check-in page serves one kiosk: its own open session, and what waits offline."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest
from test_pages import APP_PATH, APP_TIMEOUT_S, texts

from model.school.attendance import AttendanceBook


def _checkin_page(kiosk: str | None = None) -> AppTest:
    at = AppTest.from_file(APP_PATH, default_timeout=APP_TIMEOUT_S)
    if kiosk is not None:
        at.query_params["kiosk"] = kiosk
    at.run()
    at.switch_page("views/checkin.py")
    at.run()
    assert not at.exception, at.exception
    return at


def test_each_kiosk_page_shows_its_own_open_session(data_dir, monkeypatch):
    book = AttendanceBook(data_dir / "attendance.sqlite3")
    maths = book.create_class("Maths 7B", head_turn=False)
    art = book.create_class("Art club", head_turn=False)
    book.start_session("Algebra", class_id=maths.id, open_it=True)
    book.start_session("Painting", class_id=art.id, open_it=True, kiosk="Room 12")
    assert "Class session: Algebra (Maths 7B)" in texts(_checkin_page(), "subheader")
    at = _checkin_page("Room 12")
    assert "Class session: Painting (Art club) at Room 12" in texts(at, "subheader")
    monkeypatch.setenv("FACEATT_KIOSK", "Room 12")  # a kiosk computer's own setting
    assert "Painting" in texts(_checkin_page(), "subheader")
    # The teacher at Room 12 closes its session: the default kiosk keeps its own.
    at.button(key="checkin_close").click().run()
    assert book.open_sessions() == {"": book.sessions()[1].id}
    monkeypatch.delenv("FACEATT_KIOSK")
    assert "Algebra" in texts(_checkin_page(), "subheader")


def test_the_page_says_how_many_check_ins_wait_offline(data_dir, monkeypatch):
    book = AttendanceBook(data_dir / "attendance.sqlite3")
    maths = book.create_class("Maths 7B", head_turn=False)
    book.start_session("Algebra", class_id=maths.id, open_it=True)
    assert "offline" not in texts(_checkin_page(), "warning")
    # A kiosk on the shared register that lost it (model tests: test_register_offline).
    monkeypatch.setattr(AttendanceBook, "outbox_waiting", lambda self: 4)
    assert "offline: 4 check-ins waiting" in texts(_checkin_page(), "warning")


def test_attendance_and_home_name_each_kiosks_open_session(data_dir, monkeypatch):
    """A school with two kiosks: Home says where each of today's sessions is open, and the
    Attendance page opens and closes a session at the kiosk the teacher picks (it used to
    act on the default kiosk only, whatever room the teacher was in)."""
    monkeypatch.setenv("FACEATT_ADMIN_PASSCODE", "")
    book = AttendanceBook(data_dir / "attendance.sqlite3")
    maths = book.create_class("Maths 7B", head_turn=False)
    art = book.create_class("Art club", head_turn=False)
    algebra = book.start_session("Algebra", class_id=maths.id, open_it=True)
    book.start_session("Painting", class_id=art.id, open_it=True, kiosk="Room 12")

    at = AppTest.from_file(APP_PATH, default_timeout=APP_TIMEOUT_S)
    at.run()
    home = texts(at, "markdown")
    assert "Maths 7B: Algebra (started" in home and "open at the kiosk)" in home
    assert "open at Room 12" in home

    at.switch_page("views/attendance.py")
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="attendance_kiosk").value == ""  # this page's own kiosk
    at.selectbox(key="attendance_kiosk").set_value("Room 12").run()
    at.selectbox(key="attendance_class").set_value(maths.id).run()
    assert "Open at Room 12: Painting (Art club" in texts(at, "caption")
    at.button(key="attendance_open").click().run()  # Algebra, now at Room 12 as well
    assert book.open_sessions() == {"": algebra.id, "Room 12": algebra.id}
    at.button(key="attendance_close").click().run()
    assert book.open_sessions() == {"": algebra.id}  # the default kiosk keeps its own
