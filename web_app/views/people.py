"""People (teacher): the enrolled people, rename, delete."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from model.errors import FaceAttendanceError
from web_app.common import (
    error_text,
    get_book,
    get_engine,
    plain,
    require_admin,
    shared_gallery_note,
)

#: Thumbnails per row in the photo strip of the selected person.
THUMBS_PER_ROW = 8
THUMB_WIDTH = 96

st.title("People")
require_admin()

engine = get_engine()
book = get_book()
people = engine.gallery.people()
if note := shared_gallery_note():
    st.caption(plain(note))

# Messages are stored already made safe (``plain`` names) by the action that left them.
if message := st.session_state.pop("people_message", None):
    st.success(message)
# Widget values can only be set before the widget is drawn, so a rename leaves a note here.
if (selected := st.session_state.pop("people_next_selected", None)) is not None:
    st.session_state["people_selected"] = selected

# A folder someone made or damaged by hand is named and skipped; the page carries on.
for folder, why in engine.gallery.unreadable_folders():
    st.warning(f"The gallery folder {plain(folder)} {plain(why)}: it is left out until its "
               "permissions are fixed.")

if not people:
    st.info("Nobody is enrolled yet. Use the **Enroll** page to add people.")
    st.stop()

table = pd.DataFrame({
    "Name": [p.name for p in people],
    "Photos": [p.image_count for p in people],
    "Enrolled on": [p.enrolled_at.strftime("%Y-%m-%d %H:%M") for p in people],
    "Consent": ["yes" if p.consent else "no" for p in people],
    "Classes": [", ".join(c.name for c in book.classes_of(p.name)) for p in people],
})
st.dataframe(table, hide_index=True, width="stretch")

name = st.selectbox("Person", [p.name for p in people], key="people_selected")
paths = engine.gallery.image_paths(name)
for start in range(0, len(paths), THUMBS_PER_ROW):
    columns = st.columns(THUMBS_PER_ROW)
    for column, path in zip(columns, paths[start:start + THUMBS_PER_ROW], strict=False):
        column.image(str(path), width=THUMB_WIDTH)

person = next(p for p in people if p.name == name)
suffix = f" ({person.student_id})" if person.student_id else ""
plain_name = name[:-len(suffix)] if suffix and name.endswith(suffix) else name

classes = book.classes()
if classes:
    with st.form("people_classes"):
        class_names = {c.id: c.name for c in classes}
        member_of = [c.id for c in book.classes_of(name)]
        wanted = st.multiselect(f"Classes of {plain(name)}", list(class_names),
                                default=member_of, format_func=class_names.__getitem__,
                                key=f"people_classes_{name}")
        if st.form_submit_button("Save classes"):
            for class_id in set(wanted) - set(member_of):
                book.add_to_roster(class_id, [name])
            for class_id in set(member_of) - set(wanted):
                book.remove_from_roster(class_id, [name])
            st.session_state["people_message"] = f"Saved the classes of {plain(name)}."
            st.rerun()

rename_col, delete_col = st.columns(2)
with rename_col:
    st.subheader("Rename")
    with st.form("rename"):
        new_name = st.text_input("New name", value=plain_name)
        new_id = st.text_input("Student id (optional)", value=person.student_id or "")
        if st.form_submit_button("Rename"):
            try:
                renamed = engine.rename_person(name, new_name, student_id=new_id,
                                               keep_student_id=False)
                st.session_state["people_next_selected"] = renamed
                st.session_state["people_message"] = (f"Renamed {plain(name)} to "
                                                      f"{plain(renamed)}.")
                st.rerun()
            except FaceAttendanceError as error:
                st.error(error_text(error))

with delete_col:
    st.subheader("Delete")
    st.write(f"Deletes every photo of **{plain(name)}**, their cached face data and any fine-tuned "
             "model that learned from their photos (the app then uses the previous model).")
    keep_rows = st.radio("Their attendance records", ["Keep", "Delete"], horizontal=True,
                         key="people_keep_rows")
    confirm = st.checkbox(f"Yes, delete {plain(name)}", key=f"people_confirm_{name}")
    if st.button("Delete person", type="primary", disabled=not confirm):
        try:
            removal = engine.remove_person(
                name, forget_attendance=book if keep_rows == "Delete" else None)
            removed, models = removal.attendance_rows, removal.models
            st.session_state["people_message"] = (
                f"Deleted {plain(name)}" + (f", {removed} attendance records" if removed else "")
                + (f" and {len(models)} fine-tuned model(s) trained on their photos"
                   if models else "") + ".")
            st.rerun()
        except FaceAttendanceError as error:
            st.error(error_text(error))
