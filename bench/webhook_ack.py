#!/usr/bin/env python3
"""Webhook acknowledgement against a bare endpoint, under the same gunicorn config.

Two gunicorn servers on loopback with identical settings: minbump's
``bot.service.wsgi:create_app()`` (signature check, dedupe, durable SQLite enqueue,
then 202) and ``bench/bare_app.py`` (a bare Flask endpoint that answers 202).
The same load generator (wrk when installed, else the threaded Python one in
bench/loadgen.py) sends signed ``pull_request`` deliveries to each in short
bounded rounds (wrk: a fixed number of seconds; Python: a fixed number of
requests), alternately (bare, minbump, minbump, bare, ...), after a warm-up.
Short rounds and many pairs: the machine's noise drifts slowly, so adjacent
rounds see the same conditions and the median per-pair ratio holds.

Figures: throughput ratio minbump/bare (median of per-pair ratios; target at
least 0.4: ``POST /webhook`` is an ordinary Flask route parsed with the standard
library's json) and minbump's p99 acknowledgement latency (median over rounds;
target under 25 ms).

Lopsided rounds are measured again. With a few keep-alive connections,
gunicorn's workers race to accept them, and often one worker wins all of
them: that round measures one core, not the service (the same server then
gives half its usual requests per second, on either side). Each round reads
the CPU time of every gunicorn worker from /proc; when several connections
were open and one worker did more than LOPSIDED of the work, the round is run
again (up to MAX_RERUNS times, counted in the output), on both sides alike.
``--close`` sends every delivery on a new connection instead (one accept per
request spreads the load by itself).

    python bench/webhook_ack.py [--seconds 1] [--requests 1000] [--pairs 9] [--connections 4]
                                [--engine auto|wrk|python] [--close]

The gunicorn settings are the project's config file when there is one
(see GUNICORN_CONFIGS), else WORKERS/THREADS below; both servers get the same.
The last line printed is the ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402
import loadgen  # noqa: E402

RATIO_TARGET = 0.4
P99_TARGET_MS = 25.0
SECRET = "bench-webhook-secret-0123456789"
# Project gunicorn config files, first found wins (relative to the repository root).
GUNICORN_CONFIGS = ["gunicorn.conf.py", "bot/gunicorn_conf.py", "deploy/gunicorn.conf.py", "bot/gunicorn.conf.py"]
WORKERS, THREADS = 2, 4
LOPSIDED = 0.8  # share of the round's CPU time done by one worker that makes a round lopsided
MAX_RERUNS = 6  # per round; after that the lopsided round is kept (and counted)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gunicorn_settings() -> tuple[list[str], str]:
    """The project's gunicorn options: a config file if there is one, else the Procfile's ``web:``
    line (less its --bind and app), else WORKERS/THREADS."""
    for rel in GUNICORN_CONFIGS:
        if (c.ROOT / rel).is_file():
            return ["-c", str(c.ROOT / rel)], rel
    procfile = c.ROOT / "Procfile"
    if procfile.is_file():
        for line in procfile.read_text().splitlines():
            if line.startswith("web:") and "gunicorn" in line:
                words = shlex.split(line.split(":", 1)[1])
                words = words[words.index("gunicorn") + 1:] if "gunicorn" in words else words
                words = words[:-1]  # the last word is the app
                opts, i = [], 0
                while i < len(words):
                    if words[i] in ("--bind", "-b"):
                        i += 2
                        continue
                    if not words[i].startswith("--bind="):
                        opts.append(words[i])
                    i += 1
                return opts, "Procfile web: " + " ".join(opts)
    return (["--workers", str(WORKERS), "--worker-class", "gthread", "--threads", str(THREADS),
             "--keep-alive", "5"], f"--workers {WORKERS} --worker-class gthread --threads {THREADS} --keep-alive 5")


def gunicorn_bin() -> list[str]:
    return [c.python(), "-m", "gunicorn"]


class Server:
    """One gunicorn process on 127.0.0.1:<free port>; stopped (by its own pid) on exit."""

    def __init__(self, app: str, env: dict[str, str], pythonpath: Path, name: str) -> None:
        self.port = free_port()
        self.name = name
        cfg, _ = gunicorn_settings()
        cmd = gunicorn_bin() + cfg + ["--bind", f"127.0.0.1:{self.port}", "--pythonpath", str(pythonpath),
                                      "--log-level", "warning", "--access-logfile", "/dev/null",
                                      app]
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, env=env, cwd=c.run_cwd(), stdout=self.log, stderr=self.log,
                                     start_new_session=True)

    def wait_ready(self, body: bytes, sig: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name}: gunicorn exited {self.proc.returncode}: {self.tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("POST", "/webhook", body=body, headers={
                    "Content-Type": "application/json", "X-GitHub-Event": "pull_request",
                    "X-GitHub-Delivery": f"ready-{time.time_ns()}", "X-Hub-Signature-256": sig})
                status = conn.getresponse().status
                conn.close()
                if status == 202:
                    return
                raise SystemExit(f"{self.name}: /webhook answered {status}, not 202: {self.tail()}")
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"{self.name}: not ready after {timeout} s: {self.tail()}")

    def worker_pids(self) -> list[int]:
        """The gunicorn workers (children of the master), from /proc; empty where there is none."""
        pids = []
        try:
            names = os.listdir("/proc")
        except OSError:
            return []
        for name in names:
            fields = _proc_stat(int(name)) if name.isdigit() else None
            if fields is not None and int(fields[1]) == self.proc.pid:  # field 4, ppid
                pids.append(int(name))
        return sorted(pids)

    def tail(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-800:]

    def signal_stop(self) -> None:
        if self.proc.poll() is None:
            # To the master only: it stops its workers. (SIGINT to the whole group at once
            # sometimes left gunicorn running.)
            os.kill(self.proc.pid, signal.SIGTERM)

    def wait_stopped(self) -> None:
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        self.signal_stop()
        self.wait_stopped()


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3 first); None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_ticks(pids: list[int]) -> list[int]:
    """utime + stime of each process (clock ticks); 0 for one that is gone."""
    out = []
    for pid in pids:
        fields = _proc_stat(pid)
        out.append(0 if fields is None else int(fields[11]) + int(fields[12]))  # fields 14 and 15
    return out


def busiest_share(before: list[int], after: list[int]) -> float | None:
    """The largest share of the round's CPU time one worker did; None without /proc figures."""
    used = [max(0, a - b) for a, b in zip(after, before)]
    total = sum(used)
    return max(used) / total if len(used) > 1 and total > 0 else None


def stop_all(servers: list[Server]) -> None:
    """Stop the servers together (each takes most of a second to shut down)."""
    for s in servers:
        s.signal_stop()
    for s in servers:
        s.wait_stopped()


def measure(requests: int, pairs: int, connections: int, engine: str, seconds: float = 3.0,
            close: bool = False) -> dict:
    bodies = loadgen.make_bodies(SECRET)
    have_web = c.have_module("bot/service/wsgi.py")
    with contextlib.ExitStack() as stack:
        data = Path(tempfile.mkdtemp(prefix="webhook-ack-", dir=c.OUT if c.OUT.exists() else None))
        stack.callback(shutil.rmtree, data, True)
        env = c.env_with_root()
        env.update({"WEBHOOK_SECRET": SECRET, "MINBUMP_DATA_DIR": str(data / "minbump"),
                    # the web side only checks these exist; it never calls GitHub
                    "GITHUB_TOKEN": "ghp_bench000000000000000000000000000000",
                    "GITHUB_API_URL": "http://127.0.0.1:9/api/v3"})
        env.pop("REDIS_URL", None)
        servers: list[Server] = []
        stack.callback(stop_all, servers)
        bare = Server("bare_app:create_app()", env, c.BENCH, "bare")
        servers.append(bare)
        if have_web:
            web = Server("bot.service.wsgi:create_app()", env, c.ROOT if c.MODE == "dev" else c.run_cwd(), "minbump")
        else:
            web = Server("bare_app:create_app()", env, c.BENCH, "bare (bot/service/wsgi.py pending)")
        servers.append(web)
        bare.wait_ready(*bodies[0])
        web.wait_ready(*bodies[0])

        reruns = {bare.name: 0, web.name: 0}
        check_balance = not close and connections > 1

        def once(server: Server, n: int, seconds: float) -> tuple[loadgen.Result, float | None]:
            pids = server.worker_pids()  # afresh: gunicorn may have replaced a worker
            before = cpu_ticks(pids)
            r = loadgen.run("127.0.0.1", server.port, "/webhook", bodies, n, seconds, connections, engine,
                            close=close)
            if r.errors:
                raise SystemExit(f"{server.name}: {r.errors} of {r.requests} requests failed "
                                 f"({r.statuses or 'see wrk'}): {server.tail()}")
            return r, busiest_share(before, cpu_ticks(pids))

        def one(server: Server, n: int, seconds: float = seconds) -> loadgen.Result:
            r, share = once(server, n, seconds)
            tries = 0
            while check_balance and share is not None and share > LOPSIDED and tries < MAX_RERUNS:
                tries += 1
                reruns[server.name] += 1
                r, share = once(server, n, seconds)
            return r

        one(bare, requests // 5 + 1, 1)  # warm-up: imports, first connections, SQLite file
        one(web, requests // 5 + 1, 1)
        rw: list[loadgen.Result] = []
        rb: list[loadgen.Result] = []
        for i in range(pairs):
            if i % 2 == 0:
                rb.append(one(bare, requests))
                rw.append(one(web, requests))
            else:
                rw.append(one(web, requests))
                rb.append(one(bare, requests))
    ratios = [w.rps / b.rps for w, b in zip(rw, rb)]
    return {"have_web": have_web, "engine": rw[0].engine, "ratio": c.median(ratios),
            "reruns": (reruns[bare.name], reruns[web.name]) if check_balance else None,
            "ratios": ratios, "web": rw, "bare": rb,
            "web_p99": c.median([r.p99_ms for r in rw]), "web_p99_max": max(r.p99_ms for r in rw),
            "web_p50": c.median([r.p50_ms for r in rw]), "bare_p99": c.median([r.p99_ms for r in rb])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="webhook 202 vs a bare Flask 202, same gunicorn config")
    ap.add_argument("--requests", type=int, default=1000,
                    help="requests per round with the Python generator (default 1000)")
    ap.add_argument("--seconds", type=float, default=1.0, help="seconds per round with wrk (default 1)")
    ap.add_argument("--pairs", type=int, default=15, help="alternating pairs of rounds (default 15)")
    ap.add_argument("--connections", type=int, default=4, help="concurrent keep-alive connections (default 4)")
    ap.add_argument("--engine", choices=("auto", "wrk", "python"), default="auto")
    ap.add_argument("--close", action="store_true",
                    help="a new connection for every delivery instead of keep-alive connections")
    args = ap.parse_args(argv)
    c.OUT.mkdir(parents=True, exist_ok=True)
    _, cfg_desc = gunicorn_settings()
    print(f"machine: {c.machine()}")
    eng = loadgen.engine_name(args.engine)
    per_round = f"{args.seconds:g} s" if eng == "wrk" else f"{args.requests} requests"
    conn_desc = "connections, a new one per delivery" if args.close else "keep-alive connections"
    print(f"gunicorn: {cfg_desc}; {args.connections} {conn_desc}; {per_round} per round, {args.pairs} pairs")
    r = measure(args.requests, args.pairs, args.connections, args.engine, args.seconds, args.close)
    print(f"load generator: {r['engine']}")
    if r["reruns"] is not None:
        print(f"lopsided rounds measured again (one worker did > {LOPSIDED:.0%} of the work): "
              f"bare {r['reruns'][0]}, minbump {r['reruns'][1]}")
    print("bare rps:    " + ", ".join(f"{x.rps:.0f}" for x in r["bare"]))
    print(("minbump rps: " if r["have_web"] else "bare2 rps:   ") + ", ".join(f"{x.rps:.0f}" for x in r["web"]))
    print(f"p99 ack: minbump {r['web_p99']:.1f} ms (worst round {r['web_p99_max']:.1f} ms, p50 {r['web_p50']:.1f} ms); "
          f"bare {r['bare_p99']:.1f} ms")
    if not r["have_web"]:
        print("ratio webhook/bare throughput: pending "
              f"(bot/service/wsgi.py does not exist yet; bare/bare = {r['ratio']:.2f})")
        return 0
    ok = r["ratio"] >= RATIO_TARGET and r["web_p99"] < P99_TARGET_MS
    print(f"ratio webhook/bare throughput: {r['ratio']:.2f} (median of {args.pairs} alternating pairs; "
          f"target >= {RATIO_TARGET}; p99 {r['web_p99']:.1f} ms, target < {P99_TARGET_MS:.0f} ms) "
          f"{'PASS' if ok else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
