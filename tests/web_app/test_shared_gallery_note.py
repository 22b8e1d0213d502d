"""The People page's line on the shared gallery (``FACEATT_DATABASE_URL``)."""

from __future__ import annotations

from datetime import UTC, datetime

from model.school.gallery_sync import SyncStatus
from model.settings import get_settings
from web_app import common, loading


class FakeSync:
    def __init__(self, status: SyncStatus) -> None:
        self._status = status

    def status(self) -> SyncStatus:
        return self._status


def test_no_shared_gallery_no_line(monkeypatch) -> None:
    monkeypatch.setattr(loading, "_syncs", {})
    assert common.shared_gallery_note() is None


def test_the_line_says_up_to_date_or_offline(monkeypatch) -> None:
    key = str(get_settings().data_dir)
    when = datetime(2026, 12, 5, 9, 30, tzinfo=UTC)
    monkeypatch.setattr(loading, "_syncs", {key: FakeSync(SyncStatus(True, when, 7))})
    assert common.shared_gallery_note().startswith("Shared gallery: up to date")
    monkeypatch.setattr(loading, "_syncs", {key: FakeSync(SyncStatus(False, None, 7, "down"))})
    note = common.shared_gallery_note()
    assert note.startswith("Shared gallery offline") and "never" in note
