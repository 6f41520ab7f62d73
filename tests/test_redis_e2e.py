"""Redis mode end to end: real `minbump worker` processes, real git, real analyzer, the fake GitHub.

The web app runs in this process behind a real HTTP server; two (or one)
``minbump worker`` subprocesses with their own data dirs (one per "machine")
share only Redis and the fake GitHub with it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from rq.job import Job
from rq.serializers import JSONSerializer
from werkzeug.serving import make_server

from bot.service.github import MARKER
from bot.service.queue.redis import RedisBackend
from tests.support.fakegithub import (
    NOVA_DRIVER,
    SECRET,
    FakeGitHub,
    fake_github,  # noqa: F401
    fast_env,
    payload_for,
    webhook_headers,
)
from tests.support.gitrepo import GitRepo
from tests.support.nova import CONFIG, driver
from tests.support.redis_server import RedisServer, own_redis_server, redis_env, redis_server, stop_process  # noqa: F401

REPO = "octo/nova"
BOT = "minbump-bot"
ROOT = Path(__file__).resolve().parent.parent
N_PRS = 20
TWICE = range(1, 7)  # PRs that get a second push during the burst
REOPENED = range(7, 11)  # PRs that get a `reopened` of the same head


@pytest.fixture(scope="module")
def nova_prs(tmp_path_factory: pytest.TempPathFactory) -> tuple[GitRepo, dict[int, list[str]]]:
    """One base (MIN_LIBVIRT_VERSION 1.2.1, tag 14.0.0) and per PR one or two heads raising it to 1.2.9."""
    work = GitRepo(tmp_path_factory.mktemp("nova") / "work")
    base = work.commit({NOVA_DRIVER: driver("(1, 2, 1)", "(1, 2, 1)"), ".github/minbump.yml": CONFIG},
                       date="2016-09-01T10:00:00+00:00")
    work.tag("14.0.0", date="2016-10-06T10:00:00+00:00")
    heads: dict[int, list[str]] = {}
    for n in range(1, N_PRS + 1):
        work.git("checkout", "-q", "--detach", base)
        shas = [work.commit({NOVA_DRIVER: driver("(1, 2, 9)", "(1, 2, 9)") + f"# pr {n}\n"},
                            date="2016-11-20T10:00:00+00:00")]
        if n in TWICE:
            shas.append(work.commit({NOVA_DRIVER: driver("(1, 2, 9)", "(1, 2, 9)") + f"# pr {n}, push 2\n"},
                                    date="2016-11-21T10:00:00+00:00"))
        heads[n] = shas
    work.checkout("main")
    return work, heads


class Web:
    """``bot.service.wsgi.create_app`` in Redis mode behind werkzeug's threaded HTTP server."""

    def __init__(self, env: dict[str, str]) -> None:
        from bot.service.settings import Settings
        from bot.service.wsgi import create_app

        self.app = create_app(Settings.from_env(env))
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def deliver(self, body: bytes, headers: dict[str, str]) -> requests.Response:
        return requests.post(self.url + "/webhook", data=body, headers=headers, timeout=30)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Delivery:
    """One webhook as GitHub would send it (and resend it, byte for byte, with the same id)."""

    def __init__(self, gh: FakeGitHub, name: str, pr: int, head: str) -> None:
        self.pr, self.head = pr, head
        self.body = json.dumps(payload_for(name, gh, REPO, pr, head, installation_id=None)).encode()
        self.headers = webhook_headers(name.split(".")[0], self.body, SECRET)
        self.id = self.headers["X-GitHub-Delivery"]


def worker_env(gh: FakeGitHub, token: str, redis_vars: dict[str, str], data: Path) -> dict[str, str]:
    env = fast_env(gh, data, GITHUB_TOKEN=token, **redis_vars)
    env["MINBUMP_LEASE_SECONDS"] = "2"
    env["MINBUMP_SWEEP_SECONDS"] = "0.5"
    return env


def start_minbump_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``minbump worker`` as the Procfile runs it (through the console entry point's module)."""
    full = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "GITHUB_TOKEN", "WEBHOOK_SECRET")}
    full.update(env)
    full["PYTHONPATH"] = str(ROOT)
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "bot.cli", "worker"], cwd=ROOT, env=full,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for(cond: Callable[[], bool], timeout: float, what: str, logs: list[Path] = ()) -> float:  # type: ignore[assignment]
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return time.monotonic() - t0
        time.sleep(0.1)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-4000:]}" for p in logs if p.exists())
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tails}")


def ours(gh: FakeGitHub, pr: int) -> list[dict[str, Any]]:
    return [c for c in gh.pr_comments(REPO, pr) if c["user"]["login"] == BOT and MARKER in c["body"]]


def idle(b: RedisBackend) -> bool:
    """Nothing queued, running or waiting for a retry."""
    q = b.queue
    return q.count == 0 and q.started_job_registry.count == 0 and q.scheduled_job_registry.count == 0


@pytest.fixture()
def hosted(fake_github: FakeGitHub, nova_prs: tuple[GitRepo, dict[int, list[str]]]) -> dict[int, list[str]]:  # noqa: F811
    work, heads = nova_prs
    fake_github.add_repo(REPO, work)
    for n, shas in heads.items():
        fake_github.add_pull(REPO, n, shas[0], "main", f"bump-{n}")
    return heads


@pytest.fixture()
def cluster(tmp_path: Path, fake_github: FakeGitHub, redis_server: RedisServer) -> Iterator[dict[str, Any]]:  # noqa: F811
    """A web app and three workers on one Redis: two on "machine0" (sharing its git cache), one on
    "machine1"; nothing shared on disk between machines or with the web process."""
    token = fake_github.add_token(BOT)
    rvars = redis_env(redis_server.url)
    web_env = fast_env(fake_github, tmp_path / "web-data", GITHUB_TOKEN=token, **rvars)
    web = Web(web_env)
    machines = [0, 0, 1]
    logs = [tmp_path / f"worker{i}.log" for i in range(len(machines))]
    workers = [start_minbump_worker(worker_env(fake_github, token, rvars, tmp_path / f"machine{m}"), logs[i])
               for i, m in enumerate(machines)]
    backend = RedisBackend.from_env(rvars)
    try:
        state: dict[str, Any] = {"web": web, "workers": workers, "logs": logs, "backend": backend,
                                 "tmp": tmp_path, "killed": set()}
        yield state
    finally:
        codes = [stop_process(w, timeout=20) for w in workers]
        web.stop()
    expected = [-signal.SIGKILL if w.pid in state["killed"] else 0 for w in workers]
    assert codes == expected, "\n".join(p.read_text()[-3000:] for p in logs)  # SIGTERM: clean exit
    assert not (tmp_path / "web-data").exists(), "the web process wrote to disk in Redis mode"


def test_burst_of_50_webhooks_for_20_prs_one_comment_each_newest_head_wins(
        cluster: dict[str, Any], fake_github: FakeGitHub, hosted: dict[int, list[str]]) -> None:  # noqa: F811
    web, backend, logs = cluster["web"], cluster["backend"], cluster["logs"]
    rng = random.Random(5)
    first = [Delivery(fake_github, "pull_request.opened", n, hosted[n][0]) for n in hosted]
    wave1 = first + rng.sample(first, 8)  # some redelivered while the original is in flight
    rng.shuffle(wave1)
    with ThreadPoolExecutor(8) as pool:
        r1 = list(pool.map(lambda d: (d, web.deliver(d.body, d.headers)), wave1))
    # PRs 4-6: a second push at once, while their first job may still be queued or running (dropped);
    # PRs 1-3: a second push after their first head was published (the comment is then edited)
    second = {n: Delivery(fake_github, "pull_request.synchronize", n, hosted[n][1]) for n in TWICE}
    for n in (4, 5, 6):
        fake_github.set_head(REPO, n, hosted[n][1])
    wave2 = [second[n] for n in (4, 5, 6)] + rng.sample(first, 4)
    rng.shuffle(wave2)
    with ThreadPoolExecutor(8) as pool:
        r2 = list(pool.map(lambda d: (d, web.deliver(d.body, d.headers)), wave2))
    wait_for(lambda: all(ours(fake_github, n) for n in (1, 2, 3)), 60, "the first heads of PRs 1-3", logs)
    for n in (1, 2, 3):
        fake_github.set_head(REPO, n, hosted[n][1])
    reopened = [Delivery(fake_github, "pull_request.reopened", n, hosted[n][0]) for n in REOPENED]
    wave3 = [second[n] for n in (1, 2, 3)] + reopened + rng.sample(first, 4) + rng.sample(list(second.values()), 4)
    rng.shuffle(wave3)
    with ThreadPoolExecutor(8) as pool:
        r2 += list(pool.map(lambda d: (d, web.deliver(d.body, d.headers)), wave3))
    results = r1 + r2
    assert len(results) == 50
    accepted = [d.id for d, r in results if r.status_code == 202]
    dupes = [d.id for d, r in results if r.status_code == 200 and r.json().get("duplicate")]
    assert sorted(accepted) == sorted({d.id for d, _ in results}), "every distinct delivery accepted once"
    assert len(accepted) == N_PRS + len(TWICE) + len(REOPENED) and len(dupes) == 50 - len(accepted)

    newest = {n: shas[-1] for n, shas in hosted.items()}

    def finished() -> bool:
        return idle(backend) and all(
            len(ours(fake_github, n)) == 1 and f"checked head {newest[n]}" in ours(fake_github, n)[0]["body"]
            and fake_github.commit_statuses(REPO, newest[n]) for n in hosted)

    wait_for(finished, 120, "every PR to show its newest head", logs)
    time.sleep(1.5)  # a late write for an old head would land now
    for n in hosted:
        comments = ours(fake_github, n)
        assert len(comments) == 1, f"PR {n} has {len(comments)} bot comments"
        assert f"checked head {newest[n]}" in comments[0]["body"] and "minbump: fail" in comments[0]["body"]
        assert [s["state"] for s in fake_github.commit_statuses(REPO, newest[n])][-1] == "failure"
    assert all(len(fake_github.pr_comments(REPO, n)) == 1 for n in hosted)  # nobody else posted either
    # strict order: after the first write naming a PR's newer head, none names the older one
    writes = [json.dumps({"path": w.path, "body": w.body}) for w in fake_github.writes()]
    for n in TWICE:
        old, new = hosted[n]
        touching = [w for w in writes if old in w or new in w]
        first_new = next(i for i, w in enumerate(touching) if new in w)
        assert not any(old in w for w in touching[first_new:]), f"PR {n}: a write for the old head came last"
    assert backend.failed_jobs() == []
    # every worker did jobs; each machine fetched into its own cache (two workers shared machine0's)
    for log in logs:
        assert '"step": "job.done"' in log.read_text(), f"{log.name}: this worker did no job"
    for m in (0, 1):
        assert list((cluster["tmp"] / f"machine{m}" / "git").glob("*/*.git")), f"machine{m} has no cache"


def test_worker_sigkilled_mid_publish_loses_nothing(
        cluster: dict[str, Any], fake_github: FakeGitHub, hosted: dict[int, list[str]]) -> None:  # noqa: F811
    web, backend, logs, workers = cluster["web"], cluster["backend"], cluster["logs"], cluster["workers"]
    pr, head = 3, hosted[3][0]
    entered, release = threading.Event(), threading.Event()

    def hold_first_comment_post(method: str, path: str) -> None:
        if method == "POST" and path == f"/repos/{REPO}/issues/{pr}/comments" and not entered.is_set():
            entered.set()
            release.wait(60)  # the worker dies while GitHub is "still processing" the write

    fake_github.on_request = hold_first_comment_post
    d = Delivery(fake_github, "pull_request.opened", pr, head)
    assert web.deliver(d.body, d.headers).status_code == 202
    wait_for(entered.is_set, 60, "the job to reach its comment POST", logs)
    job = Job.fetch(RedisBackend.job_id_for(d.id), connection=backend.conn, serializer=JSONSerializer)
    pid = int(job.worker_name.rsplit(".", 2)[1])
    [victim] = [w for w in workers if w.pid == pid]
    cluster["killed"].add(victim.pid)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    killed = time.monotonic()
    release.set()  # GitHub applies the orphaned POST anyway: the re-run must find that comment

    def done() -> bool:
        c = ours(fake_github, pr)
        return bool(c) and f"checked head {head}" in c[0]["body"] and bool(fake_github.commit_statuses(REPO, head))

    took = wait_for(done, 90, "the other worker to re-run the killed job", logs)
    assert took < 30, f"re-run took {took:.1f}s with a 2 s lease"
    assert time.monotonic() - killed < 90
    wait_for(lambda: idle(backend), 30, "the queue to drain", logs)
    assert len(ours(fake_github, pr)) == 1
    assert backend.failed_jobs() == []
    job.refresh()
    assert job.meta["attempts"] == 2 and job.get_status() == "finished"
    # another worker finished it
    finisher = [log for w, log in zip(workers, logs) if any(
        '"step": "job.done"' in line and d.id in line for line in log.read_text().splitlines())]
    assert len(finisher) == 1 and finisher[0] != logs[workers.index(victim)]


def test_redis_unreachable_is_503_and_the_redelivery_is_processed(
        tmp_path: Path, fake_github: FakeGitHub, hosted: dict[int, list[str]],  # noqa: F811
        own_redis_server: RedisServer) -> None:  # noqa: F811
    token = fake_github.add_token(BOT)
    rvars = redis_env(own_redis_server.url)
    web = Web(fast_env(fake_github, tmp_path / "web-data", GITHUB_TOKEN=token, **rvars))
    backend = RedisBackend.from_env(rvars)
    log = tmp_path / "worker.log"
    worker = start_minbump_worker(worker_env(fake_github, token, rvars, tmp_path / "machine"), log)
    try:
        d = Delivery(fake_github, "pull_request.opened", 5, hosted[5][0])
        own_redis_server.stop()
        r = web.deliver(d.body, d.headers)
        assert r.status_code == 503, r.text
        assert requests.get(web.url + "/readyz", timeout=10).status_code == 503

        own_redis_server.start()  # GitHub redelivers the failed delivery
        assert web.deliver(d.body, d.headers).status_code == 202
        assert web.deliver(d.body, d.headers).status_code == 200  # and only once
        wait_for(lambda: bool(ours(fake_github, 5)) and bool(fake_github.commit_statuses(REPO, hosted[5][0])),
                 60, "the worker (which lived through the outage) to publish", [log])

        # Redis restarts under the running worker: a later delivery is still processed
        own_redis_server.restart(down_for=1.0)
        later = Delivery(fake_github, "pull_request.opened", 6, hosted[6][0])
        assert web.deliver(later.body, later.headers).status_code == 202
        wait_for(lambda: bool(ours(fake_github, 6)), 60, "the worker to reconnect and publish", [log])
        assert worker.poll() is None
        assert backend.failed_jobs() == []
    finally:
        code = stop_process(worker, timeout=20)
        web.stop()
    assert code == 0, log.read_text()[-3000:]
