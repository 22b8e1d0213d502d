"""Face attendance: the core library (detection, alignment, embedding, gallery, matching).

Nothing heavy happens at import time; load models explicitly with
``FaceAttendance.open()`` (or ``load_detector`` / ``load_recognizer``).
"""

from model.errors import (
    ConsentRequiredError,
    FaceAttendanceError,
    FaceQualityError,
    ImageError,
    InvalidNameError,
    ModelError,
    MultipleFacesError,
    NameTakenError,
    NoFaceError,
    UnknownPersonError,
)
from model.records import DetectedFace, Landmarks, Match, Person, Verification
from model.settings import Settings, get_settings

__all__ = [
    "ConsentRequiredError", "DetectedFace", "FaceAttendanceError", "FaceQualityError",
    "ImageError", "InvalidNameError", "Landmarks", "Match", "ModelError", "MultipleFacesError",
    "NameTakenError", "NoFaceError", "Person", "Settings", "UnknownPersonError",
    "Verification", "get_settings",
]
