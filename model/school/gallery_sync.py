"""The gallery of record in PostgreSQL, and each kiosk's folders kept equal to it.

With ``FACEATT_DATABASE_URL`` set, a school's people (stable id, name, student id, consent
time), their crops (JPEG bytes, keyed by content hash), embeddings per model and the
fine-tuned models (file and card, and which one is active) live in PostgreSQL; every kiosk
still keeps the folders ``model.school.gallery`` reads, and ``GallerySync`` keeps them equal
to the database.

How a change travels. Every change to the tables happens in one transaction that also
bumps ``gallery_meta.version`` (a change number that only grows; its row lock orders the
writers, so version ``v`` is committed before anyone gets ``v + 1``) and sends
``NOTIFY faceatt_gallery`` with the new number, which PostgreSQL delivers at commit.
The notification is only a hint: a kiosk also reads the version every ``poll_s`` seconds,
and after every (re)connection it compares everything (a *full* sync), so a notification
lost with a dropped connection never leaves a kiosk behind (CompreFace issue #1135).

Three-way sync. A kiosk remembers, in a small hidden state file beside the folders
(``.sync.json``: the last version it applied and the people and models as they were
then), what it and the server last agreed on. A pass then

1. *publishes* what changed locally since then (an enrollment, added or removed photos, a
   rename, a removal, a new or deleted model, another active model), whoever made it:
   the app, the CLI in another process, a file manager. While the database is away the
   state file is the journal: the differences wait on disk and go out when it answers;
2. *pulls* what changed on the server (only people with a newer change number, or
   everything after a reconnect) and makes the folders equal to it, with the gallery's
   own crash-safe writes (a new person appears by one folder rename; photos added to a
   person are journalled and taken back by ``Gallery.recover`` after a crash).

Conflicts: the server wins. A local change to a person the server changed since this kiosk
last synced is dropped, and the server's version replaces it. Deletion wins over every
other change: a person deleted anywhere is deleted everywhere, their embeddings and every
fine-tuned model that learned from them with them, and a kiosk that was away never brings
them back (the server keeps a tombstone of each deleted id).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from model.core import files, registry
from model.naming import display_name, folder_name
from model.school.database import CONNECT_TIMEOUT_S, connect_seconds, open_pool
from model.school.gallery import (
    CACHE_DIR,
    CROP_SUFFIX,
    PERSON_FILE,
    Gallery,
    normalize_student_id_or_none,
)
from model.settings import Settings

#: The channel ``NOTIFY`` speaks on after every gallery change (payload: the new version).
GALLERY_CHANNEL = "faceatt_gallery"
#: Version of the gallery tables (``gallery_meta.schema_version``).
SCHEMA_VERSION = 1
#: The kiosk's record of what it and the server last agreed on (hidden: never a person).
STATE_FILE = ".sync.json"
#: Any fixed number (not the register's): app instances creating the tables take turns.
_SCHEMA_LOCK = 180_419
#: Seconds after which the thread looks through the folders even when no modification
#: time moved (a file system's clock ticks in milliseconds: a change in the same tick as
#: the last look would otherwise wait for the next one).
RESCAN_S = 30.0
#: A crop file named by its content (``Gallery.add_crops``): the name is the key.
_HASHED_NAME = re.compile(r"[0-9a-f]{16}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gallery_meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS gallery_people (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    student_id   TEXT,
    enrolled_at  TIMESTAMPTZ,
    consent_at   TIMESTAMPTZ,
    changed      BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS gallery_people_changed ON gallery_people(changed);
CREATE TABLE IF NOT EXISTS gallery_crops (
    person_id  TEXT NOT NULL REFERENCES gallery_people(id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    jpeg       BYTEA NOT NULL,
    PRIMARY KEY (person_id, key)
);
CREATE TABLE IF NOT EXISTS gallery_embeddings (
    person_id  TEXT NOT NULL,
    key        TEXT NOT NULL,
    model      TEXT NOT NULL,
    vector     BYTEA NOT NULL,
    PRIMARY KEY (person_id, key, model),
    FOREIGN KEY (person_id, key) REFERENCES gallery_crops(person_id, key) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS gallery_models (
    name     TEXT PRIMARY KEY,
    card     JSONB NOT NULL,
    model    BYTEA NOT NULL,
    sha1     TEXT NOT NULL,
    changed  BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS gallery_removed (
    kind     TEXT NOT NULL CHECK (kind IN ('person', 'model')),
    id       TEXT NOT NULL,
    changed  BIGINT NOT NULL,
    PRIMARY KEY (kind, id)
);
"""


class GalleryOffline(ConnectionError):
    """The shared gallery's database is out of reach; the kiosk carries on with its folders."""


@dataclass(frozen=True)
class PersonState:
    """One person as the server and a kiosk agree on: what a change changes."""

    name: str
    student_id: str | None
    crops: frozenset[str]  # crop keys: the first 16 hex digits of the JPEG's SHA-1
    enrolled_at: str | None = field(default=None, compare=False)
    consent_at: str | None = field(default=None, compare=False)

    @property
    def label(self) -> str:
        return display_name(self.name, self.student_id)

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "student_id": self.student_id, "crops": sorted(self.crops)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PersonState:
        return cls(str(data["name"]), data.get("student_id"), frozenset(data.get("crops", [])))


@dataclass(frozen=True)
class SyncReport:
    """What one pass did: person ids published and applied here, models, the version now."""

    version: int
    full: bool
    published: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()  # local changes the server's newer ones replaced
    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    models_published: tuple[str, ...] = ()
    models_pulled: tuple[str, ...] = ()
    models_removed: tuple[str, ...] = ()
    active_changed: bool = False

    @property
    def changed_here(self) -> bool:
        """Whether the kiosk's folders or models changed."""
        return bool(self.created or self.updated or self.removed or self.models_pulled
                     or self.models_removed or self.active_changed)

    @property
    def changed(self) -> bool:
        """Whether anything changed, here or on the server."""
        return self.changed_here or bool(self.published or self.models_published)


@dataclass(frozen=True)
class SyncStatus:
    """What a page shows about the shared gallery: reachable?, when last in step, why not."""

    online: bool
    last_sync: datetime | None  # UTC, the last time this kiosk was known to be up to date
    version: int  # the server's change number this kiosk last applied
    error: str | None = None


@dataclass(frozen=True)
class MigrationCounts:
    """What ``migrate_gallery`` found: people, crops and models on the server for this
    gallery's people, and how many of them this run copied (0 on a second run)."""

    people: int
    crops: int
    models: int
    copied_people: int
    copied_crops: int
    copied_models: int


@dataclass
class _Local:
    folder: Path
    state: PersonState
    crop_files: dict[str, Path]


@dataclass
class _Snapshot:
    """What the kiosk and the server last agreed on (``STATE_FILE``)."""

    server: str = ""  # the database's instance id: another database, another snapshot
    version: int = 0
    people: dict[str, PersonState] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)  # unit name -> SHA-1 of its file
    active: str | None = None  # unit name of the active model, None: the shipped one


class _Bump:
    """The transaction's new version, taken on first use (one per transaction).

    ``lock()`` first: every writer holds the version row from its first read to its
    commit, so writers take turns and each reads what the one before it committed (one
    lock, always taken first: no deadlock between two kiosks publishing at once).
    """

    def __init__(self, store: GalleryStore, db: psycopg.Connection[Any]) -> None:
        self.store, self.db, self.version, self.locked = store, db, 0, False

    def lock(self) -> None:
        if not self.locked:
            self.db.execute("SELECT value FROM gallery_meta WHERE key = 'version' FOR UPDATE")
            self.locked = True

    def __call__(self) -> int:
        if not self.version:
            self.lock()
            self.version = self.store.bump(self.db)
        return self.version


class GalleryStore:
    """The gallery tables in a PostgreSQL database (``url``), behind a small pool."""

    def __init__(self, url: str, *, pool_size: int = 2,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        self.url = url
        self.connect_timeout_s = float(connect_timeout_s)
        self._pool = open_pool(url, name="faceatt-gallery", size=pool_size,
                               connect_timeout_s=connect_timeout_s)
        self._ready = False
        self._lock = threading.Lock()

    def close(self) -> None:
        self._pool.close()

    @contextlib.contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[psycopg.Connection[Any]]:
        """A connection in one transaction (a consistent snapshot when ``read_only``);
        ``GalleryOffline`` when the server does not answer."""
        try:
            with self._pool.connection() as connection:
                if not self._ready:
                    self._create_tables(connection)
                if read_only:
                    # psycopg has begun the transaction; this must be its first statement.
                    connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    try:
                        yield connection
                    finally:
                        with contextlib.suppress(psycopg.Error):
                            connection.rollback()
                else:
                    with connection.transaction():
                        yield connection
        except psycopg.OperationalError as error:  # a PoolTimeout is one too
            raise GalleryOffline(f"The shared gallery's database does not answer: {error}"
                                 ) from error

    def version(self, connection: psycopg.Connection[Any]) -> tuple[str, int]:
        """(the database's instance id, its gallery version)."""
        rows = dict(connection.execute(
            "SELECT key, value FROM gallery_meta WHERE key IN ('instance', 'version')").fetchall())
        return rows.get("instance", ""), int(rows.get("version", 0))

    def bump(self, connection: psycopg.Connection[Any]) -> int:
        """The next version, taken (and locked until commit) in this transaction, with the
        notification PostgreSQL sends when it commits."""
        row = connection.execute(
            "UPDATE gallery_meta SET value = (value::bigint + 1)::text WHERE key = 'version'"
            " RETURNING value::bigint").fetchone()
        version = int(row[0]) if row else 1
        connection.execute("SELECT pg_notify(%s, %s)", (GALLERY_CHANNEL, str(version)))
        return version

    def _create_tables(self, connection: psycopg.Connection[Any]) -> None:
        with self._lock, connection.transaction():
            if self._ready:
                return
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            connection.execute(_SCHEMA)
            row = connection.execute(
                "SELECT value FROM gallery_meta WHERE key = 'schema_version'").fetchone()
            if row is not None and int(row[0]) > SCHEMA_VERSION:
                raise ValueError(f"The shared gallery was made by a newer version of this app "
                                 f"(schema {row[0]}): update this app first.")
            for key, value in (("schema_version", str(SCHEMA_VERSION)), ("version", "0"),
                               ("instance", uuid.uuid4().hex), ("active_model", ""),
                               ("active_changed", "0")):
                connection.execute("INSERT INTO gallery_meta (key, value) VALUES (%s, %s)"
                                   " ON CONFLICT (key) DO NOTHING", (key, value))
        self._ready = True


class GallerySync:
    """Keeps the folders of ``gallery`` (and the models in ``models_dir``) equal to the
    shared gallery in the PostgreSQL database at ``url``.

    ``sync()`` runs one pass now (tests, the CLI); ``start()`` runs them in a background
    thread: LISTEN for the hint, read the version every ``poll_s`` seconds (lower: a change
    seen sooner, one tiny query more per kiosk and second), look at the folders as often
    (a few ``stat`` calls; a change found is published), and compare everything after
    every reconnection. ``on_model_change()`` is called after another model became active
    here (the app reloads its network). ``status()`` is for a page.
    """

    def __init__(self, gallery: Gallery, url: str, *, models_dir: str | Path | None = None,
                 state_path: str | Path | None = None,
                 on_model_change: Callable[[], object] | None = None,
                 poll_s: float = 1.0, retry_s: float = 2.0,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        self.gallery = gallery
        self.url = url
        self.models_dir = Path(models_dir) if models_dir is not None else None
        self.state_path = Path(state_path) if state_path else gallery.root / STATE_FILE
        self.on_model_change = on_model_change
        self.poll_s = float(poll_s)
        self.retry_s = float(retry_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self.store = GalleryStore(url, connect_timeout_s=connect_timeout_s)
        self._pass_lock = threading.Lock()
        self._stop = threading.Event()
        self._nudge = threading.Event()
        self._thread: threading.Thread | None = None
        self._online = False
        self._last_sync: datetime | None = None
        self._error: str | None = None
        self._signature: tuple[object, ...] | None = None
        self._caches_sent: dict[str, int] = {}  # embedding cache file -> mtime last sent
        self._signed_at = 0.0
        self._failures = 0

    @classmethod
    def for_settings(cls, settings: Settings, gallery: Gallery,
                     on_model_change: Callable[[], object] | None = None) -> GallerySync:
        """The sync of an app's gallery and models with ``settings.database_url``."""
        if not settings.database_url:
            raise ValueError("No shared database is configured (FACEATT_DATABASE_URL).")
        return cls(gallery, settings.database_url, models_dir=settings.models_dir,
                   on_model_change=on_model_change, poll_s=settings.gallery_poll_s)

    # ----- one pass ---------------------------------------------------------------------

    def sync(self, *, full: bool = False) -> SyncReport:
        """Publish the local changes, then apply the server's (all of them when ``full``
        or when this kiosk never synced with this database). ``GalleryOffline`` when the
        database does not answer: the local changes wait and go out with the next pass."""
        with self._pass_lock:
            try:
                report = self._pass(full=full)
            except GalleryOffline as error:
                self._online, self._error = False, str(error)
                raise
            self._online, self._error = True, None
            self._last_sync = datetime.now(UTC)
            return report

    def publish(self) -> SyncReport:
        """``sync()`` after a local change (the same pass: publishing alone would leave
        this kiosk's record of the server's version behind)."""
        return self.sync()

    def status(self) -> SyncStatus:
        return SyncStatus(online=self._online, last_sync=self._last_sync,
                          version=self._read_snapshot().version, error=self._error)

    def changed(self) -> None:
        """Something changed here (the app enrolled, renamed, removed or activated): the
        background thread publishes it now rather than at its next look."""
        self._nudge.set()

    def _pass(self, *, full: bool) -> SyncReport:
        # Taken before looking: a change made while this pass runs is seen by the next look.
        signature = self._local_signature()
        snapshot = self._read_snapshot()
        local = self._scan()
        models = self._local_models()
        with self.store.transaction() as db:
            instance, server_version = self.store.version(db)
            if instance != snapshot.server or server_version < snapshot.version:
                # Another database, or one restored from an older backup: agree on nothing.
                snapshot = _Snapshot(server=instance)
                full = True
            bump = _Bump(self.store, db)
            published, refused = self._publish_people(db, bump, snapshot, local)
            models_published = self._publish_models(db, bump, snapshot, models)
            self._publish_embeddings(db, local)
        for pid in published:
            if local is not None and pid in local:
                snapshot.people[pid] = local[pid].state
            else:
                snapshot.people.pop(pid, None)
        self._write_snapshot(snapshot)
        with self.store.transaction(read_only=True) as db:
            instance, server_version = self.store.version(db)
            if not full and not refused and server_version == snapshot.version:
                report = SyncReport(version=server_version, full=False)
            else:
                report = self._pull(db, snapshot, full=full, version=server_version)
        self._signature, self._signed_at = signature, time.monotonic()
        return replace(report, published=tuple(published), refused=tuple(refused),
                       models_published=tuple(models_published))

    # ----- publishing -------------------------------------------------------------------

    def _publish_people(self, db: psycopg.Connection[Any], bump: _Bump, snapshot: _Snapshot,
                        local: dict[str, _Local] | None) -> tuple[list[str], list[str]]:
        """Write the people that changed here since ``snapshot`` (one transaction, one new
        version for all). Returns (published ids, refused ids: the server's won)."""
        if local is None:
            return [], []  # the gallery folder is not there: publish nothing, not deletions
        changed = [pid for pid, person in local.items()
                   if snapshot.people.get(pid) != person.state]
        gone = [pid for pid in snapshot.people if pid not in local]
        if not changed and not gone:
            return [], []
        ids = changed + gone
        bump.lock()
        server = {row[0]: int(row[1]) for row in db.execute(
            "SELECT id, changed FROM gallery_people WHERE id = ANY(%s)", (ids,))}
        removed = {row[0] for row in db.execute(
            "SELECT id FROM gallery_removed WHERE kind = 'person' AND id = ANY(%s)", (ids,))}
        published, refused = [], []
        for pid in gone:
            published.append(pid)  # a deletion always wins (and is never undone)
            if pid in server:
                _delete_person(db, pid, bump())
        for pid in changed:
            if pid in removed or server.get(pid, 0) > snapshot.version:
                refused.append(pid)  # deleted there, or changed there since we last agreed
                continue
            _write_person(db, pid, local[pid], bump())
            published.append(pid)
        return published, refused

    def _publish_models(self, db: psycopg.Connection[Any], bump: _Bump, snapshot: _Snapshot,
                        models: tuple[dict[str, Path], str | None] | None) -> list[str]:
        """Upload new local models, delete removed ones, and publish another active one."""
        if models is None or self.models_dir is None:
            return []
        units, active = models
        if units.keys() == snapshot.models.keys() and active == snapshot.active:
            return []
        bump.lock()
        published: list[str] = []
        server = {row[0] for row in db.execute("SELECT name FROM gallery_models")}
        removed = {row[0] for row in db.execute(
            "SELECT id FROM gallery_removed WHERE kind = 'model' AND id = ANY(%s)",
            (sorted(units),))}
        for name in sorted(snapshot.models.keys() - units.keys()):
            if name in server:
                _delete_model(db, name, bump())
                server.discard(name)
                published.append(name)
            snapshot.models.pop(name, None)
        for name, path in sorted(units.items()):
            if name in snapshot.models or name in server or name in removed:
                continue
            data = path.read_bytes()
            sha1 = hashlib.sha1(data).hexdigest()
            db.execute("INSERT INTO gallery_models (name, card, model, sha1, changed)"
                       " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING",
                       (name, Jsonb(registry.read_card(path) or {}), data, sha1, bump()))
            snapshot.models[name] = sha1
            server.add(name)
            published.append(name)
        if active != snapshot.active and (active is None or active in server):
            row = dict(db.execute("SELECT key, value FROM gallery_meta WHERE key IN"
                                  " ('active_model', 'active_changed')").fetchall())
            if int(row.get("active_changed", 0)) <= snapshot.version:
                db.execute("UPDATE gallery_meta SET value = CASE key WHEN 'active_model'"
                           " THEN %s ELSE %s END WHERE key IN ('active_model', 'active_changed')",
                           (active or "", str(bump())))
                snapshot.active = active
                published.append(f"active:{active or 'base'}")
        return published

    # ----- pulling ----------------------------------------------------------------------

    def _pull(self, db: psycopg.Connection[Any], snapshot: _Snapshot, *, full: bool,
              version: int) -> SyncReport:
        """Make the folders and models equal to the server (as of ``version``)."""
        since = 0 if full else snapshot.version
        rows = db.execute("SELECT id, name, student_id, enrolled_at, consent_at"
                          " FROM gallery_people WHERE changed > %s", (since,)).fetchall()
        keys: dict[str, set[str]] = {row[0]: set() for row in rows}
        for pid, key in db.execute("SELECT c.person_id, c.key FROM gallery_crops c JOIN"
                                   " gallery_people p ON p.id = c.person_id"
                                   " WHERE p.changed > %s", (since,)):
            keys[pid].add(key)
        server = {row[0]: PersonState(row[1], row[2], frozenset(keys[row[0]]),
                                      _iso(row[3]), _iso(row[4])) for row in rows}
        created: list[str] = []
        updated: list[str] = []
        removed: list[str] = []
        scanned = self._scan()
        if scanned is None and self.gallery.root.is_dir():
            server = {}  # a folder cannot be read: leave the people for the next pass
        local = scanned or {}  # no gallery folder yet: everyone is new here
        doomed = {row[0] for row in db.execute(
            "SELECT id FROM gallery_removed WHERE kind = 'person' AND id = ANY(%s)",
            (sorted(set(local) | set(snapshot.people)),))}
        if full:  # people we agreed on that the server no longer has
            doomed |= {row[0] for row in db.execute(
                "SELECT id FROM unnest(%s::text[]) AS agreed(id) WHERE NOT EXISTS"
                " (SELECT 1 FROM gallery_people p WHERE p.id = agreed.id)",
                (sorted(snapshot.people),))}
        active_before = self._active_model()
        forgotten: list[str] = []
        fetched: dict[tuple[str, str], str] = {}  # (person, crop key) -> SHA-1 of the file
        try:
            for pid in doomed:
                if pid in local and (models := self._remove_local(pid, local[pid])) is not None:
                    removed.append(pid)
                    forgotten += models
                snapshot.people.pop(pid, None)
            for pid, person in server.items():
                outcome = self._apply_person(db, pid, person, local.get(pid),
                                             agreed=snapshot.people.get(pid), fetched=fetched)
                if outcome == "created":
                    created.append(pid)
                elif outcome == "updated":
                    updated.append(pid)
                if outcome != "skipped":
                    snapshot.people[pid] = person
        finally:
            # Whatever was applied is recorded, even when the server went away meanwhile:
            # a person written here but not recorded would make a deletion made here next
            # look like someone this kiosk lacks, and the next pass would bring them back.
            self._write_snapshot(snapshot)
        self._pull_embeddings(db, fetched)
        pulled, dropped = self._pull_models(db, snapshot)
        activated = self._active_model() != active_before  # on_model_change() then
        snapshot.version = version
        self._write_snapshot(snapshot)
        if activated and self.on_model_change is not None:
            self.on_model_change()
        return SyncReport(version=version, full=full, created=tuple(created),
                          updated=tuple(updated), removed=tuple(removed),
                          models_pulled=tuple(pulled),
                          models_removed=tuple(forgotten + dropped),
                          active_changed=activated)

    def _apply_person(self, db: psycopg.Connection[Any], pid: str, person: PersonState,
                      seen: _Local | None, *, agreed: PersonState | None,
                      fetched: dict[tuple[str, str], str]) -> str:
        """Make one person's folder equal to the server's: "created", "updated",
        "unchanged" or "skipped": changed here since ``agreed`` (what the kiosk and the
        server last agreed on) while the server still has ``agreed``, e.g. during this
        pass: that change goes out with the next one."""
        if seen is not None and seen.state == person:
            return "unchanged"
        with self.gallery.write_lock():
            current = self._recheck(pid, seen)
            if agreed is not None and agreed == person and (current is None or
                                                            current.state != agreed):
                return "skipped"
            if current is None:
                if agreed is not None:
                    return "skipped"  # removed here: the deletion goes out next (and wins)
                crops = _fetch_crops(db, pid, person.crops)
                self._create_folder(pid, person, crops)
                fetched.update(_digests(pid, crops))
                return "created"
            missing = person.crops - current.crop_files.keys()
            if missing:
                crops = _fetch_crops(db, pid, missing)
                fetched.update(_digests(pid, crops))
                # The gallery's own journalled addition: ``recover`` takes it back after a crash.
                self.gallery._add_to_person(current.folder, {
                    f"{key}{CROP_SUFFIX}": data for key, data in crops.items()})
            extra = [path for key, path in current.crop_files.items() if key not in person.crops]
            for path in extra:
                path.unlink(missing_ok=True)
            self._write_card(current.folder, pid, person)
            if current.state.label != person.label:
                target = self.gallery.root / folder_name(person.label)
                if target != current.folder and not target.exists():
                    os.rename(current.folder, target)
            if extra:
                self.gallery._purge_cache()  # the removed photos' embeddings go too
        return "updated"

    def _remove_local(self, pid: str, seen: _Local) -> list[str] | None:
        """Delete a person the server no longer has, with every fine-tuned model here
        that learned from their face (returned; None when the person was gone already)."""
        with self.gallery.write_lock():
            current = self._recheck(pid, seen)
            if current is None:
                return None
            files.remove_tree(current.folder)
            self.gallery._purge_cache()  # their embeddings go with them
            if self.models_dir is None:
                return []
            return [registry.unit_name(path) for path in registry.forget_person_models(
                self.models_dir, pid, [current.state.label])]

    def _pull_embeddings(self, db: psycopg.Connection[Any],
                         fetched: dict[tuple[str, str], str]) -> None:
        """Hand the server's embeddings of the crops just written here to the gallery's
        cache (per model), so this kiosk does not run its network over them again."""
        if not fetched:
            return
        pids, keys = zip(*fetched, strict=True)
        vectors: dict[str, dict[str, np.ndarray]] = {}
        for pid, key, model, vector in db.execute(
                "SELECT e.person_id, e.key, e.model, e.vector FROM gallery_embeddings e"
                " JOIN unnest(%s::text[], %s::text[]) AS f(person_id, key)"
                " ON f.person_id = e.person_id AND f.key = e.key", (list(pids), list(keys))):
            vectors.setdefault(model, {})[fetched[(pid, key)]] = np.frombuffer(
                bytes(vector), dtype="<f4")
        for model, found in vectors.items():
            self.gallery.remember_embeddings(model, found)

    def _publish_embeddings(self, db: psycopg.Connection[Any],
                            local: dict[str, _Local] | None) -> None:
        """Send the embeddings in this kiosk's cache files that changed since last sent
        (a kiosk joining later, or back after days away, then need not compute them)."""
        cache_dir = self.gallery.root / CACHE_DIR
        if local is None or not cache_dir.is_dir():
            return
        owners = {key: pid for pid, person in local.items() for key in person.state.crops}
        for path in sorted(cache_dir.glob("*.npz")):
            with contextlib.suppress(OSError, ValueError, KeyError):  # a cache is only a cache
                stamp = path.stat().st_mtime_ns
                if self._caches_sent.get(path.name) == stamp:
                    continue
                with np.load(path, allow_pickle=False) as cache:
                    cached = dict(zip((str(k)[:16] for k in cache["keys"]),
                                      np.asarray(cache["vectors"], dtype="<f4"), strict=True))
                model = path.stem
                there = {row[0] for row in db.execute(
                    "SELECT key FROM gallery_embeddings WHERE model = %s", (model,))}
                rows = [(owners[key], key, model, vector.tobytes(), owners[key], key)
                        for key, vector in cached.items() if key in owners and key not in there]
                if rows:
                    with db.cursor() as cursor:
                        cursor.executemany(
                            "INSERT INTO gallery_embeddings (person_id, key, model, vector)"
                            " SELECT %s, %s, %s, %s WHERE EXISTS (SELECT 1 FROM gallery_crops"
                            " WHERE person_id = %s AND key = %s) ON CONFLICT DO NOTHING", rows)
                self._caches_sent[path.name] = stamp

    def _pull_models(self, db: psycopg.Connection[Any],
                     snapshot: _Snapshot) -> tuple[list[str], list[str]]:
        """Download the server's models this kiosk lacks, delete those it no longer has,
        and activate the server's active one. Returns (pulled, deleted)."""
        if self.models_dir is None:
            return [], []
        meta = dict(db.execute("SELECT key, value FROM gallery_meta WHERE key = 'active_model'"
                               ).fetchall())
        server_active = meta.get("active_model") or None
        server = {row[0]: row[1] for row in db.execute("SELECT name, sha1 FROM gallery_models")}
        units, active = self._local_models() or ({}, None)
        removed = {row[0] for row in db.execute(
            "SELECT id FROM gallery_removed WHERE kind = 'model' AND id = ANY(%s)",
            (sorted(units),))}
        pulled, dropped = [], []
        for name, path in units.items():
            # Only models the server had (not one made here a moment ago, still to publish).
            if name not in server and (name in snapshot.models or name in removed):
                registry.delete_unit(self.models_dir, path)
                dropped.append(name)
        for name, sha1 in server.items():
            if name in units and snapshot.models.get(name) == sha1:
                continue
            if name in units and hashlib.sha1(units[name].read_bytes()).hexdigest() == sha1:
                snapshot.models[name] = sha1
                continue
            row = db.execute("SELECT card, model FROM gallery_models WHERE name = %s",
                             (name,)).fetchone()
            if row is None:
                continue
            self._write_unit(name, row[1], row[0], replace=name in units)
            pulled.append(name)
            snapshot.models[name] = sha1
        snapshot.models = {n: s for n, s in snapshot.models.items() if n in server}
        if server_active != active and (server_active is None or server_active in server):
            target = (self.models_dir / server_active / registry.MODEL_FILE
                      if server_active else None)
            current = self.models_dir / active / registry.MODEL_FILE if active else None
            registry.activate_model(self.models_dir, target, previous=current)
        snapshot.active = server_active
        return pulled, dropped

    # ----- the folders ------------------------------------------------------------------

    def _scan(self) -> dict[str, _Local] | None:
        """Every person in the folders by stable id (None when the gallery folder is not
        there, or a folder cannot be read: then no deletion may be published)."""
        root = self.gallery.root
        if not root.is_dir():
            return None
        found: dict[str, _Local] = {}
        ids: dict[str, str] | None = None
        for folder in sorted(root.iterdir()):
            if files.is_hidden(folder) or not folder.is_dir():
                continue
            try:
                person = _read_folder(folder)
            except OSError:
                return None
            if person is None:
                continue
            pid, local = person
            if not pid:
                ids = ids if ids is not None else self.gallery.person_ids()
                pid = ids.get(folder.name, "")
            if pid and pid not in found:
                found[pid] = local
        return found

    def _recheck(self, pid: str, seen: _Local | None) -> _Local | None:
        """The person's folder as it is now (under the lock), found by id."""
        if seen is not None:
            with contextlib.suppress(OSError):
                again = _read_folder(seen.folder)
                if again is not None and again[0] == pid:
                    return again[1]
        return (self._scan() or {}).get(pid)

    def _create_folder(self, pid: str, person: PersonState, crops: dict[str, bytes]) -> None:
        """A new person, built hidden and published by one rename (as ``Gallery.add_crops``
        does), keeping the server's id, times and crop files byte for byte."""
        root = self.gallery.root
        target = root / folder_name(person.label)
        n = 1
        while target.exists():
            n += 1
            target = root / f"{folder_name(person.label)}~{n}"
        with files.staging_folder(root) as staging:
            for key, data in crops.items():
                (staging / f"{key}{CROP_SUFFIX}").write_bytes(data)
            (staging / PERSON_FILE).write_bytes(_card_bytes(_card({}, pid, person)))
            files.publish_folder(staging, target)

    def _write_card(self, folder: Path, pid: str, person: PersonState) -> None:
        try:
            info = json.loads((folder / PERSON_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            info = {}
        info = info if isinstance(info, dict) else {}
        card = _card(info, pid, person)
        if card != info:
            files.atomic_write_bytes(folder / PERSON_FILE, _card_bytes(card))

    def _write_unit(self, name: str, model: bytes, card: object, *, replace: bool) -> None:
        """A model from the server, published as one unit folder (model and card)."""
        assert self.models_dir is not None
        target = self.models_dir / name
        if replace and target.exists():
            registry.delete_unit(self.models_dir, target / registry.MODEL_FILE)
        with files.staging_folder(self.models_dir) as staging:
            (staging / registry.MODEL_FILE).write_bytes(model)
            registry.sidecar_path(staging / registry.MODEL_FILE).write_bytes(
                json.dumps(card, indent=2, default=str).encode("utf-8"))
            files.publish_folder(staging, target)

    def _local_models(self) -> tuple[dict[str, Path], str | None] | None:
        """(unit name -> model file, the active unit's name or None) in ``models_dir``."""
        if self.models_dir is None:
            return None
        units = {registry.unit_name(path): path for path in registry.model_units(self.models_dir)}
        return units, _active_unit(self.models_dir)

    def _active_model(self) -> str | None:
        return _active_unit(self.models_dir) if self.models_dir is not None else None

    def _local_signature(self) -> tuple[object, ...]:
        """Modification times of the gallery folder, each person folder and the models:
        any enrollment, photo, rename, removal or new model changes one of them."""
        stamps: list[object] = []
        for folder in (self.gallery.root, self.models_dir):
            if folder is None:
                continue
            try:
                entries = list(os.scandir(folder))
                stamps.append(folder.stat().st_mtime_ns)
            except OSError:
                stamps.append(None)
                continue
            for entry in entries:
                with contextlib.suppress(OSError):
                    if entry.name == STATE_FILE:
                        continue
                    stamps.append((entry.name, entry.stat(follow_symlinks=False).st_mtime_ns))
        return tuple(sorted(stamps, key=repr))

    def local_changed(self) -> bool:
        """Whether the folders or models look changed since the last pass (cheap), or the
        last pass is ``RESCAN_S`` old."""
        return (self._local_signature() != self._signature
                or time.monotonic() - self._signed_at > RESCAN_S)

    # ----- the kiosk's record -----------------------------------------------------------

    def _read_snapshot(self) -> _Snapshot:
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
            return _Snapshot(
                server=str(data.get("server", "")), version=int(data.get("version", 0)),
                people={pid: PersonState.from_json(p) for pid, p in data["people"].items()},
                models={str(k): str(v) for k, v in data.get("models", {}).items()},
                active=data.get("active") or None)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return _Snapshot()

    def _write_snapshot(self, snapshot: _Snapshot) -> None:
        data = {"server": snapshot.server, "version": snapshot.version,
                "people": {pid: p.to_json() for pid, p in sorted(snapshot.people.items())},
                "models": dict(sorted(snapshot.models.items())), "active": snapshot.active}
        encoded = json.dumps(data, indent=1).encode("utf-8")
        with contextlib.suppress(OSError):
            if self.state_path.read_bytes() == encoded:
                return  # a pass that changed nothing writes nothing
        files.atomic_write_bytes(self.state_path, encoded)

    # ----- the background thread --------------------------------------------------------

    def start(self) -> GallerySync:
        """Run passes in a background thread until ``stop()``; returns self."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="gallery-sync", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._nudge.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.store.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except (psycopg.Error, GalleryOffline, OSError) as error:
                self._online, self._error = False, str(error)
            except Exception as error:  # a kiosk keeps working without the shared gallery
                self._online, self._error = False, f"{type(error).__name__}: {error}"
            # A dropped connection is tried again at once; a server that stays away, every
            # ``retry_s`` seconds (``_listen`` counts from 0 again once it is in step).
            self._failures += 1
            self._stop.wait(0.2 if self._failures == 1 else self.retry_s)

    def _listen(self) -> None:
        """One connection's life: LISTEN, a full pass, then a look every ``poll_s``."""
        with psycopg.connect(self.url, autocommit=True,
                             connect_timeout=connect_seconds(self.connect_timeout_s),
                             application_name="faceatt-gallery-listen") as connection:
            connection.execute(f"LISTEN {GALLERY_CHANNEL}")
            self.sync(full=True)  # whatever a dropped connection missed
            self._failures = 0
            next_look = time.monotonic() + self.poll_s
            while not self._stop.is_set():
                hinted = any(True for _ in connection.notifies(
                    timeout=min(0.25, self.poll_s), stop_after=1))
                nudged = self._nudge.is_set()
                if not (hinted or nudged or time.monotonic() >= next_look):
                    continue
                self._nudge.clear()
                next_look = time.monotonic() + self.poll_s
                row = connection.execute(
                    "SELECT value::bigint FROM gallery_meta WHERE key = 'version'").fetchone()
                if row is None or int(row[0]) != self._read_snapshot().version \
                        or nudged or self.local_changed():
                    self.sync()
                else:
                    self._online, self._error = True, None
                    self._last_sync = datetime.now(UTC)


# ----- one copy, once --------------------------------------------------------------------

def migrate_gallery(gallery: Gallery, url: str, *, models_dir: str | Path | None = None
                    ) -> MigrationCounts:
    """Copy a gallery of folders (and, with ``models_dir``, its fine-tuned models and which
    one is active) into the shared database at ``url``. Idempotent: a person (by stable
    id) or model already there is left as the server has it, so a second run copies
    nothing. Afterwards every local person must be on the server with all their crops
    (``ValueError`` otherwise). Returns the counts."""
    sync = GallerySync(gallery, url, models_dir=models_dir,
                       state_path=gallery.root / f".migrate-{uuid.uuid4().hex}.json")
    try:
        local = sync._scan()
        if local is None:
            raise ValueError(f"There is no gallery at {gallery.root}.")
        models = sync._local_models()
        fresh = _Snapshot()
        with sync.store.transaction() as db:
            fresh.server, _ = sync.store.version(db)
            before = {row[0]: int(row[1]) for row in db.execute(
                "SELECT person_id, count(*) FROM gallery_crops WHERE person_id = ANY(%s)"
                " GROUP BY person_id", (list(local),))}
            bump = _Bump(sync.store, db)
            published, _ = sync._publish_people(db, bump, fresh, local)
            copied_models = [m for m in sync._publish_models(db, bump, fresh, models)
                             if not m.startswith("active:")]
        with sync.store.transaction(read_only=True) as db:
            on_server = {row[0]: int(row[1]) for row in db.execute(
                "SELECT p.id, count(c.key) FROM gallery_people p LEFT JOIN gallery_crops c"
                " ON c.person_id = p.id WHERE p.id = ANY(%s) GROUP BY p.id", (list(local),))}
            model_names = {row[0] for row in db.execute("SELECT name FROM gallery_models")}
        missing = [p.state.label for pid, p in local.items() if pid not in on_server]
        if missing:
            raise ValueError(f"{len(missing)} people did not reach the shared gallery "
                             f"(first: {missing[0]!r}); run the copy again.")
        short = [p.state.label for pid, p in local.items()
                 if pid in published and on_server[pid] != len(p.state.crops)]
        if short:
            raise ValueError(f"The shared gallery does not hold every photo of {short[0]!r}.")
        local_models = set(models[0]) if models is not None else set()
        return MigrationCounts(
            people=len(on_server), crops=sum(on_server.values()),
            models=len(local_models & model_names),
            copied_people=len(published),
            copied_crops=sum(on_server[pid] - before.get(pid, 0) for pid in published),
            copied_models=len(copied_models))
    finally:
        sync.store.close()
        sync.state_path.unlink(missing_ok=True)


# ----- helpers ---------------------------------------------------------------------------

def _read_folder(folder: Path) -> tuple[str, _Local] | None:
    """(stable id or "", the person) of a person folder; None when it holds no photo."""
    crop_files: dict[str, Path] = {}
    for path in folder.iterdir():
        if path.suffix != CROP_SUFFIX or files.is_hidden(path):
            continue
        key = path.stem
        if not _HASHED_NAME.fullmatch(key):  # a photo put there by hand
            try:
                key = hashlib.sha1(path.read_bytes()).hexdigest()[:16]
            except FileNotFoundError:
                continue
        crop_files.setdefault(key, path)
    if not crop_files:
        return None
    try:
        info = json.loads((folder / PERSON_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        info = {}
    info = info if isinstance(info, dict) else {}
    name = info.get("name") if isinstance(info.get("name"), str) and info.get("name") \
        else folder.name
    state = PersonState(name=str(name),
                        student_id=normalize_student_id_or_none(info.get("student_id")),
                        crops=frozenset(crop_files),
                        enrolled_at=_text(info.get("enrolled_at")),
                        consent_at=_text(info.get("consent_at")))
    pid = info.get("id") if isinstance(info.get("id"), str) else ""
    return str(pid), _Local(folder, state, crop_files)


def _write_person(db: psycopg.Connection[Any], pid: str, person: _Local, version: int) -> None:
    """One person on the server as in the folder: their row, then the crops it lacks
    (read from disk only then) and none it no longer has."""
    state = person.state
    db.execute("INSERT INTO gallery_people (id, name, student_id, enrolled_at, consent_at,"
               " changed) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET"
               " name = excluded.name, student_id = excluded.student_id,"
               " enrolled_at = excluded.enrolled_at, consent_at = excluded.consent_at,"
               " changed = excluded.changed",
               (pid, state.name, state.student_id, _time(state.enrolled_at),
                _time(state.consent_at), version))
    db.execute("DELETE FROM gallery_crops WHERE person_id = %s AND NOT (key = ANY(%s))",
               (pid, sorted(state.crops)))
    there = {row[0] for row in db.execute(
        "SELECT key FROM gallery_crops WHERE person_id = %s", (pid,))}
    fresh = []
    for key in sorted(state.crops - there):
        with contextlib.suppress(FileNotFoundError):  # removed meanwhile: the next pass
            fresh.append((pid, key, person.crop_files[key].read_bytes()))
    if fresh:
        with db.cursor() as cursor:
            cursor.executemany("INSERT INTO gallery_crops (person_id, key, jpeg)"
                               " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING", fresh)


def _delete_person(db: psycopg.Connection[Any], pid: str, version: int) -> None:
    """Delete a person (crops and embeddings cascade), every model that learned from them,
    and remember the id, so a kiosk that was away never brings them back."""
    db.execute("DELETE FROM gallery_people WHERE id = %s", (pid,))
    db.execute("INSERT INTO gallery_removed (kind, id, changed) VALUES ('person', %s, %s)"
               " ON CONFLICT (kind, id) DO UPDATE SET changed = excluded.changed", (pid, version))
    for (name,) in db.execute(
            "SELECT name FROM gallery_models WHERE card -> 'training' -> %s ? %s",
            (registry.TRAINED_ON_IDS, pid)).fetchall():
        _delete_model(db, name, version)


def _delete_model(db: psycopg.Connection[Any], name: str, version: int) -> None:
    db.execute("DELETE FROM gallery_models WHERE name = %s", (name,))
    db.execute("INSERT INTO gallery_removed (kind, id, changed) VALUES ('model', %s, %s)"
               " ON CONFLICT (kind, id) DO UPDATE SET changed = excluded.changed",
               (name, version))
    db.execute("UPDATE gallery_meta SET value = CASE key WHEN 'active_model' THEN ''"
               " ELSE %s END WHERE key IN ('active_model', 'active_changed')"
               " AND (SELECT value FROM gallery_meta WHERE key = 'active_model') = %s",
               (str(version), name))


def _fetch_crops(db: psycopg.Connection[Any], pid: str, keys: frozenset[str] | set[str]
                 ) -> dict[str, bytes]:
    return {row[0]: bytes(row[1]) for row in db.execute(
        "SELECT key, jpeg FROM gallery_crops WHERE person_id = %s AND key = ANY(%s)",
        (pid, sorted(keys)))}


def _digests(pid: str, crops: dict[str, bytes]) -> dict[tuple[str, str], str]:
    """(person, crop key) -> the SHA-1 of the crop file, as the embedding cache keys it."""
    return {(pid, key): hashlib.sha1(data).hexdigest() for key, data in crops.items()}


def _active_unit(models_dir: Path) -> str | None:
    """The unit the active pointer names (whatever its card says), or None."""
    try:
        name = json.loads((models_dir / registry.ACTIVE_POINTER).read_text(encoding="utf-8"))
        model = Path(str(name["model"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return model.parts[0] if model.parts and (models_dir / model).is_file() else None


def _card(info: dict[str, Any], pid: str, person: PersonState) -> dict[str, Any]:
    card = dict(info)
    card.update({"id": pid, "name": person.name, "student_id": person.student_id,
                 "consent": True})
    for key in ("enrolled_at", "consent_at"):
        value = getattr(person, key)
        if value is not None:
            card[key] = value
    return card


def _card_bytes(card: dict[str, Any]) -> bytes:
    return json.dumps(card, indent=2, ensure_ascii=False).encode("utf-8")


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="seconds") if value is not None else None
