"""Enroll (teacher): name + consent, then faces from a snapshot, the live camera or photos."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import streamlit as st

from model.errors import DifferentPersonError, FaceAttendanceError
from model.naming import display_name, normalize_name, normalize_student_id
from model.school.capture import SAME_AS_SAVED, ViewSelector, frames_on_schedule
from web_app.common import (
    RTC_CONFIGURATION,
    UPLOAD_TYPES,
    VIDEO_CONSTRAINTS,
    assessment_label,
    draw_boxes,
    error_text,
    get_engine,
    plain,
    read_upload,
    require_admin,
)
from web_app.live import LiveEnrollProcessor, live_camera_problem

#: Live capture: how many frames to grab by default, the most allowed, and the time
#: between them (the person turns their head a little meanwhile), kept from the click on
#: (see ``frames_on_schedule``).
DEFAULT_CAPTURE_FRAMES = 8
#: How a frame skipped for repeating a saved photo is listed (sentence case).
SAME_AS_SAVED_SENTENCE = SAME_AS_SAVED[:1].upper() + SAME_AS_SAVED[1:]
MAX_CAPTURE_FRAMES = 20
CAPTURE_INTERVAL_S = 0.5
#: Give up on a capture if the camera delivers no assessed frame for this long.
CAPTURE_TIMEOUT_S = 10.0
#: Session key of a live capture under way (``LiveCapture``).
CAPTURE_KEY = "enroll_capture"
#: Saved-photo thumbnails per row and their width in pixels.
THUMBS_PER_ROW = 6
THUMB_WIDTH = 112
#: Preview width of an assessed photo.
PREVIEW_WIDTH = 420
MODES = ("Camera snapshot", "Live camera", "Upload photos")


def feedback(assessments) -> tuple[bool, str]:  # type: ignore[no-untyped-def]
    """Whether the frame holds exactly one usable face, and a sentence about it."""
    if not assessments:
        return False, "No face found — face the camera, in good light."
    if len(assessments) > 1:
        return False, (f"{len(assessments)} faces found — only the person being enrolled "
                       "should be in view.")
    only = assessments[0]
    if not only.ok:
        return False, only.problem[:1].upper() + only.problem[1:]
    return True, f"Face found and sharp enough (sharpness {only.blur:.0f})."


def warn_look_alikes(similar) -> None:  # type: ignore[no-untyped-def]
    """Warn when the new face already matches someone else (a duplicate or a mix-up)."""
    if similar:
        listed = ", ".join(f"{plain(n)} (similarity {100 * max(s, 0):.0f}%)" for n, s in similar)
        st.warning(f"This face already matches **{listed}**. Check that this is not the same "
                   "person enrolled twice; check-ins may mix them up.", icon="⚠️")


def join_classes(engine, person: str) -> None:  # type: ignore[no-untyped-def]
    """Put the person just enrolled on the rosters chosen above."""
    chosen = st.session_state.get("enroll_classes") or []
    added = [c for c in engine.book.classes() if c.id in chosen
             and engine.book.add_to_roster(c.id, [person])]
    if added:
        st.caption(f"Added to {plain(', '.join(c.name for c in added))}.")


def different_person(error: DifferentPersonError) -> None:
    """The photos do not look like the person enrolled under this name: ask."""
    st.error(error_text(error))
    st.caption("Tick \"The same person\" below to add them anyway, or type a student id to "
               "enroll a second person with this name.")


def saved_embeddings(engine, name: str | None):  # type: ignore[no-untyped-def]
    """Embeddings of the photos already saved of this person (None for a new person): a
    live capture skips the views they already show."""
    shown = display_name(name, student_id) if name is not None else None
    person = engine.gallery.find_person(shown) if shown is not None else None
    if person is None:
        return None
    gallery = engine.gallery.embeddings(engine.recognizer)
    return gallery.matrix[[i for i, owner in enumerate(gallery.names) if owner == person]]


@dataclass
class LiveCapture:
    """A live capture under way, kept in the session (``CAPTURE_KEY``) while it takes
    frames: a rerun that cuts it short (the camera stopped) finds it there, says so and
    keeps its usable frames. ``taken``: when each frame taken so far was processed."""

    name: str
    student_id: str | None
    add_anyway: bool
    frames: int
    taken: list[float] = field(default_factory=list)
    crops: list[np.ndarray] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def save_crops(engine, name: str, crops,  # type: ignore[no-untyped-def]
               frames: int | None = None, *, student_id: str | None = None,
               add_anyway: bool = False) -> None:
    """Store the crops and say so; ``frames``: how many live frames they were kept from."""
    try:
        report = engine.enroll_crops(name, crops, student_id=student_id,
                                     add_to_existing=add_anyway)
    except DifferentPersonError as error:
        different_person(error)
        return
    warn_look_alikes(report.similar_to)
    # Identical crops are stored once (files are named by their content).
    saved = len(set(report.saved))
    if frames is None:
        st.success(f"Saved {saved} face photo{'s' if saved != 1 else ''} of "
                   f"{plain(report.name)}.")
    else:
        st.success(f"Kept {len(crops)} of {frames} frames: saved {saved} to the face photos "
                   f"of {plain(report.name)}.")
    join_classes(engine, report.name)


st.title("Enroll a person")
require_admin()
engine = get_engine()

raw_name = st.text_input("Name", key="enroll_name", placeholder="e.g. Ada Lovelace")
raw_id = st.text_input("Student id (optional)", key="enroll_student_id",
                       help="Tells two students with the same name apart: shown as "
                            "\"Name (id)\".")
classes = engine.book.classes()
if classes:
    class_names = {c.id: c.name for c in classes}
    st.multiselect("Classes", list(class_names), format_func=class_names.__getitem__,
                   key="enroll_classes", placeholder="Put them on class rosters (optional)")
consent = st.checkbox(
    "This person (or their parent/guardian) agrees that photos of their face are stored on "
    "this computer for taking attendance.", key="enroll_consent")

name: str | None = None
student_id: str | None = None
add_anyway = False
if raw_name.strip():
    try:
        name = normalize_name(raw_name)
        student_id = normalize_student_id(raw_id)
    except FaceAttendanceError as error:
        st.error(error_text(error))
        name = None
if name is not None:
    label = display_name(name, student_id)
    existing = engine.gallery.find_person(label)
    if existing is not None and existing != label:
        st.error(f"{plain(existing)} is already enrolled; use exactly that spelling to add "
                 "photos.")
        name = None
    elif existing is not None:
        st.info(f"{plain(label)} is already enrolled: new photos are added to theirs when "
                "they look like them.")
        add_anyway = st.checkbox(f"The same person: add the photos to {plain(label)} even if "
                                 "they do not look alike", key="enroll_add_anyway")
ready = name is not None and consent
if not ready:
    st.caption("Type a name and tick the consent box to start. Nothing is stored without "
               "consent.")

mode = st.radio("Photos from", MODES, horizontal=True, key="enroll_mode")

if mode == "Camera snapshot":
    shot = st.camera_input("Take a photo", key="enroll_camera", disabled=not ready)
    if shot is not None and name is not None:
        done = st.session_state.setdefault("enroll_done_shots", {})
        shot_id = f"{name}:{shot.file_id}"
        try:
            image = read_upload(shot)
            assessments = engine.assess_faces(image)
            good, sentence = feedback(assessments)
            st.image(draw_boxes(image, [assessment_label(a) for a in assessments]),
                     width=PREVIEW_WIDTH)
            if not good:
                st.error(sentence)
            elif shot_id in done:
                st.success(done[shot_id])
            else:
                save_crops(engine, name, [assessments[0].crop], student_id=student_id,
                           add_anyway=add_anyway)
                done[shot_id] = f"{sentence} Saved."
                st.caption(sentence)
        except FaceAttendanceError as error:
            st.error(error_text(error))

elif mode == "Live camera":
    if problem := live_camera_problem():
        st.error(problem)
        st.stop()
    from streamlit_webrtc import WebRtcMode, webrtc_streamer

    kept = st.session_state.get("enroll_processor")
    processor: LiveEnrollProcessor = (
        kept if isinstance(kept, LiveEnrollProcessor) and kept.engine is engine
        else LiveEnrollProcessor(engine))
    st.session_state["enroll_processor"] = processor
    st.caption("Green box: a usable face. Red: too small, too blurry, or several faces.")
    try:
        ctx = webrtc_streamer(key="enroll-live", mode=WebRtcMode.SENDRECV,
                              rtc_configuration=RTC_CONFIGURATION,
                              media_stream_constraints=VIDEO_CONSTRAINTS,
                              video_frame_callback=processor.callback, async_processing=True)
    except Exception as error:
        st.error(f"The live camera cannot start here ({type(error).__name__}). Use a snapshot "
                 "or an uploaded photo instead.")
        st.stop()
    frames = st.slider("Frames to capture", 1, MAX_CAPTURE_FRAMES, DEFAULT_CAPTURE_FRAMES,
                       key="enroll_frames")
    st.caption(f"One frame every {CAPTURE_INTERVAL_S} s: ask the person to turn their head a "
               "little while the frames are taken. A frame that shows the same view as a photo "
               "already kept or saved is skipped.")
    playing = bool(ctx.state.playing)
    if (broken := st.session_state.pop(CAPTURE_KEY, None)) is not None:
        # A rerun came while the last capture was taking frames: the camera stopped (STOP,
        # or its connection dropped) or something on the page changed. Say so, and keep
        # what it had taken.
        st.warning(f"The capture stopped after {len(broken.taken)} of {broken.frames} frames: "
                   "the camera stopped or the page changed. "
                   + ("Press START, then capture again." if not playing else "Capture again "
                      "for more."))
        if broken.crops:
            save_crops(engine, broken.name, broken.crops, frames=broken.frames,
                       student_id=broken.student_id, add_anyway=broken.add_anyway)
    if st.button(f"Capture {frames} frames", disabled=not (ready and playing), type="primary"):
        assert name is not None
        capture = st.session_state[CAPTURE_KEY] = LiveCapture(name, student_id, add_anyway,
                                                              frames)
        crops, problems = capture.crops, capture.problems
        views = ViewSelector(saved_embeddings(engine, name))
        progress = st.progress(0.0, text="Capturing…")
        for frame in frames_on_schedule(processor.latest, frames, CAPTURE_INTERVAL_S,
                                        timeout=CAPTURE_TIMEOUT_S):
            capture.taken.append(frame.at)
            good, sentence = feedback(frame.assessments)
            if good:
                only = frame.assessments[0]
                embedding = engine.recognizer.embed([only.crop])[0]
                if (repeat := views.offer(embedding, only.face.landmarks)) is None:
                    crops.append(only.crop)
                else:
                    problems.append(repeat[:1].upper() + repeat[1:])
            else:
                problems.append(sentence)
            progress.progress(len(capture.taken) / frames,
                              text=f"Frame {len(capture.taken)} of {frames}")
        del st.session_state[CAPTURE_KEY]  # finished: nothing to recover on the next run
        problems += ["The camera stopped sending pictures."] * (frames - len(capture.taken))
        if crops:
            save_crops(engine, name, crops, frames=frames, student_id=student_id,
                       add_anyway=add_anyway)
        for problem in sorted(set(problems)):
            st.warning(f"{problems.count(problem)} frame(s) skipped: {plain(problem)}")
        if not crops and problems and all(p == SAME_AS_SAVED_SENTENCE for p in problems):
            st.info(f"Kept 0 of {frames} frames: each one repeats a photo already saved. "
                    "Turn your head a little, or change the light, and capture again.")
        elif not crops:
            st.error(f"Kept 0 of {frames} frames: no usable face was captured.")

else:
    uploads = st.file_uploader("Photos of this person (one face each)", type=UPLOAD_TYPES,
                               accept_multiple_files=True, key="enroll_uploads")
    if st.button("Enroll from these photos", disabled=not (ready and uploads), type="primary"):
        assert name is not None and uploads
        try:
            report = engine.enroll_person(name, [u.getvalue() for u in uploads], consent=consent,
                                          labels=[u.name for u in uploads],
                                          student_id=student_id, add_to_existing=add_anyway)
            if report.saved:
                st.success(f"Saved {len(report.saved)} face photo"
                           f"{'s' if len(report.saved) != 1 else ''} of {plain(report.name)}.")
                join_classes(engine, report.name)
            for label, reason in report.rejected:
                st.error(plain(reason if label in reason else f"{label}: {reason}"))
            warn_look_alikes(report.similar_to)
        except DifferentPersonError as error:
            different_person(error)
        except FaceAttendanceError as error:
            st.error(error_text(error))

shown = display_name(name, student_id) if name is not None else None
if shown is not None and engine.gallery.find_person(shown) == shown:
    paths = engine.gallery.image_paths(shown)
    st.subheader(f"Saved photos of {plain(shown)} ({len(paths)})")
    for start in range(0, len(paths), THUMBS_PER_ROW):
        columns = st.columns(THUMBS_PER_ROW)
        for column, path in zip(columns, paths[start:start + THUMBS_PER_ROW], strict=False):
            column.image(str(path), width=THUMB_WIDTH)
            if column.button("Delete", key=f"enroll_delete_{path.name}"):
                try:
                    engine.gallery.remove_image(shown, path)
                    st.rerun()
                except FaceAttendanceError as error:  # the last photo: delete the person
                    st.error(error_text(error))
