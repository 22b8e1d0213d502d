"""Attendance (teacher): the register of each class session (every roster member present,
late or absent, and the visitors), corrections by hand, which session is open at the
kiosk, rename or delete a session, CSV exports, attendance rates per class."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pandas as pd
import streamlit as st

from model.school.classes import ABSENT, LATE, PRESENT, STATUSES
from web_app.common import (
    error_text,
    get_engine,
    kiosk_label,
    page_kiosk,
    plain,
    require_admin,
)

STATUS_WORDS = {PRESENT: "Present", LATE: "Late", ABSENT: "Absent"}
#: How a check-in's similarity score is shown in the register.
SCORE_FORMAT = "{:.3f}"
#: How long back the date-range export looks by default.
DEFAULT_RANGE_DAYS = 30


def file_slug(*parts: str) -> str:
    """A file name part made of the words of ``parts`` (ASCII letters and digits)."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", "-".join(parts)).strip("-").lower()
    return slug or "register"


def register_frame(register) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """A register's rows (or visitors) as a table for people. The score is text: an
    absent student (or a hand-made mark) has none, and a number column would show the
    word "None" where a teacher expects a blank cell."""
    rows = register if isinstance(register, list) else register.rows
    return pd.DataFrame({
        "Name": [r.person for r in rows],
        "Status": [STATUS_WORDS.get(r.status, r.status) for r in rows],
        "Checked in at": [r.checked_at.strftime("%H:%M:%S") if r.checked_at else ""
                          for r in rows],
        "How": [r.how or "" for r in rows],
        "Score": [SCORE_FORMAT.format(r.score) if r.score is not None else "" for r in rows],
    })


st.title("Attendance")
require_admin()
engine = get_engine()
book = engine.book

if message := st.session_state.pop("attendance_message", None):
    st.success(message)

classes = book.classes()
if not classes:
    st.info("No class yet. Make one on the **Classes** page, then start a session on the "
            "**Check-in** page.")
    st.stop()

class_names = {c.id: c.name for c in classes}
# Which kiosk's open session this page shows and sets: the page's own kiosk, or another one
# where a school has several (each kiosk checks people into its own open session).
kiosk = page_kiosk()
kiosks = sorted({kiosk, *book.open_sessions()}, key=str.casefold)
if len(kiosks) > 1:
    kiosk = st.selectbox("Kiosk", kiosks, index=kiosks.index(kiosk), format_func=kiosk_label,
                         key="attendance_kiosk")
open_session = book.current_session(kiosk)
if st.session_state.get("attendance_class") not in class_names:
    st.session_state["attendance_class"] = (
        open_session.class_id if open_session and open_session.class_id in class_names
        else classes[0].id)
class_id = st.selectbox("Class", list(class_names), format_func=class_names.__getitem__,
                        key="attendance_class")
chosen_class = next(c for c in classes if c.id == class_id)
sessions = book.sessions(class_id)

# The kiosk checks people into the open session only; the teacher opens and closes it
# here or in the Check-in page's teacher section.
st.caption(f"Open at {plain(kiosk_label(kiosk))}: " + (
    f"**{plain(open_session.name)}** ({plain(class_names.get(open_session.class_id, 'no class'))}"
    f", started {open_session.started_at:%Y-%m-%d %H:%M})" if open_session
    else "none (the kiosk checks nobody in)"))

if not sessions:
    st.info(f"{plain(chosen_class.name)} has no session yet. Start one on the **Check-in** "
            "page.")
else:
    labels = {s.id: f"{s.name} ({s.started_at:%Y-%m-%d %H:%M})" for s in sessions}
    if st.session_state.get("attendance_session") not in labels:
        # The session open at the kiosk, else the newest.
        st.session_state["attendance_session"] = (
            open_session.id if open_session and open_session.id in labels else sessions[0].id)
    session_id = st.selectbox("Session", list(labels), format_func=labels.__getitem__,
                              key="attendance_session")
    session = next(s for s in sessions if s.id == session_id)
    register = book.register(session_id)

    st.subheader(f"Register: {plain(session.name)}")
    here, late, absent = (len(register.with_status(PRESENT)), len(register.with_status(LATE)),
                          len(register.with_status(ABSENT)))
    a, b, c, d = st.columns(4)
    a.metric("On the roster", register.expected)
    b.metric("Present", here)
    c.metric(f"Late (after {chosen_class.late_after_min:g} min)", late)
    d.metric("Absent", absent)
    if register.rows:
        st.dataframe(register_frame(register), hide_index=True, width="stretch")
    else:
        st.caption("Nobody is on this class's roster: add students on the **Classes** page.")
    if register.visitors:
        st.markdown(f"**Visitors** ({len(register.visitors)}): recognised but not on the "
                    "roster, never counted.")
        st.dataframe(register_frame(register.visitors), hide_index=True, width="stretch")
    st.download_button("Download this register (CSV)", data=book.export_csv(session_id),
                       file_name=f"register-{file_slug(chosen_class.name, session.name)}.csv",
                       mime="text/csv", key="attendance_csv")

    left, right = st.columns(2)
    with left:
        st.subheader("Correct by hand")
        names = sorted({r.person for r in register.rows}
                       | {r.person for r in register.visitors}, key=str.casefold)
        if not names:
            st.caption("Nobody to correct.")
        else:
            with st.form("manual_mark"):
                person = st.selectbox("Person", names, key="attendance_person")
                status = st.radio("Mark as", list(STATUSES), horizontal=True,
                                  format_func=STATUS_WORDS.__getitem__, key="attendance_status")
                if st.form_submit_button("Save"):
                    book.set_status(session_id, person, status)
                    st.session_state["attendance_message"] = (
                        f"Marked {plain(person)} {STATUS_WORDS[status].lower()}.")
                    st.rerun()
    with right:
        st.subheader("This session")
        if open_session is None or open_session.id != session_id:
            if st.button("Open at the kiosk", key="attendance_open"):
                book.open_session(session_id, kiosk=kiosk)
                st.rerun()
        elif st.button("Close it at the kiosk", key="attendance_close"):
            book.close_session(kiosk=kiosk)
            st.rerun()
        with st.form("session_rename"):
            new_name = st.text_input("Name", value=session.name,
                                     key=f"attendance_rename_{session_id}")
            if st.form_submit_button("Rename"):
                try:
                    book.rename_session(session_id, new_name)
                    st.session_state["attendance_message"] = "Renamed the session."
                    st.rerun()
                except ValueError as error:
                    st.error(error_text(error))
        checkins = len(book.checkins(session_id))
        confirm = st.checkbox(f"Yes, delete this session and its {checkins} check-in(s)",
                              key=f"attendance_delete_confirm_{session_id}")
        if st.button("Delete session", disabled=not confirm, key="attendance_delete"):
            book.delete_session(session_id)
            st.session_state.pop("attendance_session", None)
            st.session_state["attendance_message"] = f"Deleted {plain(session.name)}."
            st.rerun()

    st.subheader("Register over a date range")
    today = date.today()
    first = min(s.started_at.date() for s in sessions)
    start, end = st.columns(2)
    since = start.date_input("From", value=max(first, today - timedelta(days=DEFAULT_RANGE_DAYS)),
                             key="attendance_from")
    until = end.date_input("To", value=max(today, max(s.started_at.date() for s in sessions)),
                           key="attendance_to")
    picked = book.sessions(class_id, start=since, end=until)
    st.caption(f"{len(picked)} session(s) of {plain(chosen_class.name)} in this range: one "
               "row per student, one column per session, like a paper register.")
    st.download_button("Download the register (CSV)", disabled=not picked,
                       data=book.export_register_csv(class_id, start=since, end=until),
                       file_name=f"register-{file_slug(chosen_class.name)}-{since}-{until}.csv",
                       mime="text/csv", key="attendance_range_csv")

st.subheader(f"Attendance rate in {plain(chosen_class.name)}")
rates = book.rates(class_id=class_id)
if rates.empty:
    st.caption("No one to show yet.")
else:
    chart = rates.assign(**{"Attendance %": (rates["rate"] * 100).round(1)})
    st.bar_chart(chart, x="person", y="Attendance %", horizontal=True, sort="-Attendance %")
    st.dataframe(chart.rename(columns={"person": "Name", "attended": "Sessions attended",
                                       "sessions": "Sessions"}).drop(columns=["rate"]),
                 hide_index=True, width="stretch")
