"""Shared fixtures: test faces, LFW, and the heavy models loaded once per session.

Faces come from the public-domain astronaut photo bundled with scikit-image
(Eileen Collins) and, where present, LFW. Nothing here is written into the repo.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

# The throw-away PostgreSQL server and the register on either store, for every test folder
# (a conftest.py of their own under tests/model would hide this one's helpers from the
# ``from conftest import ...`` of the tests there).
from postgres_server import book, postgres, postgres_url, register_store  # noqa: F401

from model.settings import Settings, get_settings

ENV_REQUIRE_LFW = "FACEATT_REQUIRE_LFW"


# ----- faces ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """The astronaut photo (512 x 512 RGB uint8), one face."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


@pytest.fixture(scope="session")
def astronaut_jpeg(astronaut, tmp_path_factory) -> Path:
    """The astronaut photo as a JPEG file."""
    from model.core.images import encode_jpeg

    path = tmp_path_factory.mktemp("faces") / "astronaut.jpg"
    path.write_bytes(encode_jpeg(astronaut))
    return path


@pytest.fixture(scope="session")
def two_astronauts(astronaut) -> np.ndarray:
    """Two astronauts side by side (512 x 1024): two faces."""
    return np.ascontiguousarray(np.concatenate([astronaut, astronaut], axis=1))


def require_lfw() -> bool:
    return os.environ.get(ENV_REQUIRE_LFW, "") not in ("", "0")


@pytest.fixture(scope="session")
def lfw_dir() -> Path:
    """The LFW folder (one sub-folder per person); skips without it unless FACEATT_REQUIRE_LFW=1."""
    path = get_settings().lfw_dir
    if not (path.is_dir() and any(path.iterdir())):
        reason = f"LFW not found at {path}; set FACEATT_LFW_DIR"
        if require_lfw():
            pytest.fail(f"{reason} (FACEATT_REQUIRE_LFW=1 makes this a failure)")
        pytest.skip(reason)
    return path


# ----- settings and models (loaded once) -------------------------------------------

@pytest.fixture(scope="session")
def test_settings(tmp_path_factory) -> Settings:
    """Settings pointing data at a temporary folder (no fine-tuned model of a colleague leaks in)."""
    data_dir = tmp_path_factory.mktemp("data")
    return replace(get_settings(), data_dir=data_dir, gallery_dir=data_dir / "gallery")


@pytest.fixture(scope="session")
def detector(test_settings):
    """MTCNN, loaded once per session (a few seconds)."""
    from model.core.detection import load_detector

    return load_detector(min_confidence=test_settings.min_detection_confidence,
                         max_side=test_settings.max_detection_side)


@pytest.fixture(scope="session")
def recognizer(test_settings):
    """The active recognizer: the shipped base model if it exists, else the untrained network."""
    from model.core.recognizer import load_recognizer

    return load_recognizer(None, test_settings)


@pytest.fixture
def attendance(detector, recognizer, test_settings, tmp_path):
    """A FaceAttendance over a fresh, empty gallery, sharing the session's models."""
    from model.api import FaceAttendance
    from model.school.gallery import Gallery

    settings = replace(test_settings, data_dir=tmp_path, gallery_dir=tmp_path / "gallery")
    return FaceAttendance(detector, recognizer, Gallery(settings.gallery_dir), settings)


# ----- a fake embedder (no TensorFlow) --------------------------------------------

class FakeEmbedder:
    """Stands in for a Recognizer in gallery tests: a deterministic function of the pixels.

    ``calls`` counts crops embedded, so tests can check the cache did its job.
    """

    def __init__(self, version: str = "fake-1", dim: int = 8) -> None:
        self.version = version
        self.dim = dim
        self.calls = 0
        self.batches: list[int] = []

    def embed(self, faces: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        faces = list(faces)
        self.calls += len(faces)
        self.batches.append(len(faces))
        out = np.zeros((len(faces), self.dim), dtype=np.float32)
        for i, face in enumerate(faces):
            pixels = np.asarray(face, dtype=np.float32)
            out[i] = [pixels[..., c % 3].mean() + c for c in range(self.dim)]
        return out


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


def random_crop(seed: int, size: int = 112) -> np.ndarray:
    """A distinct random 'face crop' (RGB uint8), different for each seed."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=3)
    noise = rng.integers(-40, 40, size=(size, size, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


@pytest.fixture
def make_crop():
    """``make_crop(seed)``: a distinct random crop per seed."""
    return random_crop


@pytest.fixture
def embedder_factory():
    """``embedder_factory(version)``: a new FakeEmbedder with that model version."""
    return FakeEmbedder


@pytest.fixture
def zip_of():
    """Makes the bytes of a zip from ``{member name: bytes}`` (imports, uploads)."""
    def make(entries: dict[str, bytes]) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, data in entries.items():
                archive.writestr(name, data)
        return buffer.getvalue()

    return make
