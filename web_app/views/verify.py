"""Verify: are two faces the same person? Which photo is the anchor's person? (open)
Is this person who they say? Who is this? (the teacher's: they reveal the gallery)

The kiosk's modes compare only photos the visitor uploads. The modes that show enrolled
names, an enrolled person's photo or the closest candidates for a stranger appear only
to a browser that unlocked the teacher pages (or when no passcode is set).

Two photos get a graded answer (same person / probably the same person - check / different
people); a photo with several faces is answered for its largest, most central face, boxed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from model.core.images import load_image
from model.errors import FaceAttendanceError
from model.records import Verdict, Verification
from web_app.common import (
    COLOUR_KNOWN,
    UPLOAD_TYPES,
    BoxLabel,
    draw_boxes,
    error_text,
    get_engine,
    is_admin,
    match_label,
    plain,
    read_upload,
    unlock_form,
)

#: Width of each aligned face shown side by side, and of a boxed photo.
FACE_WIDTH = 160
PREVIEW_WIDTH = 520
#: Candidate thumbnails per row in the anchor mode.
CANDIDATES_PER_ROW = 4
MODES = ("Two photos", "A photo and an enrolled person", "Which photo is the anchor's person?",
         "Who is this?")
#: Modes that reveal the gallery (names, enrolled photos, candidates): teacher only.
TEACHER_MODES = (MODES[1], MODES[3])


def verdict(result: Verification) -> None:
    """The graded answer in a sentence (green / amber / red), which face was used, and the
    score against the thresholds as a small detail line."""
    sentence = plain(result.explanation)
    if result.verdict is Verdict.SAME:
        st.success(sentence)
    elif result.verdict is Verdict.PROBABLY_SAME:
        st.warning(sentence)
    else:
        st.error(sentence)
    if result.note:
        st.info(plain(result.note))
    needs = f"same person from {result.threshold:+.1f}"
    if result.maybe_threshold is not None and result.maybe_threshold < result.threshold:
        needs += f", probably the same from {result.maybe_threshold:+.1f}"
    st.caption(f"Score {result.normalised:+.1f}: how much closer these faces are than each "
               f"comes to look-alikes among other people, in standard deviations ({needs}).")


def show_faces(columns: Sequence[DeltaGenerator], images: Sequence[np.ndarray],
               result: Verification, captions: Sequence[str]) -> None:
    """Each face compared, aligned; a photo that showed several faces also appears whole,
    with the face used boxed."""
    for i, (column, image, caption) in enumerate(zip(columns, images, captions, strict=True)):
        column.image(result.crops[i], width=FACE_WIDTH, caption=caption)
        if result.face_counts[i] > 1:
            boxed = draw_boxes(image, [BoxLabel(result.faces[i].box, "compared", COLOUR_KNOWN)])
            column.image(boxed, width=FACE_WIDTH * 2,
                         caption=f"{result.face_counts[i]} faces: the boxed one was compared")


st.title("Verify")
engine = get_engine()
admin = is_admin()
modes = [m for m in MODES if admin or m not in TEACHER_MODES]
if st.session_state.get("verify_mode") not in modes:
    st.session_state.pop("verify_mode", None)  # locked again while in a teacher mode
mode = st.radio("What to check", modes, key="verify_mode")
if not admin:
    with st.expander("Teacher: more modes"):
        unlock_form("\"A photo and an enrolled person\" and \"Who is this?\" show who is "
                    "enrolled, so they are for the teacher. Type the admin passcode to use them.")

try:
    if mode == MODES[0]:
        left, right = st.columns(2)
        first = left.file_uploader("First photo", type=UPLOAD_TYPES, key="verify_a")
        second = right.file_uploader("Second photo", type=UPLOAD_TYPES, key="verify_b")
        if first is not None and second is not None:
            image_a, image_b = read_upload(first), read_upload(second)
            # The file names label errors and notes ("b.jpg has 3 faces ...").
            result = engine.verify_faces(image_a, image_b, labels=(first.name, second.name))
            show_faces([left, right], [image_a, image_b], result,
                       ["First face (aligned)", "Second face (aligned)"])
            verdict(result)

    elif mode == MODES[1] and admin:
        people = [p.name for p in engine.gallery.people()]
        if not people:
            st.info("Nobody is enrolled yet.")
        else:
            photo = st.file_uploader("Photo", type=UPLOAD_TYPES, key="verify_person_photo")
            person = st.selectbox("Enrolled person", people, key="verify_person_name")
            if photo is not None:
                image = read_upload(photo)
                result = engine.verify_person(image, person, label=photo.name)
                left, right = st.columns(2)
                show_faces([left], [image], result, ["This photo (aligned)"])
                paths = engine.gallery.image_paths(person)
                if paths:
                    right.image(load_image(paths[0]), width=FACE_WIDTH,
                                caption=f"{plain(person)} (enrolled)")
                verdict(result)

    elif mode == MODES[2]:
        anchor = st.file_uploader("Anchor photo (the person to look for)", type=UPLOAD_TYPES,
                                  key="verify_anchor")
        candidates = st.file_uploader("Candidate photos", type=UPLOAD_TYPES,
                                      accept_multiple_files=True, key="verify_candidates")
        if anchor is not None and candidates:
            anchor_image = read_upload(anchor)
            images = [read_upload(c) for c in candidates]
            ranking = engine.rank_candidates(anchor_image, images)
            st.image(engine.aligned_face(anchor_image, label=anchor.name), width=FACE_WIDTH,
                     caption="Anchor (aligned)")
            if not ranking:
                st.warning("None of the candidate photos shows exactly one face.")
            else:
                best, best_score, best_same = ranking[0]
                if best_same:
                    st.success(f"Most likely the anchor's person: "
                               f"**{plain(candidates[best].name)}** "
                               f"(similarity {100 * max(best_score, 0):.0f}%).")
                else:
                    st.warning("No candidate is close enough to be the same person; the closest "
                               f"is {plain(candidates[best].name)} "
                               f"({100 * max(best_score, 0):.0f}%).")
            for start in range(0, len(ranking), CANDIDATES_PER_ROW):
                columns = st.columns(CANDIDATES_PER_ROW)
                for column, (index, score, same) in zip(columns,
                                                        ranking[start:start + CANDIDATES_PER_ROW],
                                                        strict=False):
                    column.image(engine.aligned_face(images[index]), width=FACE_WIDTH,
                                 caption=f"#{start + columns.index(column) + 1} "
                                         f"{plain(candidates[index].name)}: "
                                         f"{100 * max(score, 0):.0f}%"
                                         + (" (same person)" if same else ""))
            skipped = len(candidates) - len(ranking)
            if skipped:
                st.caption(f"{skipped} photo(s) left out: no face or several faces.")

    elif mode == MODES[3] and admin:
        photo = st.file_uploader("Photo", type=UPLOAD_TYPES, key="verify_identify")
        if photo is not None:
            image = read_upload(photo)
            matches = engine.identify_faces(image)
            st.image(draw_boxes(image, [match_label(m) for m in matches]), width=PREVIEW_WIDTH)
            if not matches:
                st.warning("No face found in this photo.")
            rows = [{"Face": i + 1, "Who": m.name or "unknown", "Similarity": f"{m.percent}%",
                     "Why": m.explanation,
                     "Candidates": ", ".join(f"{n} {100 * max(s, 0):.0f}%" for n, s in m.candidates)}
                    for i, m in enumerate(matches)]
            if rows:
                st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
except FaceAttendanceError as error:
    st.error(error_text(error))
