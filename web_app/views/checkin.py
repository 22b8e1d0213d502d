"""Check-in (kiosk): check into the class session the teacher opened, by camera or photo.

The kiosk shows the open session's name and the answer for the face in front of the
camera ("Ada checked in"), nothing else: no list of who checked in, no sessions to
choose. The teacher's section (start, open or close a session; who checked in) shows
only to a browser that unlocked the teacher pages, or when no passcode is set.

Each kiosk has its own open session: the page serves the kiosk its ``?kiosk=Room%2012``
query parameter names, else ``FACEATT_KIOSK``, else the default kiosk. With a shared
PostgreSQL register, a kiosk that lost the database keeps checking in (the outbox) and
says how many check-ins wait to be delivered.
"""

from __future__ import annotations

import time
from datetime import datetime

import pandas as pd
import streamlit as st

from model.errors import FaceAttendanceError
from model.school.attendance import RegisterOffline
from model.school.liveness import ASK_TEACHER, FAILED, HeadTurnCheck, HeadTurnRule, Step
from model.settings import get_settings
from web_app.common import (
    RTC_CONFIGURATION,
    UPLOAD_TYPES,
    VIDEO_CONSTRAINTS,
    draw_boxes,
    error_text,
    get_book,
    get_engine,
    is_admin,
    match_label,
    page_kiosk,
    plain,
    read_upload,
    unknown_reason,
    unlock_form,
)
from web_app.live import LiveCheckInProcessor, live_camera_problem
from web_app.loading import needed, start_loading

#: How often the page refreshes the live results (seconds).
LIVE_REFRESH_S = 1.0
#: Width of the answered photo.
PREVIEW_WIDTH = 640
MODES = ("Live camera", "Snapshot", "Upload a photo")
#: How long (seconds) the page keeps saying why the last head turn was refused.
REFUSED_SHOWN_S = 10.0
SESSION_KEY = "checkin_session_id"
#: The "Start a new class session" expander's state, and the open session it was set for.
NEW_SESSION_KEY, LAST_OPEN_KEY = "checkin_new_session_open", "checkin_new_session_for"
NO_SESSION = "No class session is open: ask the teacher."


def check_in_photo(engine, book, session_id: int, upload, how: str) -> None:  # type: ignore[no-untyped-def]
    """Identify every face in a photo, check in the known ones, show the boxed photo.

    Only the faces in the photo are answered: a recognised face by its name, an unknown
    one by the reason alone (never who it was closest to). The answer is kept per file,
    so a rerun shows the same result instead of "already checked in".
    """
    answers = st.session_state.setdefault("checkin_answers", {})
    key = (session_id, upload.file_id)
    if key not in answers:
        try:
            image = read_upload(upload)
            matches = engine.identify_faces(image)
        except FaceAttendanceError as error:
            st.error(error_text(error))
            return
        lines = []
        for match in matches:
            if match.name is None:
                continue
            row = book.check_in(session_id, match.name, score=match.score, how=how)
            lines.append((match.name, match.score, row is not None))
        # Why faces were refused, without naming anyone: this is the kiosk.
        unknown = [unknown_reason(m) for m in matches if m.name is None]
        answers[key] = (draw_boxes(image, [match_label(m) for m in matches]), lines, unknown,
                        len(matches))
    picture, lines, unknown, faces = answers[key]
    st.image(picture, width=PREVIEW_WIDTH)
    if faces == 0:
        st.warning("No face found in this photo.")
    for person, score, fresh in lines:
        if fresh:
            st.success(f"**{plain(person)}** checked in (similarity {100 * max(score, 0):.0f}%).")
        else:
            st.info(f"{plain(person)} was already checked in to this session.")
    if unknown:
        reasons = ", ".join(sorted(set(unknown)))
        st.warning(f"{len(unknown)} face{'s' if len(unknown) != 1 else ''} not recognised "
                   f"({plain(reasons)}). Enrolled people can try again, facing the camera in "
                   "good light; others should see the teacher.")


def head_turn_refusal(step: Step) -> str:
    """Why the kiosk did not check a face in after its head-turn challenge (no name)."""
    if step.action == ASK_TEACHER:
        return ("Not checked in: the head turn failed three times"
                + (f" (last: {step.reason})" if step.reason else "")
                + ". Please ask the teacher.")
    return (f"Not checked in yet: {step.reason}. Follow the arrow on the video "
            f"({step.tries_left} {'try' if step.tries_left == 1 else 'tries'} left).")


def checked_in_table(book, session_id: int) -> None:  # type: ignore[no-untyped-def]
    """Who checked in to the session, newest first (the teacher's view only)."""
    try:
        rows = [c for c in book.checkins(session_id) if c.present]
    except RegisterOffline:
        return
    st.subheader(f"Checked in ({len(rows)})")
    if rows:
        st.dataframe(pd.DataFrame({
            "Name": [c.person for c in reversed(rows)],
            "Time": [c.checked_at.strftime("%H:%M:%S") for c in reversed(rows)],
            "How": [c.how for c in reversed(rows)],
        }), hide_index=True, width="stretch")


def _open_chosen(book, kiosk: str) -> None:  # type: ignore[no-untyped-def]
    """The teacher chose a session in the selectbox: it becomes the kiosk's open one."""
    chosen = st.session_state.get(SESSION_KEY)
    if chosen is not None and book.session(chosen) is not None:
        book.open_session(chosen, kiosk=kiosk)


def offline_line(book) -> None:  # type: ignore[no-untyped-def]
    """Deliver what the outbox holds if the register answers again; say what still waits."""
    book.deliver_outbox()
    if waiting := book.outbox_waiting():
        st.warning(f"offline: {waiting} check-in{'s' if waiting != 1 else ''} waiting "
                   "(they are kept here and delivered when the register answers again)")


def session_controls(book, kiosk: str) -> None:  # type: ignore[no-untyped-def]
    """The teacher's section: start a session of a class (it opens at once), open
    another, close."""
    classes = book.classes()
    class_names = {c.id: c.name for c in classes}
    sessions = book.sessions()
    if not classes:
        st.info("Make a class first (the **Classes** page): a session belongs to a class, "
                "whose roster says who is expected.")
    else:
        # Open while no session is, folded once one is: each time the open session changes
        # (here or in another browser) the expander follows. A keyed expander, whose state
        # session_state sets; an unkeyed one kept whatever the teacher last clicked.
        current = book.open_session_id(kiosk)
        if st.session_state.get(LAST_OPEN_KEY, -1) != current:
            st.session_state[NEW_SESSION_KEY] = current is None
            st.session_state[LAST_OPEN_KEY] = current
        with st.expander("Start a new class session", key=NEW_SESSION_KEY, on_change="rerun"), \
                st.form("new_session", clear_on_submit=True):
            class_id = st.selectbox("Class", list(class_names),
                                    format_func=class_names.__getitem__, key="checkin_class")
            session_name = st.text_input("Session name (optional)",
                                         placeholder=f"e.g. {datetime.now():%A %d %B}")
            if st.form_submit_button("Start session"):
                book.start_session(session_name, class_id=class_id, open_it=True, kiosk=kiosk)
                st.rerun()
    if not sessions:
        return
    labels = {s.id: (f"{class_names.get(s.class_id, 'no class')}: {s.name} "
                     f"({s.started_at:%Y-%m-%d %H:%M})") for s in sessions}
    # Follow the book, not this browser's memory: another teacher's browser may have
    # opened or closed a session since. (Set before the widget is drawn, as Streamlit wants.)
    st.session_state[SESSION_KEY] = book.open_session_id(kiosk)
    choose, close = st.columns([4, 1], vertical_alignment="bottom")
    # Selectbox options are shown as text (no Markdown), so the raw names are safe here.
    choose.selectbox("Class session", list(labels), format_func=labels.__getitem__,
                     key=SESSION_KEY, on_change=_open_chosen, args=(book, kiosk),
                     placeholder="None open: choose one to open it",
                     help="The kiosk checks people into this session only. Choosing another "
                          "one opens it instead.")
    if close.button("Close session", key="checkin_close",
                    disabled=st.session_state[SESSION_KEY] is None):
        book.close_session(kiosk=kiosk)
        st.rerun()


def progress_line(book, session_id: int, admin: bool) -> None:  # type: ignore[no-untyped-def]
    """"18 of 24 here" for everyone (a count names nobody); who is missing for the teacher."""
    try:
        register = book.register(session_id)
    except RegisterOffline:
        return  # the offline line says why; the count comes back with the register
    if not register.expected:
        if admin:
            st.caption("Nobody is on this class's roster: add students on the **Classes** "
                       "page, or everyone recognised counts as a visitor.")
        return
    st.progress(register.here / register.expected,
                text=f"{register.here} of {register.expected} here")
    if admin and register.missing:
        st.caption(f"Still missing: {plain(', '.join(register.missing))}")


def teacher_unlock() -> None:
    """The kiosk's way in for the teacher (a folded passcode form)."""
    with st.expander("Teacher"):
        unlock_form("Type the admin passcode to open or close class sessions and see who "
                    "checked in.")


st.title("Check-in")
# The engine may still be loading (the first minute after start): the live camera starts
# without it, the photo modes wait for it.
loading = start_loading(str(get_settings().data_dir))
book = get_book()
admin = is_admin()
kiosk = page_kiosk()

try:
    if admin:
        session_controls(book, kiosk)
    else:
        teacher_unlock()
    session = book.current_session(kiosk)
except RegisterOffline as offline:
    st.error(error_text(offline))
    st.stop()
offline_line(book)
if session is None:
    st.info(NO_SESSION if not admin else
            "No class session is open. Start one above, or choose one to open it.")
    st.stop()
session_id = session.id

try:
    school_class = None if session.class_id is None else book.school_class(session.class_id)
except RegisterOffline as offline:
    st.error(error_text(offline))
    st.stop()
st.subheader(f"Class session: {plain(session.name)}"
             + (f" ({plain(school_class.name)})" if school_class else "")
             + (f" at {plain(kiosk)}" if kiosk else ""))
if admin and loading.done() and not get_engine().gallery.people():
    st.warning("Nobody is enrolled yet, so every face will be \"unknown\". Enroll people first.")

head_turn = bool(school_class and school_class.head_turn)
# A photo cannot turn its head: where the class asks for a head turn, snapshot and upload
# check-ins are the teacher's (who is in the room), not the kiosk's.
modes = MODES if admin or not head_turn else MODES[:1]
mode = st.radio("Check in with", modes, horizontal=True, key="checkin_mode")
if head_turn and admin and mode != "Live camera":
    st.caption("This class asks for a head turn at the live camera: a photo cannot turn, so "
               "snapshot and photo check-ins are for the teacher only.")

if mode == "Live camera":
    if problem := live_camera_problem():
        st.error(problem)
        st.stop()
    from streamlit_webrtc import WebRtcMode, webrtc_streamer

    kept = st.session_state.get("checkin_processor")
    # One processor per browser session and engine load (a new data folder, a new one).
    if not (isinstance(kept, tuple) and kept[0] is loading and kept[1].book is book
            and kept[1].kiosk == kiosk):
        rule = HeadTurnRule(moves=get_settings().head_turn_moves)
        kept = (loading, LiveCheckInProcessor(loading, book, only_open_session=True,
                                              head_turn=HeadTurnCheck(rule), kiosk=kiosk))
        st.session_state["checkin_processor"] = kept
    processor: LiveCheckInProcessor = kept[1]
    processor.start_session(session_id, head_turn=head_turn)
    st.caption("Look at the camera. The box says \"checking...\" while the app gathers "
               "evidence over several frames; a face is named only on the evidence of all its "
               "frames together, so a look-alike is not let in by one lucky frame."
               + (" Then follow the arrow: turn your head the way it asks, each time it asks (a "
                  "photo cannot), and you are checked in." if head_turn else ""))
    try:
        ctx = webrtc_streamer(key="checkin-live", mode=WebRtcMode.SENDRECV,
                              rtc_configuration=RTC_CONFIGURATION,
                              media_stream_constraints=VIDEO_CONSTRAINTS,
                              video_frame_callback=processor.callback, async_processing=True)
    except Exception as error:
        st.error(f"The live camera cannot start here ({type(error).__name__}). Use a snapshot "
                 "or an uploaded photo instead.")
        st.stop()

    @st.fragment(run_every=LIVE_REFRESH_S if ctx.state.playing else None)
    def live_results() -> None:
        """Drain the queue from the camera thread: toasts for new check-ins, speed, list."""
        if book.open_session_id(kiosk) != session_id:
            st.rerun(scope="app")  # the teacher closed or changed the session meanwhile
        offline_line(book)
        results = []
        while not processor.results.empty():
            result = processor.results.get_nowait()
            results.append(result)
            for item, waited in zip(result.checked_in, result.waited, strict=True):
                # Only the person just recognised, at the camera: their own name.
                st.toast(f"✅ {plain(item.name)} checked in"
                         + (" (head turn)" if processor.require_turn else "")
                         + f" (similarity {100 * max(item.score, 0):.0f}%, "
                         f"{waited:.1f} s after their face was first seen)")
            refused = [s for s in result.steps if s.action in (FAILED, ASK_TEACHER)]
            if refused:
                st.session_state["checkin_refused"] = (refused[-1], result.at)
        if len(results) >= 2:
            # Frames recognised per second (the camera's pace when the worker keeps up),
            # and the work per frame (following known faces is cheap, a new face costs more).
            span = results[-1].at - results[0].at
            st.session_state["checkin_speed"] = (
                (len(results) - 1) / max(span, 1e-3),
                sum(r.seconds for r in results) / len(results))
        if ctx.state.playing and "checkin_speed" in st.session_state:
            rate, work = st.session_state["checkin_speed"]
            st.caption(f"Recognising about {rate:.1f} frames per second "
                       f"({1000 * work:.0f} ms of work per frame)." if rate < 2 else
                       f"Recognising about {rate:.0f} frames per second "
                       f"({1000 * work:.0f} ms of work per frame).")
        if ctx.state.playing and not loading.done():
            needed()  # the camera is on: a load still held for the first page starts now
            st.caption("Starting the recognizer: names appear on the video in a few seconds.")
        if ctx.state.playing and "checkin_refused" in st.session_state:
            step, at = st.session_state["checkin_refused"]
            if time.monotonic() - at < REFUSED_SHOWN_S:
                st.warning(head_turn_refusal(step))
        if processor.worker.last_error:
            st.caption(f"Last camera error: {plain(processor.worker.last_error)}")
        progress_line(book, session_id, admin)
        if admin:
            checked_in_table(book, session_id)

    live_results()

elif mode == "Snapshot":
    shot = st.camera_input("Take a photo", key="checkin_camera")
    if shot is not None:
        check_in_photo(get_engine(), book, session_id, shot, "snapshot")
    progress_line(book, session_id, admin)
    if admin:
        checked_in_table(book, session_id)

else:
    upload = st.file_uploader("A photo (a group photo checks in everyone recognised)",
                              type=UPLOAD_TYPES, key="checkin_upload")
    if upload is not None:
        check_in_photo(get_engine(), book, session_id, upload, "upload")
    progress_line(book, session_id, admin)
    if admin:
        checked_in_table(book, session_id)
