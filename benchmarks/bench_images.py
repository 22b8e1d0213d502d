"""Figures for loading big photos (issue "Images as cameras make them").

Run: ``python benchmarks/bench_images.py [--repeats N]``. Writes a 48 MP, a 100 MP and a 108 MP JPEG
and a 100 MP PNG (colour blocks with noise, so they do not compress to nothing) into a
temporary folder, then runs ``load_image`` on each in a fresh Python process per repeat:
the decode time is the median over the repeats, the peak memory is the process's resident
high-water mark (which sees Pillow's and OpenCV's C allocations, unlike tracemalloc), shown
beside what the process held after its imports. The target is a peak under 1.5 GB.
On Linux the mark is ``VmHWM`` from ``/proc/self/status``: ``ru_maxrss`` would also count
the parent's peak (this script's own 300 MB test pictures), which a child inherits at exec.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
#: (label, width, height, suffix). 12000 x 9000 is a 108 MP phone photo (today's largest);
#: 12240 x 8160 (99.9 MP) is the size the issue asks for, in PNG the costliest to decode.
CASES = (
    ("48 MP JPEG", 8000, 6000, ".jpg"),
    ("100 MP JPEG", 12240, 8160, ".jpg"),
    ("108 MP JPEG", 12000, 9000, ".jpg"),
    ("100 MP PNG", 12240, 8160, ".png"),
)
TARGET_PEAK_MB = 1500

#: Runs in a fresh process: imports, then one timed ``load_image``; prints one JSON line.
_CHILD = """
import json, resource, sys, time
from model.core.images import load_image

def peak_kb():
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

before = peak_kb()
start = time.perf_counter()
image = load_image(sys.argv[1])
seconds = time.perf_counter() - start
peak = peak_kb()
print(json.dumps({"seconds": seconds, "imports_kb": before, "peak_kb": peak,
                  "shape": list(image.shape)}))
"""


def textured_photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A ``height`` x ``width`` x 3 uint8 picture: 16-pixel colour blocks plus pixel noise."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 224, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
    photo = np.repeat(np.repeat(blocks, 16, axis=0), 16, axis=1)[:height, :width]
    photo += rng.integers(0, 32, (height, width, 3), dtype=np.uint8)  # below 224 + 32: no wrap
    return photo


def measure(path: Path, repeats: int) -> dict[str, float | str]:
    """Median decode time (s), peak and after-import RSS (MB) and decoded size of ``path``."""
    runs = []
    for _ in range(repeats):
        done = subprocess.run([sys.executable, "-c", _CHILD, str(path)], cwd=REPO_ROOT,
                              capture_output=True, text=True, check=True)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    height, width = runs[0]["shape"][:2]
    return {
        "seconds": statistics.median(run["seconds"] for run in runs),
        "peak_mb": max(run["peak_kb"] for run in runs) / 1024,
        "imports_mb": max(run["imports_kb"] for run in runs) / 1024,
        "decoded": f"{width}x{height}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{'picture':<12} {'pixels':>12} {'file MB':>8} {'decode s':>9} "
          f"{'peak MB':>8} {'imports MB':>11} {'decoded':>10}")
    with tempfile.TemporaryDirectory() as folder:
        for label, width, height, suffix in CASES:
            path = Path(folder) / f"photo{suffix}"
            cv2.imwrite(str(path), textured_photo(width, height))
            figures = measure(path, args.repeats)
            print(f"{label:<12} {f'{width}x{height}':>12} {path.stat().st_size / 1e6:>8.1f} "
                  f"{figures['seconds']:>9.2f} {figures['peak_mb']:>8.0f} "
                  f"{figures['imports_mb']:>11.0f} {figures['decoded']:>10}")
            path.unlink()
    print(f"target: peak under {TARGET_PEAK_MB} MB; decode time is the median of {args.repeats}.")


if __name__ == "__main__":
    main()
