"""What every page shares: the engine, the attendance book, the admin gate, drawing.

Thin on purpose: the face work is done by ``model``; this module only caches it
for the Streamlit runtime and turns results into pictures and messages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import streamlit as st
from PIL import Image, ImageDraw, ImageFont

from model.access import ENV_ADMIN_PASSCODE, admin_passcode, check_passcode
from model.attendance import AttendanceBook
from model.images import load_image
from model.settings import get_settings

#: Box colours (RGB): recognised / good face, unknown face, a face with a problem.
COLOUR_KNOWN = (46, 160, 67)
COLOUR_UNKNOWN = (230, 145, 0)
COLOUR_PROBLEM = (220, 40, 40)
#: Box line width and label font scale relative to the image's longer side.
LINE_FRACTION = 1 / 250
FONT_FRACTION = 1 / 28
#: Session-state key remembering that this browser session typed the right passcode.
ADMIN_STATE_KEY = "admin_passcode_digest"
#: Photo types the upload widgets accept (what ``model.images.load_image`` reads).
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp"]
#: No ICE servers: the live camera works on localhost and a school LAN without internet.
RTC_CONFIGURATION: dict[str, list[str]] = {"iceServers": []}
#: The webcam resolution we ask the browser for (the detector works on a smaller copy).
VIDEO_CONSTRAINTS = {"video": {"width": 640, "height": 480}, "audio": False}


@st.cache_resource(show_spinner="Loading the face detector and the recognition network…")
def _engine_for(data_dir: str):  # type: ignore[no-untyped-def]
    # One engine per data folder, shared by every browser session (it is thread-safe).
    from model.api import FaceAttendance

    settings = get_settings()
    engine = FaceAttendance.open(settings)
    engine.warm_up()  # trace the detector and network now, not on the first visitor's photo
    return engine


def get_engine():  # type: ignore[no-untyped-def]
    """The loaded ``FaceAttendance`` for the current data folder (loaded once per process)."""
    return _engine_for(str(get_settings().data_dir))


@st.cache_resource
def _book_for(path: str) -> AttendanceBook:
    return AttendanceBook(path)


def get_book() -> AttendanceBook:
    """The attendance book of the current data folder."""
    return _book_for(str(get_settings().attendance_db))


def require_admin() -> None:
    """Stop the page unless this browser session has typed the admin passcode.

    With no passcode configured the page runs (local use) under a warning.
    """
    expected = admin_passcode()
    if expected is None:
        st.warning(
            "**No admin passcode is set**, so anyone who can open this app can use this page. "
            f"For a shared computer set the environment variable `{ENV_ADMIN_PASSCODE}` or "
            "`admin_passcode` in `.streamlit/secrets.toml`, then restart the app.",
            icon="🔓")
        return
    digest = hashlib.sha256(expected.encode("utf-8")).hexdigest()
    if st.session_state.get(ADMIN_STATE_KEY) == digest:
        if st.sidebar.button("Lock admin pages", key="admin_lock"):
            del st.session_state[ADMIN_STATE_KEY]
            st.rerun()
        return
    st.info("This page is for the teacher. Type the admin passcode to continue.", icon="🔒")
    with st.form("admin_login"):
        typed = st.text_input("Admin passcode", type="password", key="admin_passcode_input")
        submitted = st.form_submit_button("Unlock")
    if submitted:
        if check_passcode(typed, expected):
            st.session_state[ADMIN_STATE_KEY] = digest
            st.rerun()
        st.error("That passcode is not right.")
    st.stop()


def read_upload(upload) -> np.ndarray:  # type: ignore[no-untyped-def]
    """An uploaded file (or camera snapshot) as an RGB uint8 array; raises ``ImageError``."""
    return load_image(upload.getvalue(), label=getattr(upload, "name", None) or "the photo")


@dataclass(frozen=True)
class BoxLabel:
    """A box to draw: ``(x, y, w, h)`` pixels, a caption and an RGB colour."""

    box: tuple[int, int, int, int]
    text: str
    colour: tuple[int, int, int]


def draw_boxes(image: np.ndarray, labels: Iterable[BoxLabel]) -> np.ndarray:
    """A copy of ``image`` (RGB uint8) with each box outlined and captioned above it.

    Pillow draws the text, so accented names ("Zoë") show correctly.
    """
    labels = list(labels)
    if not labels:
        return image
    picture = Image.fromarray(np.asarray(image, dtype=np.uint8))
    draw = ImageDraw.Draw(picture)
    side = max(picture.size)
    width = max(2, round(side * LINE_FRACTION))
    font = _font(max(12, round(side * FONT_FRACTION)))
    for label in labels:
        x, y, w, h = (int(v) for v in label.box)
        draw.rectangle((x, y, x + w, y + h), outline=label.colour, width=width)
        if label.text:
            left, top, right, bottom = draw.textbbox((0, 0), label.text, font=font)
            tw, th = right - left, bottom - top
            ty = max(0, y - th - 3 * width)
            draw.rectangle((x, ty, x + tw + 2 * width, ty + th + 2 * width), fill=label.colour)
            draw.text((x + width - left, ty + width - top), label.text, fill=(255, 255, 255),
                      font=font)
    return np.asarray(picture)


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def match_label(match) -> BoxLabel:  # type: ignore[no-untyped-def]
    """How a ``model.records.Match`` is drawn: name and similarity, or "unknown"."""
    if match.name is None:
        return BoxLabel(tuple(match.box), f"unknown: {match.reason}" if match.reason else "unknown",
                        COLOUR_UNKNOWN)
    return BoxLabel(tuple(match.box), f"{match.name} {match.percent}%", COLOUR_KNOWN)


def assessment_label(assessment) -> BoxLabel:  # type: ignore[no-untyped-def]
    """How an enrollment ``FaceAssessment`` is drawn: green when usable, red with the reason."""
    if assessment.ok:
        return BoxLabel(tuple(assessment.face.box), "good", COLOUR_KNOWN)
    return BoxLabel(tuple(assessment.face.box), "not usable", COLOUR_PROBLEM)


def model_summary(recognizer) -> str:  # type: ignore[no-untyped-def]
    """One line about the active network for people, not engineers."""
    kind = recognizer.card.get("kind") if isinstance(recognizer.card, dict) else None
    if not recognizer.trained:
        return ("an **untrained** network: recognition will be unreliable until a model is "
                "trained (see the Train page)")
    what = "fine-tuned on this class" if kind == "finetuned" else "the shipped base model"
    rule = recognizer.rule
    margin = f", and {rule.margin:.1f} ahead of the next person" if rule.margin > 0 else ""
    return (f"{what} (`{recognizer.architecture}`, version `{recognizer.version}`; a face is named "
            f"only when it stands out from look-alikes by {rule.name_threshold:.1f} cohort standard "
            f"deviations or more{margin})")


#: Model-card figures shown on the Home page: (label, section of ``card["figures"]``, key,
#: format). Sections missing from a card (an untrained network) are skipped.
CARD_FIGURES = (
    ("LFW pair accuracy", "clean.pairs_devtest", "accuracy", "{:.1%}"),
    ("LFW ROC AUC", "clean.pairs_devtest", "auc", "{:.3f}"),
    ("Class of 30: named correctly", "clean.identification_30x5", "named", "{:.1%}"),
    ("Class of 30: strangers accepted", "clean.identification_30x5", "false_accept_rate", "{:.1%}"),
    ("Poor camera: named", "shifted.identification_30x5", "named", "{:.1%}"),
    ("Poor camera: strangers", "shifted.identification_30x5", "false_accept_rate", "{:.1%}"),
    ("This class, held-out: right person first", "held_out_after", "identification", "{:.1%}"),
)


def model_figures(card: object) -> dict[str, str]:
    """The active model's headline figures, formatted, from its model card (sidecar)."""
    figures = card.get("figures", {}) if isinstance(card, dict) else {}
    # A fine-tuned model's card carries the LFW figures of the model it started from.
    finetuned = isinstance(card, dict) and card.get("kind") == "finetuned"
    shown = {}
    for label, section, key, form in CARD_FIGURES:
        if finetuned and not section.startswith("held_out"):
            label = f"{label} (base model)"
        node: object = figures
        for part in section.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        value = node.get(key) if isinstance(node, dict) else None
        if isinstance(value, (int, float)):
            shown[label] = form.format(value)
    return shown
