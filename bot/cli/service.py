"""``minbump serve``, ``worker``, ``jobs`` and ``cache``: the service's commands.

Kept out of bot/cli.py so the analyzer CLI never imports Flask or the queue;
``bot.cli`` calls :func:`register` on its group.
"""

from __future__ import annotations

import json
import os
import time

import click

from bot.errors import MinbumpError


def _backend():  # type: ignore[no-untyped-def]
    from bot.service.queue import get_backend

    try:
        return get_backend(os.environ)
    except MinbumpError:
        raise
    except Exception as exc:  # e.g. Redis unreachable, data dir unwritable
        raise MinbumpError(f"cannot open the job store: {type(exc).__name__}: {exc}") from None


def register(cli: click.Group) -> None:
    """Add the service commands to ``cli``."""

    @cli.command("serve")
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--port", type=int, default=lambda: int(os.environ.get("PORT", "8000")),
                  show_default="$PORT or 8000")
    @click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True,
                  help="Embedded worker threads.")
    @click.option("--no-worker", is_flag=True, help="Accept webhooks only; run `minbump worker` elsewhere.")
    def serve_cmd(host: str, port: int, threads: int, no_worker: bool) -> None:
        """Run the webhook service with an embedded worker (single box)."""
        from bot.service.run import serve

        serve(host, port, worker=not no_worker, threads=threads)

    @cli.command("worker")
    @click.option("--burst", is_flag=True, help="Exit when the queue is empty.")
    def worker_cmd(burst: bool) -> None:
        """Run queued webhook jobs (production: next to the gunicorn web process)."""
        from bot.service.run import worker

        worker(burst=burst)

    @cli.group("jobs")
    def jobs() -> None:
        """Inspect and act on jobs that failed for good."""

    @jobs.command("list")
    @click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
    def jobs_list(as_json: bool) -> None:
        """List failed jobs."""
        failed = _backend().failed_jobs()
        for f in failed:
            if as_json:
                click.echo(json.dumps({"id": f.job_id, "attempts": f.attempts, "error": f.error,
                                       "failed_at": f.failed_at, "spec": f.spec.to_dict()}))
            else:
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(f.failed_at))
                click.echo(f"{f.job_id}\t{when}Z\t{f.spec.repo}#{f.spec.pr}\t{f.spec.head_sha[:12]}\t"
                           f"attempts={f.attempts}\t{f.error}")
        if not failed and not as_json:
            click.echo("no failed jobs", err=True)

    @jobs.command("retry")
    @click.argument("job_id")
    def jobs_retry(job_id: str) -> None:
        """Queue failed job JOB_ID again."""
        if not _backend().retry_failed(job_id):
            raise MinbumpError(f"no failed job {job_id!r} (see `minbump jobs list`)")
        click.echo(f"queued {job_id}")

    @jobs.command("purge")
    @click.argument("job_id", required=False)
    @click.option("--all", "purge_all", is_flag=True, help="Forget every failed job.")
    def jobs_purge(job_id: str | None, purge_all: bool) -> None:
        """Forget failed job JOB_ID, or all of them with --all."""
        if bool(job_id) == purge_all:
            raise click.UsageError("give a JOB_ID or --all")
        n = _backend().purge_failed(None if purge_all else job_id)
        if job_id and n == 0:
            raise MinbumpError(f"no failed job {job_id!r}")
        click.echo(f"purged {n}")

    @cli.group("cache")
    def cache() -> None:
        """The worker's git cache (MINBUMP_DATA_DIR/git, one bare clone per repository)."""

    @cache.command("prune")
    @click.option("--older-than", "days", type=click.FloatRange(min=0), default=14.0, show_default=True,
                  help="Forget the heads of pull requests not fetched for this many days.")
    @click.option("--gc", "gc", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
                  help="Then run git gc: when git's own thresholds say so, always, or never.")
    def cache_prune(days: float, gc: str) -> None:
        """Keep the git cache from growing: forget old PR heads and let git gc pack what is left.

        Safe while workers run (a job fetches its PR again); run it on every worker
        machine, e.g. daily.
        """
        from bot.git.cache import GitCache
        from bot.service.queue import data_dir

        root = data_dir(os.environ) / "git"
        if not root.is_dir():
            click.echo(f"no git cache at {root}", err=True)
            return
        results = GitCache(root).prune(days * 86400, gc=gc)
        if not results:
            click.echo(f"no repositories in {root}", err=True)
        for r in results:
            line = (f"{r.repo}: {r.removed} pull request heads forgotten, {r.kept} kept; "
                    f"{r.bytes_before / 1e6:.1f} MB -> {r.bytes_after / 1e6:.1f} MB")
            click.echo(line + (f"; {r.error}" if r.error else ""))

