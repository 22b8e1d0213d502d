"""Check-in (kiosk, no passcode): choose a class session, then snapshot, upload or live camera."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import streamlit as st

from model.checkin import CheckInTracker
from model.errors import FaceAttendanceError
from web_app.common import (
    RTC_CONFIGURATION,
    UPLOAD_TYPES,
    VIDEO_CONSTRAINTS,
    draw_boxes,
    get_book,
    get_engine,
    match_label,
    read_upload,
)
from web_app.live import LiveCheckInProcessor, live_camera_problem

#: A person is checked in live after being recognised in this many consecutive
#: processed frames (about 0.6 s at 5 frames per second). Higher = fewer mistakes, slower.
REQUIRED_FRAMES = 3
#: How often the page refreshes the live results (seconds).
LIVE_REFRESH_S = 1.0
#: Width of the answered photo.
PREVIEW_WIDTH = 640
MODES = ("Live camera", "Snapshot", "Upload a photo")
SESSION_KEY = "checkin_session_id"


def check_in_photo(engine, book, session_id: int, upload, how: str) -> None:  # type: ignore[no-untyped-def]
    """Identify every face in a photo, check in the known ones, show the boxed photo.

    The answer is kept per file, so a rerun shows the same result instead of
    "already checked in".
    """
    answers = st.session_state.setdefault("checkin_answers", {})
    key = (session_id, upload.file_id)
    if key not in answers:
        try:
            image = read_upload(upload)
            matches = engine.identify_faces(image)
        except FaceAttendanceError as error:
            st.error(str(error))
            return
        lines = []
        for match in matches:
            if match.name is None:
                continue
            row = book.check_in(session_id, match.name, score=match.score, how=how)
            lines.append((match.name, match.score, row is not None))
        # Why faces were refused, without naming anyone: this is the kiosk.
        unknown = [m.reason or "not recognised" for m in matches if m.name is None]
        answers[key] = (draw_boxes(image, [match_label(m) for m in matches]), lines, unknown,
                        len(matches))
    picture, lines, unknown, faces = answers[key]
    st.image(picture, width=PREVIEW_WIDTH)
    if faces == 0:
        st.warning("No face found in this photo.")
    for person, score, fresh in lines:
        if fresh:
            st.success(f"**{person}** checked in (similarity {100 * max(score, 0):.0f}%).")
        else:
            st.info(f"{person} was already checked in to this session.")
    if unknown:
        reasons = ", ".join(sorted(set(unknown)))
        st.warning(f"{len(unknown)} face{'s' if len(unknown) != 1 else ''} not recognised "
                   f"({reasons}). Enrolled people can try again, facing the camera in good "
                   "light; others should see the teacher.")


def checked_in_table(book, session_id: int) -> None:  # type: ignore[no-untyped-def]
    rows = [c for c in book.checkins(session_id) if c.present]
    st.subheader(f"Checked in ({len(rows)})")
    if rows:
        st.dataframe(pd.DataFrame({
            "Name": [c.person for c in reversed(rows)],
            "Time": [c.checked_at.strftime("%H:%M:%S") for c in reversed(rows)],
            "How": [c.how for c in reversed(rows)],
        }), hide_index=True, width="stretch")


st.title("Check-in")
engine = get_engine()
book = get_book()

sessions = book.sessions()
with (st.expander("Start a new class session", expanded=not sessions),
      st.form("new_session", clear_on_submit=True)):
    session_name = st.text_input("Session name",
                                 placeholder=f"e.g. Maths {datetime.now():%A %d %B}")
    if st.form_submit_button("Start session"):
        started = book.start_session(session_name)
        st.session_state[SESSION_KEY] = started.id
        st.rerun()
if not sessions:
    st.info("Start a class session to begin checking people in.")
    st.stop()

ids = [s.id for s in sessions]
names = {s.id: f"{s.name} ({s.started_at:%Y-%m-%d %H:%M})" for s in sessions}
if st.session_state.get(SESSION_KEY) not in ids:
    st.session_state[SESSION_KEY] = ids[0]
session_id = st.selectbox("Class session", ids, format_func=names.__getitem__, key=SESSION_KEY)

if not engine.gallery.people():
    st.warning("Nobody is enrolled yet, so every face will be \"unknown\". Enroll people first.")

mode = st.radio("Check in with", MODES, horizontal=True, key="checkin_mode")

if mode == "Live camera":
    if problem := live_camera_problem():
        st.error(problem)
        st.stop()
    from streamlit_webrtc import WebRtcMode, webrtc_streamer

    kept = st.session_state.get("checkin_processor")
    processor: LiveCheckInProcessor = (
        kept if isinstance(kept, LiveCheckInProcessor) and kept.engine is engine
        else LiveCheckInProcessor(engine, book, CheckInTracker(REQUIRED_FRAMES)))
    st.session_state["checkin_processor"] = processor
    processor.start_session(session_id)
    st.caption(f"Look at the camera: you are checked in after being recognised in "
               f"{REQUIRED_FRAMES} frames in a row.")
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
        seconds = []
        while not processor.results.empty():
            result = processor.results.get_nowait()
            seconds.append(result.seconds)
            for item, waited in zip(result.checked_in, result.waited, strict=True):
                st.toast(f"✅ {item.name} checked in (similarity {100 * max(item.score, 0):.0f}%, "
                         f"{waited:.1f} s after their face was first recognised)")
        if seconds:
            st.session_state["checkin_speed"] = sum(seconds) / len(seconds)
        if ctx.state.playing and "checkin_speed" in st.session_state:
            speed = st.session_state["checkin_speed"]
            st.caption(f"Recognition takes {speed:.2f} s per frame "
                       f"(about {1 / max(speed, 1e-3):.0f} frames per second).")
        if processor.worker.last_error:
            st.caption(f"Last camera error: {processor.worker.last_error}")
        checked_in_table(book, session_id)

    live_results()

elif mode == "Snapshot":
    shot = st.camera_input("Take a photo", key="checkin_camera")
    if shot is not None:
        check_in_photo(engine, book, session_id, shot, "snapshot")
    checked_in_table(book, session_id)

else:
    upload = st.file_uploader("A photo (a group photo checks in everyone recognised)",
                              type=UPLOAD_TYPES, key="checkin_upload")
    if upload is not None:
        check_in_photo(engine, book, session_id, upload, "upload")
    checked_in_table(book, session_id)
