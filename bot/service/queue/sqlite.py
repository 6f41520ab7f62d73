"""The default single-box backend: one SQLite file under ``MINBUMP_DATA_DIR``.

Why SQLite: no server to run, durable so a 202 means the job is committed, and
``BEGIN IMMEDIATE`` gives the atomic mark-seen-and-enqueue and claim steps the
web and worker processes need even when they are separate processes
(gunicorn + ``minbump worker``).

Plain by design: every write is one ``BEGIN IMMEDIATE ... COMMIT`` on the
calling thread's own connection, and a writer that meets another's lock waits
in SQLite's own busy handler (``busy_timeout``). The WAL is kept bounded by one
RESTART checkpoint every :data:`CHECKPOINT_EVERY` writes (see there why SQLite's
automatic one is not enough) and ``journal_size_limit``. (An earlier version grouped concurrent submits into one
commit, retried busy statements itself and checkpointed from a thread for a
higher acknowledgement rate; BENCHMARKS.md says what removing that cost.)

Durability: WAL with ``synchronous=NORMAL`` by default. A committed
transaction is in the WAL file (the OS page cache) before ``COMMIT`` returns,
so it survives a crash, kill or restart of *any process*; only an OS crash or
power loss can lose the last few commits. ``MINBUMP_SQLITE_SYNC=full`` fsyncs
every commit for power-loss durability.

Connections never cross a fork (gunicorn ``--preload`` builds the app in the
master): they are opened lazily per thread and forgotten in a forked child.

Jobs are leased, not popped: a worker that dies leaves a lease that expires,
and the next claim picks the job up again. Attempts are counted at claim, so a
job that kills its worker every time still ends in the failed list.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from collections.abc import Iterator, Mapping

from bot.errors import MinbumpError
from bot.service.queue import (
    Backend,
    FailedJob,
    Handler,
    JobSpec,
    Lease,
    RetryPolicy,
    data_dir,
    run_job,
)
from bot.service.settings import env_float

# Schema 1. One row per accepted delivery: the job *is* the dedupe record, so a
# submit is one INSERT into one table (four b-tree pages: the row, the delivery
# id, the ready queue, the PR). Finished jobs stay as state 'done' until their
# delivery id expires, which also keeps ids from being reused and answers
# "newest head" (the newest row of the PR). No AUTOINCREMENT, for the same
# reason: its counter table would be a fifth page per submit.
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    delivery_id TEXT NOT NULL,
    spec TEXT NOT NULL,
    repo TEXT NOT NULL,
    pr INTEGER NOT NULL,
    head TEXT NOT NULL,
    state TEXT NOT NULL,             -- queued | leased | failed | done
    attempts INTEGER NOT NULL DEFAULT 0,
    run_after REAL NOT NULL,         -- queued: not before then. done: when it ended (the TTL counts from it)
    lease_owner TEXT,
    lease_expires REAL,
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_delivery ON jobs(delivery_id);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs(state, run_after);
CREATE INDEX IF NOT EXISTS jobs_pr ON jobs(repo, pr, state);
CREATE TABLE IF NOT EXISTS pr_state (
    repo TEXT NOT NULL,
    pr INTEGER NOT NULL,
    newest_head TEXT,                -- read only for schema-0 databases (schema 1 asks the jobs rows)
    comment_id INTEGER,
    lock_owner TEXT,
    lock_expires REAL,
    PRIMARY KEY (repo, pr)
)
"""
_SCHEMA_STATEMENTS = [part.strip() for part in _SCHEMA.split(";") if part.strip()]

# SQLite's automatic checkpoint is PASSIVE: under back-to-back submits from several threads it never
# catches up with the writers, so the WAL is never started afresh and grows (126 MB after 30,000
# submits from 3 threads). Instead, after every CHECKPOINT_EVERY write transactions of a process, the
# committing thread runs one RESTART checkpoint: the other writers wait in SQLite's busy handler while
# it finishes, and the WAL starts over (about 5 MB at most). The automatic one is off: two
# checkpointers would make this one answer "busy" and skip its turn.
CHECKPOINT_EVERY = 250
DELIVERY_TTL = 14 * 86400.0  # GitHub lets you redeliver for a few days; keep two weeks
PRUNE_INTERVAL = 60.0  # seconds between prunes of expired delivery ids (per process)
PRUNE_BATCH = 5000  # at most this many expired ids per prune, so a submit's cost stays bounded
SYNC_MODES = {"normal": "NORMAL", "full": "FULL"}
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes the WAL file is truncated to after a checkpoint reset it



def _migrate_from_0(db: sqlite3.Connection) -> None:
    """Schema 0 (separate ``deliveries`` table, jobs deleted when done) to 1, inside the caller's
    transaction: every job keeps its id, state and attempts; every remembered delivery id
    becomes a 'done' placeholder row, so it stays a duplicate until it expires."""
    db.execute("DROP INDEX IF EXISTS jobs_ready")
    db.execute("DROP INDEX IF EXISTS jobs_pr")
    db.execute("ALTER TABLE jobs RENAME TO jobs_schema0")
    for statement in _SCHEMA_STATEMENTS:
        db.execute(statement)
    cols = ("id", "spec", "repo", "pr", "state", "attempts", "run_after", "lease_owner",
            "lease_expires", "error", "created_at", "updated_at")
    for row in db.execute(f"SELECT {', '.join(cols)} FROM jobs_schema0 ORDER BY id").fetchall():
        values = dict(zip(cols, tuple(row)))
        try:
            spec = json.loads(values["spec"])
        except ValueError:
            spec = {}
        values["delivery_id"] = str(spec.get("delivery_id") or f"schema0-job-{values['id']}")
        values["head"] = str(spec.get("head_sha") or "")
        names = ", ".join(values)
        db.execute(f"INSERT OR IGNORE INTO jobs({names}) VALUES ({', '.join('?' * len(values))})",
                   tuple(values.values()))
    db.execute(
        "INSERT OR IGNORE INTO jobs(delivery_id, spec, repo, pr, head, state, attempts, run_after,"
        " created_at, updated_at) SELECT delivery_id, '{}', '', 0, '', 'done', 0, received_at,"
        " received_at, received_at FROM deliveries")
    db.execute("DROP TABLE jobs_schema0")
    db.execute("DROP TABLE deliveries")


class SQLiteBackend(Backend):
    """Queue + state in one SQLite database; thread-safe (one connection per thread)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        retry_policy: RetryPolicy | None = None,
        lease_seconds: float = 60.0,
        busy_timeout: float = 30.0,
        synchronous: str = "normal",
    ) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        if synchronous.lower() not in SYNC_MODES:
            raise MinbumpError(f"MINBUMP_SQLITE_SYNC must be one of {', '.join(SYNC_MODES)}, not {synchronous!r}")
        self.synchronous = SYNC_MODES[synchronous.lower()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.retry_policy = retry_policy or RetryPolicy()
        self.lease_seconds = lease_seconds
        self._local = threading.local()
        self._pid = os.getpid()
        self._last_prune = 0.0
        self._writes = 0  # write transactions of this process, for CHECKPOINT_EVERY
        with self._tx() as db:  # another process may be creating the schema at the same moment
            self._ensure_schema(db)
        self.close()  # no connection may cross a fork (gunicorn --preload builds the app pre-fork)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SQLiteBackend:
        return cls(
            data_dir(env) / "state.sqlite3",
            retry_policy=RetryPolicy.from_env(env),
            lease_seconds=env_float(env, "MINBUMP_LEASE_SECONDS", 60),
            synchronous=env.get("MINBUMP_SQLITE_SYNC") or "normal",
        )

    def _ensure_schema(self, db: sqlite3.Connection) -> None:
        """Create schema 1, or bring a schema-0 database up to it (inside the caller's transaction)."""
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise MinbumpError(
                f"{self.path.name} has state schema {version}, newer than this minbump's"
                f" {SCHEMA_VERSION}; upgrade minbump or point MINBUMP_DATA_DIR elsewhere")
        if version < SCHEMA_VERSION:
            legacy = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='deliveries'").fetchone()
            if legacy:
                _migrate_from_0(db)
            else:
                for statement in _SCHEMA_STATEMENTS:
                    db.execute(statement)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    # --- connection ---------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (a forked child never uses, nor closes, its parent's)."""
        if self._pid != os.getpid():
            self._local = threading.local()
            self._pid = os.getpid()
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.synchronous}")
            db.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
            db.execute("PRAGMA wal_autocheckpoint=0")  # see CHECKPOINT_EVERY: one checkpointer, not two
            db.row_factory = sqlite3.Row
            self._local.db = db
        return db

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: ``BEGIN IMMEDIATE`` (waits up to ``busy_timeout``) ... ``COMMIT``."""
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        self._writes += 1
        if self._writes % CHECKPOINT_EVERY == 0:
            db.execute("PRAGMA wal_checkpoint(RESTART)")

    def close(self) -> None:
        """Close this thread's connection."""
        db = getattr(self._local, "db", None) if self._pid == os.getpid() else None
        if db is not None:
            db.close()
            self._local.db = None

    # --- intake -------------------------------------------------------------
    def submit(self, spec: JobSpec) -> bool:
        """One transaction: the job row is the delivery's dedupe record (False: seen before).

        Returns only once it has committed; also forgets expired deliveries, at
        most once per PRUNE_INTERVAL and PRUNE_BATCH rows.
        """
        now = time.time()
        with self._tx() as db:
            new = db.execute(
                "INSERT INTO jobs(delivery_id, spec, repo, pr, head, state, attempts, run_after,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?)"
                " ON CONFLICT(delivery_id) DO NOTHING",
                (spec.delivery_id, json.dumps(spec.to_dict(), separators=(",", ":")), spec.repo, spec.pr, spec.head_sha,
                 now, now, now),
            ).rowcount == 1
            pruned = None
            if now - self._last_prune >= PRUNE_INTERVAL:
                pruned = db.execute(
                    "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs"
                    " WHERE state = 'done' AND run_after < ? LIMIT ?)",
                    (now - DELIVERY_TTL, PRUNE_BATCH),
                ).rowcount
        if pruned is not None:
            self._last_prune = now if pruned < PRUNE_BATCH else 0.0  # a backlog: prune again next time
        return new

    def ready(self) -> None:
        """Open the file afresh (a cached connection would hide a vanished file) and take the write lock."""
        if not self.path.is_file():
            raise RuntimeError(f"state database {self.path.name} is missing")
        db = sqlite3.connect(f"file:{self.path}?mode=rw", uri=True, timeout=2.0, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM jobs WHERE id = -1")  # a write (rolled back): fails on a read-only file
            db.execute("ROLLBACK")
        finally:
            db.close()

    # --- leasing ------------------------------------------------------------
    def claim(self, worker_id: str, lease_seconds: float | None = None) -> Lease | None:
        """Lease the oldest runnable job whose PR no other live lease holds."""
        lease = self.lease_seconds if lease_seconds is None else lease_seconds
        now = time.time()
        with self._tx() as db:
            while True:
                row = db.execute(
                    "SELECT * FROM jobs j WHERE ((j.state = 'queued' AND j.run_after <= ?)"
                    "   OR (j.state = 'leased' AND j.lease_expires < ?))"
                    " AND NOT EXISTS (SELECT 1 FROM jobs o WHERE o.repo = j.repo AND o.pr = j.pr"
                    "   AND o.id != j.id AND o.state = 'leased' AND o.lease_expires >= ?)"
                    " ORDER BY j.run_after, j.id LIMIT 1",
                    (now, now, now),
                ).fetchone()
                if row is None:
                    return None
                if row["state"] == "leased" and row["attempts"] >= self.retry_policy.max_attempts:
                    db.execute(
                        "UPDATE jobs SET state='failed', error=?, lease_owner=NULL, updated_at=?"
                        " WHERE id=?",
                        ("lease expired on the last attempt (worker died?)", now, row["id"]),
                    )
                    continue
                attempts = row["attempts"] + 1
                expires = now + lease
                db.execute(
                    "UPDATE jobs SET state='leased', attempts=?, lease_owner=?, lease_expires=?,"
                    " updated_at=? WHERE id=?",
                    (attempts, worker_id, expires, now, row["id"]),
                )
                spec = JobSpec.from_dict(json.loads(row["spec"])).with_attempt(attempts)
                return Lease(str(row["id"]), spec, worker_id, expires)

    def heartbeat(self, lease: Lease, lease_seconds: float | None = None) -> bool:
        """Extend a lease; False when it was lost (expired and taken by another worker)."""
        lease_s = self.lease_seconds if lease_seconds is None else lease_seconds
        with self._tx() as db:
            cur = db.execute(
                "UPDATE jobs SET lease_expires=? WHERE id=? AND state='leased' AND lease_owner=?",
                (time.time() + lease_s, int(lease.job_id), lease.worker_id),
            )
            return cur.rowcount == 1

    def complete(self, lease: Lease) -> None:
        """Mark done (not deleted: the row remembers the delivery id until it expires)."""
        now = time.time()
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET state='done', lease_owner=NULL, lease_expires=NULL, error=NULL,"
                " run_after=?, updated_at=? WHERE id=? AND lease_owner=?",
                (now, now, int(lease.job_id), lease.worker_id),
            )

    def fail(self, lease: Lease, error: str, retry: bool, delay: float | None = None, count: bool = True) -> str:
        """Schedule a retry with backoff, or record the job as failed. Returns the new state."""
        now = time.time()
        with self._tx() as db:
            row = db.execute(
                "SELECT attempts FROM jobs WHERE id=? AND lease_owner=?",
                (int(lease.job_id), lease.worker_id),
            ).fetchone()
            if row is None:
                return "lost"
            attempts = row["attempts"] if count else max(0, row["attempts"] - 1)
            if retry and attempts < self.retry_policy.max_attempts:
                wait = self.retry_policy.delay(max(1, attempts)) if delay is None else delay
                db.execute(
                    "UPDATE jobs SET state='queued', attempts=?, run_after=?, lease_owner=NULL,"
                    " lease_expires=NULL, error=?, updated_at=? WHERE id=?",
                    (attempts, now + wait, error, now, int(lease.job_id)),
                )
                return "queued"
            db.execute(
                "UPDATE jobs SET state='failed', attempts=?, lease_owner=NULL, lease_expires=NULL,"
                " error=?, updated_at=? WHERE id=?",
                (attempts, error, now, int(lease.job_id)),
            )
            return "failed"

    def run_worker(
        self,
        handler: Handler,
        *,
        stop: threading.Event,
        worker_id: str | None = None,
        burst: bool = False,
        poll: float = 0.5,
    ) -> int:
        worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        done = 0
        while not stop.is_set():
            lease = self.claim(worker_id)
            if lease is None:
                if burst and not self._pending_soon():
                    break
                stop.wait(poll)
                continue
            self._run_one(handler, lease)
            done += 1
        return done

    def _pending_soon(self) -> bool:
        """In burst mode, keep going while a retry is due within a few seconds."""
        row = self._conn().execute(
            "SELECT min(run_after) AS t FROM jobs WHERE state='queued'"
        ).fetchone()
        return row["t"] is not None and row["t"] <= time.time() + 5.0 or bool(
            self._conn().execute("SELECT 1 FROM jobs WHERE state='leased' LIMIT 1").fetchone()
        )

    def _run_one(self, handler: Handler, lease: Lease) -> None:
        beat_stop = threading.Event()

        def beat() -> None:
            while not beat_stop.wait(max(0.05, self.lease_seconds / 3)):
                if not self.heartbeat(lease):
                    return

        beater = threading.Thread(target=beat, name="minbump-lease", daemon=True)
        beater.start()
        try:
            outcome = run_job(handler, lease.spec, self, transient=(sqlite3.OperationalError,), job=lease.job_id)
            if outcome.state == "done":
                self.complete(lease)
            else:
                self.fail(lease, outcome.error or "", retry=outcome.state == "retry", delay=outcome.delay,
                          count=outcome.count)
        finally:
            beat_stop.set()

    # --- failed jobs ----------------------------------------------------------
    def failed_jobs(self) -> list[FailedJob]:
        rows = self._conn().execute(
            "SELECT * FROM jobs WHERE state='failed' ORDER BY updated_at, id"
        ).fetchall()
        return [
            FailedJob(str(r["id"]), JobSpec.from_dict(json.loads(r["spec"])), r["error"] or "",
                      r["attempts"], r["updated_at"])
            for r in rows
        ]

    def retry_failed(self, job_id: str) -> bool:
        try:
            jid = int(job_id)
        except ValueError:
            return False
        with self._tx() as db:
            cur = db.execute(
                "UPDATE jobs SET state='queued', attempts=0, run_after=?, error=NULL, updated_at=?"
                " WHERE id=? AND state='failed'",
                (time.time(), time.time(), jid),
            )
            return cur.rowcount == 1

    def purge_failed(self, job_id: str | None = None) -> int:
        """Off the failed list; the row stays as 'done' so a redelivery of it is still a duplicate."""
        now = time.time()
        purge = "UPDATE jobs SET state='done', run_after=?, updated_at=? WHERE state='failed'"
        with self._tx() as db:
            if job_id is None:
                return db.execute(purge, (now, now)).rowcount
            try:
                jid = int(job_id)
            except ValueError:
                return 0
            return db.execute(purge + " AND id=?", (now, now, jid)).rowcount

    def pending_count(self) -> int:
        """Queued or leased jobs (for tests and readiness output)."""
        return self._conn().execute(
            "SELECT count(*) FROM jobs WHERE state IN ('queued','leased')"
        ).fetchone()[0]

    # --- per-PR state -----------------------------------------------------------
    def acquire_pr_lock(self, repo: str, pr: int, owner: str, ttl: float) -> bool:
        now = time.time()
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO pr_state(repo, pr) VALUES (?, ?)", (repo, pr))
            cur = db.execute(
                "UPDATE pr_state SET lock_owner=?, lock_expires=? WHERE repo=? AND pr=?"
                " AND (lock_owner IS NULL OR lock_owner=? OR lock_expires < ?)",
                (owner, now + ttl, repo, pr, owner, now),
            )
            return cur.rowcount == 1

    def release_pr_lock(self, repo: str, pr: int, owner: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE pr_state SET lock_owner=NULL, lock_expires=NULL"
                " WHERE repo=? AND pr=? AND lock_owner=?",
                (repo, pr, owner),
            )

    def newest_head(self, repo: str, pr: int) -> str | None:
        """The head of the PR's newest job row (done ones included); a schema-0 record otherwise."""
        db = self._conn()
        row = db.execute(
            "SELECT head FROM jobs WHERE repo=? AND pr=? ORDER BY id DESC LIMIT 1", (repo, pr)
        ).fetchone()
        if row is not None:
            return row["head"]
        row = db.execute("SELECT newest_head FROM pr_state WHERE repo=? AND pr=?", (repo, pr)).fetchone()
        return None if row is None else row["newest_head"]

    def get_comment_id(self, repo: str, pr: int) -> int | None:
        row = self._conn().execute(
            "SELECT comment_id FROM pr_state WHERE repo=? AND pr=?", (repo, pr)
        ).fetchone()
        return None if row is None else row["comment_id"]

    def set_comment_id(self, repo: str, pr: int, comment_id: int | None) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO pr_state(repo, pr, comment_id) VALUES (?, ?, ?)"
                " ON CONFLICT(repo, pr) DO UPDATE SET comment_id = excluded.comment_id",
                (repo, pr, comment_id),
            )
