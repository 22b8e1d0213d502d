"""The kiosk shows nothing private; user strings are text; passcode guessing is slowed.

With an admin passcode set, a browser that has not typed it (the kiosk) must never see
who is enrolled, who checked in, an enrolled person's photos, the candidates for a face
it did not recognise, or the class sessions; it checks into the session the teacher
opened. Every user-supplied string (person, session and file names, error sentences)
must display as text, never as Markdown or HTML. These tests fail if either leaks back.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from markdown_text import render, shown
from streamlit.testing.v1 import AppTest
from test_pages import PERSON, enroll_upload, open_page, texts

from model.records import Match
from model.school.access import hash_passcode
from model.school.attendance import AttendanceBook

PASSCODE = "correct horse"
#: On the register fixture's roster, never checked in.
ABSENTEE = "Grace Hopper"
#: A session name (free text) that would fetch an image, link, embolden, colour, draw an
#: icon and an emoji, typeset LaTeX and make an arrow if rendered as Markdown.
SESSION_PAYLOAD = ("**Bold** <b>x</b> ![t](http://127.0.0.1:9/t.png) [l](http://127.0.0.1:9/) "
                   ":red[r] $x$ :material/home: :smile: a -> b")
#: A class name (free text, like a session name).
CLASS_PAYLOAD = "__7B__ <i>c</i> ![c](http://127.0.0.1:9/c.png) :blue[c]"
#: The most hostile person name validation accepts: an ordered-list marker, a dash pair
#: that Streamlit turns into an em dash, a comma.
HOSTILE_PERSON = "1. Ada -- O'Hare, Jr."
#: A file name (the browser sends any): bold, HTML, an image, a colour, LaTeX.
FILE_PAYLOAD = "**f** <b>f</b> ![f](http:x.png) :red[f] $f$.png"
#: Raw fragments that must never reach a Markdown-rendering string unescaped.
RAW_FRAGMENTS = ("**Bold**", "<b>", "![", "](http", ":red[", "$x$", "$f$", ":material/",
                 ":smile:", "a -> b", "1. Ada", "-- O", "**f**", "__7B__", "<i>", ":blue[")
#: Proto fields that Streamlit shows as plain text (not Markdown): selectbox and multiselect
#: options (the frontend renders them as React text) and what a text box holds.
PLAIN_TEXT_FIELDS = {("selectbox", "options"), ("selectbox", "raw_value"), ("text_input", "value"),
                     ("text_input", "default"), ("multiselect", "options"),
                     ("multiselect", "raw_values"), ("multiselect", "default")}
#: Proto fields never shown (element ids made from widget keys).
NOT_SHOWN = {"id", "form_id"}


# ----- helpers ---------------------------------------------------------------------------

def _proto_strings(message) -> Iterator[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """Every string field of a protobuf message, nested messages included: (field, text)."""
    for field, value in message.ListFields():
        repeated = getattr(field, "is_repeated", None)
        if repeated is None:
            repeated = field.label == field.LABEL_REPEATED
        items = list(value) if repeated else [value]
        if field.type == field.TYPE_MESSAGE:
            for item in items:
                yield from _proto_strings(item)
        elif field.type == field.TYPE_STRING:
            for item in items:
                yield field.name, item


def rendered_strings(at: AppTest) -> list[tuple[str, str, str]]:
    """(element type, field, text) of every string Streamlit renders as Markdown."""
    found = []
    for node in at:
        proto = getattr(node, "proto", None)
        if proto is None or not hasattr(proto, "ListFields"):
            continue
        kind = getattr(node, "type", "")
        for field, text in _proto_strings(proto):
            if (kind, field) not in PLAIN_TEXT_FIELDS and field not in NOT_SHOWN and text:
                found.append((kind, field, text))
    return found


def assert_all_text(at: AppTest) -> str:
    """Fail if any Markdown-rendering string of the page carries a payload unescaped
    (or makes an image, a link or raw HTML at all); returns everything the page shows."""
    assert not at.exception, at.exception
    shown_texts = []
    for kind, field, text in rendered_strings(at):
        for fragment in RAW_FRAGMENTS:
            assert fragment not in text, f"{kind}.{field} renders {fragment!r}: {text!r}"
        words, tags = render(text)
        assert not tags & {"img", "a"}, f"{kind}.{field} makes {tags}: {text!r}"
        shown_texts.append(words)
    return "\n".join(shown_texts)


def everything_shown(at: AppTest) -> str:
    """All the text a page shows, plain-text fields (tables aside) included."""
    strings = [shown(t) for _, _, t in rendered_strings(at)]
    for node in at:
        proto = getattr(node, "proto", None)
        if proto is not None and hasattr(proto, "ListFields"):
            strings += [t for f, t in _proto_strings(proto)
                        if (getattr(node, "type", ""), f) in PLAIN_TEXT_FIELDS]
    for frame in at.dataframe:
        strings.append(frame.value.to_string())
    return "\n".join(strings)


def unlock(at: AppTest, code: str = PASSCODE) -> AppTest:
    at.text_input(key="admin_passcode_input").set_value(code)
    next(b for b in at.button if b.label == "Unlock").click()
    at.run()
    assert not at.exception, at.exception
    return at


def set_passcode(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FACEATT_ADMIN_PASSCODE", PASSCODE)


@pytest.fixture()
def register(data_dir, astronaut_png):
    """PERSON enrolled (through the page, before any passcode) and on the roster of
    "Year 7" with ABSENTEE (no photos yet), an open session she checked into, and an
    older closed one."""
    enroll_upload(open_page("enroll"), astronaut_png)
    book = AttendanceBook(data_dir / "attendance.sqlite3")
    # No head turn: these tests check in from photos, which a head-turn class keeps for
    # the teacher (test_a_head_turn_class_keeps_photo_check_ins_for_the_teacher).
    year7 = book.create_class("Year 7", head_turn=False)
    book.add_to_roster(year7.id, [PERSON, ABSENTEE])
    old = book.start_session("Monday class", class_id=year7.id)
    book.check_in(old.id, PERSON, score=0.9, how="live")
    today = book.start_session("Maths 7B", class_id=year7.id, open_it=True)
    book.check_in(today.id, PERSON, score=0.9, how="live")
    return book


@pytest.fixture()
def strict_engine(data_dir):
    """The app's engine refusing every face: whoever is in front of the camera is a
    stranger (and the enrolled person is their closest candidate)."""
    from model.core.matching import MatchRule
    from web_app.common import get_engine

    engine = get_engine()
    engine.recognizer.rule = MatchRule(name_threshold=1e9, margin=1e9, pair_threshold=1e9,
                                       min_cosine=2.0, adapt_to_gallery=False)
    return engine


# ----- the kiosk's pages with a passcode set ---------------------------------------------

def test_home_keeps_the_register_for_the_teacher(register, monkeypatch):
    set_passcode(monkeypatch)
    at = open_page("home")
    page = everything_shown(at)
    assert PERSON not in page and "Maths 7B" not in page
    labels = [m.label for m in at.metric]
    assert not {"People enrolled", "Checked in today", "Class sessions today"} & set(labels)
    assert "No admin passcode is set" not in texts(at, "warning")
    assert at.title[0].value == "Face attendance"  # the page itself still runs
    assert any(s.value == "How to use it" for s in at.subheader)
    unlock(at)
    assert [m.value for m in at.metric[:3]] == ["1", "2", "1"]
    assert "Maths 7B" in texts(at, "markdown") and "1 of 2 here" in texts(at, "markdown")
    assert ABSENTEE in texts(at, "markdown")


def test_check_in_kiosk_without_an_open_session_stops(register, monkeypatch):
    register.close_session()
    set_passcode(monkeypatch)
    at = open_page("checkin")
    assert "No class session is open: ask the teacher." in texts(at, "info")
    assert not at.selectbox and not at.dataframe and not at.radio
    assert not any(b.label in ("Start session", "Close session") for b in at.button)
    assert not any(t.label.startswith("Session name") for t in at.text_input)
    page = everything_shown(at)
    assert PERSON not in page and "Maths 7B" not in page and "Monday class" not in page


def test_check_in_kiosk_shows_the_open_session_and_only_the_face_in_front(
        register, lenient_engine, monkeypatch, astronaut_png):
    set_passcode(monkeypatch)
    at = open_page("checkin")
    assert "Class session: Maths 7B" in texts(at, "subheader")
    page = everything_shown(at)
    assert PERSON not in page and "Monday class" not in page  # no list, no other sessions
    assert ABSENTEE not in page  # who is missing is the teacher's
    assert not at.selectbox and not at.dataframe
    assert not any(s.value.startswith("Checked in") for s in at.subheader)
    assert not any(t.label.startswith("Session name") for t in at.text_input)
    at.radio(key="checkin_mode").set_value("Upload a photo")
    at.run()
    at.file_uploader(key="checkin_upload").set_value(("me.png", astronaut_png, "image/png"))
    at.run()
    assert not at.exception, at.exception
    # The person just recognised sees their own name; still no list of the others.
    assert f"{PERSON} was already checked in" in texts(at, "info")
    page = everything_shown(at)
    assert "1 of 2 here" in page and ABSENTEE not in page  # a count names nobody
    assert not at.dataframe
    assert not any(s.value.startswith("Checked in") for s in at.subheader)


def test_a_head_turn_class_keeps_photo_check_ins_for_the_teacher(
        register, lenient_engine, monkeypatch):
    """A photo cannot turn its head: the kiosk of a class that asks for a head turn offers
    the live camera only; the teacher still has snapshot and upload."""
    [year7] = register.classes()
    register.update_class(year7.id, head_turn=True)
    set_passcode(monkeypatch)
    at = open_page("checkin")
    assert list(at.radio(key="checkin_mode").options) == ["Live camera"]
    register.update_class(year7.id, head_turn=False)
    at = open_page("checkin")
    assert "Upload a photo" in list(at.radio(key="checkin_mode").options)


def test_check_in_kiosk_never_names_the_closest_person_of_a_stranger(
        register, strict_engine, monkeypatch, astronaut_png):
    set_passcode(monkeypatch)
    at = open_page("checkin")
    at.radio(key="checkin_mode").set_value("Upload a photo")
    at.run()
    at.file_uploader(key="checkin_upload").set_value(("me.png", astronaut_png, "image/png"))
    at.run()
    assert not at.exception, at.exception
    assert "1 face not recognised (not close enough)" in texts(at, "warning")
    assert PERSON not in everything_shown(at)
    open_id = register.open_session_id()
    assert open_id is not None
    assert register.checkins(open_id)[0].how == "live"  # nothing new written


def test_verify_kiosk_offers_only_the_photo_modes(register, monkeypatch):
    set_passcode(monkeypatch)
    at = open_page("verify")
    assert at.radio(key="verify_mode").options == ["Two photos",
                                                   "Which photo is the anchor's person?"]
    assert not at.selectbox  # no "Enrolled person" list
    assert PERSON not in everything_shown(at)
    with pytest.raises(Exception):  # noqa: B017 - the teacher mode is not an option
        at.radio(key="verify_mode").set_value("Who is this?").run()
    at = unlock(open_page("verify"))
    assert len(at.radio(key="verify_mode").options) == 4


def test_verify_teacher_modes_after_unlock_show_the_gallery(register, lenient_engine,
                                                            monkeypatch, astronaut_png):
    set_passcode(monkeypatch)
    at = unlock(open_page("verify"))
    at.radio(key="verify_mode").set_value("A photo and an enrolled person")
    at.run()
    assert at.selectbox(key="verify_person_name").options == [PERSON]
    at.file_uploader(key="verify_person_photo").set_value(("a.png", astronaut_png, "image/png"))
    at.run()
    assert f"{PERSON} (enrolled)" in "\n".join(shown(c) for img in at.get("image")
                                               for c in img.captions)
    # Locking again hides the teacher modes, even the one this browser was using.
    next(b for b in at.sidebar.button if b.label == "Lock teacher pages").click()
    at.run()
    assert not at.exception, at.exception
    assert at.radio(key="verify_mode").options == ["Two photos",
                                                   "Which photo is the anchor's person?"]
    assert PERSON not in everything_shown(at)


def test_teacher_opens_switches_and_closes_sessions_at_the_check_in_page(register,
                                                                         monkeypatch):
    set_passcode(monkeypatch)
    at = unlock(open_page("checkin"))
    assert "Class session: Maths 7B" in texts(at, "subheader")
    at.radio(key="checkin_mode").set_value("Snapshot")  # (AppTest has no live camera)
    at.run()
    assert list(at.dataframe[0].value["Name"]) == [PERSON]  # the teacher sees the list
    monday = next(s for s in register.sessions() if s.name == "Monday class")
    at.selectbox(key="checkin_session_id").set_value(monday.id)
    at.run()
    assert not at.exception, at.exception
    assert register.open_session_id() == monday.id
    assert "Class session: Monday class" in texts(at, "subheader")
    next(b for b in at.button if b.label == "Close session").click()
    at.run()
    assert register.open_session_id() is None
    assert at.selectbox(key="checkin_session_id").value is None
    assert at.session_state["checkin_new_session_open"] is True  # nothing open: unfolded
    assert [e.proto.expanded for e in at.expander if e.label == "Start a new class session"
            ] == [True]
    next(t for t in at.text_input if t.label == "Session name (optional)").set_value("Art")
    next(b for b in at.button if b.label == "Start session").click()
    at.run()
    assert not at.exception, at.exception
    # Started: "Start a new class session" folds again (it stayed open, issue 17).
    assert at.session_state["checkin_new_session_open"] is False
    assert not [e for e in at.expander if e.label == "Start a new class session"
                and e.proto.expanded]
    current = register.current_session()
    assert current is not None and current.name == "Art"  # starting a session opens it
    assert "Class session: Art" in texts(at, "subheader")
    # The kiosk (another browser, locked) follows: it checks into "Art" now.
    assert "Class session: Art" in texts(open_page("checkin"), "subheader")


def test_attendance_page_opens_and_closes_the_kiosk_session(register, monkeypatch):
    set_passcode(monkeypatch)
    at = unlock(open_page("attendance"))
    assert "Open at the kiosk: Maths 7B" in texts(at, "caption")
    monday = next(s for s in register.sessions() if s.name == "Monday class")
    at.selectbox(key="attendance_session").set_value(monday.id)
    at.run()
    next(b for b in at.button if b.label == "Open at the kiosk").click()
    at.run()
    assert register.open_session_id() == monday.id
    next(b for b in at.button if b.label == "Close it at the kiosk").click()
    at.run()
    assert register.open_session_id() is None
    assert "Open at the kiosk: none" in texts(at, "caption")


# ----- unlocking: hashes, markers, throttling ---------------------------------------------

def test_unlock_with_a_hashed_passcode_keeps_a_digest_not_the_code(data_dir, monkeypatch):
    line = hash_passcode(PASSCODE, iterations=200_000)
    monkeypatch.setenv("FACEATT_ADMIN_PASSCODE_HASH", line)
    at = open_page("attendance")
    assert [t.label for t in at.text_input] == ["Admin passcode"]
    unlock(at, "not it")
    assert "That passcode is not right." in texts(at, "error")
    unlock(at)
    assert at.title[0].value == "Attendance"
    assert not any(t.label == "Admin passcode" for t in at.text_input)
    stored = [str(at.session_state[k]) for k in ("admin_passcode_digest",)]
    assert PASSCODE not in stored[0] and line not in stored[0] and len(stored[0]) == 64


def test_a_malformed_hash_locks_the_teacher_pages(data_dir, monkeypatch):
    monkeypatch.setenv("FACEATT_ADMIN_PASSCODE_HASH", "pbkdf2_sha256$12$zz$zz")
    at = open_page("people")
    assert "python -m model passcode-hash" in texts(at, "error")
    assert "stay locked" in texts(at, "error")
    assert not at.text_input  # no form: nothing can unlock until the hash is fixed
    at = open_page("checkin")
    assert "No class session is open: ask the teacher." in texts(at, "info")
    assert not any(b.label == "Start session" for b in at.button)


def test_guessing_is_slowed_and_a_reload_does_not_reset_it(data_dir, monkeypatch):
    from model.school.access import PasscodeThrottle

    class Clock:
        now = 0.0

        def __call__(self) -> float:
            return self.now

    clock = Clock()
    throttle = PasscodeThrottle(clock=clock)
    monkeypatch.setattr("web_app.common.passcode_throttle", lambda: throttle)
    set_passcode(monkeypatch)
    at = open_page("enroll")
    for _ in range(4):
        unlock(at, "guess")
        assert texts(at, "error") == "That passcode is not right."
    unlock(at, "guess")  # the fifth
    assert "Too many wrong tries: wait 2 s before the next one." in texts(at, "error")
    unlock(at)  # even the right code is not checked before the wait is over
    assert "Too many wrong tries: wait 2 s, then try again." in texts(at, "error")
    assert [t.label for t in at.text_input] == ["Admin passcode"]
    # Reloading the page starts a new browser session on the same computer: still waiting.
    at = open_page("enroll")
    unlock(at)
    assert "Too many wrong tries: wait 2 s" in texts(at, "error")
    clock.now += 2.0
    unlock(at)
    assert at.title[0].value == "Enroll a person" and not at.error
    assert throttle.check(*[k for k in throttle._records]) == 0.0  # success forgot them


# ----- every user string is text ---------------------------------------------------------

def test_hostile_names_display_as_text_on_every_page(data_dir, lenient_engine, monkeypatch,
                                                     astronaut_png, blank_png):
    at = enroll_upload(open_page("enroll"), astronaut_png, name=HOSTILE_PERSON)
    shown_page = assert_all_text(at)
    assert f"Saved 1 face photo of {HOSTILE_PERSON}." in shown_page
    assert f"Saved photos of {HOSTILE_PERSON} (1)" in shown_page

    at = open_page("classes")
    next(t for t in at.text_input if t.label == "Class name").set_value(CLASS_PAYLOAD)
    next(b for b in at.button if b.label == "Make class").click()
    at.run()
    at.multiselect(key="roster_add_people").set_value([HOSTILE_PERSON])
    next(b for b in at.button if b.label == "Add to roster").click()
    at.run()
    shown_page = assert_all_text(at)
    assert f"Roster of {CLASS_PAYLOAD} (1)" in shown_page
    assert list(at.dataframe[1].value["Name"]) == [HOSTILE_PERSON]

    at = open_page("checkin")
    next(t for t in at.text_input if t.label == "Session name (optional)").set_value(
        SESSION_PAYLOAD)
    next(b for b in at.button if b.label == "Start session").click()
    at.run()
    at.radio(key="checkin_mode").set_value("Upload a photo")
    at.run()
    at.file_uploader(key="checkin_upload").set_value(("class.png", astronaut_png, "image/png"))
    at.run()
    shown_page = assert_all_text(at)
    assert f"Class session: {SESSION_PAYLOAD}" in shown_page
    assert f"{HOSTILE_PERSON} checked in" in shown_page
    assert list(at.dataframe[0].value["Name"]) == [HOSTILE_PERSON]  # tables show text as is
    at.radio(key="checkin_mode").set_value("Live camera")
    at.run()
    assert_all_text(at)

    at = open_page("home")
    shown_page = assert_all_text(at)
    assert f"{CLASS_PAYLOAD}: {SESSION_PAYLOAD} (started" in shown_page
    assert "1 of 1 here" in shown_page

    at = open_page("verify")
    at.file_uploader(key="verify_a").set_value((FILE_PAYLOAD, astronaut_png, "image/png"))
    at.file_uploader(key="verify_b").set_value((FILE_PAYLOAD, blank_png, "image/png"))
    at.run()
    assert f"{FILE_PAYLOAD}: no face was found." in assert_all_text(at)
    at.radio(key="verify_mode").set_value("Which photo is the anchor's person?")
    at.run()
    at.file_uploader(key="verify_anchor").set_value(("anchor.png", astronaut_png, "image/png"))
    at.file_uploader(key="verify_candidates").set_value(
        [(FILE_PAYLOAD, astronaut_png, "image/png")])
    at.run()
    shown_page = assert_all_text(at)
    assert f"Most likely the anchor's person: {FILE_PAYLOAD}" in shown_page
    assert f"#1 {FILE_PAYLOAD}: " in "\n".join(shown(c) for img in at.get("image")
                                               for c in img.captions)
    at.radio(key="verify_mode").set_value("A photo and an enrolled person")
    at.run()
    at.file_uploader(key="verify_person_photo").set_value((FILE_PAYLOAD, astronaut_png,
                                                           "image/png"))
    at.run()
    assert f"{HOSTILE_PERSON} (enrolled)" in "\n".join(
        shown(c) for img in at.get("image") for c in img.captions)
    assert_all_text(at)
    at.radio(key="verify_mode").set_value("Who is this?")
    at.run()
    at.file_uploader(key="verify_identify").set_value((FILE_PAYLOAD, astronaut_png, "image/png"))
    at.run()
    assert_all_text(at)
    assert list(at.dataframe[0].value["Who"]) == [HOSTILE_PERSON]

    at = open_page("people")
    shown_page = assert_all_text(at)
    assert f"Deletes every photo of {HOSTILE_PERSON}," in shown_page
    assert f"Yes, delete {HOSTILE_PERSON}" in shown_page

    at = open_page("attendance")
    shown_page = assert_all_text(at)
    assert f"Open at the kiosk: {SESSION_PAYLOAD} ({CLASS_PAYLOAD}, started" in shown_page
    assert f"Register: {SESSION_PAYLOAD}" in shown_page
    at.radio(key="attendance_status").set_value("absent")
    next(b for b in at.button if b.label == "Save").click()
    at.run()
    assert f"Marked {HOSTILE_PERSON} absent." in assert_all_text(at)

    for page in ("train", "enroll", "classes"):
        assert_all_text(open_page(page))

    # The kiosk's view of the same register.
    set_passcode(monkeypatch)
    for page in ("home", "checkin", "verify"):
        at = open_page(page)
        shown_page = assert_all_text(at)
        assert HOSTILE_PERSON not in shown_page
    assert f"Class session: {SESSION_PAYLOAD}" in assert_all_text(open_page("checkin"))


def test_library_errors_quoting_a_name_are_text(data_dir):
    at = open_page("enroll")
    at.text_input(key="enroll_name").set_value("**x** <b>")
    at.run()
    errors = assert_all_text(at)
    assert "A name may contain letters" in errors and "'*'" in errors and "'<'" in errors


# ----- the live camera's boxes -------------------------------------------------------------

def stranger(reason: str = "not close enough", x: int = 10) -> Match:
    return Match(box=(x, 10, 100, 100), name=None, score=0.41,
                 candidates=(("Ada Lovelace", 0.41), ("Grace Hopper", 0.2)),
                 closest="Ada Lovelace", reason=reason)


class SceneEngine:
    """The live pipeline's view of an engine: faces where ``matches`` put them, each
    identified as its match."""

    def __init__(self, *matches: Match) -> None:
        from synthetic_faces import synthetic_face

        self.matches = {m.box: m for m in matches}
        faces = [synthetic_face(*m.box) for m in matches]

        class Detector:
            def detect(self, image, *, max_side=None):
                return faces

            def follow(self, image, boxes):
                return [next((f for f in faces if f.box == tuple(box)), None) for box in boxes]

        self.detector = Detector()

    def embed_crops(self, crops):
        import numpy as np

        return np.ones((len(crops), 4), np.float32) / 2, "v1"

    def identify_tracks(self, fused, frames, faces, version=None):
        return [self.matches[f.box] for f in faces]


def test_live_boxes_never_name_the_closest_person_of_a_stranger(tmp_path):
    import numpy as np

    from model.school.checkin import CheckInTracker
    from web_app.live import LiveCheckInProcessor

    engine = SceneEngine(stranger(), stranger("closest is Ada Lovelace", x=200))
    book = AttendanceBook(tmp_path / "a.sqlite3")
    session = book.start_session("Maths", open_it=True)
    processor = LiveCheckInProcessor(engine, book, CheckInTracker(1), only_open_session=True)
    processor.start_session(session.id)
    labels = processor.process(np.zeros((480, 640, 3), np.uint8))
    assert [label.text for label in labels] == ["unknown: not close enough",
                                                "unknown: not recognised"]
    assert book.checkins() == []


def test_live_check_in_stops_when_the_teacher_closes_the_session(tmp_path):
    import numpy as np

    from model.school.checkin import CheckInTracker
    from web_app.live import LiveCheckInProcessor

    engine = SceneEngine(Match(box=(1, 1, 9, 9), name="Ada Lovelace", score=0.9,
                               candidates=(("Ada Lovelace", 0.9),)))
    book = AttendanceBook(tmp_path / "a.sqlite3")
    session = book.start_session("Maths", open_it=True)
    processor = LiveCheckInProcessor(engine, book, CheckInTracker(1), only_open_session=True)
    processor.start_session(session.id)
    book.close_session()
    processor.process(np.zeros((48, 64, 3), np.uint8))
    assert book.checkins() == [] and processor.results.get_nowait().checked_in == ()
