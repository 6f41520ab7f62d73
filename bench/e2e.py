#!/usr/bin/env python3
"""End to end: a signed webhook sent to the PR comment visible on the fake GitHub.

Set-up (not timed): the Nova-sized fixture from bench/make_repo.py is hosted on
the fake GitHub of tests/support/fakegithub.py (REST API and git smart HTTP on
loopback) as ``octo/nova``, with PR 7 whose head (``bump``) exists only as
``refs/pull/7/head``, as for a fork. The service runs as one process,
``python -m bot serve`` (webhook app and embedded worker, SQLite queue), in
token mode against the fake.

Timed, each from the moment the delivery is sent to the moment the bot's
comment naming that head is visible through the fake's state:

* cold: the first delivery, with an empty git cache (the bot's first fetch of
  the big repository over HTTP, a partial clone: commits and trees, then the
  few blobs the analysis reads). Its floor is ``git clone --bare
  --filter=blob:none`` of the same URL through the same fake, with the same
  token, timed just before and just after it; the ratio to the floors' mean
  has a goal of at most 1.5;
* warm: ``--deliveries`` further ``synchronize`` deliveries, each for a new
  head pushed on top of the last one (same change, new sha), so every one is
  analysed and the existing comment is edited. Each is sent to an idle
  service: after the previous job's commit status is in, plus ``--gap``
  seconds and a random 0-0.5 s (pushes to one PR come minutes apart, at no
  particular phase of the worker's polling). Target: p95 under 1 s.

GitHub write pacing (``MINBUMP_GITHUB_WRITE_INTERVAL``: after a burst of
``MINBUMP_GITHUB_WRITE_BURST`` writes, 1 s between writes per installation, as
GitHub asks integrators; see bot/service/github.py) is on by default, as in
production; ``--no-pacing`` sets it and the request interval to 0 to show what
the pacing costs.

``--no-filter`` makes the fake answer as a server without partial clone
support: the bot then falls back to a full clone (the cold figure as it was
before partial clones), and so does the floor.

    python bench/e2e.py [--commits 60000] [--deliveries 20] [--gap 2] [--no-pacing] [--no-filter]

The last line printed is the warm p95 (with the cold ratio after it).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402
import dryrun  # noqa: E402

REPO = "octo/nova"
PR = 7
P95_TARGET = 1.0
COLD_GOAL = 1.5  # cold first comment / partial-clone floor


class WorkRepo:
    """What tests.support.fakegithub wants of a work repository: ``git(*args)`` run inside it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def git(self, *args: str) -> str:
        env = dict(os.environ)
        for k in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
            env.pop(k, None)
        return subprocess.run(["git", "-C", str(self.path), *args], check=True, capture_output=True,
                              text=True, env=env).stdout.strip()

    def rev(self, ref: str) -> str:
        return self.git("rev-parse", ref)


def _steps(log: Path) -> Iterator[tuple[str, str, float]]:
    """(delivery, step, timestamp) of each step record in the service's JSON log."""
    for line in log.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        d, step, ts = rec.get("delivery"), rec.get("step"), rec.get("ts")
        if d and step and ts is not None:
            yield d, step, ts


def step_offsets(log: Path, skip_first: int = 1) -> list[tuple[str, float]]:
    """Median time of each logged step after ``webhook.accepted``, per delivery (the cold ones skipped)."""
    per: dict[str, dict[str, float]] = {}
    order: list[str] = []
    for d, step, ts in _steps(log):
        if d not in per:
            per[d] = {}
            order.append(d)
        per[d].setdefault(step, ts)
    names: dict[str, list[float]] = {}
    for d in order[skip_first:]:
        t0 = per[d].get("webhook.accepted")
        if t0 is None:
            continue
        for step, ts in per[d].items():
            names.setdefault(step, []).append((ts - t0) * 1000)
    return sorted(((k, c.median(v)) for k, v in names.items()), key=lambda kv: kv[1])


def first_delivery_steps(log: Path) -> list[tuple[str, float]]:
    """Each logged step of the first (cold) delivery, ms after its ``webhook.accepted``."""
    steps: dict[str, float] = {}
    first = None
    for d, step, ts in _steps(log):
        first = first or d
        if d == first:
            steps.setdefault(step, ts)
    t0 = steps.get("webhook.accepted")
    return [] if t0 is None else sorted(((k, (v - t0) * 1000) for k, v in steps.items()), key=lambda kv: kv[1])


def floor_clone(url: str, token: str, dest: Path) -> float:
    """Seconds for ``git clone --bare --filter=blob:none`` of ``url``, the token sent as the bot sends it."""
    import base64
    from urllib.parse import urlsplit

    shutil.rmtree(dest, ignore_errors=True)
    parts = urlsplit(url)
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_COUNT": "2",
                "GIT_CONFIG_KEY_0": f"http.{parts.scheme}://{parts.netloc}/.extraHeader",
                "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
                "GIT_CONFIG_KEY_1": "protocol.version", "GIT_CONFIG_VALUE_1": "2"})
    t = time.perf_counter()
    subprocess.run(["git", "clone", "-q", "--bare", "--filter=blob:none", url, str(dest)], check=True, env=env)
    elapsed = time.perf_counter() - t
    shutil.rmtree(dest, ignore_errors=True)
    return elapsed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="webhook to visible comment, cold and warm")
    ap.add_argument("--commits", type=int, default=60_000)
    ap.add_argument("--deliveries", type=int, default=20, help="warm deliveries (default 20)")
    ap.add_argument("--no-pacing", action="store_true", help="GitHub write/request pacing off")
    ap.add_argument("--gap", type=float, default=2.0,
                    help="idle seconds between warm deliveries, after the previous job's last write, plus a "
                         "random 0-0.5 s (default 2)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for one comment")
    ap.add_argument("--no-filter", action="store_true",
                    help="the fake refuses partial clones (the bot and the floor make full clones)")
    args = ap.parse_args(argv)
    if not (c.have_module("bot/service/run.py") and c.have_module("bot/service/wsgi.py")
            and c.have_module("tests/support/fakegithub.py")):
        print("e2e warm p95: pending (bot/service/run.py, bot/service/wsgi.py or tests/support/fakegithub.py "
              "does not exist yet)")
        return 0
    sys.path.insert(0, str(c.ROOT))
    from tests.support.fakegithub import FakeGitHub, payload_for, webhook_headers  # noqa: E402

    src, meta = dryrun.fixture(args.commits)
    print(f"machine: {c.machine()}")
    print(f"fixture: {meta['commits_total']} commits, {meta['tags']} tags, {meta['paths']} paths")
    with contextlib.ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="e2e-", dir=c.OUT))
        stack.callback(shutil.rmtree, tmp, True)
        # A shared clone to add PR heads to, so the cached fixture is left as it is.
        work = WorkRepo(tmp / "work")
        subprocess.run(["git", "clone", "-q", "--shared", "--no-checkout", str(src), str(work.path)], check=True)
        for ref in ("bump",):
            work.git("branch", "-f", ref, f"origin/{ref}")
        gh = FakeGitHub(tmp / "gh").start()
        stack.callback(gh.stop)
        gh.git_filters = not args.no_filter
        t = time.perf_counter()
        gh.add_repo(REPO, work)
        head = work.git("rev-parse", "bump")
        gh.add_pull(REPO, PR, head, "main", "bump")
        bare = gh.repos[REPO].bare
        subprocess.run(["git", "-C", str(bare), "update-ref", "-d", "refs/heads/bump"], check=True)
        print(f"hosted on the fake in {time.perf_counter() - t:.1f} s (not timed)")

        secret = "bench-e2e-secret-0123456789"
        port = free_port()
        env = c.env_with_root()
        token = gh.add_token("minbump-bot")
        env.update({"WEBHOOK_SECRET": secret, "GITHUB_API_URL": gh.api_url,
                    "GITHUB_TOKEN": token, "MINBUMP_DATA_DIR": str(tmp / "data"),
                    "MINBUMP_CACHE_DIR": str(tmp / "cache")})
        for k in ("REDIS_URL", "APP_ID", "PRIVATE_KEY", "PRIVATE_KEY_PATH"):
            env.pop(k, None)
        if args.no_pacing:
            env.update({"MINBUMP_GITHUB_WRITE_INTERVAL": "0", "MINBUMP_GITHUB_REQUEST_INTERVAL": "0"})
        log = open(tmp / "service.log", "wb")
        proc = subprocess.Popen([c.python(), "-m", "bot", "serve", "--host", "127.0.0.1", "--port", str(port)],
                                env=env, cwd=c.run_cwd(), stdout=log, stderr=log, start_new_session=True)

        def stop_service() -> None:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()

        stack.callback(stop_service)

        def tail() -> str:
            log.flush()
            return (tmp / "service.log").read_text(errors="replace")[-1500:]

        deadline = time.monotonic() + 30
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"service did not start: {tail()}")
            time.sleep(0.05)

        from bot.service.github import MARKER  # noqa: E402  (imported after the service started: not timed)

        def deliver_and_wait(action: str, sha: str) -> float:
            payload = payload_for(f"pull_request.{action}", gh, REPO, PR, sha, "main")
            body = json.dumps(payload).encode()
            headers = webhook_headers("pull_request", body, secret)
            t0 = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/webhook", body=body, headers=headers)
            status = conn.getresponse().status
            conn.close()
            if status != 202:
                raise SystemExit(f"delivery answered {status}: {tail()}")
            end = time.monotonic() + args.timeout
            while time.monotonic() < end:
                for cm in gh.pr_comments(REPO, PR):
                    if MARKER in cm["body"] and sha in cm["body"]:
                        return time.perf_counter() - t0
                time.sleep(0.005)
            raise SystemExit(f"no comment for {sha[:12]} after {args.timeout:.0f} s: {tail()}")

        rnd = random.Random(6)

        def settle(sha: str) -> None:
            """Wait until the job's last write (its commit status) is in, then ``--gap`` seconds idle,
            so each delivery meets an idle service, as pushes minutes apart do."""
            end = time.monotonic() + args.timeout
            while not gh.commit_statuses(REPO, sha) and not gh.runs_for(REPO, sha) and time.monotonic() < end:
                time.sleep(0.01)
            # A random extra half second: a fixed gap would land every delivery at the same
            # phase of the worker's queue polling (always just after a poll, the worst case).
            time.sleep(args.gap + (rnd.uniform(0, 0.5) if args.gap else 0))

        floors = [floor_clone(gh.clone_url(REPO), token, tmp / "floor.git")]
        cold = deliver_and_wait("opened", head)
        settle(head)
        floors.append(floor_clone(gh.clone_url(REPO), token, tmp / "floor.git"))
        floor = sum(floors) / len(floors)
        print(f"cold (first delivery, empty cache): {cold:.2f} s; floor git clone --bare --filter=blob:none: "
              + " / ".join(f"{x:.2f} s" for x in floors) + f" (before / after); ratio {cold / floor:.2f} "
              f"(goal <= {COLD_GOAL})")
        for name, ms in first_delivery_steps(tmp / "service.log"):
            print(f"  cold {ms:7.0f} ms  {name}")
        warm: list[float] = []
        parent = head
        tree = work.git("rev-parse", "bump^{tree}")
        for i in range(args.deliveries):
            env_c = dict(os.environ, GIT_AUTHOR_NAME="Dev", GIT_AUTHOR_EMAIL="dev@example.org",
                         GIT_COMMITTER_NAME="Dev", GIT_COMMITTER_EMAIL="dev@example.org",
                         GIT_AUTHOR_DATE=f"2025-11-20T11:{i // 60:02d}:{i % 60:02d}+00:00",
                         GIT_COMMITTER_DATE=f"2025-11-20T11:{i // 60:02d}:{i % 60:02d}+00:00")
            sha = subprocess.run(["git", "-C", str(work.path), "commit-tree", tree, "-p", parent, "-m",
                                  f"Address review comments ({i + 1})"], check=True, capture_output=True,
                                 text=True, env=env_c).stdout.strip()
            gh.set_head(REPO, PR, sha)  # the push to the PR branch (not timed)
            warm.append(deliver_and_wait("synchronize", sha))
            settle(sha)
            parent = sha
        n_comments = sum(1 for cm in gh.pr_comments(REPO, PR) if MARKER in cm["body"])
        steps = step_offsets(tmp / "service.log", skip_first=1)
    pacing = "off" if args.no_pacing else "on (service defaults)"
    print(f"GitHub write pacing: {pacing}; bot comments on the PR: {n_comments} (edited in place)")
    print("warm runs: " + ", ".join(f"{x * 1000:.0f} ms" for x in warm))
    if steps:
        print("where a warm delivery's time goes (service log, median ms after webhook.accepted):")
        for name, ms in steps:
            print(f"  {ms:7.0f} ms  {name}")
    p50 = c.percentile(warm, 50)
    p95 = c.percentile(warm, 95)
    ok = "PASS" if p95 < P95_TARGET else "FAIL"
    cold_ok = "met" if cold / floor <= COLD_GOAL else "not met"
    print(f"e2e warm p95: {p95 * 1000:.0f} ms (p50 {p50 * 1000:.0f} ms, {len(warm)} deliveries, target < "
          f"{P95_TARGET * 1000:.0f} ms) {ok}; cold first comment {cold:.2f} s = {cold / floor:.2f}x the partial "
          f"clone floor {floor:.2f} s (goal <= {COLD_GOAL}: {cold_ok})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
