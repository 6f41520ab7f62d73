"""A bounded load generator for signed GitHub webhook deliveries on loopback.

Two engines, the same requests: ``wrk`` (Debian's package; used when it is on
PATH) driven by a generated Lua script, or a small threaded Python generator
with ``http.client`` keep-alive connections. Both send signed
``pull_request`` deliveries (each a distinct ``X-GitHub-Delivery``, bodies
cycled from a few PR variants, each correctly signed with
``X-Hub-Signature-256``) and stop by themselves: wrk after a fixed number of
seconds, the Python generator after a fixed number of requests.

Only loopback addresses are accepted as targets.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import math
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def pr_payload(number: int, head_sha: str, repo: str = "octo/nova", clone_url: str | None = None,
               installation_id: int = 4242, action: str = "synchronize", base_ref: str = "main") -> dict:
    """A pull_request event payload shaped (and sized, ~10 KB) like GitHub's."""
    owner, name = repo.split("/")
    api = "https://api.github.invalid"
    user = {"login": "dev-user", "id": 583231, "node_id": "MDQ6VXNlcjU4MzIzMQ==", "type": "User",
            "avatar_url": "https://avatars.invalid/u/583231?v=4", "site_admin": False,
            **{f"{k}_url": f"{api}/users/dev-user/{k}" for k in
               ("followers", "following", "gists", "starred", "subscriptions", "organizations", "repos",
                "events", "received_events")}}
    repository = {"id": 1234567, "node_id": "MDEwOlJlcG9zaXRvcnkxMjM0NTY3", "name": name, "full_name": repo,
                  "private": False, "owner": dict(user, login=owner, type="Organization"),
                  "default_branch": "main", "clone_url": clone_url or f"https://github.invalid/{repo}.git",
                  "description": "OpenStack Compute (Nova)", "fork": False, "size": 280000,
                  "language": "Python", "visibility": "public", "topics": ["openstack", "compute"],
                  **{f"{k}_url": f"{api}/repos/{repo}/{k}" for k in
                     ("forks", "keys", "collaborators", "teams", "hooks", "issue_events", "events", "assignees",
                      "branches", "tags", "blobs", "git_tags", "git_refs", "trees", "statuses", "languages",
                      "stargazers", "contributors", "subscribers", "subscription", "commits", "git_commits",
                      "comments", "issue_comment", "contents", "compare", "merges", "archive", "downloads",
                      "issues", "pulls", "milestones", "notifications", "labels", "releases", "deployments")}}
    pr = {"url": f"{api}/repos/{repo}/pulls/{number}", "id": 900000 + number, "number": number,
          "state": "open", "locked": False, "title": "libvirt: Bump MIN_{LIBVIRT,QEMU}_VERSION",
          "user": user, "body": "Bump the minimum libvirt to 8.0.0 and QEMU to 6.2.0.\n" * 8,
          "created_at": "2025-11-20T10:00:00Z", "updated_at": "2025-11-20T10:05:00Z",
          "draft": False, "merged": False, "mergeable": None, "commits": 1, "additions": 9, "deletions": 5,
          "changed_files": 2,
          "head": {"label": f"dev-user:bump-{number}", "ref": f"bump-{number}", "sha": head_sha,
                   "user": user, "repo": repository},
          "base": {"label": f"{owner}:{base_ref}", "ref": base_ref, "sha": "0" * 40, "user": user,
                   "repo": repository}}
    return {"action": action, "number": number, "pull_request": pr, "repository": repository,
            "sender": user,
            "installation": {"id": installation_id, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNDI0Mg=="}}


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def make_bodies(secret: str, variants: int = 32) -> list[tuple[bytes, str]]:
    """``variants`` distinct signed bodies (different PR numbers and head shas)."""
    out = []
    for i in range(variants):
        sha = hashlib.sha1(f"head-{i}".encode()).hexdigest()
        body = json.dumps(pr_payload(100 + i, sha)).encode()
        out.append((body, sign(body, secret)))
    return out


@dataclass
class Result:
    engine: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)  # python engine: every request
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _check_loopback(host: str) -> None:
    if host not in LOOPBACK and not host.startswith("127."):
        raise ValueError(f"refusing to load a non-loopback address: {host}")


def _pct(sorted_ms: list[float], p: float) -> float:
    if not sorted_ms:
        return 0.0
    k = max(0, min(len(sorted_ms) - 1, math.ceil(p / 100.0 * len(sorted_ms)) - 1))  # nearest rank
    return sorted_ms[k]


def run_python(host: str, port: int, path: str, bodies: list[tuple[bytes, str]], requests: int,
               connections: int = 4, timeout: float = 10.0, close: bool = False) -> Result:
    """Threaded generator: ``requests`` POSTs split over ``connections`` threads, each on one
    keep-alive connection, or with ``close`` on a new connection per request."""
    _check_loopback(host)
    per = [requests // connections + (1 if i < requests % connections else 0) for i in range(connections)]
    lat: list[list[float]] = [[] for _ in range(connections)]
    errs = [0] * connections
    statuses: list[dict[int, int]] = [{} for _ in range(connections)]
    start = threading.Barrier(connections + 1)

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        mine = lat[k]
        st = statuses[k]
        start.wait()
        for j in range(per[k]):
            body, sig = bodies[(k + j * connections) % len(bodies)]
            headers = {"Content-Type": "application/json", "X-GitHub-Event": "pull_request",
                       "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": sig,
                       "User-Agent": "GitHub-Hookshot/bench"}
            if close:
                headers["Connection"] = "close"
            t = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                code = resp.status
                if resp.will_close:
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=timeout)
            except (OSError, http.client.HTTPException):
                code = 0
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
            mine.append((time.perf_counter() - t) * 1000.0)
            st[code] = st.get(code, 0) + 1
            if code != 202:
                errs[k] += 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(connections)]
    for th in threads:
        th.start()
    start.wait()
    t0 = time.perf_counter()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t0
    all_ms = sorted(x for xs in lat for x in xs)
    merged: dict[int, int] = {}
    for st in statuses:
        for k, v in st.items():
            merged[k] = merged.get(k, 0) + v
    return Result("python", len(all_ms), sum(errs), elapsed, all_ms, _pct(all_ms, 50), _pct(all_ms, 99), merged)


_LUA = r"""
-- generated by bench/loadgen.py: signed pull_request deliveries (wrk bounds the run by time)
local bodies = {%(bodies)s}
local sigs = {%(sigs)s}
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
end

function request()
  counter = counter + 1
  local i = ((counter + tid) %% #bodies) + 1
  local headers = {}
  headers["Content-Type"] = "application/json"
  headers["X-GitHub-Event"] = "pull_request"
  headers["X-GitHub-Delivery"] = string.format("%(nonce)s-%%d-%%d", tid, counter)
  headers["X-Hub-Signature-256"] = sigs[i]
%(close)s  return wrk.format("POST", "%(path)s", headers, bodies[i])
end

function done(summary, latency, requests)
  io.write(string.format("BENCH %%d %%d %%d %%.3f %%.3f\n", summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status +
    summary.errors.timeout, summary.duration, latency:percentile(50) / 1000.0,
    latency:percentile(99) / 1000.0))
end
"""


def _lua_str(b: bytes) -> str:
    return '"' + "".join(f"\\{x:03d}" if (x < 32 or x > 126 or x in (34, 92)) else chr(x) for x in b) + '"'


def run_wrk(host: str, port: int, path: str, bodies: list[tuple[bytes, str]], seconds: float = 3.0,
            connections: int = 4, threads: int = 1, close: bool = False) -> Result:
    """Drive with wrk for ``seconds`` (whole seconds): ``threads`` threads, ``connections`` concurrent
    connections, kept alive, or with ``close`` a new connection for every request."""
    _check_loopback(host)
    wrk = shutil.which("wrk")
    if not wrk:
        raise FileNotFoundError("wrk")
    script = _LUA % {
        "bodies": ",".join(_lua_str(b) for b, _ in bodies),
        "sigs": ",".join(_lua_str(s.encode()) for _, s in bodies),
        "path": path,
        "nonce": uuid.uuid4().hex,
        "close": '  headers["Connection"] = "close"\n' if close else "",
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        lua = f.name
    try:
        p = subprocess.run([wrk, "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
                            "--timeout", "10s", "-s", lua, f"http://{host}:{port}{path}"],
                           capture_output=True, text=True, timeout=seconds + 60)
    finally:
        os.unlink(lua)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk produced no summary: {p.stdout[-400:]} {p.stderr[-400:]}")
    _, n, errs, dur_us, p50, p99 = line.split()
    return Result("wrk", int(n), int(errs), float(dur_us) / 1e6, [], float(p50), float(p99))


def engine_name(engine: str = "auto") -> str:
    if engine == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    return engine


def run(host: str, port: int, path: str, bodies: list[tuple[bytes, str]], requests: int, seconds: float,
        connections: int = 4, engine: str = "auto", close: bool = False) -> Result:
    """One bounded round: wrk for ``seconds``, or the Python generator for ``requests`` requests."""
    if engine_name(engine) == "wrk":
        return run_wrk(host, port, path, bodies, seconds, connections, close=close)
    return run_python(host, port, path, bodies, requests, connections, close=close)
