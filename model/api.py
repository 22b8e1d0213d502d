"""The public facade: detect, align, embed and match in one object.

``FaceAttendance.open()`` loads the detector and the active network once; every
method then works on plain numpy images (RGB uint8) or image sources (paths,
bytes) and returns frozen records. The web app wraps one instance in
``st.cache_resource``; the CLI makes one per run, so many photos load the
network once.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from model.alignment import align_face
from model.detection import FaceDetector, load_detector
from model.errors import (
    ConsentRequiredError,
    FaceAttendanceError,
    FaceQualityError,
    MultipleFacesError,
    NoFaceError,
)
from model.gallery import Gallery, GalleryEmbeddings
from model.images import ImageSource, load_image
from model.naming import normalize_name
from model.recognizer import Recognizer, load_recognizer
from model.records import DetectedFace, Match, Verification
from model.settings import Settings, get_settings

#: Variance of the Laplacian of the aligned crop's grey image below which we call
#: it blurry. Sharp webcam faces score in the hundreds; motion blur drops it
#: under ~30. Raise it to demand sharper enrollment photos.
BLUR_THRESHOLD = 30.0

ImageInput = ImageSource | np.ndarray


@dataclass(frozen=True)
class FaceAssessment:
    """Whether a detected face is good enough to enroll, and why not."""

    face: DetectedFace
    crop: np.ndarray  # aligned 112 x 112 RGB
    blur: float  # variance of the Laplacian; higher is sharper
    problem: str | None  # a sentence for the user, None when the face is usable

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class EnrollmentReport:
    """What ``enroll_person`` did: files saved, photos refused (with reasons), look-alikes."""

    name: str
    saved: list[Path] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    similar_to: list[tuple[str, float]] = field(default_factory=list)


class FaceAttendance:
    """Detector + recognizer + gallery. Thread-safe: the app shares one across sessions."""

    def __init__(self, detector: FaceDetector, recognizer: Recognizer, gallery: Gallery,
                 settings: Settings) -> None:
        self.detector = detector
        self.recognizer = recognizer
        self.gallery = gallery
        self.settings = settings
        self._model_lock = threading.Lock()

    @classmethod
    def open(cls, settings: Settings | None = None, *, gallery_dir: str | Path | None = None,
             model_path: str | Path | None = None) -> FaceAttendance:
        """Load everything once (a few seconds: TensorFlow, MTCNN, the network)."""
        settings = settings or get_settings()
        if gallery_dir is not None:
            settings = settings.with_gallery(gallery_dir)
        detector = load_detector(min_confidence=settings.min_detection_confidence,
                                 max_side=settings.max_detection_side)
        recognizer = load_recognizer(model_path, settings)
        return cls(detector, recognizer, Gallery(settings.gallery_dir), settings)

    def warm_up(self) -> None:
        """Trace the detector and network once so the first user does not wait."""
        self.detector.warm_up()
        self.recognizer.warm_up()

    def reload_model(self, model_path: str | Path | None = None) -> Recognizer:
        """Switch to the active (or given) model, e.g. after fine-tuning."""
        recognizer = load_recognizer(model_path, self.settings)
        with self._model_lock:
            self.recognizer = recognizer
        return recognizer

    # ----- faces ---------------------------------------------------------------------

    def find_faces(self, image: ImageInput, *, max_side: int | None = None) -> list[DetectedFace]:
        """Faces in an image, largest first (empty list when there are none)."""
        return self.detector.detect(_as_array(image), max_side=max_side)

    def assess_faces(self, image: ImageInput, *, max_side: int | None = None) -> list[FaceAssessment]:
        """Every face with its aligned crop and a quality verdict (for enrollment feedback)."""
        array = _as_array(image)
        return [self._assess(array, face) for face in self.find_faces(array, max_side=max_side)]

    def aligned_face(self, image: ImageInput, *, label: str = "the photo") -> np.ndarray:
        """The aligned crop of the single face in ``image``.

        Raises ``NoFaceError`` or ``MultipleFacesError`` (naming ``label``) otherwise.
        """
        array = _as_array(image, label=label)
        return align_face(array, self._single_face(array, label))

    # ----- enrollment ----------------------------------------------------------------

    def enroll_person(self, name: str, images: Sequence[ImageInput], *, consent: bool,
                      labels: Sequence[str] | None = None) -> EnrollmentReport:
        """Add a person (or more photos of them) from photos showing exactly one good face.

        Photos that cannot be read, show no face, several faces, or a face too small
        or blurry are refused with a sentence naming them; the others are saved.
        Without ``consent`` nothing is read or stored (``ConsentRequiredError``).
        """
        if not consent:
            raise ConsentRequiredError(
                "Consent is required: tick the consent box (or pass --consent). Nothing was stored.")
        name = normalize_name(name)
        labels = list(labels) if labels is not None else [_label_of(img, i) for i, img in enumerate(images)]
        crops: list[np.ndarray] = []
        rejected: list[tuple[str, str]] = []
        for image, label in zip(images, labels, strict=True):
            try:
                array = _as_array(image, label=label)
                face = self._single_face(array, label)
                assessment = self._assess(array, face)
                if assessment.problem:
                    raise FaceQualityError(f"{label}: {assessment.problem}")
                crops.append(assessment.crop)
            except FaceAttendanceError as exc:
                rejected.append((label, str(exc)))
        similar = self.look_alikes(name, crops)
        saved = self.gallery.add_crops(name, crops, consent=True) if crops else []
        return EnrollmentReport(name=name, saved=saved, rejected=rejected, similar_to=similar)

    # ----- recognition ---------------------------------------------------------------

    def identify_faces(self, image: ImageInput, *, max_side: int | None = None) -> list[Match]:
        """Who is each face in the photo? One ``Match`` per face, largest face first.

        One forward pass for all faces of the photo, then vectorised scoring against
        the cached gallery embeddings. ``name`` is None ("unknown") when the best
        person scores below the recognizer's threshold.
        """
        array = _as_array(image)
        faces = self.find_faces(array, max_side=max_side)
        crops = [align_face(array, face) for face in faces]
        return self.identify_crops(crops, faces)

    def identify_crops(self, crops: Sequence[np.ndarray],
                       faces: Sequence[DetectedFace] | None = None) -> list[Match]:
        """Like ``identify_faces`` for crops that are already aligned."""
        if len(crops) == 0:
            return []
        recognizer = self.recognizer
        gallery = self.gallery.embeddings(recognizer)
        embeddings = recognizer.embed(crops)
        per_person = self._person_scores(recognizer, embeddings, gallery)  # [m, p]
        matches = []
        for i in range(len(crops)):
            face = faces[i] if faces is not None else None
            box = face.box if face is not None else (0, 0, 0, 0)
            if per_person.shape[1] == 0:
                matches.append(Match(box=box, name=None, score=0.0, candidates=(), face=face))
                continue
            order = np.argsort(-per_person[i])[: self.settings.max_candidates]
            candidates = tuple((gallery.people[j], round(float(per_person[i, j]), 4)) for j in order)
            best_name, best_score = candidates[0]
            name = best_name if best_score >= recognizer.identification_threshold else None
            matches.append(Match(box=box, name=name, score=best_score, candidates=candidates, face=face))
        return matches

    def verify_faces(self, image_a: ImageInput, image_b: ImageInput) -> Verification:
        """Do two photos (one face each) show the same person? (1:1)"""
        crop_a = self.aligned_face(image_a, label=_label_of(image_a, 0))
        crop_b = self.aligned_face(image_b, label=_label_of(image_b, 1))
        recognizer = self.recognizer
        emb = recognizer.embed([crop_a, crop_b])
        score = recognizer.score_pair(emb[0], emb[1])
        return Verification(same=score >= recognizer.threshold, score=score,
                            threshold=recognizer.threshold)

    def verify_person(self, image: ImageInput, name: str) -> Verification:
        """Is the single face in ``image`` the enrolled person ``name``? (claimed identity, 1:1)"""
        person = self.gallery.person(name).name  # raises UnknownPersonError
        crop = self.aligned_face(image, label=_label_of(image, 0))
        recognizer = self.recognizer
        gallery = self.gallery.embeddings(recognizer)
        rows = np.array([n == person for n in gallery.names])
        query = recognizer.embed([crop])
        scores = recognizer.score(query, gallery.matrix[rows])[0]
        score = _top_k_mean(scores, self.settings.top_k_per_person)
        return Verification(same=score >= recognizer.threshold, score=score,
                            threshold=recognizer.threshold)

    def rank_candidates(self, anchor: ImageInput,
                        candidates: Sequence[ImageInput]) -> list[tuple[int, float]]:
        """Which candidates show the anchor's person? ``(candidate index, score)``, best first.

        Candidates without exactly one face are left out of the ranking.
        """
        anchor_crop = self.aligned_face(anchor, label="the anchor photo")
        crops, indices = [], []
        for i, image in enumerate(candidates):
            try:
                crops.append(self.aligned_face(image, label=f"candidate {i + 1}"))
                indices.append(i)
            except FaceAttendanceError:
                continue
        if not crops:
            return []
        recognizer = self.recognizer
        emb = recognizer.embed([anchor_crop, *crops])
        scores = recognizer.score(emb[:1], emb[1:])[0]
        ranked = sorted(zip(indices, scores.tolist(), strict=True), key=lambda t: -t[1])
        return [(i, float(s)) for i, s in ranked]

    # ----- internals -----------------------------------------------------------------

    def _single_face(self, image: np.ndarray, label: str) -> DetectedFace:
        faces = self.find_faces(image)
        if not faces:
            raise NoFaceError(f"{label}: no face was found.")
        if len(faces) > 1:
            raise MultipleFacesError(
                f"{label}: {len(faces)} faces were found; use a photo of one person only.")
        return faces[0]

    def _assess(self, image: np.ndarray, face: DetectedFace) -> FaceAssessment:
        crop = align_face(image, face)
        blur = laplacian_variance(crop)
        problem = None
        if face.size < self.settings.min_face_pixels:
            problem = (f"the face is too small ({face.size} pixels; at least "
                       f"{self.settings.min_face_pixels} needed) - move closer to the camera.")
        elif blur < BLUR_THRESHOLD:
            problem = "the face is too blurry - hold still, or add light."
        return FaceAssessment(face=face, crop=crop, blur=blur, problem=problem)

    def _person_scores(self, recognizer: Recognizer, embeddings: np.ndarray,
                       gallery: GalleryEmbeddings) -> np.ndarray:
        """Per-person score ``[m, people]``: mean of each person's top-k image scores."""
        m, p = len(embeddings), len(gallery.people)
        if p == 0:
            return np.zeros((m, 0), dtype=np.float32)
        scores = recognizer.score(embeddings, gallery.matrix)  # [m, n]
        return aggregate_by_person(scores, gallery.person_index, p, self.settings.top_k_per_person)

    def look_alikes(self, name: str, crops: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """Other enrolled people these aligned crops of ``name`` already match, best first.

        A match means a per-person score at or above the identification threshold: a
        likely duplicate enrollment or a mix-up that check-ins would suffer from.
        """
        recognizer = self.recognizer
        gallery = self.gallery.embeddings(recognizer)
        if len(gallery) == 0 or len(crops) == 0:
            return []
        per_person = self._person_scores(recognizer, recognizer.embed(crops), gallery).max(axis=0)
        own = self.gallery.find_person(name)
        found = [(gallery.people[j], float(per_person[j])) for j in np.argsort(-per_person)
                 if per_person[j] >= recognizer.identification_threshold
                 and gallery.people[j] != own]
        return found


def aggregate_by_person(scores: np.ndarray, person_index: np.ndarray, people: int, top_k: int) -> np.ndarray:
    """Reduce per-image scores ``[m, n]`` to per-person scores ``[m, people]``.

    Each person's score is the mean of their ``top_k`` best image scores (or of
    all of them, when they have fewer). Vectorised: one sort, no loop over images.
    """
    m = scores.shape[0]
    out = np.zeros((m, people), dtype=np.float32)
    if scores.shape[1] == 0:
        return out
    # Sort rows by (person, -score) so each person's best images come first.
    order = np.lexsort((-scores, np.broadcast_to(person_index, scores.shape)), axis=1)
    sorted_scores = np.take_along_axis(scores, order, axis=1)
    sorted_people = person_index[order[0]]  # same person order in every row
    starts = np.searchsorted(sorted_people, np.arange(people))
    counts = np.bincount(person_index, minlength=people)
    k = np.minimum(counts, top_k)
    for rank in range(top_k):
        valid = rank < k
        cols = starts[valid] + rank
        out[:, valid] += sorted_scores[:, cols]
    out /= np.maximum(k, 1)
    return out


def _top_k_mean(scores: np.ndarray, k: int) -> float:
    if len(scores) == 0:
        return 0.0
    top = np.sort(scores)[::-1][:k]
    return float(top.mean())


def laplacian_variance(crop: np.ndarray) -> float:
    """Sharpness of an RGB crop: variance of the Laplacian of its grey image."""
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def _as_array(image: ImageInput, label: str | None = None) -> np.ndarray:
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise TypeError(f"expected an RGB uint8 image, got {image.dtype} {image.shape}")
        return image
    return load_image(image, label=label)


def _label_of(image: ImageInput, index: int) -> str:
    if isinstance(image, (str, Path)):
        return str(image)
    return f"photo {index + 1}"
