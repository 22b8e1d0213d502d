"""Verify: are two faces the same person? Which photo is the anchor's person? (open)
Is this person who they say? Who is this? (the teacher's: they reveal the gallery)

The kiosk's modes compare only photos the visitor uploads. The modes that show enrolled
names, an enrolled person's photo or the closest candidates for a stranger appear only
to a browser that unlocked the teacher pages (or when no passcode is set).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from model.errors import FaceAttendanceError
from model.images import load_image
from web_app.common import (
    UPLOAD_TYPES,
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


def verdict(result) -> None:  # type: ignore[no-untyped-def]
    if result.same:
        st.success(f"**Same person** — similarity {result.percent}%.")
    else:
        st.error(f"**Different people** — similarity {result.percent}%, not close enough.")
    st.caption(f"Similarity is the cosine of the two face embeddings (100% = identical). The "
               f"decision compares it with how close each face comes to its look-alikes among "
               f"other people: this pair is {result.normalised:+.1f} standard deviations from "
               f"them, and the threshold for the same person is {result.threshold:+.1f}.")


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
            # Align first: an error then names the file the teacher chose.
            face_a = engine.aligned_face(image_a, label=first.name)
            face_b = engine.aligned_face(image_b, label=second.name)
            result = engine.verify_faces(image_a, image_b)
            left.image(face_a, width=FACE_WIDTH, caption="First face (aligned)")
            right.image(face_b, width=FACE_WIDTH, caption="Second face (aligned)")
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
                face = engine.aligned_face(image, label=photo.name)
                result = engine.verify_person(image, person)
                left, right = st.columns(2)
                left.image(face, width=FACE_WIDTH, caption="This photo (aligned)")
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
