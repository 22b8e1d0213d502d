"""The engine's background load: held for the first page under ``python -m web_app``,
started at once otherwise, retried after a failure. No TensorFlow here: the load is faked."""

from __future__ import annotations

import threading
import time

import pytest

from web_app import loading


@pytest.fixture()
def loads(monkeypatch):
    """Fresh loader state; each load records when it started and returns a token."""
    started: list[float] = []

    def fake_open():
        started.append(time.monotonic())
        return "engine"

    monkeypatch.setattr(loading, "_open_engine", fake_open)
    monkeypatch.setattr(loading, "_loads", {})
    monkeypatch.setattr(loading, "_go", threading.Event())
    monkeypatch.setattr(loading, "_page_timer", None)
    monkeypatch.setattr(loading, "FIRST_PAGE_GRACE_S", 0.3)
    return started


def test_an_unheld_load_starts_at_once(loads):
    assert loading.start_loading("data").result(timeout=5) == "engine"
    assert len(loads) == 1
    assert loading.start_loading("data").result(timeout=5) == "engine"
    assert len(loads) == 1  # once per process and data folder


def test_a_held_load_waits_for_the_first_page_then_its_grace(loads):
    future = loading.start_loading("data", hold_s=30)
    time.sleep(0.3)
    assert not loads and not future.done()  # nobody has looked at a page yet
    drawn = time.monotonic()
    loading.page_drawn()
    loading.page_drawn()  # later page views change nothing
    assert future.result(timeout=5) == "engine"
    assert loads[0] - drawn >= 0.25  # the browser had its grace to lay the page out


def test_a_page_that_needs_the_engine_starts_a_held_load_now(loads):
    future = loading.start_loading("data", hold_s=30)
    time.sleep(0.2)
    asked = time.monotonic()
    loading.needed()
    assert future.result(timeout=5) == "engine"
    assert loads[0] - asked < 0.25


def test_a_held_load_starts_anyway_when_no_page_comes(loads):
    begun = time.monotonic()
    assert loading.start_loading("data", hold_s=0.3).result(timeout=5) == "engine"
    assert loads[0] - begun >= 0.25


def test_a_failed_load_is_tried_again(loads, monkeypatch):
    def broken():
        raise OSError("model file unreadable")

    monkeypatch.setattr(loading, "_open_engine", broken)
    with pytest.raises(OSError, match="unreadable"):
        loading.start_loading("data").result(timeout=5)
    monkeypatch.setattr(loading, "_open_engine", lambda: "engine")
    assert loading.start_loading("data").result(timeout=5) == "engine"
