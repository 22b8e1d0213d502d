"""The Enroll page's "Capture N frames" (live camera) through ``AppTest``, without a browser.

The WebRTC streamer and the live processor are replaced by fakes: the fake processor
hands out assessed frames the way ``LiveEnrollProcessor.latest`` does, a new one every
``FRAME_PERIOD_S``, each showing the next picture of a scripted sequence (the astronaut
still, her "turned" view, an empty frame). What is tested is the page's capture loop:
which frames it keeps and what it says (its schedule is tested in
``tests/model/test_capture.py`` on a fake clock).
"""

from __future__ import annotations

import sys
import threading
import time
import types
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from markdown_text import shown
from streamlit.testing.v1 import AppTest

from model.school.gallery import Gallery

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_PATH = str(REPO_ROOT / "web_app" / "app.py")
#: The first run loads TensorFlow, MTCNN and the network: allow for it on 2 CPU cores.
APP_TIMEOUT_S = 180
PERSON = "Eileen Collins"
#: The fake camera's assessed frames arrive this often (a fast worker).
FRAME_PERIOD_S = 0.05


def texts(at: AppTest, kind: str) -> str:
    return "\n".join(shown(str(e.value)) for e in getattr(at, kind))


def turned(assessment):  # type: ignore[no-untyped-def]
    """The same face with the nose a third of an eye distance to the side (a turned head),
    and a crop that differs (mirrored), so it is a new view whatever the network says."""
    marks = assessment.face.landmarks
    shift = (marks.right_eye[0] - marks.left_eye[0]) / 3
    nose = (marks.nose[0] + shift, marks.nose[1])
    face = replace(assessment.face, landmarks=replace(marks, nose=nose))
    return replace(assessment, face=face, crop=np.ascontiguousarray(assessment.crop[:, ::-1]))


class FakeLiveProcessor:
    """Stands in for ``web_app.live.LiveEnrollProcessor``: serves ``script`` frame by frame."""

    #: What each frame taken shows, in order: "still", "turned" or "empty".
    script: tuple[str, ...] = ()
    #: Every instance made (the page keeps one in the session).
    made: list[FakeLiveProcessor] = []
    #: After handing out this many frames, the stream stops: the camera stops playing and
    #: the page is rerun, as the component's "stopped" value reruns it (None: never).
    stop_after: int | None = None
    playing = True

    def __init__(self, engine) -> None:  # type: ignore[no-untyped-def]
        from skimage import data

        from web_app.live import CapturedFrame

        self.engine = engine
        self.callback = None
        self._frame_type = CapturedFrame
        still = engine.assess_faces(np.ascontiguousarray(data.astronaut()), max_side=320)
        assert len(still) == 1 and still[0].ok
        self._assessments = {"still": (still[0],), "turned": (turned(still[0]),), "empty": ()}
        self._image = np.zeros((4, 4, 3), np.uint8)
        self._lock = threading.Lock()
        self._born = time.monotonic()
        self.taken: list[float] = []  # ``at`` of each frame handed out
        FakeLiveProcessor.made.append(self)

    def latest(self, newer_than: float = 0.0):  # type: ignore[no-untyped-def]
        now = time.monotonic()
        at = self._born + FRAME_PERIOD_S * int((now - self._born) / FRAME_PERIOD_S)
        if at <= newer_than:
            return None
        if FakeLiveProcessor.playing and len(self.taken) == FakeLiveProcessor.stop_after:
            import streamlit as st

            FakeLiveProcessor.playing = False
            st.rerun()
        if not FakeLiveProcessor.playing:
            return None
        with self._lock:
            kind = self.script[len(self.taken) % len(self.script)]
            self.taken.append(at)
        return self._frame_type(self._image, self._assessments[kind], at)


@pytest.fixture()
def fake_camera(data_dir, monkeypatch):
    """The live camera "plays": no WebRTC, the fake processor instead.

    The page imports ``streamlit_webrtc``; a stand-in module takes its place, because
    importing the real one (aiortc) after TensorFlow, as earlier tests leave this process,
    crashes it (see web_app/live.py)."""
    webrtc = types.ModuleType("streamlit_webrtc")
    webrtc.WebRtcMode = SimpleNamespace(SENDRECV="sendrecv")  # type: ignore[attr-defined]
    webrtc.webrtc_streamer = (  # type: ignore[attr-defined]
        lambda **kwargs: SimpleNamespace(state=SimpleNamespace(playing=FakeLiveProcessor.playing)))
    monkeypatch.setitem(sys.modules, "streamlit_webrtc", webrtc)
    monkeypatch.setattr("web_app.live.live_camera_problem", lambda: None)
    monkeypatch.setattr("web_app.live.LiveEnrollProcessor", FakeLiveProcessor)
    FakeLiveProcessor.made = []
    FakeLiveProcessor.stop_after, FakeLiveProcessor.playing = None, True
    return FakeLiveProcessor


def capture(script: tuple[str, ...]) -> tuple[AppTest, FakeLiveProcessor]:
    FakeLiveProcessor.script = script
    at = AppTest.from_file(APP_PATH, default_timeout=APP_TIMEOUT_S)
    at.run()
    at.switch_page("views/enroll.py")
    at.run()
    at.text_input(key="enroll_name").set_value(PERSON)
    at.checkbox(key="enroll_consent").check()
    at.radio(key="enroll_mode").set_value("Live camera")
    at.run()
    assert not at.exception, at.exception
    next(b for b in at.button if b.label == "Capture 8 frames").click()
    at.run()
    assert not at.exception, at.exception
    return at, FakeLiveProcessor.made[-1]


def test_a_still_face_is_kept_once_and_the_page_says_why_the_rest_were_skipped(fake_camera,
                                                                              data_dir):
    at, processor = capture(("still",))
    assert f"Kept 1 of 8 frames: saved 1 to the face photos of {PERSON}." in texts(at, "success")
    assert ("7 frame(s) skipped: Same as the last photo: turn your head a little."
            in texts(at, "warning"))
    assert Gallery(data_dir / "gallery").person(PERSON).image_count == 1
    assert len(processor.taken) == 8


def test_new_views_are_kept_and_each_skip_reason_is_counted(fake_camera, data_dir):
    at, _ = capture(("still", "still", "turned", "still", "empty", "turned", "still", "still"))
    assert f"Kept 2 of 8 frames: saved 2 to the face photos of {PERSON}." in texts(at, "success")
    warnings = texts(at, "warning")
    assert "5 frame(s) skipped: Same as the last photo: turn your head a little." in warnings
    assert "1 frame(s) skipped: No face found" in warnings
    assert Gallery(data_dir / "gallery").person(PERSON).image_count == 2


def test_a_stream_that_stops_mid_capture_is_said_and_its_frames_are_kept(fake_camera, data_dir):
    """The camera stops after 3 of 8 frames (STOP, or a dropped connection: the component
    reruns the page in the middle of the capture): the page says so and saves the usable
    frames taken before it stopped, rather than drop them without a word."""
    fake_camera.stop_after = 3
    at, processor = capture(("still", "turned", "empty"))
    assert len(processor.taken) == 3
    assert ("The capture stopped after 3 of 8 frames: the camera stopped or the page changed. "
            "Press START, then capture again." in texts(at, "warning"))
    assert f"Kept 2 of 8 frames: saved 2 to the face photos of {PERSON}." in texts(at, "success")
    assert Gallery(data_dir / "gallery").person(PERSON).image_count == 2
    at.run()  # said once: the next run is quiet
    assert "The capture stopped" not in texts(at, "warning")
