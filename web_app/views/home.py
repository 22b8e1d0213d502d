"""Home: what the app does, which model is active; today at a glance for the teacher.

Who is enrolled and who checked in today is the register: it shows only to a browser
that unlocked the teacher pages (or when no passcode is set).
"""

from __future__ import annotations

from datetime import date

import streamlit as st

from web_app.common import (
    get_book,
    get_engine,
    is_admin,
    kiosk_label,
    model_figures,
    model_summary,
    passcode_set,
    plain,
    unlock_form,
)

st.title("Face attendance")
st.write(
    "Take attendance by face. A teacher **enrolls** each student with a few photos from the "
    "camera (with their consent), and students then **check in** at the kiosk by looking at "
    "the camera. The **Attendance** page keeps each class's register: who was present, late "
    "or absent.")

if not passcode_set():
    st.warning(
        "**No admin passcode is set.** The teacher pages (Enroll, People, Classes, Train, Attendance) "
        "and the register (who is enrolled, who checked in) are open to anyone using this app. "
        "Set an admin passcode (see the README) before using it on a shared computer.",
        icon="🔓")

engine = get_engine()
admin = is_admin()

if admin:
    book = get_book()
    people = engine.gallery.people()
    today = [s for s in book.sessions() if s.started_at.date() == date.today()]
    present_today = {name for s in today for name in book.present_people(s.id)}
    left, middle, right = st.columns(3)
    left.metric("People enrolled", len(people))
    middle.metric("Class sessions today", len(today))
    right.metric("Checked in today", len(present_today))

st.subheader("Recognition model")
st.markdown(f"Active model: {model_summary(engine.recognizer)}.")
shown = model_figures(engine.recognizer.card)
if shown:
    columns = st.columns(len(shown))
    for column, (label, value) in zip(columns, shown.items(), strict=True):
        column.metric(label, value)
    st.caption("LFW figures are on people the network never saw in training (see the model "
               "card), decided by the open-set rule; \"poor camera\": greyscale, faces ~40 px, blurred, "
               "dark, JPEG 30, with nothing re-tuned for it.")

st.subheader("Today")
if not admin:
    st.caption("Who is enrolled and who checked in today is for the teacher: unlock below to "
               "see it.")
    with st.expander("Teacher: unlock"):
        unlock_form()
else:
    open_at = {session_id: kiosk for kiosk, session_id in book.open_sessions().items()}
    if not today:
        st.write("No class session has been started today. Start one on the **Check-in** page.")
    class_names = {c.id: c.name for c in book.classes()}
    for session in today:
        register = book.register(session.id)
        status = (f" — open at {kiosk_label(open_at[session.id])}" if session.id in open_at
                  else "")
        group = class_names.get(session.class_id or 0, "no class")
        line = (f"**{plain(group)}: {plain(session.name)}** (started "
                f"{session.started_at:%H:%M}{status}): ")
        if register.expected:
            line += f"{register.here} of {register.expected} here"
            if register.missing:
                line += f"; absent so far: {plain(', '.join(register.missing))}"
        else:
            line += f"{len(register.visitors)} checked in (nobody on the roster)"
        st.markdown(line)

st.subheader("How to use it")
st.markdown(
    "1. **Classes**: make a class and fill its roster (a roster CSV, or a zip with one folder "
    "of photos per student). Or **Enroll** each person: type the name, tick consent, take "
    "5–10 photos from the camera while they turn their head a little (or upload photos).\n"
    "2. Optionally **Train**: fine-tune the network on your class for better accuracy.\n"
    "3. **Check-in**: the teacher starts (opens) a session of a class, then students look at the "
    "live camera. A face is named, and checked in once per session, only on the evidence of "
    "its frames together (\"checking...\" until then), so one lucky frame never names a look-alike. "
    "Where the class asks for a head turn (new classes do), the named student then turns their "
    "head the way two arrows on the video ask, which a photo held up to the camera cannot do.\n"
    "4. **Attendance**: the register of each session (present, late, absent), corrections by "
    "hand, a CSV per session or over a date range.")
