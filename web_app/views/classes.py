"""Classes (teacher): make classes, fill their rosters (by hand, from a roster CSV, by
importing a zip of name-labelled photo folders, or from a few group photos whose faces are
grouped by person for the teacher to name), set when a check-in counts as late."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from model.errors import FaceAttendanceError
from web_app.common import error_text, get_engine, plain, require_admin
from web_app.group_photos import show_group_enrollment

HEAD_TURN_HELP = ("At the live camera, each recognised student is asked to turn their head two "
                  "random ways before being checked in, so a photo or a phone held up to the "
                  "camera checks nobody in. Snapshot and photo check-ins then become the "
                  "teacher's only. Turn it off for a class where it gets in the way.")
#: Upload types of the two import widgets.
ROSTER_TYPES = ["csv", "txt"]
ZIP_TYPES = ["zip"]


def show_import_report(report) -> None:  # type: ignore[no-untyped-def]
    """Per person: photos used and refused with why, or why nothing was stored."""
    good = [p for p in report.people if p.ok]
    st.success(f"Enrolled {len(good)} of {len(report.people)} people "
               f"({report.photos_used} photos)"
               + (f" into {plain(report.class_name)}." if report.class_name else "."))
    rows = [{"Person": p.name, "Photos used": p.used, "Photos refused": len(p.refused),
             "Problem": p.error or ""} for p in report.people]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    refused = [(p.name, label, why) for p in report.people for label, why in p.refused]
    if refused:
        with st.expander(f"Why {len(refused)} photo(s) were refused"):
            st.dataframe(pd.DataFrame(refused, columns=["Person", "Photo", "Why"]),
                         hide_index=True, width="stretch")
    for name, why in report.skipped:
        st.caption(f"Skipped {plain(name)}: {plain(why)}.")


st.title("Classes")
require_admin()
engine = get_engine()
book = engine.book

if message := st.session_state.pop("classes_message", None):
    st.success(message)

with st.expander("Make a new class", expanded=not book.classes()), \
        st.form("new_class", clear_on_submit=True):
    new_name = st.text_input("Class name", placeholder="e.g. Maths 7B")
    late = st.number_input("A check-in is late after (minutes from the session's start)",
                           min_value=0, max_value=1440, value=10, step=1)
    turn = st.toggle("Ask for a head turn", value=True, help=HEAD_TURN_HELP,
                     key="new_class_head_turn")
    if st.form_submit_button("Make class"):
        try:
            made = book.create_class(new_name, late_after_min=late, head_turn=turn)
            st.session_state["classes_selected"] = made.id
            st.session_state["classes_message"] = f"Made the class {plain(made.name)}."
            st.rerun()
        except ValueError as error:
            st.error(error_text(error))

classes = book.classes()
if not classes:
    st.info("No class yet. Make one above, then add its students.")
    st.stop()

st.dataframe(pd.DataFrame({
    "Class": [c.name for c in classes],
    "On the roster": [c.roster_size for c in classes],
    "Late after (min)": [round(c.late_after_min, 1) for c in classes],
    "Head turn": ["asked" if c.head_turn else "off" for c in classes],
    "Sessions": [len(book.sessions(c.id)) for c in classes],
}), hide_index=True, width="stretch")

names = {c.id: c.name for c in classes}
if st.session_state.get("classes_selected") not in names:
    st.session_state["classes_selected"] = classes[0].id
class_id = st.selectbox("Class", list(names), format_func=names.__getitem__,
                        key="classes_selected")
chosen = next(c for c in classes if c.id == class_id)

# ----- the roster ---------------------------------------------------------------------
st.subheader(f"Roster of {plain(chosen.name)} ({chosen.roster_size})")
people = {p.name: p for p in engine.gallery.people()}
roster = book.roster(class_id)
if roster:
    st.dataframe(pd.DataFrame({
        "Name": roster,
        "Photos": [people[n].image_count if n in people else 0 for n in roster],
        "Status": ["enrolled" if n in people else "needs photos (enroll them)"
                   for n in roster],
    }), hide_index=True, width="stretch")
else:
    st.caption("Nobody is on this roster yet.")

add_col, remove_col = st.columns(2)
with add_col, st.form("roster_add", clear_on_submit=True):
    addable = [n for n in people if n not in roster]
    to_add = st.multiselect("Add enrolled people", addable, key="roster_add_people",
                            placeholder="Choose people" if addable else "Everyone enrolled is on it")
    if st.form_submit_button("Add to roster", disabled=not addable):
        added = book.add_to_roster(class_id, to_add)
        st.session_state["classes_message"] = (f"Added {len(added)} to "
                                               f"{plain(chosen.name)}.")
        st.rerun()
with remove_col, st.form("roster_remove", clear_on_submit=True):
    to_remove = st.multiselect("Take people off the roster", roster, key="roster_remove_people",
                               placeholder="Choose people")
    st.caption("Their photos and past check-ins stay; they are no longer expected.")
    if st.form_submit_button("Take off roster", disabled=not roster):
        removed = book.remove_from_roster(class_id, to_remove)
        st.session_state["classes_message"] = (f"Took {removed} off {plain(chosen.name)}.")
        st.rerun()

# ----- import -------------------------------------------------------------------------
st.subheader("Import")
roster_tab, zip_tab = st.tabs(["A roster (CSV)", "Photos (zip of folders)"])
with roster_tab:
    st.caption("One name per line; a student id after a comma (or semicolon) when two "
               "students share a name. Names not enrolled yet are listed as needing photos.")
    # Keyed per class: switching classes shows an empty uploader, not the last class's file.
    upload = st.file_uploader("Roster CSV", type=ROSTER_TYPES,
                              key=f"classes_roster_csv_{class_id}")
    if upload is not None and st.button("Read the roster", key="classes_roster_read"):
        try:
            # Kept for the rerun, which redraws the roster above with the new names.
            st.session_state["classes_roster_report"] = (upload.file_id, engine.import_roster(
                upload.getvalue(), chosen.name))
            st.rerun()
        except FaceAttendanceError as error:
            st.error(error_text(error))
    # The report stays while its file is in the uploader (reruns do not wipe it).
    kept = st.session_state.get("classes_roster_report")
    roster_report = kept[1] if kept and upload is not None and kept[0] == upload.file_id else None
    if roster_report is not None:
        st.success(f"Added {len(roster_report.added)} to "
                   f"{plain(roster_report.school_class.name)}.")
        for line, why in roster_report.refused:
            st.warning(f"Line {line}: {plain(why)}")
        if roster_report.needs_photos:
            st.info(f"{len(roster_report.needs_photos)} on the roster still need photos: "
                    f"{plain(', '.join(roster_report.needs_photos))}.")
with zip_tab:
    st.caption("A zip with one folder per person, named after them (an underscore counts as "
               "a space), holding their photos. Everyone enrolled joins this class.")
    archive = st.file_uploader("Zip of photo folders", type=ZIP_TYPES,
                               key=f"classes_zip_{class_id}")
    consent = st.checkbox("Everyone in these photos agreed to have their face stored for "
                          "attendance.", key=f"classes_zip_consent_{class_id}")
    if archive is not None and st.button("Import photos", key="classes_zip_import",
                                         disabled=not consent):
        bar = st.progress(0.0, text="Reading the zip…")

        def progress(done: int, total: int, name: str) -> None:
            bar.progress(done / max(total, 1), text=f"{done + 1} of {total}: {name}")

        try:
            st.session_state["classes_import_report"] = (archive.file_id, engine.import_zip(
                archive.getvalue(), consent=True, class_name=chosen.name, progress=progress))
            st.rerun()
        except FaceAttendanceError as error:
            bar.empty()
            st.error(error_text(error))
    kept = st.session_state.get("classes_import_report")
    if kept and archive is not None and kept[0] == archive.file_id:
        show_import_report(kept[1])

# ----- enroll from group photos --------------------------------------------------------
st.subheader("Enroll from group photos")
show_group_enrollment(engine, class_id, chosen.name, show_import_report)

# ----- settings -----------------------------------------------------------------------
st.subheader("Settings")
with st.form("class_settings"):
    renamed = st.text_input("Name", value=chosen.name, key=f"class_name_{class_id}")
    late_after = st.number_input("Late after (minutes)", min_value=0, max_value=1440,
                                 value=int(round(chosen.late_after_min)), step=1,
                                 key=f"class_late_{class_id}")
    head_turn = st.toggle("Ask for a head turn", value=chosen.head_turn, help=HEAD_TURN_HELP,
                          key=f"class_head_turn_{class_id}")
    if st.form_submit_button("Save"):
        try:
            book.update_class(class_id, name=renamed, late_after_min=late_after,
                              head_turn=head_turn)
            st.session_state["classes_message"] = "Saved."
            st.rerun()
        except ValueError as error:
            st.error(error_text(error))
sessions = book.sessions(class_id)
confirm = st.checkbox(f"Yes, delete {plain(chosen.name)} with its {len(sessions)} "
                      "session(s) and their check-ins (photos stay)",
                      key=f"class_delete_confirm_{class_id}")
if st.button("Delete class", disabled=not confirm, key="class_delete"):
    book.delete_class(class_id)
    st.session_state.pop("classes_selected", None)
    st.session_state["classes_message"] = f"Deleted {plain(chosen.name)}."
    st.rerun()
