"""Attendance (teacher): sessions and check-ins, which one is open at the kiosk, manual
corrections, rates, CSV export."""

from __future__ import annotations

import re

import streamlit as st

from web_app.common import get_book, get_engine, plain, require_admin

ALL_SESSIONS = 0  # the selectbox value meaning "every session"
PRESENT, ABSENT = "Present", "Absent"
COLUMN_NAMES = {"session": "Session", "started_at": "Started", "person": "Name",
                "checked_at": "Checked in at", "score": "Score", "how": "How",
                "present": "Present"}


def csv_name(label: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-").lower()
    return f"attendance-{slug or 'all'}.csv"


st.title("Attendance")
require_admin()
engine = get_engine()
book = get_book()

sessions = book.sessions()
if not sessions:
    st.info("No class session yet. Start one on the **Check-in** page.")
    st.stop()

labels = {ALL_SESSIONS: "All sessions"}
labels.update({s.id: f"{s.name} ({s.started_at:%Y-%m-%d %H:%M})" for s in sessions})
chosen = st.selectbox("Session", list(labels), format_func=labels.__getitem__,
                      index=1, key="attendance_session")
session_id = None if chosen == ALL_SESSIONS else chosen

# The kiosk checks people into the open session only; the teacher opens and closes it
# here or in the Check-in page's teacher section.
open_session = book.current_session()
kiosk, action = st.columns([4, 1], vertical_alignment="center")
kiosk.caption("Open at the kiosk: " + (f"**{plain(open_session.name)}** (started "
                                       f"{open_session.started_at:%Y-%m-%d %H:%M})"
                                       if open_session else "none (the kiosk checks nobody in)"))
if session_id is not None and (open_session is None or open_session.id != session_id):
    if action.button("Open at the kiosk", key="attendance_open"):
        book.open_session(session_id)
        st.rerun()
elif open_session is not None and action.button("Close it", key="attendance_close"):
    book.close_session()
    st.rerun()

table = book.table(session_id)
shown = table.drop(columns=["session_id"] + (["session", "started_at"] if session_id else []))
st.dataframe(shown.rename(columns=COLUMN_NAMES), hide_index=True, width="stretch",
             column_config={"Score": st.column_config.NumberColumn(format="%.3f")})
st.download_button("Download CSV", data=book.export_csv(session_id),
                   file_name=csv_name(labels[chosen]), mime="text/csv", key="attendance_csv")

enrolled = [p.name for p in engine.gallery.people()]
if session_id is not None:
    st.subheader("Correct by hand")
    names = sorted(set(enrolled) | set(table["person"]), key=str.casefold)
    if not names:
        st.caption("Nobody is enrolled yet.")
    else:
        with st.form("manual_mark"):
            person = st.selectbox("Person", names, key="attendance_person")
            status = st.radio("Mark as", [PRESENT, ABSENT], horizontal=True,
                              key="attendance_status")
            if st.form_submit_button("Save"):
                book.mark(session_id, person, present=status == PRESENT)
                st.session_state["attendance_message"] = (f"Marked {plain(person)} "
                                                          f"{status.lower()}.")
                st.rerun()
if message := st.session_state.pop("attendance_message", None):
    st.success(message)

st.subheader("Attendance rate per person")
rates = book.rates(people=enrolled)
if rates.empty:
    st.caption("No one to show yet.")
else:
    chart = rates.assign(**{"Attendance %": (rates["rate"] * 100).round(1)})
    st.bar_chart(chart, x="person", y="Attendance %", horizontal=True, sort="-Attendance %")
    st.dataframe(chart.rename(columns={"person": "Name", "attended": "Sessions attended",
                                       "sessions": "Sessions"}).drop(columns=["rate"]),
                 hide_index=True, width="stretch")
