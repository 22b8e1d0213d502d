"""The engine, loaded once per process in a background thread.

Loading TensorFlow, MTCNN and the network and tracing them takes 7-10 s on 2 cores.
``python -m web_app`` (what ``make run`` starts) asks for that load before the web
server is even up, so the first visitor rarely waits; ``streamlit run web_app/app.py``
begins it on the first page view. Pages wait for it with a spinner (``get_engine``)
or, like the live camera, start without it and pick it up when it is ready.

On two cores the load and the first page view slow each other down (a page took 5.5 s
instead of 2.5 s), so a load asked for before the server is up is *held*: it starts
once the first page has been drawn (and the browser has had ``FIRST_PAGE_GRACE_S`` to
lay it out), as soon as a page needs the engine (``needed``), or after ``hold_s``
whichever comes first. The page is then up in about 2.5 s and the recognizer about
7 s later, instead of both waiting on each other.

With ``FACEATT_DATABASE_URL`` set, the loaded engine's gallery and models follow the
school's shared gallery: a ``GallerySync`` thread starts with it (``gallery_sync``).

No Streamlit here: ``get_engine`` in ``web_app.common`` adds the spinner.
"""

from __future__ import annotations

import gc
import threading
from concurrent.futures import Future
from typing import Any

#: Seconds the browser gets to lay out the first page before a held load starts.
FIRST_PAGE_GRACE_S = 1.0

_lock = threading.Lock()
_loads: dict[str, Future[Any]] = {}
_go = threading.Event()  # set: held loads may start
_page_timer: threading.Timer | None = None
_syncs: dict[str, Any] = {}  # data folder -> its engine's GallerySync


def start_loading(data_dir: str, *, hold_s: float = 0.0) -> Future[Any]:
    """The engine of ``data_dir`` (a future): started now unless already loading or loaded.

    ``hold_s`` > 0 holds the start until the first page is drawn (``page_drawn``), a
    page needs the engine (``needed``), or ``hold_s`` seconds have passed. A load that
    failed is tried again by the next call.
    """
    with _lock:
        future = _loads.get(data_dir)
        if future is None or (future.done() and future.exception() is not None):
            future = Future()
            _loads[data_dir] = future
            threading.Thread(target=_load, args=(future, hold_s), name="engine-loader",
                             daemon=True).start()
        return future


def page_drawn() -> None:
    """A page view has finished its script: held loads start ``FIRST_PAGE_GRACE_S`` later."""
    global _page_timer
    with _lock:
        if _page_timer is None and not _go.is_set():
            _page_timer = threading.Timer(FIRST_PAGE_GRACE_S, _go.set)
            _page_timer.daemon = True
            _page_timer.start()


def needed() -> None:
    """A page waits for the engine: held loads start now."""
    _go.set()


def gallery_sync(data_dir: str) -> Any | None:
    """The ``GallerySync`` of the engine of ``data_dir`` (None without a shared database,
    or before the engine is loaded)."""
    with _lock:
        return _syncs.get(data_dir)


def _open_engine() -> Any:
    """Load TensorFlow, MTCNN and the network; trace them (the heavy part)."""
    from model.api import FaceAttendance
    from model.settings import get_settings

    settings = get_settings()
    engine = FaceAttendance.open(settings)
    if settings.database_url:
        _start_gallery_sync(engine, settings)
    engine.warm_up()  # trace the detector and network now, not on the first photo
    # Out of the cyclic collector's reach from now on: the hundreds of thousands of
    # objects TensorFlow, Keras and the server have made live as long as the process, and
    # every full collection walked them all while holding the GIL (0.5 s and more on 2
    # busy cores), freezing the live camera's WebRTC connection meanwhile. Objects are
    # still freed by reference counting; only cycles among them (a model replaced after
    # fine-tuning) stay until the process ends.
    gc.freeze()
    return engine


def _start_gallery_sync(engine: Any, settings: Any) -> None:
    """Keep the engine's gallery and models equal to the shared gallery, in a thread;
    another active model there reloads the engine's network."""
    from model.school.gallery_sync import GallerySync

    sync = GallerySync.for_settings(settings, engine.gallery,
                                    on_model_change=engine.reload_model)
    with _lock:
        old = _syncs.pop(str(settings.data_dir), None)
        _syncs[str(settings.data_dir)] = sync
    if old is not None:
        old.stop()
    sync.start()


def _load(future: Future[Any], hold_s: float) -> None:
    if hold_s > 0:
        _go.wait(hold_s)
    try:
        engine = _open_engine()
    except BaseException as error:  # handed to whoever waits for the engine
        future.set_exception(error)
    else:
        future.set_result(engine)
