"""Camera frames of presentation attacks and of real heads, to measure the head-turn check.

In the terms of ISO/IEC 30107-3 an *attack* is a presentation of an artefact (a print, a
phone) meant to pass as a real, present person; APCER is the share of attack attempts a
system accepts, for each attack type separately, and BPCER the share of genuine attempts
it refuses. ``benchmarks/bench_liveness.py`` drives these scenes through the live page's
own path (tracker, landmarks, challenge state).

A scene answers ``frame(t, prompt)``: the 640x480 RGB camera picture at ``t`` seconds,
given the move the kiosk is asking for right now (``"left"``, ``"right"``, ``"up"`` or
None). Attacks are as strong as we can make them without a live face:

* ``PhotoAttack("still")``: a print of the photo held in front of the camera, a hand's
  tremor;
* ``PhotoAttack("waved")``: the print waved by hand, a time-varying perspective of its
  plane up to +/-30 degrees, with its paper border; and it *answers* the prompts, tilted
  the way the kiosk asks (left, right, up) after a human delay;
* ``PhotoAttack("bent")``: the same with the print bent round a cylinder;
* ``PhotoAttack("phone")``: the photo on a phone: a dark bezel, a brighter, bluish screen
  and a moving glare; it answers the prompts too;
* ``ReplayAttack``: a phone replaying a genuine head-turn sequence (a real person's
  photos turned left, right and up) in a fixed order, whatever the kiosk asks.

``GenuineHead`` is a real person's photos, one per pose, shown in turn as a person would
follow the prompts (a reaction time, then the pose, then back to the front).

The geometry is a pinhole camera (focal length ``FOCAL`` pixels) looking at a textured
surface: a plane, or a vertical cylinder drawn as narrow planar strips.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

FRAME_H, FRAME_W = 480, 640
#: The camera's focal length in pixels (a 640-pixel webcam of about 56 degrees).
FOCAL = 600.0
#: Frames per second the live page processes (``benchmarks/bench_browser.py``: 15).
FPS = 15.0
#: The moves a prompt can ask for (``model.school.liveness.MOVES``).
MOVES = ("left", "right", "up")


def background(rng: np.random.Generator) -> np.ndarray:
    """A classroom-ish background: a smooth two-colour gradient with some texture."""
    top, bottom = rng.uniform(40, 200, 3), rng.uniform(40, 200, 3)
    ramp = np.linspace(0.0, 1.0, FRAME_H)[:, None, None]
    picture = top * (1 - ramp) + bottom * ramp + np.zeros((FRAME_H, FRAME_W, 3))
    blobs = cv2.GaussianBlur(rng.normal(0, 40, (FRAME_H // 8, FRAME_W // 8, 3)), (0, 0), 2)
    picture += cv2.resize(blobs, (FRAME_W, FRAME_H))
    return np.clip(picture, 0, 255).astype(np.uint8)


def _camera(picture: np.ndarray, rng: np.random.Generator, noise: float = 2.5) -> np.ndarray:
    """Sensor noise on a rendered frame (Gaussian, ``noise`` levels; cv2's generator is a
    tenth of numpy's cost, which matters at hundreds of thousands of frames)."""
    grain = np.empty(picture.shape, np.int16)
    cv2.setRNGSeed(int(rng.integers(1 << 30)))
    cv2.randn(grain, np.zeros(3), np.full(3, noise))
    return cv2.add(picture.astype(np.int16), grain, dtype=cv2.CV_8U)


def _rotation(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    y, p, r = (math.radians(a) for a in (yaw_deg, pitch_deg, roll_deg))
    about_y = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    about_x = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    about_z = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return about_y @ about_x @ about_z


def render_surface(frame: np.ndarray, texture: np.ndarray, *, centre: tuple[float, float],
                   width_px: float, yaw_deg: float = 0.0, pitch_deg: float = 0.0,
                   roll_deg: float = 0.0, bend: float | None = None) -> np.ndarray:
    """Draw ``texture`` (RGB) onto ``frame`` as a sheet seen by the camera.

    centre: where the sheet's centre lands (pixels); width_px: its width there when facing
    the camera. yaw/pitch/roll: the sheet's rotation (degrees) about the vertical, the
    horizontal and the viewing axis. bend: the radius of a vertical cylinder the sheet is
    bent round, as a multiple of its width (negative: bent the other way), None for flat.
    """
    tex_h, tex_w = texture.shape[:2]
    distance = FOCAL * tex_w / width_px
    rotation = _rotation(yaw_deg, pitch_deg, roll_deg)
    strips = 1 if bend is None else 12
    edges = np.linspace(0, tex_w, strips + 1)
    out = frame.copy()
    for u0, u1 in zip(edges[:-1], edges[1:], strict=True):
        corners = []
        for u, v in ((u0, 0.0), (u1, 0.0), (u1, tex_h), (u0, tex_h)):
            x, y, z = u - tex_w / 2, v - tex_h / 2, 0.0
            if bend is not None:
                radius = bend * tex_w
                angle = x / radius
                x, z = radius * math.sin(angle), radius * (1 - math.cos(angle))
            px, py, pz = rotation @ np.array([x, y, z])
            depth = distance + pz
            corners.append((centre[0] + FOCAL * px / depth, centre[1] + FOCAL * py / depth))
        dst = np.array(corners, np.float32)
        left, top = np.floor(dst.min(axis=0)).astype(int)
        right, bottom = np.ceil(dst.max(axis=0)).astype(int) + 1
        left, top = max(left, 0), max(top, 0)
        right, bottom = min(right, FRAME_W), min(bottom, FRAME_H)
        if right <= left or bottom <= top:
            continue
        a, b = int(u0), min(int(math.ceil(u1)) + 1, tex_w)
        strip = texture[:, a:b]
        src = np.array([(u0 - a, 0), (u1 - a, 0), (u1 - a, tex_h), (u0 - a, tex_h)], np.float32)
        warp = cv2.getPerspectiveTransform(src, dst - np.array([left, top], np.float32))
        size = (right - left, bottom - top)
        drawn = cv2.warpPerspective(strip, warp, size, flags=cv2.INTER_LINEAR)
        mask = cv2.warpPerspective(np.full(strip.shape[:2], 255, np.uint8), warp, size)
        region = out[top:bottom, left:right]
        region[mask > 127] = drawn[mask > 127]
    return out


def as_print(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The photo printed on paper: a white border, a little less contrast, a little blur."""
    margin = int(photo.shape[1] * rng.uniform(0.06, 0.2))
    faded = photo.astype(np.float32) * rng.uniform(0.8, 0.95) + rng.uniform(8, 25)
    inked = cv2.GaussianBlur(faded, (0, 0), rng.uniform(0.4, 1.0))
    paper = np.full((photo.shape[0] + 2 * margin, photo.shape[1] + 2 * margin, 3),
                    rng.uniform(225, 250), np.float32)
    paper[margin:-margin, margin:-margin] = inked
    return np.clip(paper, 0, 255).astype(np.uint8)


class Phone:
    """A phone screen: a dark bezel, a brighter and bluish picture, a moving glare."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.bezel = rng.uniform(0.05, 0.1)
        self.tint = np.array([0.95, 1.0, 1.08]) * rng.uniform(0.95, 1.15)
        self.glare_strength = rng.uniform(0.2, 0.6)
        self.glare_speed = rng.uniform(0.1, 0.5)

    def show(self, picture: np.ndarray, t: float) -> np.ndarray:
        h, w = picture.shape[:2]
        lit = picture.astype(np.float32) * self.tint
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        gx = w * (0.5 + 0.4 * math.sin(self.glare_speed * t * 2 * math.pi))
        gy = h * (0.3 + 0.2 * math.cos(self.glare_speed * t * 2 * math.pi))
        glare = np.exp(-(((xx - gx) / (0.35 * w)) ** 2 + ((yy - gy) / (0.2 * h)) ** 2))
        lit += (255 - lit) * (self.glare_strength * glare)[..., None]
        edge = int(w * self.bezel)
        body = np.full((h + 2 * edge, w + 2 * edge, 3), 18, np.float32)
        body[edge:-edge, edge:-edge] = lit
        return np.clip(body, 0, 255).astype(np.uint8)


class _Hand:
    """How a hand holds a sheet: a tremor, and (``waving``) slow sways up to +/-30 degrees;
    when it ``answers``, it turns towards what the kiosk asks for after a human delay."""

    def __init__(self, rng: np.random.Generator, *, waving: bool, answers: bool) -> None:
        self.answers = answers
        self.sway = np.asarray(rng.uniform(5, 30, 3) * np.array([1, 1, 0.3]) if waving
                               else rng.uniform(0.3, 1.5, 3), np.float64)
        self.speed = rng.uniform(0.15, 0.7, 3)
        self.phase = rng.uniform(0, 2 * math.pi, 3)
        self.delay = rng.uniform(0.4, 1.0)
        self.tilt = rng.uniform(15, 30)
        self.prompt: str | None = None
        self.since = 0.0

    def angles(self, t: float, prompt: str | None) -> tuple[float, float, float]:
        if prompt != self.prompt:
            self.prompt, self.since = prompt, t
        yaw, pitch, roll = self.sway * np.sin(2 * math.pi * self.speed * t + self.phase)
        if self.answers and prompt is not None and t - self.since > self.delay:
            # Tilted the way it was asked, fully within a third of a second.
            amount = self.tilt * min(1.0, (t - self.since - self.delay) / 0.33)
            yaw, pitch = yaw * 0.3, pitch * 0.3
            if prompt == "left":
                yaw += amount
            elif prompt == "right":
                yaw -= amount
            else:
                pitch += amount
        return float(yaw), float(pitch), float(roll)


class PhotoAttack:
    """A photo of the person presented to the camera: ``kind`` is ``"still"`` (a print
    held still), ``"waved"`` (a print waved, answering the prompts), ``"bent"`` (a bent
    print, waved, answering) or ``"phone"`` (on a phone screen, waved, answering)."""

    KINDS = ("still", "waved", "bent", "phone")

    def __init__(self, photo: np.ndarray, kind: str, rng: np.random.Generator) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown attack kind {kind!r}")
        self.kind, self.rng = kind, rng
        self.phone = Phone(rng) if kind == "phone" else None
        self.texture = as_print(photo, rng) if self.phone is None else self.phone.show(photo, 0.0)
        self.photo = photo
        self.back = background(rng)
        # The photo's own width on the frame: LFW's 250-pixel photos hold a face about
        # 100 pixels wide, so the face lands at 100-150 pixels, an arm's length away.
        self.width = rng.uniform(1.0, 1.5) * self.texture.shape[1]
        self.centre = (FRAME_W / 2 + rng.uniform(-60, 60), FRAME_H / 2 + rng.uniform(-40, 30))
        self.bend = (rng.uniform(0.6, 1.5) * rng.choice([-1, 1])) if kind == "bent" else None
        self.hand = _Hand(rng, waving=kind != "still", answers=kind != "still")

    def frame(self, t: float, prompt: str | None) -> np.ndarray:
        yaw, pitch, roll = self.hand.angles(t, prompt)
        texture = self.phone.show(self.photo, t) if self.phone is not None else self.texture
        drawn = render_surface(self.back, texture, centre=self.centre, width_px=self.width,
                               yaw_deg=yaw, pitch_deg=pitch, roll_deg=roll, bend=self.bend)
        return _camera(drawn, self.rng)


@dataclass(frozen=True)
class PosePhoto:
    """A real person's photo in one pose, with the face's box in it (x, y, w, h)."""

    image: np.ndarray
    box: tuple[int, int, int, int]


def _placed(photo: PosePhoto, back: np.ndarray, centre: tuple[float, float],
            face_height: float) -> np.ndarray:
    """``photo`` pasted on (a copy of) ``back``, scaled so its face box is ``face_height``
    tall and centred on ``centre`` (the same place whatever the pose, as a head turning in
    place)."""
    x, y, w, h = photo.box
    scale = face_height / max(h, 1)
    shift_x = centre[0] - scale * (x + w / 2)
    shift_y = centre[1] - scale * (y + h / 2)
    warp = np.array([[scale, 0, shift_x], [0, scale, shift_y]], np.float32)
    return cv2.warpAffine(photo.image, warp, (back.shape[1], back.shape[0]), dst=back.copy(),
                          borderMode=cv2.BORDER_TRANSPARENT)


class GenuineHead:
    """A real person following the prompts: their front photo until asked, then (after a
    reaction time of 0.4-0.9 s) their photo in the asked pose, and back to the front once
    the prompt is gone. ``poses`` maps "front", "left", "right", "up" to photos."""

    def __init__(self, poses: Mapping[str, Sequence[PosePhoto]], rng: np.random.Generator) -> None:
        self.rng = rng
        self.views = {pose: photos[int(rng.integers(len(photos)))]
                      for pose, photos in poses.items() if photos}
        self.back = background(rng)
        self.centre = (FRAME_W / 2 + rng.uniform(-50, 50), FRAME_H / 2 + rng.uniform(-30, 20))
        self.height = rng.uniform(110, 170)
        self.prompt: str | None = None
        self.since = 0.0
        self.shown = "front"
        self.reaction = rng.uniform(0.4, 0.9)
        self._cache: dict[str, np.ndarray] = {}

    def frame(self, t: float, prompt: str | None) -> np.ndarray:
        if prompt != self.prompt:
            self.prompt, self.since = prompt, t
            self.reaction = self.rng.uniform(0.4, 0.9)
        if t - self.since >= self.reaction:
            wanted = prompt if prompt is not None else "front"
            self.shown = wanted if wanted in self.views else "front"
        if self.shown not in self._cache:
            self._cache[self.shown] = _placed(self.views[self.shown], self.back, self.centre,
                                              self.height)
        drift = (int(round(2 * math.sin(1.3 * t))), int(round(2 * math.cos(0.9 * t))))
        picture = np.roll(self._cache[self.shown], drift, axis=(0, 1))
        return _camera(picture, self.rng)


class ReplayAttack:
    """A phone replaying a genuine head-turn recording: front, then each of ``order``
    (a fixed order of the moves) with a return to the front after each, looping; each
    pose held 0.8-1.5 s. It does not see the prompts."""

    def __init__(self, poses: Mapping[str, Sequence[PosePhoto]], order: Sequence[str],
                 rng: np.random.Generator) -> None:
        self.rng = rng
        self.phone = Phone(rng)
        views = {pose: photos[int(rng.integers(len(photos)))]
                 for pose, photos in poses.items() if photos}
        self.script: list[tuple[str, float]] = []
        for move in order:
            self.script += [("front", rng.uniform(0.8, 1.5)), (move, rng.uniform(0.8, 1.5))]
        self.loop = sum(d for _, d in self.script)
        self.offset = rng.uniform(0, self.loop)  # the recording is started at any point
        # The recording's own frames: the person's photos on a plain backdrop.
        backdrop = np.full((360, 270, 3), rng.uniform(60, 200, 3), np.uint8)
        self.screens = {pose: _on_screen(view, backdrop) for pose, view in views.items()}
        self.back = background(rng)
        self.width = rng.uniform(280, 360)
        self.centre = (FRAME_W / 2 + rng.uniform(-50, 50), FRAME_H / 2 + rng.uniform(-30, 20))
        self.hand = _Hand(rng, waving=False, answers=False)

    def pose_at(self, t: float) -> str:
        moment = (t + self.offset) % self.loop
        for pose, duration in self.script:
            if moment < duration:
                return pose
            moment -= duration
        return self.script[-1][0]

    def frame(self, t: float, prompt: str | None) -> np.ndarray:
        pose = self.pose_at(t)
        screen = self.phone.show(self.screens.get(pose, self.screens["front"]), t)
        yaw, pitch, roll = self.hand.angles(t, None)
        drawn = render_surface(self.back, screen, centre=self.centre, width_px=self.width,
                               yaw_deg=yaw, pitch_deg=pitch, roll_deg=roll)
        return _camera(drawn, self.rng)


def _on_screen(photo: PosePhoto, backdrop: np.ndarray) -> np.ndarray:
    """The photo on a phone-shaped backdrop, its face about 55% of the screen's width."""
    h, w = backdrop.shape[:2]
    _, _, box_w, box_h = photo.box
    return _placed(photo, backdrop, (w / 2, 0.45 * h), 0.55 * w * box_h / max(box_w, 1))


# ----- the head-pose photos of ../shared/datasets/pose ------------------------------------

#: The aws person's photos by pose, as its SOURCE.md describes them ("left" = his own left).
AWS_POSES = {"front": ("1232", "1239"), "left": ("1233", "1240"), "right": ("1234", "1241"),
             "up": ("1236", "1244", "1242")}
_CMU_NAME = re.compile(r"^(?P<user>[^_]+)_(?P<pose>straight|left|right|up)_[^_]+_open\.pgm$")


def pose_people(root: Path, detector: object, *,
                upscale: float = 3.0) -> dict[str, dict[str, list[PosePhoto]]]:
    """The people of ``root`` (``../shared/datasets/pose``): person -> pose -> photos.

    CMU photos (128x120 greyscale, eyes open only: sunglasses hide the eye landmarks) are
    enlarged ``upscale`` times, as a webcam at arm's length would see the face; the aws
    person's 640x480 colour photos are used as they are. Each photo keeps the box of its
    largest face (``detector.detect``); photos where none is found are left out (the
    cascade misses most CMU faces looking up: small, grey, dark), and so is a person
    without a photo in each of front, left, right and up (they could not follow every
    prompt).
    """
    people: dict[str, dict[str, list[PosePhoto]]] = {}

    def add(person: str, pose: str, image: np.ndarray) -> None:
        faces = detector.detect(image)  # type: ignore[attr-defined]
        if faces:
            box = tuple(int(v) for v in faces[0].box)
            people.setdefault(person, {}).setdefault(pose, []).append(
                PosePhoto(image, box))  # type: ignore[arg-type]

    for path in sorted((root / "cmu_faces").glob("*/*.pgm")):
        match = _CMU_NAME.match(path.name)
        grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if match is None or grey is None:
            continue
        grey = cv2.resize(grey, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC)
        pose = "front" if match["pose"] == "straight" else match["pose"]
        add(f"cmu:{match['user']}", pose, np.dstack([grey] * 3))
    aws = root / "aws_headpose" / "person01"
    for pose, numbers in AWS_POSES.items():
        for number in numbers:
            image = cv2.imread(str(aws / f"IMG_{number}.JPG"))  # the .JPG copy is upright
            if image is not None:
                add("aws:person01", pose, cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    return {person: poses for person, poses in people.items()
            if all(poses.get(pose) for pose in ("front", *MOVES))}
