"""The default single-box backend: one SQLite file under ``MINBUMP_DATA_DIR``.

Why SQLite: no server to run, durable (WAL, ``synchronous=FULL``) so a 202
means the job is on disk, and ``BEGIN IMMEDIATE`` gives the atomic
mark-seen-and-enqueue and claim steps the web and worker processes need even
when they are separate processes (gunicorn + ``minbump worker``).

Jobs are leased, not popped: a worker that dies leaves a lease that expires,
and the next claim picks the job up again. Attempts are counted at claim, so a
job that kills its worker every time still ends in the failed list.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Mapping

from bot.errors import MinbumpError
from bot.logs import error_text, log
from bot.queue import (
    Backend,
    FailedJob,
    Handler,
    JobSpec,
    Lease,
    PermanentFailure,
    RetryLater,
    RetryPolicy,
    data_dir,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    delivery_id TEXT PRIMARY KEY,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    spec TEXT NOT NULL,
    repo TEXT NOT NULL,
    pr INTEGER NOT NULL,
    state TEXT NOT NULL,             -- queued | leased | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    run_after REAL NOT NULL,
    lease_owner TEXT,
    lease_expires REAL,
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs(state, run_after);
CREATE INDEX IF NOT EXISTS jobs_pr ON jobs(repo, pr, state);
CREATE TABLE IF NOT EXISTS pr_state (
    repo TEXT NOT NULL,
    pr INTEGER NOT NULL,
    newest_head TEXT,
    comment_id INTEGER,
    lock_owner TEXT,
    lock_expires REAL,
    PRIMARY KEY (repo, pr)
);
"""

DELIVERY_TTL = 14 * 86400.0  # GitHub lets you redeliver for a few days; keep two weeks


class SQLiteBackend(Backend):
    """Queue + state in one SQLite database (thread-safe: one connection per thread)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        retry_policy: RetryPolicy | None = None,
        lease_seconds: float = 60.0,
        busy_timeout: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.retry_policy = retry_policy or RetryPolicy()
        self.lease_seconds = lease_seconds
        self._local = threading.local()
        self._conn().executescript(_SCHEMA)
        self.close()  # no connection may cross a fork (gunicorn --preload builds the app pre-fork)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "SQLiteBackend":
        return cls(
            data_dir(env) / "state.sqlite3",
            retry_policy=RetryPolicy.from_env(env),
            lease_seconds=float(env.get("MINBUMP_LEASE_SECONDS", 60)),
        )

    # --- connection ---------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
            db.row_factory = sqlite3.Row
            self._local.db = db
        return db

    class _Tx:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, exc_type, exc, tb) -> None:  # type: ignore[no-untyped-def]
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")

    def _tx(self) -> "SQLiteBackend._Tx":
        return self._Tx(self._conn())

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # --- intake -------------------------------------------------------------
    def submit(self, spec: JobSpec) -> bool:
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO deliveries(delivery_id, received_at) VALUES (?, ?)",
                (spec.delivery_id, now),
            )
            if cur.rowcount == 0:
                return False
            db.execute("DELETE FROM deliveries WHERE received_at < ?", (now - DELIVERY_TTL,))
            db.execute(
                "INSERT INTO jobs(spec, repo, pr, state, attempts, run_after, created_at, updated_at)"
                " VALUES (?, ?, ?, 'queued', 0, ?, ?, ?)",
                (json.dumps(spec.to_dict()), spec.repo, spec.pr, now, now, now),
            )
            db.execute(
                "INSERT INTO pr_state(repo, pr, newest_head) VALUES (?, ?, ?)"
                " ON CONFLICT(repo, pr) DO UPDATE SET newest_head = excluded.newest_head",
                (spec.repo, spec.pr, spec.head_sha),
            )
        return True

    def ready(self) -> None:
        """Open the file afresh (a cached connection would hide a vanished file) and take the write lock."""
        if not self.path.is_file():
            raise RuntimeError(f"state database {self.path.name} is missing")
        db = sqlite3.connect(f"file:{self.path}?mode=rw", uri=True, timeout=2.0, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("SELECT count(*) FROM jobs").fetchone()
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
        with self._tx() as db:
            db.execute(
                "DELETE FROM jobs WHERE id=? AND lease_owner=?", (int(lease.job_id), lease.worker_id)
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
        fields = {"job": lease.job_id, "attempt": lease.spec.attempt, **lease.spec.log_fields()}
        beat_stop = threading.Event()

        def beat() -> None:
            while not beat_stop.wait(max(0.05, self.lease_seconds / 3)):
                if not self.heartbeat(lease):
                    return

        beater = threading.Thread(target=beat, name="minbump-lease", daemon=True)
        beater.start()
        log("job.start", **fields)
        try:
            handler(lease.spec, self)
        except RetryLater as exc:
            state = self.fail(lease, error_text(exc), retry=True, delay=exc.delay, count=exc.count)
            log("job.retry", level=logging.WARNING, outcome=state, error=error_text(exc), **fields)
        except (PermanentFailure, MinbumpError) as exc:
            self.fail(lease, error_text(exc), retry=False)
            log("job.failed", level=logging.ERROR, error=error_text(exc), **fields)
        except Exception as exc:  # unexpected: treat as transient until attempts run out
            state = self.fail(lease, error_text(exc), retry=True)
            log("job.error", level=logging.ERROR, outcome=state, error=error_text(exc), **fields)
        else:
            self.complete(lease)
            log("job.done", **fields)
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
        with self._tx() as db:
            if job_id is None:
                return db.execute("DELETE FROM jobs WHERE state='failed'").rowcount
            try:
                jid = int(job_id)
            except ValueError:
                return 0
            return db.execute("DELETE FROM jobs WHERE state='failed' AND id=?", (jid,)).rowcount

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
        row = self._conn().execute(
            "SELECT newest_head FROM pr_state WHERE repo=? AND pr=?", (repo, pr)
        ).fetchone()
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
