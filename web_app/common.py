"""What every page shares: the engine, the attendance book, the admin gate, drawing.

Thin on purpose: the face work is done by ``model``; this module only caches it
for the Streamlit runtime and turns results into pictures and messages.

Two rules every page follows:

* **Kiosk or teacher.** ``is_admin()`` says whether this browser may see the register
  (who is enrolled, who checked in, the sessions). It is True when no passcode is set
  (local use, under a warning) or after this browser typed the passcode. Without it a
  page shows only the answer about the face in front of the camera.
* **User strings are text.** Names, session names, file names and error sentences go
  through ``plain()`` before any Streamlit call that renders Markdown (``st.markdown``,
  ``st.success``/``info``/``warning``/``error``, ``st.toast``, ``st.caption``, headings,
  ``st.image`` captions, widget and metric labels). Tables (``st.dataframe``), selectbox
  options and ``st.text`` show text as it is and need nothing.
"""

from __future__ import annotations

import math
import re
import secrets
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import streamlit as st
from PIL import Image, ImageDraw, ImageFont

from model.core.images import load_image
from model.school.access import (
    ENV_ADMIN_PASSCODE,
    ENV_ADMIN_PASSCODE_HASH,
    AdminPasscode,
    PasscodeHashError,
    PasscodeThrottle,
    configured_passcode,
)
from model.school.attendance import RegisterBook, open_register
from model.settings import get_settings
from web_app.loading import gallery_sync, needed, start_loading

#: Box colours (RGB): recognised / good face, unknown face, a face with a problem.
COLOUR_KNOWN = (46, 160, 67)
COLOUR_UNKNOWN = (230, 145, 0)
COLOUR_PROBLEM = (220, 40, 40)
#: A followed face whose track has too few frames yet to be named or refused.
COLOUR_CHECKING = (120, 120, 120)
#: A face asked to turn its head (the live kiosk's head-turn challenge).
COLOUR_PROMPT = (30, 110, 220)
#: Box line width and label font scale relative to the image's longer side.
LINE_FRACTION = 1 / 250
FONT_FRACTION = 1 / 28
#: The head-turn prompt's word and arrow, relative to the picture's height: 1/8 of a
#: 480-pixel frame is 60 pixels, about 2.5 cm tall on a laptop screen, readable from a
#: metre or two away.
PROMPT_FRACTION = 1 / 8
#: Session-state key remembering that this browser session typed the right passcode
#: (it holds ``AdminPasscode.marker``, a digest, never the passcode).
ADMIN_STATE_KEY = "admin_passcode_digest"
#: Session-state key of a random id for this browser session (the throttle's key).
BROWSER_ID_KEY = "admin_browser_id"
#: What the kiosk says about a face it did not recognise when no safe reason is known.
UNKNOWN_REASON = "not recognised"
#: Photo types the upload widgets accept (what ``model.core.images.load_image`` reads).
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff"]
#: No ICE servers: the live camera works on localhost and a school LAN without internet.
RTC_CONFIGURATION: dict[str, list[str]] = {"iceServers": []}
#: What the pages ask the browser's camera for: 640x480 at 15 frames per second. More
#: pixels or frames cost the browser and the server (WebRTC decodes and re-encodes every
#: frame) without helping: recognition samples 8-15 frames per second and detects on a
#: 320-pixel copy. Only *ideal* values, never min/max/exact: Chromium drops frames to
#: reach 15 (getSettings() says 15 on a 30 fps camera), but Firefox offers a camera's
#: native modes only and refuses the whole stream when none fits a hard bound, and a
#: page whose camera does not start is worse than one that gets 30 frames a second (the
#: worker takes the newest frame whatever the rate).
VIDEO_CONSTRAINTS = {"video": {"width": {"ideal": 640}, "height": {"ideal": 480},
                               "frameRate": {"ideal": 15}}, "audio": False}


# ----- user strings as text --------------------------------------------------------------

#: CommonMark's ASCII punctuation: each may start Markdown (``*``, ``_``, ``[``, ``!``,
#: ``<``, ``#``, ``|`` ...), a Streamlit directive (``:red[...]``, ``:material/...:``) or
#: LaTeX (``$``); a backslash before it makes it a plain character.
MARKDOWN_PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
#: Invisible, zero-width: breaks the patterns Streamlit rewrites *after* parsing, where a
#: backslash no longer helps (emoji shortcodes ``:smile:``, ``->`` becoming an arrow).
WORD_JOINER = "\u2060"
_ESCAPES = str.maketrans({**{c: "\\" + c for c in MARKDOWN_PUNCTUATION},
                          "\n": " ", "\r": " ", "\t": " "})
_SHORTCODE = re.compile(r":(?=[\w+-]+:)")
_TYPOGRAPHY = re.compile(r"(?<!\S)(?:<->|->|<-|--|>=|<=|~=)(?!\S)")


def plain(text: object) -> str:
    r"""``text`` made safe to embed in Markdown: it then displays exactly as written.

    Every ASCII punctuation character gets a backslash, so no image is fetched, no link,
    bold, HTML, colour directive, icon or LaTeX appears; line breaks become spaces (one
    line of text); a zero-width word joiner splits ``:word:`` and lone ``->``-style tokens,
    which Streamlit would otherwise turn into emoji and arrows after parsing.

    >>> print(plain("**Ada** <b>x</b> ![t](http://e/t.png) $x$"))
    \*\*Ada\*\* \<b\>x\<\/b\> \!\[t\]\(http\:\/\/e\/t\.png\) \$x\$
    """
    text = _SHORTCODE.sub(":" + WORD_JOINER, str(text))
    text = _TYPOGRAPHY.sub(lambda m: m.group(0)[0] + WORD_JOINER + m.group(0)[1:], text)
    return text.translate(_ESCAPES)


def error_text(error: BaseException) -> str:
    """A library error's sentence, as text (it may quote a name or a file name)."""
    return plain(str(error))


# ----- the engine and the book -----------------------------------------------------------

def keep_keras_state() -> None:
    """Stop Streamlit from calling ``keras.backend.clear_session()`` after every script run.

    Streamlit does that to tidy up after scripts that build models. This app loads its
    networks once per process and the live camera runs them in a worker thread while the
    page reruns every second: each clear threw away TensorFlow's kernel cache (and ran a
    full garbage collection), so the detector and the network rebuilt their kernels every
    second, and live check-in ran at 1-2 frames per second in the browser. Matplotlib
    figures are still closed as Streamlit does.
    """
    from streamlit.runtime.scriptrunner import script_runner

    def close_figures() -> None:
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")

    current = script_runner._clean_problem_modules
    # Streamlit's own, kept for tests (the app's pages call this on every run).
    close_figures.streamlit_original = getattr(current, "streamlit_original", current)  # type: ignore[attr-defined]
    script_runner._clean_problem_modules = close_figures


def get_engine():  # type: ignore[no-untyped-def]
    """The loaded ``FaceAttendance`` for the current data folder (loaded once per process,
    shared by every browser session: it is thread-safe). Waits, with a spinner, while it
    is still loading (``web_app.loading``)."""
    future = start_loading(str(get_settings().data_dir))
    if not future.done():
        needed()  # a load held for the first page starts now
        with st.spinner("Loading the face detector and the recognition network…"):
            return future.result()
    return future.result()


def shared_gallery_note() -> str | None:
    """One line on the school's shared gallery (``FACEATT_DATABASE_URL``): up to date, or
    offline and since when; None without one."""
    sync = gallery_sync(str(get_settings().data_dir))
    if sync is None:
        return None
    status = sync.status()
    when = status.last_sync.astimezone().strftime("%H:%M:%S") if status.last_sync else "never"
    if status.online:
        return f"Shared gallery: up to date (checked at {when})."
    return ("Shared gallery offline: changes made here wait and go out when the database "
            f"answers again (last up to date: {when}).")


@st.cache_resource
def _book_for(path: str, database_url: str | None) -> RegisterBook:
    # The arguments are the cache key: another data folder or database, another book.
    return open_register(get_settings())


def get_book() -> RegisterBook:
    """The attendance book of the current data folder (or of ``FACEATT_DATABASE_URL``)."""
    settings = get_settings()
    return _book_for(str(settings.attendance_db), settings.database_url)


# ----- kiosk or teacher ------------------------------------------------------------------

@st.cache_resource
def passcode_throttle() -> PasscodeThrottle:
    """The app process's one record of wrong passcode tries (every browser session)."""
    return PasscodeThrottle()


def _configured() -> tuple[AdminPasscode | None, str | None]:
    """The configured passcode and, when its hash is malformed, why (then nothing opens)."""
    try:
        return configured_passcode(), None
    except PasscodeHashError as error:
        return None, str(error)


def passcode_set() -> bool:
    """Whether an admin passcode (or its hash, even a broken one) is configured."""
    passcode, problem = _configured()
    return passcode is not None or problem is not None


#: The query parameter naming the kiosk a page serves (``?kiosk=Room%2012``).
KIOSK_PARAM = "kiosk"


def page_kiosk() -> str:
    """The kiosk this page serves: its ``?kiosk=`` query parameter, else the instance's
    ``FACEATT_KIOSK``, else the default kiosk (``""``)."""
    return " ".join(str(st.query_params.get(KIOSK_PARAM, "") or get_settings().kiosk).split())


def kiosk_label(kiosk: str) -> str:
    """A kiosk as a sentence names it: "Room 12"; the default kiosk (a single classroom's)
    is "the kiosk"."""
    return kiosk or "the kiosk"


def is_admin() -> bool:
    """Whether this browser may see the teacher's view: True when no passcode is set
    (local use), or when this browser session typed the current passcode."""
    passcode, problem = _configured()
    if problem is not None:
        return False  # a broken hash locks everything until it is fixed
    if passcode is None:
        return True
    return st.session_state.get(ADMIN_STATE_KEY) == passcode.marker


def admin_unlocked() -> bool:
    """Whether a passcode is set and this browser session unlocked it (it can lock again)."""
    passcode, _ = _configured()
    return passcode is not None and st.session_state.get(ADMIN_STATE_KEY) == passcode.marker


def lock_button() -> None:
    """A sidebar button that locks the teacher's view again (shown only when unlocked)."""
    if admin_unlocked() and st.sidebar.button("Lock teacher pages", key="admin_lock"):
        st.session_state.pop(ADMIN_STATE_KEY, None)
        st.rerun()


def _throttle_keys() -> tuple[str, str]:
    """Who is guessing: this browser session, and the client's address so that reloading
    the page (a new browser session) does not reset the wait. Streamlit gives no address
    for a browser on this computer (``localhost``, the usual kiosk): those browsers share
    the key ``address:local``."""
    browser = st.session_state.setdefault(BROWSER_ID_KEY, secrets.token_hex(8))
    address = st.context.ip_address
    if not (isinstance(address, str) and address):  # (AppTest hands over a mock: local too)
        address = "local"
    return f"session:{browser}", f"address:{address}"


def unlock_form(intro: str | None = None) -> None:
    """The passcode form; reruns the page as the teacher's once the right code is typed.

    Wrong tries are throttled (``model.school.access.PasscodeThrottle``): after a few, a try
    made before its wait is over is refused without being checked.
    """
    passcode, problem = _configured()
    if problem is not None:
        st.error(f"{plain(problem)} Until it is fixed the teacher pages stay locked.")
        return
    if passcode is None:
        return
    if intro:
        st.info(intro, icon="🔒")
    with st.form("admin_login"):
        typed = st.text_input("Admin passcode", type="password", key="admin_passcode_input")
        submitted = st.form_submit_button("Unlock")
    if not submitted:
        return
    throttle, keys = passcode_throttle(), _throttle_keys()
    wait = throttle.check(*keys)
    if wait > 0:
        st.error(f"Too many wrong tries: wait {math.ceil(wait)} s, then try again.")
        return
    if passcode.matches(typed):
        throttle.succeeded(*keys)
        st.session_state[ADMIN_STATE_KEY] = passcode.marker
        st.rerun()
    wait = throttle.failed(*keys)
    st.error("That passcode is not right."
             + (f" Too many wrong tries: wait {math.ceil(wait)} s before the next one."
                if wait > 0 else ""))


def no_passcode_warning(what: str = "this page") -> None:
    """The warning shown while no passcode is set (the app is then for local use)."""
    st.warning(
        f"**No admin passcode is set**, so anyone who can open this app can use {what}. "
        f"For a shared computer set the environment variable `{ENV_ADMIN_PASSCODE}` (or "
        f"`{ENV_ADMIN_PASSCODE_HASH}`, made with `python -m model passcode-hash`), or "
        "`admin_passcode` in `.streamlit/secrets.toml`, then restart the app.",
        icon="🔓")


def require_admin() -> None:
    """Stop the page unless this browser may see the teacher's view (``is_admin()``).

    With no passcode configured the page runs (local use) under a warning.
    """
    if is_admin():
        if not passcode_set():
            no_passcode_warning()
        return
    unlock_form("This page is for the teacher. Type the admin passcode to continue.")
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
    #: A head-turn prompt drawn large beside the face: "left", "right" or "up" (an arrow
    #: that way and the word), or "" for none.
    prompt: str = ""

    def mirrored(self, width: int) -> BoxLabel:
        """The same label for the picture flipped left-right (``width`` pixels wide)."""
        x, y, w, h = self.box
        return BoxLabel((width - x - w, y, w, h), self.text, self.colour, self.prompt)


def draw_boxes(image: np.ndarray, labels: Iterable[BoxLabel]) -> np.ndarray:
    """A copy of ``image`` (RGB uint8) with each box outlined and captioned next to it.

    A caption goes just above its box, or just below it, or further up or down when that
    spot would cover another caption or another face: with several people side by side,
    each name stays readable and next to its own face. Captions stay inside the picture.
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
    boxes = [tuple(int(v) for v in label.box) for label in labels]
    # Per label: (text, the text's left/top offset, the band's size), or None.
    captions: list[tuple[str, tuple[float, float], tuple[int, int]] | None] = []
    for (x, y, w, h), label in zip(boxes, labels, strict=True):
        draw.rectangle((x, y, x + w, y + h), outline=label.colour, width=width)
        text = label.text
        if not text:
            captions.append(None)
            continue
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        # A label wider than the picture is shortened with an ellipsis.
        while right - left + 2 * width > picture.width and len(text) > 1:
            text = text[:-2] + "…"
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        captions.append((text, (left, top),
                         (int(right - left) + 2 * width, int(bottom - top) + 2 * width)))
    spots = caption_layout(boxes, [c[2] if c else None for c in captions], picture.size, width)
    for label, caption, spot in zip(labels, captions, spots, strict=True):
        if caption is None or spot is None:
            continue
        text, (left, top), (band_w, band_h) = caption
        tx, ty = spot
        draw.rectangle((tx, ty, tx + band_w, ty + band_h), fill=label.colour)
        draw.text((tx + width - left, ty + width - top), text, fill=(255, 255, 255), font=font)
    for label, box in zip(labels, boxes, strict=True):
        if label.prompt:
            _draw_prompt(draw, box, label.prompt, label.colour, picture.size)
    return np.asarray(picture)


def _draw_prompt(draw: ImageDraw.ImageDraw, box: tuple[int, ...], move: str,
                 colour: tuple[int, int, int], size: tuple[int, int]) -> None:
    """A large arrow and word for a head-turn prompt, on the side of the face it names.

    "left" and "right" are the person's own, on a mirrored picture (the kiosk's preview):
    their left is the picture's left, so the arrow points there. "up" goes above the face.
    """
    pic_w, pic_h = size
    tall = max(24, round(pic_h * PROMPT_FRACTION))
    font = _font(tall)
    word = move.upper()
    x, y, w, h = box
    left, top, right, bottom = draw.textbbox((0, 0), word, font=font)
    text_w, text_h = right - left, bottom - top
    arrow = tall  # the arrow's length and width
    centre_y = y + h // 2
    if move == "up":  # beside the face (above it sits the caption), pointing up
        cx = min(pic_w - arrow // 2 - 1, x + w + tall // 4 + arrow // 2)
        tip = max(0, centre_y - arrow)
        points = [(cx, tip), (cx + arrow // 2, tip + arrow // 2), (cx - arrow // 2, tip + arrow // 2)]
        shaft = (cx - arrow // 6, tip + arrow // 2, cx + arrow // 6, tip + arrow)
        text_xy = (max(0, min(pic_w - text_w, cx - text_w // 2)),
                   min(pic_h - text_h, tip + arrow + tall // 6))
    else:
        sign = -1 if move == "left" else 1
        start = x - tall // 4 if sign < 0 else x + w + tall // 4
        tip_x = max(0, min(pic_w - 1, start + sign * arrow))
        points = [(tip_x, centre_y), (tip_x - sign * arrow // 2, centre_y - arrow // 2),
                  (tip_x - sign * arrow // 2, centre_y + arrow // 2)]
        shaft_x = sorted((tip_x - sign * arrow // 2, start))
        shaft = (shaft_x[0], centre_y - arrow // 6, shaft_x[1], centre_y + arrow // 6)
        text_x = max(0, min(pic_w - text_w, (start + tip_x) // 2 - text_w // 2))
        text_xy = (text_x, min(pic_h - text_h, centre_y + arrow // 2 + tall // 6))
    outline = max(2, tall // 12)
    draw.rectangle(shaft, fill=colour, outline=(255, 255, 255), width=outline)
    draw.polygon(points, fill=colour, outline=(255, 255, 255), width=outline)
    tx, ty = text_xy
    draw.text((tx - left, ty - top), word, fill=colour, font=font, stroke_width=outline,
              stroke_fill=(255, 255, 255))


def caption_layout(boxes: Sequence[tuple[int, ...]], bands: Sequence[tuple[int, int] | None],
                   size: tuple[int, int], gap: int) -> list[tuple[int, int] | None]:
    """Top-left corners of the caption bands (``bands``: width, height; None = no caption)
    of the faces ``boxes`` (x, y, w, h) in a picture of ``size`` (w, h).

    Faces are taken left to right. Each band goes in the first spot inside the picture
    (just above its box, just below, then a step further each way) that covers no band
    already placed; among those, one that covers no other face when there is one. A face
    near the right edge gets its band shifted left.
    """
    pic_w, pic_h = size
    spots: list[tuple[int, int] | None] = [None] * len(boxes)
    placed: list[tuple[int, int, int, int]] = []
    for index in sorted(range(len(boxes)), key=lambda i: (boxes[i][0], boxes[i][1])):
        band = bands[index]
        if band is None:
            continue
        x, y, w, h = boxes[index]
        band_w, band_h = band
        tx = max(0, min(x, pic_w - 1 - band_w))
        tries = []
        for step in range(4):
            tries.append(y - band_h - gap - step * (band_h + gap))  # above
            tries.append(y + h + gap + step * (band_h + gap))  # below
        tries = [max(0, min(ty, pic_h - 1 - band_h)) for ty in tries]
        faces = [(fx, fy, fx + fw, fy + fh) for i, (fx, fy, fw, fh) in enumerate(boxes)
                 if i != index]

        def covers(ty: int, rects: Sequence[tuple[int, int, int, int]], tx: int = tx,
                   band_w: int = band_w, band_h: int = band_h) -> bool:
            return any(tx < r[2] and r[0] < tx + band_w and ty < r[3] and r[1] < ty + band_h
                       for r in rects)

        free = [ty for ty in tries if not covers(ty, placed)]
        ty = next((t for t in free if not covers(t, faces)), free[0] if free else tries[0])
        spots[index] = (tx, ty)
        placed.append((tx, ty, tx + band_w, ty + band_h))
    return spots


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def unknown_reason(match) -> str:  # type: ignore[no-untyped-def]
    """Why a face was not recognised, safe for the kiosk: never a person's name.

    ``Match.reason`` names nobody ("not close enough"); should a reason ever quote the
    closest person or a candidate, it is replaced rather than shown to a stranger.
    """
    reason = match.reason or UNKNOWN_REASON
    names = [name for name, _ in match.candidates] + [match.closest or ""]
    if any(name and name.casefold() in reason.casefold() for name in names):
        return UNKNOWN_REASON
    return reason


def match_label(match) -> BoxLabel:  # type: ignore[no-untyped-def]
    """How a ``model.records.Match`` is drawn: name and similarity, or "unknown" with the
    reason alone (never the closest person: the camera may be looking at a stranger).
    A live track that has too few frames yet is "checking..." (never a name)."""
    if match.name is None and match.reason == "checking":
        return BoxLabel(tuple(match.box), "checking...", COLOUR_CHECKING)
    if match.name is None:
        text = f"unknown: {unknown_reason(match)}" if match.reason else "unknown"
        return BoxLabel(tuple(match.box), text, COLOUR_UNKNOWN)
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
            f"deviations or more{margin}; on the live camera, only when all the frames of the face "
            f"together reach {rule.track_threshold:.1f})")


#: Model-card figures shown on the Home page: (label, section of ``card["figures"]``, key,
#: format). Sections missing from a card (an untrained network) are skipped.
CARD_FIGURES = (
    ("LFW pair accuracy", "clean.pairs_devtest", "accuracy", "{:.1%}"),
    ("LFW ROC AUC", "clean.pairs_devtest", "auc", "{:.3f}"),
    ("Class of 30: named correctly", "clean.identification_30x5", "named", "{:.1%}"),
    ("Class of 30: strangers accepted", "clean.identification_30x5", "false_accept_rate", "{:.1%}"),
    ("Poor camera: named", "shifted.identification_30x5", "named", "{:.1%}"),
    ("Poor camera: strangers", "shifted.identification_30x5", "false_accept_rate", "{:.1%}"),
    ("Live camera: look-alike strangers checked in", "live_tracks.clean.class_30", "stranger_rate",
     "{:.1%}"),
    ("Live camera: students checked in within 2 s", "live_tracks.clean.class_30", "genuine_within_2s",
     "{:.1%}"),
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
