"""The Classes page's 'Enroll from group photos' section (issue 19).

The teacher uploads a few group photos; the faces come back grouped by person
(``model.group_enroll.group_photos``), one strip of crops per group, most typical first.
They type a name for each group (or pick someone enrolled), move faces between groups
(merge, split, drop), leave groups out, consent once for the class, and everyone named is
enrolled and put on the class roster, with the zip import's per-person report.

Per-user state lives in ``st.session_state`` under one key per class: the grouping and the
teacher's edits (``_Work``); names live in the widgets' own keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from model.errors import FaceAttendanceError
from model.group_enroll import NamedGroup, PhotoGrouping, enroll_groups, group_photos
from web_app.common import UPLOAD_TYPES, error_text, plain

#: Side (px) of one face in a group's strip.
CROP_WIDTH = 72
#: The Enroll page's consent sentence, said once for the whole class.
CONSENT = ("Everyone named here (or their parent/guardian) agrees that photos of their face "
           "are stored on this computer for taking attendance.")
NEW_GROUP = "a new group"
NOBODY = "nobody (leave the faces out)"


@dataclass
class _Work:
    """One class's grouping and the teacher's edits: the faces of each group (by face
    number), the groups left out, the faces dropped."""

    files: tuple[str, ...]
    grouping: PhotoGrouping
    groups: list[list[int]]
    left_out: set[int] = field(default_factory=set)
    report: Any = None


def _state_key(class_id: int) -> str:
    return f"group_photos_{class_id}"


def show_group_enrollment(engine: Any, class_id: int, class_name: str, show_report: Any) -> None:
    """The whole section for the class ``class_id``; ``show_report`` draws an ImportReport."""
    st.caption("Upload a few photos of the whole class (3 to 6 are best, each student once "
               "in each). The faces are grouped by person; you name each group, and everyone "
               "you name is enrolled and put on this class's roster.")
    uploads = st.file_uploader("Group photos", type=UPLOAD_TYPES, accept_multiple_files=True,
                               key=f"group_photos_upload_{class_id}")
    key = _state_key(class_id)
    files = tuple(u.file_id for u in uploads or [])
    work: _Work | None = st.session_state.get(key)
    if work is not None and work.files != files:
        work = None
        st.session_state.pop(key, None)
    if uploads and work is None and st.button("Find and group the faces",
                                              key=f"group_photos_find_{class_id}"):
        with st.spinner("Finding and grouping faces…"):
            try:
                grouping = group_photos(engine, [u.getvalue() for u in uploads],
                                        labels=[u.name for u in uploads])
            except FaceAttendanceError as error:
                st.error(error_text(error))
                return
        work = _Work(files=files, grouping=grouping,
                     groups=[list(g) for g in grouping.groups] + [list(grouping.unsure)])
        st.session_state[key] = work
    if work is None:
        return
    if work.report is not None:
        show_report(work.report)
        return
    _show_grouping(engine, work, class_id, class_name)


def _show_grouping(engine: Any, work: _Work, class_id: int, class_name: str) -> None:
    grouping = work.grouping
    faces = grouping.faces
    unsure_index = len(work.groups) - 1  # the last list holds the faces not in a group
    st.write(f"{len(faces)} faces in {len(grouping.photos)} photos: "
             f"{unsure_index} groups, {len(work.groups[unsure_index])} not sure.")
    if grouping.refused:
        with st.expander(f"{len(grouping.refused)} face(s) or photo(s) not used"):
            for photo, _, why in grouping.refused:
                st.caption(f"{plain(photo)}: {plain(why)}")
    enrolled = [p.name for p in engine.gallery.people()]
    for g, members in enumerate(work.groups):
        if not members:
            continue
        unsure = g == unsure_index
        title = "Not sure (move them into a group, or leave them out)" if unsure else f"Group {g + 1}"
        with st.container(border=True):
            st.markdown(f"**{title}** · {len(members)} face(s)")
            st.image([faces[i].crop for i in members], width=CROP_WIDTH,
                     caption=[f"#{i + 1}" + ("" if faces[i].sure else " ?") for i in members])
            if unsure:
                continue
            name_col, pick_col, out_col = st.columns([3, 3, 2])
            name_col.text_input("Name", key=f"group_name_{class_id}_{g}",
                                placeholder="Type the student's name")
            pick_col.selectbox("or someone enrolled", [""] + enrolled,
                               key=f"group_pick_{class_id}_{g}")
            out = out_col.checkbox("Leave out", key=f"group_out_{class_id}_{g}")
            (work.left_out.add if out else work.left_out.discard)(g)
    _move_form(work, class_id)
    named = _named(work, class_id)
    consent = st.checkbox(CONSENT, key=f"group_consent_{class_id}")
    if st.button(f"Enroll {len(named)} named people into {plain(class_name)}",
                 key=f"group_enroll_{class_id}", disabled=not (consent and named)):
        try:
            work.report = enroll_groups(engine, grouping, named, consent=True,
                                        class_name=class_name)
            st.rerun()
        except (FaceAttendanceError, ValueError) as error:
            st.error(error_text(error))


def _move_form(work: _Work, class_id: int) -> None:
    """Move faces: into another group (merge), into a new group (split), or out (drop)."""
    unsure_index = len(work.groups) - 1
    numbers = [i for members in work.groups for i in members]
    targets = [f"Group {g + 1}" for g in range(unsure_index)] + [NEW_GROUP, NOBODY]
    with st.form(f"group_move_{class_id}", clear_on_submit=True):
        st.caption("Fix the grouping: pick faces by their number and where they go. Move a "
                   "whole group into another to merge them, some faces into a new group to "
                   "split one.")
        chosen = st.multiselect("Faces", sorted(numbers), format_func=lambda i: f"#{i + 1}",
                                key=f"group_move_faces_{class_id}")
        target = st.selectbox("Move them to", targets, key=f"group_move_to_{class_id}")
        if st.form_submit_button("Move") and chosen:
            for members in work.groups:
                members[:] = [i for i in members if i not in chosen]
            if target == NEW_GROUP:
                work.groups.insert(unsure_index, sorted(chosen))
            elif target != NOBODY:
                work.groups[targets.index(target)].extend(sorted(chosen))
            st.rerun()


def _named(work: _Work, class_id: int) -> list[NamedGroup]:
    """The groups the teacher named (typed name first, else the enrolled person picked)."""
    named = []
    for g, members in enumerate(work.groups[:-1]):
        if not members or g in work.left_out:
            continue
        typed = str(st.session_state.get(f"group_name_{class_id}_{g}", "")).strip()
        picked = str(st.session_state.get(f"group_pick_{class_id}_{g}", "") or "")
        if typed or picked:
            named.append(NamedGroup(name=typed or picked, faces=tuple(members)))
    return named
