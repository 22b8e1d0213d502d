"""A child process for the kill -9 tests: it runs one scenario and SIGKILLs itself just
before its k-th durable file step (``os.replace``, ``os.rename`` or ``os.fsync``), as a
power cut or ``kill -9`` would stop it. ``k = 0`` runs to the end and prints how many
steps there were.

    python tests/model/crash_child.py SCENARIO DATA_DIR K
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402


def crop(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.integers(0, 256, 3) + rng.integers(-40, 40, (112, 112, 3)), 0, 255).astype(np.uint8)


def install_kill_switch(at: int) -> list[int]:
    steps = [0]
    for name in ("replace", "rename", "fsync"):
        real = getattr(os, name)

        def wrapped(*args, _real=real, **kwargs):  # type: ignore[no-untyped-def]
            steps[0] += 1
            if steps[0] == at:
                os.kill(os.getpid(), signal.SIGKILL)
            return _real(*args, **kwargs)

        setattr(os, name, wrapped)
    return steps


def main() -> None:
    scenario, data, at = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    from model.api import remove_person
    from model.core import registry
    from model.school.gallery import Gallery

    gallery, models = Gallery(data / "gallery"), data / "models"
    if scenario == "finetune":  # TensorFlow is imported before the switch is set
        from model.learning.finetune import finetune_gallery
    steps = install_kill_switch(at)
    if scenario == "enroll-new":
        gallery.add_crops("Grace Hopper", [crop(100 + i) for i in range(3)], consent=True)
    elif scenario == "enroll-more":
        gallery.add_crops("Ada Lovelace", [crop(200 + i) for i in range(3)], consent=True)
    elif scenario == "remove":
        remove_person(gallery, models, "Ada Lovelace")
    elif scenario == "save-model":
        path = registry.store_model(lambda p: p.write_bytes(b"new weights" * 1000), models,
                                    {"match_rule": {}, "training": {"trained_on_ids": []}})
        registry.activate_model(models, path, registry.finetuned_model_path(models))
    elif scenario == "finetune":
        finetune_gallery(gallery.root, data / "base.keras", models, epochs=2, learning_rate=1e-3)
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    print(steps[0])


if __name__ == "__main__":
    main()
