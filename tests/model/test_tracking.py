"""FaceTracker: when it detects, when it follows, when a face is dropped or re-embedded."""

from __future__ import annotations

from synthetic_faces import synthetic_face

from model.core.tracking import REFRESH_S, SCAN_EVERY_S, FaceTracker
from model.records import DetectedFace


def face(x: int, y: int = 50, size: int = 100) -> DetectedFace:
    return synthetic_face(x, y, size)


class FakeDetector:
    """A scene of faces the test moves about; counts full detections and follows."""

    def __init__(self, *faces: DetectedFace) -> None:
        self.scene = list(faces)
        self.detections = 0
        self.follows = 0

    def detect(self, image, *, max_side=None):
        self.detections += 1
        return list(self.scene)

    def follow(self, image, boxes):
        self.follows += 1
        found = []
        for box in boxes:
            near = [f for f in self.scene if abs(f.box[0] - box[0]) < 40 and abs(f.box[1] - box[1]) < 40]
            found.append(near[0] if near else None)
        return found


def test_detects_when_nothing_is_tracked_then_follows_until_a_scan_is_due():
    detector = FakeDetector(face(100))
    tracker = FaceTracker(detector)
    assert tracker.update(None, 0.0) == "scan"
    [track] = tracker.tracks
    detector.scene = [face(110)]
    assert tracker.update(None, 0.1) == "follow"
    assert tracker.update(None, 0.2) == "follow"
    assert tracker.tracks == [track] and track.face.box[0] == 110  # the same track, moved
    assert (detector.detections, detector.follows) == (1, 2)
    assert tracker.update(None, SCAN_EVERY_S + 0.01) == "scan"
    assert tracker.tracks == [track]  # the scan found the same face: no new track


def test_a_newcomer_is_found_at_the_next_scan_and_a_face_that_left_is_dropped_at_once():
    detector = FakeDetector(face(100))
    tracker = FaceTracker(detector)
    tracker.update(None, 0.0)
    [first] = tracker.tracks
    detector.scene = [face(100), face(400, size=60)]
    tracker.update(None, 0.1)
    assert tracker.tracks == [first]  # following only looks where faces were
    tracker.update(None, SCAN_EVERY_S + 0.1)
    assert len(tracker.tracks) == 2 and tracker.tracks[0] is first  # largest first
    newcomer = tracker.tracks[1]
    assert newcomer.id != first.id and newcomer.born == SCAN_EVERY_S + 0.1
    detector.scene = [face(400, size=60)]  # the first one walked out
    tracker.update(None, SCAN_EVERY_S + 0.2)
    assert tracker.tracks == [newcomer]
    detector.scene = []
    tracker.update(None, SCAN_EVERY_S + 0.3)
    assert tracker.tracks == []


def test_a_face_the_scan_misses_is_kept_while_following_still_finds_it():
    detector = FakeDetector(face(100))
    tracker = FaceTracker(detector)
    tracker.update(None, 0.0)
    [track] = tracker.tracks

    def misses(image, *, max_side=None):
        return []

    detector.detect = misses  # too small at the scan's size, say
    tracker.update(None, SCAN_EVERY_S + 0.1)
    assert tracker.tracks == [track]


def test_embedding_is_needed_when_new_moved_or_stale_only():
    detector = FakeDetector(face(100))
    tracker = FaceTracker(detector)
    tracker.update(None, 0.0)
    [track] = tracker.tracks
    assert tracker.needs_embedding(track, 0.0)
    FaceTracker.embedded(track, 0.0, "Ada")
    assert track.match == "Ada"
    detector.scene = [face(102)]  # 2 px: the same view
    tracker.update(None, 0.1)
    assert not tracker.needs_embedding(track, 0.1)
    detector.scene = [face(130)]  # 30 px: a step sideways
    tracker.update(None, 0.2)
    assert tracker.needs_embedding(track, 0.2)
    FaceTracker.embedded(track, 0.2, "Ada")
    assert not tracker.needs_embedding(track, 0.3)
    assert tracker.needs_embedding(track, 0.2 + REFRESH_S)


def test_two_tracks_on_one_face_become_one():
    detector = FakeDetector(face(100))
    tracker = FaceTracker(detector)
    tracker.update(None, 0.0)
    [older] = tracker.tracks
    detector.scene = [face(100), face(104)]  # the scan returns the same face twice
    tracker.update(None, SCAN_EVERY_S + 0.1)
    assert tracker.tracks == [older]


class BlindFollower(FakeDetector):
    """O-Net misses the face (a head turned far) while the full cascade still finds it."""

    def follow(self, image, boxes):
        self.follows += 1
        return [None for _ in boxes]


def test_a_face_o_net_loses_is_looked_for_by_a_detection_before_its_track_goes():
    detector = BlindFollower(face(100))
    tracker = FaceTracker(detector)
    tracker.update(None, 0.0)
    [track] = tracker.tracks
    detector.scene = [face(108)]  # turned: still there, a little moved
    assert tracker.update(None, 0.1) == "scan"  # follow failed, a detection looked
    assert tracker.tracks == [track] and track.face.box[0] == 108  # the same track
    detector.scene = []  # now it left
    tracker.update(None, 0.2)
    assert tracker.tracks == []
