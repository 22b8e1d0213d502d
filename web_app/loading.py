"""The engine, loaded once per process in a background thread.

Loading TensorFlow, MTCNN and the network and tracing them takes 7-10 s on 2 cores.
``python -m web_app`` (what ``make run`` starts) begins that load before the web
server is even up, so the first visitor rarely waits; ``streamlit run web_app/app.py``
begins it on the first page view. Pages wait for it with a spinner (``get_engine``)
or, like the live camera, start without it and pick it up when it is ready.

No Streamlit here: ``get_engine`` in ``web_app.common`` adds the spinner.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any

_lock = threading.Lock()
_loads: dict[str, Future[Any]] = {}


def start_loading(data_dir: str) -> Future[Any]:
    """The engine of ``data_dir`` (a future): started now unless already loading or loaded.

    A load that failed is tried again by the next call.
    """
    with _lock:
        future = _loads.get(data_dir)
        if future is None or (future.done() and future.exception() is not None):
            future = Future()
            _loads[data_dir] = future
            threading.Thread(target=_load, args=(future,), name="engine-loader",
                             daemon=True).start()
        return future


def _load(future: Future[Any]) -> None:
    try:
        from model.api import FaceAttendance
        from model.settings import get_settings

        engine = FaceAttendance.open(get_settings())
        engine.warm_up()  # trace the detector and network now, not on the first photo
    except BaseException as error:  # handed to whoever waits for the engine
        future.set_exception(error)
    else:
        future.set_result(engine)
