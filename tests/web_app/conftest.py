"""Shared fixtures of the app tests: a throw-away data folder and the astronaut photo.

Faces enrolled in tests are only the public-domain astronaut (``skimage.data.astronaut()``,
Eileen Collins, NASA) or synthetic images, never real students. The one exception is the
real-browser walk's never-enrolled stranger, an LFW DevTest photo read from
``../shared/datasets/lfw`` at test time (never copied, never in a screenshot).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Before anything imports TensorFlow: aiortc (streamlit-webrtc) after TensorFlow
# crashes the process. The app's entry point does the same.
import web_app.live  # noqa: F401


def astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


def encode(image: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def astronaut_png() -> bytes:
    return encode(astronaut())


@pytest.fixture(scope="session")
def astronaut_jpg() -> bytes:
    return encode(astronaut(), "JPEG")


@pytest.fixture(scope="session")
def blank_png() -> bytes:
    return encode(np.full((240, 320, 3), 200, dtype=np.uint8))


@pytest.fixture()
def data_dir(tmp_path, monkeypatch) -> Path:
    """A fresh data folder per test, no admin passcode from the machine, and the
    untrained network (fixed seed), so results do not depend on which model is shipped."""
    monkeypatch.setenv("FACEATT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FACEATT_BASE_MODEL", str(tmp_path / "no-model.keras"))
    monkeypatch.setenv("FACEATT_ADMIN_PASSCODE", "")
    monkeypatch.setenv("FACEATT_ADMIN_PASSCODE_HASH", "")
    monkeypatch.setattr("model.school.access.secrets_files", lambda: [])
    from web_app.common import passcode_throttle

    passcode_throttle.clear()  # wrong tries of an earlier test do not slow this one
    return tmp_path / "data"


@pytest.fixture()
def lenient_engine(data_dir):
    """The app's cached engine for this data folder, accepting the best match at any score.

    The untrained network's scores mean nothing, so recognition tests open the rule
    wide: the best enrolled person is then always the answer. What is tested is the
    page's plumbing, not the network (that is tests/model's job).
    """
    from model.core.matching import MatchRule
    from web_app.common import get_engine

    engine = get_engine()
    engine.recognizer.rule = MatchRule(name_threshold=-1e9, margin=-1e9, pair_threshold=-1e9,
                                       min_cosine=-2.0, adapt_to_gallery=False)
    return engine
