#!/usr/bin/env python3
"""Redis mode: jobs per second with 1 and 2 workers, and webhook acknowledgement latency under that load.

Starts a private ``redis-server`` on loopback (no persistence), then for each
worker count W:

1. starts W ``RedisBackend.run_worker`` processes and waits until they listen;
2. submits ``--jobs`` jobs through ``RedisBackend.submit`` (the web process's
   code path: dedupe + enqueue + newest head, one MULTI/EXEC) and times
   first submit -> last job finished.

The handler is ``--handler noop`` (queue overhead only: what RQ + our lease,
sweeper and bookkeeping cost per job) or ``--handler job`` (the real
``bot.service.job`` against the fake GitHub of tests/support/fakegithub.py, with a real
analysis per job; needs the test helpers and the lead's analyzer).

With ``--web`` it also starts the web app under gunicorn (``bot.service.wsgi:create_app()``)
in Redis mode and, while W workers drain the queue, sends signed deliveries
with bench/loadgen.py, reporting the acknowledgement latency (p50/p99).

    python bench/rq_throughput.py [--jobs 2000] [--workers 1,2] [--handler noop|job] [--web]

Standard library + redis-py + the checkout. Prints one line per figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    import redis

    binary = shutil.which("redis-server")
    if not binary:
        sys.exit("rq_throughput: redis-server is not installed (apt-get install -y redis-server)")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                             "no", "--dir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(200):
        try:
            if redis.Redis.from_url(url).ping():
                return proc, url
        except redis.RedisError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("rq_throughput: redis-server did not start")


def child_env(url: str, tag: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"REDIS_URL": url, "MINBUMP_REDIS_PREFIX": tag, "MINBUMP_RQ_QUEUE": tag,
                "PYTHONPATH": str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")})
    env.update(extra or {})
    return env


# --- worker side ----------------------------------------------------------------------------------


def noop_handler(spec: Any, backend: Any) -> None:
    """Counts the job; nothing else, so the figure is the queue's own cost."""
    backend.conn.incr(f"{backend.settings.prefix}:bench:done")


def worker_main(handler_name: str) -> int:
    from bot.service.queue.redis import RedisBackend

    backend = RedisBackend.from_env(os.environ)
    if handler_name == "noop":
        handler = noop_handler
    else:
        from bot.service.job import build_runner

        real = build_runner(os.environ).handler()  # the production job: fetch, analyse, publish

        def handler(spec: Any, b: Any) -> None:
            real(spec, b)
            b.conn.incr(f"{b.settings.prefix}:bench:done")

    backend.conn.incr(f"{backend.settings.prefix}:bench:ready")
    stop = threading.Event()
    backend.run_worker(handler, stop=stop, poll=1.0)
    return 0


# --- driver -----------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def measure(url: str, workers: int, jobs: int, scenario: Scenario, tag: str,
            web: WebServer | None) -> dict[str, Any]:
    """Start ``workers`` worker processes on queue ``tag``, push ``jobs`` jobs, time until all finished."""
    from bot.service.queue.redis import RedisBackend

    env = child_env(url, tag)
    backend = RedisBackend.from_env(env)
    procs = [subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", scenario.name],
                              env=child_env(url, tag, scenario.worker_env(i)), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
             for i in range(workers)]
    try:
        deadline = time.monotonic() + 30
        while int(backend.conn.get(f"{tag}:bench:ready") or 0) < workers:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise SystemExit("rq_throughput: workers did not start")
            time.sleep(0.05)
        time.sleep(1.5)  # let each worker reach its blocking pop
        specs = list(scenario.specs(tag, jobs))
        ack: list[float] = []
        t0 = time.perf_counter()
        if web is None:
            for spec in specs:
                backend.submit(spec)
        else:
            ack = web.post_all(specs)
        submitted = time.perf_counter() - t0
        done_key = f"{tag}:bench:done"
        deadline = time.monotonic() + 600
        while int(backend.conn.get(done_key) or 0) < jobs:
            if time.monotonic() > deadline:
                raise SystemExit(f"rq_throughput: only {backend.conn.get(done_key)} of {jobs} jobs finished")
            time.sleep(0.01)
        elapsed = time.perf_counter() - t0
        failed = len(backend.failed_jobs())
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
    if failed:
        raise SystemExit(f"rq_throughput: {failed} jobs failed")
    out: dict[str, Any] = {"workers": workers, "jobs": jobs, "seconds": round(elapsed, 3),
                           "jobs_per_s": round(jobs / elapsed, 1), "submit_per_s": round(jobs / submitted, 1)}
    if ack:
        out["ack_p50_ms"] = round(percentile(ack, 0.50) * 1000, 2)
        out["ack_p99_ms"] = round(percentile(ack, 0.99) * 1000, 2)
    return out


class Scenario:
    """What the workers run: ``noop`` (queue cost only) or ``job`` (the real job on the fake GitHub)."""

    def __init__(self, name: str, workdir: Path, prs: int = 20) -> None:
        self.name = name
        self.workdir = workdir
        self.heads: dict[int, str] = {}
        self.gh: Any = None
        if name == "job":
            self._start_fake_github(prs)

    def _start_fake_github(self, prs: int) -> None:
        """The nova bump (fail verdict) as ``prs`` open PRs on tests/support/fakegithub.py's server."""
        from tests.support.fakegithub import NOVA_DRIVER, FakeGitHub
        from tests.support.gitrepo import GitRepo
        from tests.support.nova import CONFIG, driver

        work = GitRepo(self.workdir / "nova")
        base = work.commit({NOVA_DRIVER: driver("(1, 2, 1)", "(1, 2, 1)"), ".github/minbump.yml": CONFIG},
                           date="2016-09-01T10:00:00+00:00")
        work.tag("14.0.0", date="2016-10-06T10:00:00+00:00")
        for n in range(1, prs + 1):
            work.git("checkout", "-q", "--detach", base)
            self.heads[n] = work.commit({NOVA_DRIVER: driver("(1, 2, 9)", "(1, 2, 9)") + f"# pr {n}\n"},
                                        date="2016-11-20T10:00:00+00:00")
        work.checkout("main")
        self.gh = FakeGitHub(self.workdir / "fakegithub").start()
        self.gh.add_repo("octo/nova", work)
        for n, sha in self.heads.items():
            self.gh.add_pull("octo/nova", n, sha, "main", f"bump-{n}")
        self.token = self.gh.add_token("minbump-bot")

    def worker_env(self, index: int) -> dict[str, str]:
        if self.gh is None:
            return {}
        return {"GITHUB_API_URL": self.gh.api_url, "GITHUB_TOKEN": self.token,
                "MINBUMP_DATA_DIR": str(self.workdir / f"machine{index}"),  # a git cache per "machine"
                "MINBUMP_GITHUB_WRITE_INTERVAL": "0", "MINBUMP_GITHUB_REQUEST_INTERVAL": "0"}

    def specs(self, tag: str, n: int) -> Any:
        from bot.service.queue import JobSpec

        if self.gh is None:
            for i in range(n):
                yield JobSpec(delivery_id=f"{tag}-{i}", event="pull_request", action="synchronize",
                              repo="octo/nova", pr=1 + i % 50, head_sha=f"{i:040x}", base_ref="main",
                              clone_url="http://127.0.0.1:9/octo/nova.git")
            return
        prs = sorted(self.heads)
        for i in range(n):
            pr = prs[i % len(prs)]
            yield JobSpec(delivery_id=f"{tag}-{i}", event="pull_request", action="synchronize", repo="octo/nova",
                          pr=pr, head_sha=self.heads[pr], base_ref="main", clone_url=self.gh.clone_url("octo/nova"))

    def stop(self) -> None:
        if self.gh is not None:
            self.gh.stop()


def gunicorn_options() -> tuple[list[str], str]:
    """The Procfile's gunicorn settings (via bench/webhook_ack.py, so both benchmarks agree)."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from webhook_ack import gunicorn_settings

        return gunicorn_settings()
    except Exception:  # noqa: BLE001 - fall back to fixed settings if that helper changes
        opts = ["--worker-class", "gthread", "--workers", "2", "--threads", "8"]
        return opts, " ".join(opts)


class WebServer:
    """``bot.service.wsgi:create_app()`` under gunicorn in Redis mode; posts signed deliveries and times the 202s."""

    SECRET = "bench-secret-" + uuid.uuid4().hex[:8]

    def __init__(self, url: str, tag: str, workdir: Path) -> None:
        self.port = free_port()
        # The web process never calls GitHub; it only checks at start that credentials are configured.
        env = child_env(url, tag, {"WEBHOOK_SECRET": self.SECRET, "GITHUB_TOKEN": "bench-not-a-real-token",
                                   "GITHUB_API_URL": "http://127.0.0.1:9/api/v3",
                                   "MINBUMP_DATA_DIR": str(workdir / "web-data")})
        opts, self.settings = gunicorn_options()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", *opts, "--bind", f"127.0.0.1:{self.port}",
             "bot.service.wsgi:create_app()"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        import http.client

        for _ in range(200):
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise SystemExit("rq_throughput: web app did not answer /healthz")

    def post_all(self, specs: list[Any], connections: int = 4) -> list[float]:
        import hashlib
        import hmac
        import http.client

        sys.path.insert(0, str(ROOT / "bench"))
        from loadgen import pr_payload  # the benchmarks engineer's payload shape

        latencies: list[float] = []
        lock = threading.Lock()
        chunks = [specs[i::connections] for i in range(connections)]

        def run(chunk: list[Any]) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            mine: list[float] = []
            for spec in chunk:
                body = json.dumps(pr_payload(spec.pr, spec.head_sha, repo=spec.repo,
                                             clone_url=spec.clone_url)).encode()
                sig = "sha256=" + hmac.new(self.SECRET.encode(), body, hashlib.sha256).hexdigest()
                headers = {"Content-Type": "application/json", "X-GitHub-Event": "pull_request",
                           "X-GitHub-Delivery": spec.delivery_id, "X-Hub-Signature-256": sig}
                t = time.perf_counter()
                conn.request("POST", "/webhook", body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                mine.append(time.perf_counter() - t)
                if resp.status not in (200, 202):
                    raise SystemExit(f"rq_throughput: webhook answered {resp.status}")
            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=run, args=(c,)) for c in chunks]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return latencies

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=20)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--handler", choices=["noop", "job"], default="noop")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per worker count (median reported)")
    ap.add_argument("--web", action="store_true", help="submit through the web app and time its 202s")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker_main(args.worker)

    counts = [int(x) for x in args.workers.split(",") if x.strip()]
    with tempfile.TemporaryDirectory(prefix="rqbench-") as tmp:
        proc, url = start_redis(Path(tmp))
        scenario = Scenario(args.handler, Path(tmp))
        try:
            print(f"# cpus={os.cpu_count()} jobs={args.jobs} handler={args.handler} rounds={args.rounds}"
                  + (f" web: gunicorn {gunicorn_options()[1]}, 4 client connections" if args.web else ""))
            if args.handler == "job":
                # warm every "machine"'s git cache once: the figures are for the steady state, where a
                # fetch brings only what changed (a cold clone is a one-off per machine and repository)
                measure(url, max(counts), 2 * max(counts), scenario, "warm" + uuid.uuid4().hex[:8], None)
            for w in counts:
                results = []
                for _ in range(args.rounds):
                    tag = "bench" + uuid.uuid4().hex[:8]  # a fresh queue and key prefix per round
                    web = WebServer(url, tag, Path(tmp)) if args.web else None
                    try:
                        results.append(measure(url, w, args.jobs, scenario, tag, web))
                    finally:
                        if web is not None:
                            web.stop()
                best = sorted(results, key=lambda r: r["jobs_per_s"])[len(results) // 2]
                line = (f"workers={w} jobs_per_s={best['jobs_per_s']} (median of {len(results)}: "
                        f"{[r['jobs_per_s'] for r in results]}) submit_per_s={best['submit_per_s']}")
                if "ack_p99_ms" in best:
                    line += (f" ack_p50_ms={statistics.median(r['ack_p50_ms'] for r in results)}"
                             f" ack_p99_ms={statistics.median(r['ack_p99_ms'] for r in results)}")
                print(line, flush=True)
        finally:
            scenario.stop()
            proc.terminate()
            proc.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
