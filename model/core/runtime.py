"""Importing TensorFlow quietly.

TensorFlow's C++ start-up writes several lines to stderr (oneDNN notice, "could
not find cuda drivers", absl's "log messages before InitializeLog") that no
environment variable silences, because they are printed before logging is set
up. A command line whose errors must be one line on stderr cannot have them,
so we point file descriptor 2 at /dev/null while TensorFlow loads.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

_done = False


def import_tensorflow_quietly() -> None:
    """Import tensorflow (and keras, mtcnn) once, with stderr muted during the import."""
    global _done
    if _done or "tensorflow" in sys.modules:
        _done = True
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        tf.constant(0)  # C++ runtime start-up messages come on first use, too
        import keras  # noqa: F401
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
    _done = True
