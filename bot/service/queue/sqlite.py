"""The default single-box backend: one SQLite file under ``MINBUMP_DATA_DIR``.

Why SQLite: no server to run, durable so a 202 means the job is committed, and
``BEGIN IMMEDIATE`` gives the atomic mark-seen-and-enqueue and claim steps the
web and worker processes need even when they are separate processes
(gunicorn + ``minbump worker``).

Durability: WAL with ``synchronous=NORMAL`` by default. A committed
transaction is in the WAL file (the OS page cache) before ``COMMIT`` returns,
so it survives a crash, kill or restart of *any process*; only an OS crash or
power loss can lose the last few commits (no fsync per commit: that fsync was
1.7 ms of a 3.3 ms acknowledgement). ``MINBUMP_SQLITE_SYNC=full`` fsyncs every
commit for power-loss durability.

How writers wait (the webhook's p99 and throughput): SQLite's own busy
handler makes a blocked writer sleep in growing steps (up to 100 ms) instead
of retrying soon, so the write connection has no busy timeout and this
backend retries a busy statement itself, after 20 us, doubling to at most
1 ms, for up to ``busy_timeout`` seconds. Across processes (gunicorn workers,
``minbump worker``) SQLite's write lock is the only lock: it is released
inside ``sqlite3_step`` at commit, without waiting for the GIL. (A file lock
taken and released in Python, as an earlier version did, stays held while the
committing thread waits to get the GIL back from the process's other threads,
and the other processes' writers queue behind it: 13 % fewer
acknowledgements per second at saturation.) Within a process every write goes
through one connection under a ``threading.Lock``, and concurrent ``submit``
calls are written together (group commit): each caller queues its job, the
caller that gets the lock writes everything queued so far, and every caller
returns only after the transaction holding its row committed. The usual
submit is one ``INSERT`` in autocommit mode: one statement, one GIL release.

Connections never cross a fork (gunicorn ``--preload`` builds the app in the
master): they are opened lazily per thread and dropped in a forked child.

Jobs are leased, not popped: a worker that dies leaves a lease that expires,
and the next claim picks the job up again. Attempts are counted at claim, so a
job that kills its worker every time still ends in the failed list.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
import weakref
from pathlib import Path
from typing import Iterator, Mapping

from bot.service.settings import env_float
from bot.errors import MinbumpError
from bot.service.logs import error_text, log
from bot.service.queue import (
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

DELIVERY_TTL = 14 * 86400.0  # GitHub lets you redeliver for a few days; keep two weeks
PRUNE_INTERVAL = 60.0  # seconds between prunes of expired delivery ids (per process)
PRUNE_BATCH = 5000  # at most this many expired ids per prune, so a submit's cost stays bounded
SYNC_MODES = {"normal": "NORMAL", "full": "FULL"}
CHECKPOINT_EVERY = 200  # write transactions between WAL checkpoints (each process checkpoints its own)
CHECKPOINT_IDLE = 5.0  # seconds: also checkpoint after a quiet spell with commits outstanding
WAL_RESET_FRAMES = 16384  # WAL frames (~64 MB) past which a checkpoint is finished with writers paused
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes a reset WAL file is truncated to
RESET_TRIES, RESET_PAUSE = 50, 0.002  # tries (and seconds between them) to finish such a checkpoint
RETRY_FIRST = 20e-6  # seconds before the first retry of a statement that met another writer's lock
RETRY_MAX = 1e-3  # the longest pause between retries
_BUSY = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (extended codes such as BUSY_SNAPSHOT share the low byte)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:  # Python before 3.11
        return "locked" in str(exc) or "busy" in str(exc)
    return code & 0xFF in _BUSY
_SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(JobSpec))


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


class _Pending:
    """One ``submit`` waiting for the transaction that writes it (group commit)."""

    __slots__ = ("spec", "done", "result", "error")

    def __init__(self, spec: JobSpec) -> None:
        self.spec = spec
        self.done = False
        self.result = False
        self.error: BaseException | None = None


class _ProcessState:
    """What must not be shared across a fork: the write lock, the lock file, queued submits."""

    def __init__(self) -> None:
        self.write_lock = threading.Lock()  # serialises this process's write transactions
        self.pending_lock = threading.Lock()  # guards ``pending`` only (held for microseconds)
        self.pending: list[_Pending] = []
        self.last_prune = 0.0
        self.writer: sqlite3.Connection | None = None  # the one connection for writes, under write_lock
        self.commits = 0  # write transactions since the last checkpoint
        self.checkpoint_due = threading.Event()
        self.checkpointer: threading.Thread | None = None


_BACKENDS: "weakref.WeakSet[SQLiteBackend]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for backend in list(_BACKENDS):
        backend._forget_parent_state()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _checkpoint_loop(ref: "weakref.ReferenceType[SQLiteBackend]", st: _ProcessState) -> None:
    """Checkpoint when enough commits piled up or after a quiet spell; ends with its backend."""
    while True:
        st.checkpoint_due.wait(CHECKPOINT_IDLE)
        st.checkpoint_due.clear()
        backend = ref()
        if backend is None or backend._proc is not st:  # backend gone, or we are a stale fork copy
            return
        if st.commits:
            try:
                backend.checkpoint()
            except Exception as exc:  # the next one retries; WAL growth is the only cost meanwhile
                log("sqlite.checkpoint_failed", level=logging.WARNING, error=error_text(exc))
        del backend


class SQLiteBackend(Backend):
    """Queue + state in one SQLite database (thread-safe: reads use one connection per thread,
    writes one connection per process under the write lock)."""

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
        self._proc = _ProcessState()
        self._orphans: list[object] = []
        _BACKENDS.add(self)
        with self._write_lock() as st:  # another process may be creating the schema at the same moment
            self._ensure_schema(self._writer(st))
        self.close()  # no connection may cross a fork (gunicorn --preload builds the app pre-fork)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "SQLiteBackend":
        return cls(
            data_dir(env) / "state.sqlite3",
            retry_policy=RetryPolicy.from_env(env),
            lease_seconds=env_float(env, "MINBUMP_LEASE_SECONDS", 60),
            synchronous=env.get("MINBUMP_SQLITE_SYNC") or "normal",
        )

    def _ensure_schema(self, db: sqlite3.Connection) -> None:
        """Create schema 1, or bring a schema-0 database up to it in one transaction (nothing lost)."""
        self._execute(db, "BEGIN IMMEDIATE")
        try:
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
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    # --- connection ---------------------------------------------------------
    def _forget_parent_state(self) -> None:
        """In a forked child: never use (nor close) the parent's connections or locks."""
        self._orphans.append((self._local, self._proc))  # closing them could disturb the parent's locks
        self._local = threading.local()
        self._proc = _ProcessState()
        self._pid = os.getpid()

    def _conn(self) -> sqlite3.Connection:
        if self._pid != os.getpid():  # forked without the at-fork hook (belt and braces)
            self._forget_parent_state()
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._open()
        return db

    def _open(self, shared: bool = False) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                             check_same_thread=not shared)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self.synchronous}")
        db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        # No checkpoint inside COMMIT: it would fsync while holding the write lock (up to 20 ms
        # here, stalling every waiting submit); _checkpoint_loop does it off the lock.
        db.execute("PRAGMA wal_autocheckpoint=0")
        db.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
        db.row_factory = sqlite3.Row
        return db

    def _writer(self, st: _ProcessState) -> sqlite3.Connection:
        """This process's write connection (caller holds ``st.write_lock``, which serialises its use).

        One per process, not one per thread: its page cache stays warm from one transaction to
        the next, where a per-thread connection re-reads every b-tree page it touches (the
        gunicorn threads take turns, so each one's cache is always stale). No busy timeout:
        :meth:`_execute` retries instead of SQLite's sleeping busy handler.
        """
        if st.writer is None:
            st.writer = self._open(shared=True)
            st.writer.execute("PRAGMA busy_timeout=0")
        return st.writer

    def _execute(self, db: sqlite3.Connection, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        """``db.execute``, retried soon while another connection holds the write lock (at most
        ``busy_timeout`` seconds in all; then the busy error is raised)."""
        try:
            return db.execute(sql, params)
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
        delay = RETRY_FIRST
        deadline = time.monotonic() + self.busy_timeout
        while True:
            time.sleep(delay)
            try:
                return db.execute(sql, params)
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise
            delay = min(delay * 2, RETRY_MAX)

    def _state(self) -> _ProcessState:
        if self._pid != os.getpid():
            self._forget_parent_state()
        return self._proc

    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[_ProcessState]:
        """This process's write lock (its one write connection); counts the write for checkpoints."""
        st = self._state()
        with st.write_lock:
            yield st
            self._count_write(st)

    def _count_write(self, st: _ProcessState) -> None:
        st.commits += 1
        if st.commits >= CHECKPOINT_EVERY:
            self._wake_checkpointer(st)

    def _wake_checkpointer(self, st: _ProcessState) -> None:
        """Start this process's checkpoint thread on first need (never before a fork), then signal it."""
        if st.checkpointer is None:
            st.checkpointer = threading.Thread(target=_checkpoint_loop, args=(weakref.ref(self), st),
                                               name="minbump-sqlite-checkpoint", daemon=True)
            st.checkpointer.start()
        st.checkpoint_due.set()

    def checkpoint(self) -> tuple[int, int, int]:
        """Copy committed WAL frames into the database file (PASSIVE: blocks no reader or writer).

        Returns SQLite's (busy, WAL frames, frames checkpointed).
        """
        self._state().commits = 0
        db = self._conn()
        row = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if row[1] > WAL_RESET_FRAMES:
            # Under sustained submits a checkpoint beside the writers never catches up with them,
            # so SQLite never starts the WAL afresh and it grows without bound (290 MB in 3 s of
            # back-to-back submits). RESTART holds off every writer (they retry) while it copies
            # what was committed since the pass above, so the next commit starts the WAL afresh.
            # It is tried on the write connection, under this process's write lock (so none of
            # this process's writers is mid-statement), once per try: it answers busy at once
            # when another process is writing or reading an older snapshot, and sleeping in
            # SQLite's busy handler instead would lose every race to writers that retry sooner.
            st = self._state()
            for _ in range(RESET_TRIES):
                with st.write_lock:
                    row = self._writer(st).execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
                if row[0] == 0:
                    break
                time.sleep(RESET_PAUSE)
        return (row[0], row[1], row[2])

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``) under the write lock."""
        with self._write_lock() as st:
            db = self._writer(st)
            self._execute(db, "BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def close(self) -> None:
        """Close this thread's connection and this process's write connection."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
        st = self._state()
        with st.write_lock:
            if st.writer is not None:
                st.writer.close()
                st.writer = None

    # --- intake -------------------------------------------------------------
    def submit(self, spec: JobSpec) -> bool:
        """Group commit: queue the job; whoever holds the write lock next writes all queued jobs.

        Returns only once the transaction holding this delivery's row has
        committed (or raises what made it fail; then nothing of it was written).
        """
        item = _Pending(spec)
        st = self._state()
        with st.pending_lock:
            st.pending.append(item)
        with st.write_lock:
            if not item.done:  # else an earlier lock holder already committed it with its batch
                with st.pending_lock:  # everything queued while we waited for the lock joins in
                    batch, st.pending = st.pending, []
                try:
                    self._write_batch(batch, st)
                finally:
                    for it in batch:  # never leave a waiter without an answer
                        if not it.done:
                            it.error = it.error or RuntimeError("submit interrupted")
                            it.done = True
                self._count_write(st)
        if item.error is not None:
            raise item.error
        return item.result

    def _write_batch(self, batch: list[_Pending], st: _ProcessState) -> None:
        """Write ``batch`` in one transaction (caller holds the write lock); set each item's outcome."""
        db = self._writer(st)
        now = time.time()
        pruned: int | None = None
        try:
            if len(batch) == 1 and now - st.last_prune < PRUNE_INTERVAL:
                # The common case: one statement in autocommit mode is a whole transaction (its own
                # BEGIN/COMMIT in C). Every execute releases the GIL and must win it back, while
                # this process holds the cross-process lock: three calls cost three such waits.
                results = [self._insert(db, batch[0].spec, now)]
            else:
                self._execute(db, "BEGIN IMMEDIATE")
                try:
                    results = [self._insert(db, it.spec, now) for it in batch]
                    pruned = self._prune(db, now, st)
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
        except Exception as exc:
            if len(batch) > 1 and not isinstance(exc, sqlite3.OperationalError):
                # Not the store (locked, disk): one odd job must not fail its neighbours.
                for it in batch:
                    self._write_batch([it], st)
                return
            for it in batch:
                it.error, it.done = exc, True
            return
        if pruned is not None:
            st.last_prune = now if pruned < PRUNE_BATCH else 0.0  # a backlog: prune again next time
        for it, new in zip(batch, results):
            it.result, it.done = new, True

    def _insert(self, db: sqlite3.Connection, spec: JobSpec, now: float) -> bool:
        """One statement: the job row is the delivery's dedupe record (False: seen before,
        or earlier in this very batch)."""
        return self._execute(
            db,
            "INSERT INTO jobs(delivery_id, spec, repo, pr, head, state, attempts, run_after,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?)"
            " ON CONFLICT(delivery_id) DO NOTHING",
            # what JobSpec.to_dict() gives, without dataclasses.asdict's deep copy (70 us a job)
            (spec.delivery_id, json.dumps({k: getattr(spec, k) for k in _SPEC_FIELDS}, separators=(",", ":")), spec.repo,
             spec.pr, spec.head_sha, now, now, now),
        ).rowcount == 1

    @staticmethod
    def _prune(db: sqlite3.Connection, now: float, st: _ProcessState) -> int | None:
        """Forget finished jobs (and so their delivery ids) DELIVERY_TTL after they ended, at most
        once per PRUNE_INTERVAL and PRUNE_BATCH rows; how many, or None if not due."""
        if now - st.last_prune < PRUNE_INTERVAL:
            return None
        return db.execute(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs"
            " WHERE state = 'done' AND run_after < ? LIMIT ?)",
            (now - DELIVERY_TTL, PRUNE_BATCH),
        ).rowcount

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
