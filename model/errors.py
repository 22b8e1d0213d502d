"""Errors a user can cause. Each carries a sentence a teacher understands.

They subclass ``ValueError`` (the input was wrong), so callers that do not care
about the detail can catch one type; the app shows ``str(error)`` as it is.
"""

from __future__ import annotations


class FaceAttendanceError(ValueError):
    """Base class of every user-facing error of this library."""


class ImageError(FaceAttendanceError):
    """The file or bytes are not a usable image (corrupt, empty, too large, not an image)."""


class NoFaceError(FaceAttendanceError):
    """No face was found where one was required."""


class MultipleFacesError(FaceAttendanceError):
    """Several faces were found where exactly one was required."""


class FaceQualityError(FaceAttendanceError):
    """A face was found but is too small or too blurry to use."""


class InvalidNameError(FaceAttendanceError):
    """A person's name is empty, too long, or has characters we do not allow."""


class NameTakenError(FaceAttendanceError):
    """A person with this name (ignoring case) is already enrolled."""


class UnknownPersonError(FaceAttendanceError):
    """No enrolled person has this name."""


class ConsentRequiredError(FaceAttendanceError):
    """Enrollment was asked for without the person's consent; nothing was stored."""


class ModelError(FaceAttendanceError):
    """A model file is missing, corrupt or of the wrong kind."""


class LastPhotoError(FaceAttendanceError):
    """The photo asked to be deleted is the person's last one (delete the person instead)."""


class DifferentPersonError(FaceAttendanceError):
    """Photos added under an enrolled name do not look like that person (maybe a namesake)."""
