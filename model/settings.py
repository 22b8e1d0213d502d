"""Every tunable setting in one frozen dataclass, with environment overrides.

Nothing here touches the disk or loads a model: reading settings is free.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Environment variables that override the defaults below.
ENV_DATA_DIR = "FACEATT_DATA_DIR"
ENV_GALLERY = "FACEATT_GALLERY"
ENV_LFW_DIR = "FACEATT_LFW_DIR"
ENV_BASE_MODEL = "FACEATT_BASE_MODEL"
ENV_HEAD_TURN_MOVES = "FACEATT_HEAD_TURN_MOVES"
ENV_DATABASE_URL = "FACEATT_DATABASE_URL"
ENV_KIOSK = "FACEATT_KIOSK"

#: Side of the square aligned face crop that the gallery stores (pixels). The
#: networks resize it to their own input size, so crops outlive a change of network.
FACE_CROP_SIZE = 112


@dataclass(frozen=True)
class Settings:
    """Where data lives and how strict detection is.

    data_dir:  everything a running install writes (gallery, attendance, models).
    gallery_dir: the name-labelled folders ``<gallery_dir>/<Person Name>/*.jpg``.
    lfw_dir:   Labeled Faces in the Wild, used for training and evaluation only.
    base_model_path: the shipped, LFW-trained network (``.keras``).
    database_url: a PostgreSQL URL (``postgresql://user:password@host:5432/db``) holding
        the register that every kiosk and app instance of a school shares; ``None`` keeps
        it in the SQLite file ``attendance_db`` (one computer).
    kiosk:     the name of the kiosk this app's Check-in page serves ("Room 12"); "" is
        the default kiosk. A page's ``?kiosk=`` query parameter overrides it.
    """

    data_dir: Path
    gallery_dir: Path
    lfw_dir: Path
    base_model_path: Path
    #: MTCNN confidence below which a detection is dropped. Raising it drops
    #: more blurry or profile faces; lowering it lets in more false faces.
    min_detection_confidence: float = 0.90
    #: Smallest face (pixels, shorter side of the box) we enroll or identify.
    #: Smaller faces carry too little detail for a reliable match.
    min_face_pixels: int = 40
    #: Largest picture we accept (width x height, pixels): 120 MP covers every phone
    #: (108 MP is today's largest) and camera; larger ones are refused as likely
    #: decompression bombs. Big photos are decoded at a reduced size, so raising this
    #: costs little memory for JPEG but up to 3 bytes a pixel for PNG, TIFF and WebP, which decode in full.
    max_image_pixels: int = 120_000_000
    #: Images are shrunk so the longer side is at most this before detection;
    #: MTCNN's cost grows with the area and a face in a 4000-pixel photo is no
    #: better found than at 1280.
    max_detection_side: int = 1280
    #: Number of candidates reported per face.
    max_candidates: int = 3
    #: Moves the live head-turn check asks for per try (``model.school.liveness``). A replayed
    #: recording that ignores the prompts matches a try's moves about once in 3**moves, so 3
    #: stops more replays; each move adds about 1.5 s at the kiosk (``make bench-liveness``
    #: measures both).
    head_turn_moves: int = 2
    #: Grouping the faces of group photos by person (``model.school.grouping``, enrolling a
    #: class from group photos): the mean S-normed pair score (cohort standard deviations,
    #: with each photo's other faces in the cohort) two groups need to be merged. Chosen on
    #: 10 simulated classes of held-out LFW DevTrain people (the shipped network's
    #: calibration people, never trained on; never the benchmark's DevTest ones):
    #: ``python benchmarks/bench_cluster.py --calibrate``. Their BCubed F is flat from -6 to
    #: -3.5 (0.969-0.974: the same-photo rule does much of the work) and falls above it
    #: (0.958 at -2, 0.934 at 0); -3.5 is the highest within 0.005 of the best, the fewest
    #: wrong merges. Raising it splits more people and leaves more faces "not sure";
    #: lowering it merges more look-alikes (and strangers seen once).
    group_threshold: float = -3.5
    #: A face that joined no group is a person of its own only when its mean score to every
    #: group stays below this (clearly nobody else in the photos); otherwise it is listed as
    #: "not sure". Same calibration (-3 to 0 score alike there: lone faces are rare). Raising
    #: it keeps more lone faces as people.
    group_single_threshold: float = -3.0
    database_url: str | None = None
    kiosk: str = ""
    #: Most connections one app process keeps open to PostgreSQL. Each page run and the
    #: live camera's worker borrow one for a moment; raise it for an app serving many
    #: kiosk pages at once, lower it when the server's ``max_connections`` is shared by
    #: many app instances.
    database_pool_size: int = 4
    #: Seconds a kiosk that lost PostgreSQL keeps its check-ins in the local outbox
    #: before trying the server again. Lower finds the server back sooner; each try
    #: while it is still away can stall a check-in for up to the connect timeout.
    offline_retry_s: float = 10.0
    #: Seconds between a kiosk's looks at the shared gallery's change number (and at its
    #: own folders), besides PostgreSQL's notification. Lower shows another kiosk's
    #: enrollment sooner (a dropped notification is caught within this) for one tiny
    #: query per kiosk and look; higher spares a server with very many kiosks.
    gallery_poll_s: float = 1.0

    @property
    def models_dir(self) -> Path:
        """Fine-tuned models, versioned, live here (never inside the repo)."""
        return self.data_dir / "models"

    @property
    def attendance_db(self) -> Path:
        return self.data_dir / "attendance.sqlite3"

    @property
    def outbox_db(self) -> Path:
        """Check-ins made while PostgreSQL was out of reach, waiting to be delivered."""
        return self.data_dir / "outbox.sqlite3"

    def with_gallery(self, gallery_dir: str | Path) -> Settings:
        return replace(self, gallery_dir=Path(gallery_dir))


def get_settings() -> Settings:
    """Settings from the environment, read afresh at every call (cheap)."""
    data_dir = Path(os.environ.get(ENV_DATA_DIR, REPO_ROOT / "data"))
    gallery = Path(os.environ.get(ENV_GALLERY, data_dir / "gallery"))
    lfw = Path(os.environ.get(ENV_LFW_DIR, REPO_ROOT.parent / "shared" / "datasets" / "lfw"))
    base = Path(os.environ.get(ENV_BASE_MODEL, REPO_ROOT / "model" / "weights" / "base.keras"))
    moves = os.environ.get(ENV_HEAD_TURN_MOVES, "").strip()
    return Settings(data_dir=data_dir, gallery_dir=gallery, lfw_dir=lfw, base_model_path=base,
                    head_turn_moves=_moves(moves) if moves else Settings.head_turn_moves,
                    database_url=os.environ.get(ENV_DATABASE_URL, "").strip() or None,
                    kiosk=" ".join(os.environ.get(ENV_KIOSK, "").split()))


def _moves(value: str) -> int:
    """``FACEATT_HEAD_TURN_MOVES``: 1 to 5 (a clear error otherwise, at start-up)."""
    if not value.isdigit() or not 1 <= int(value) <= 5:
        raise ValueError(f"{ENV_HEAD_TURN_MOVES} must be a whole number from 1 to 5, not {value!r}.")
    return int(value)
