"""A small, stateful fake of the GitHub REST API and git smart HTTP, on a real socket.

Why a fake server and not mocks: the bot's seams are HTTP (PyGithub, urllib3
retries, pagination via Link headers, JWT exchange) and git over the network
(``git fetch`` with credentials from the environment). Tests drive those real
clients against this server, so retries, fault handling and the git transport
are exercised exactly as in production. Reused by the Redis tests and benchmarks:

    with FakeGitHub(tmp_path) as gh:
        gh.add_repo("octo/nova", work_repo)          # tests.gitrepo.GitRepo
        gh.add_pull("octo/nova", 7, head_sha, "main")
        env = {"GITHUB_API_URL": gh.api_url, "GITHUB_TOKEN": gh.add_token("bot-user")}

The API lives under ``/api/v3`` (as on GitHub Enterprise Server), git under
``/{owner}/{repo}.git``. Faults: :meth:`fault` (HTTP status N times,
secondary rate limit with ``Retry-After``, apply-then-fail for writes).
Every request is recorded in :attr:`requests`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import os
import re
import secrets
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

API_PREFIX = "/api/v3"
ROOT = Path(__file__).resolve().parents[2]
PAYLOADS = ROOT / "fixtures" / "payloads"


@dataclass
class Recorded:
    """One request the fake answered."""

    method: str
    path: str  # without the API prefix for API calls; full path for git
    query: dict[str, list[str]]
    status: int
    body: Any
    auth: str  # "token:<login>", "jwt:<app id>", "basic:<login>", "none", "bad"
    kind: str  # "api" | "git"


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int
    times: int
    mode: str  # "fail" | "apply_then_fail" | "ratelimit" | "apply" | "apply_late"
    retry_after: int
    hits: int = 0
    stall: float = 0.0  # seconds the answer is held (outlasting a client's timeout)
    answered: int = 0  # matching requests fully handled (a stalled one counts once its stall is over)


@dataclass
class FakeRepo:
    full_name: str
    id: int
    bare: Path
    work: Any = None  # the tests.gitrepo.GitRepo it mirrors
    private: bool = True
    default_branch: str = "main"


@dataclass
class FakePull:
    number: int
    head_sha: str
    head_ref: str
    base_ref: str
    state: str = "open"
    title: str = "Raise minimum"


def sign(body: bytes, secret: str) -> str:
    """The ``X-Hub-Signature-256`` header value GitHub sends for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def load_payload(name: str) -> dict[str, Any]:
    """A recorded webhook payload from ``fixtures/payloads/<name>.json``."""
    return json.loads((PAYLOADS / f"{name}.json").read_text())


class FakeGitHub:
    """The fake server. ``start()``/``stop()`` or use as a context manager."""

    def __init__(self, root: Path, *, app_id: int = 4242, app_slug: str = "minbump-test",
                 per_page_default: int = 30) -> None:
        self.root = Path(root)
        self.git_root = self.root / "git"
        self.git_root.mkdir(parents=True, exist_ok=True)
        self.app_id = app_id
        self.app_slug = app_slug
        self.per_page_default = per_page_default
        key = _app_key()
        self.private_key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()).decode()
        self.public_key = key.public_key()
        self.lock = threading.RLock()
        self.tokens: dict[str, str] = {}  # token -> login
        self.installation_tokens: dict[str, int] = {}  # token -> installation id
        self.installations: set[int] = set()
        self.repos: dict[str, FakeRepo] = {}
        self.pulls: dict[tuple[str, int], FakePull] = {}
        self.comments: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.statuses: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.check_runs: dict[int, dict[str, Any]] = {}
        self.annotations: dict[int, list[dict[str, Any]]] = {}
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.on_request: Any = None  # optional callback(method, path) -> None, e.g. move a head
        # git serving: partial clones (`--filter=blob:none`) as GitHub allows them; False makes
        # http-backend answer as a server without filters (git warns and sends every object).
        self.git_filters = True
        self._ids = itertools.count(1000)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # --- lifecycle ------------------------------------------------------------
    def start(self) -> FakeGitHub:
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True,
                                   request_handler=_QuietHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True, name="fakegithub")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return self.url + API_PREFIX

    # --- state setup ------------------------------------------------------------
    def add_token(self, login: str, token: str | None = None) -> str:
        """Register a personal/bot token for ``login``; returns it."""
        token = token or "ghp_" + secrets.token_hex(18)
        with self.lock:
            self.tokens[token] = login
        return token

    def add_installation(self, installation_id: int) -> None:
        with self.lock:
            self.installations.add(installation_id)

    def clone_url(self, full_name: str) -> str:
        return f"{self.url}/{full_name}.git"

    def add_repo(self, full_name: str, work: Any, private: bool = True) -> FakeRepo:
        """Host ``work`` (a tests.gitrepo.GitRepo) as ``full_name``: branches and tags are pushed."""
        bare = self.git_root / f"{full_name}.git"
        bare.parent.mkdir(parents=True, exist_ok=True)
        if bare.exists():
            shutil.rmtree(bare)
        subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True, capture_output=True)
        repo = FakeRepo(full_name, next(self._ids), bare, work, private)
        with self.lock:
            self.repos[full_name] = repo
        self.sync(full_name)
        return repo

    def sync(self, full_name: str) -> None:
        """Push the work repository's branches and tags to the hosted bare repository."""
        repo = self.repos[full_name]
        repo.work.git("push", "-q", "--force", str(repo.bare),
                      "refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*")

    def add_pull(self, full_name: str, number: int, head_sha: str, base_ref: str = "main",
                 head_ref: str = "feature") -> FakePull:
        """Open PR ``number``; its head is published as ``refs/pull/N/head`` only (as for a fork)."""
        pull = FakePull(number, head_sha, head_ref, base_ref)
        with self.lock:
            self.pulls[(full_name, number)] = pull
        self.set_head(full_name, number, head_sha)
        return pull

    def set_head(self, full_name: str, number: int, head_sha: str, update_ref: bool = True) -> None:
        """Move the PR head (a push to the PR branch).

        ``update_ref=False`` moves only the API's view, as GitHub does for a moment
        after a push: ``refs/pull/N/head`` catches up later (call :meth:`push_pull_ref`).
        """
        if update_ref:
            self.push_pull_ref(full_name, number, head_sha)
        with self.lock:
            self.pulls[(full_name, number)].head_sha = head_sha

    def push_pull_ref(self, full_name: str, number: int, sha: str) -> None:
        repo = self.repos[full_name]
        repo.work.git("push", "-q", "--force", str(repo.bare), f"{sha}:refs/pull/{number}/head")

    def fault(self, method: str, path: str, status: int = 502, times: int = 1,
              mode: str = "fail", retry_after: int = 1, stall: float = 0.0) -> Fault:
        """Make the next ``times`` matching API requests fail.

        ``path`` is a regex matched against the path without the API prefix.
        ``mode``: "fail" (status, nothing applied), "apply_then_fail" (the write
        happens, then ``status`` is returned), "ratelimit" (403 secondary rate
        limit with ``Retry-After``), "apply" (the write happens and is answered
        normally, ``stall`` seconds late), "apply_late" (the request waits
        ``stall`` seconds, then the write happens: a slow GitHub that applies a
        request its client has already given up on). Other requests are served
        during a stall.
        """
        f = Fault(method.upper(), re.compile(path), status, times, mode, retry_after, stall=stall)
        with self.lock:
            self.faults.append(f)
        return f

    def add_comment(self, full_name: str, number: int, body: str, login: str,
                    user_type: str = "User") -> dict[str, Any]:
        """Seed a comment by someone else (e.g. a user pasting the bot marker)."""
        with self.lock:
            return self._new_comment(full_name, number, body, login, user_type)

    # --- queries for assertions -------------------------------------------------------
    def pr_comments(self, full_name: str, number: int) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(c) for c in self.comments.get((full_name, number), [])]

    def commit_statuses(self, full_name: str, sha: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(s) for s in self.statuses.get((full_name, sha), [])]

    def runs_for(self, full_name: str, sha: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.check_runs.values()
                    if r["_repo"] == full_name and r["head_sha"] == sha]

    def count(self, method: str, pattern: str, status: int | None = None) -> int:
        rx = re.compile(pattern)
        with self.lock:
            return sum(1 for r in self.requests if r.method == method.upper()
                       and rx.fullmatch(r.path) and (status is None or r.status == status))

    def writes(self) -> list[Recorded]:
        """Every API request that changes state (what "no second write" is checked against)."""
        with self.lock:
            return [r for r in self.requests if r.kind == "api" and r.method in ("POST", "PATCH", "PUT", "DELETE")
                    and "/access_tokens" not in r.path]

    # --- WSGI --------------------------------------------------------------------------
    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        req = Request(environ)
        path = req.path
        if path.startswith(API_PREFIX + "/") or path == API_PREFIX:
            resp = self._api(req, path[len(API_PREFIX):] or "/")
        elif re.match(r"^/[^/]+/[^/]+\.git(/|$)", path):
            resp = self._git(req, environ)
        else:
            resp = self._json({"message": "Not Found"}, 404)
        return resp(environ, start_response)

    def _json(self, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        r = Response(json.dumps(data), status=status, mimetype="application/json")
        for k, v in (headers or {}).items():
            r.headers[k] = v
        return r

    def _auth(self, req: Request) -> tuple[str, str | None]:
        """("token", login) | ("installation", login) | ("jwt", app_id) | ("none"|"bad", None)."""
        header = req.headers.get("Authorization", "")
        if not header:
            return "none", None
        scheme, _, cred = header.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and cred.count(".") == 2:
            try:
                claims = jwt.decode(cred, self.public_key, algorithms=["RS256"],
                                    options={"require": ["iat", "exp", "iss"]}, leeway=60)
            except jwt.PyJWTError:
                return "bad", None
            if str(claims["iss"]) != str(self.app_id) or claims["exp"] - claims["iat"] > 660:
                return "bad", None
            return "jwt", str(claims["iss"])
        if scheme in ("token", "bearer"):
            with self.lock:
                if cred in self.tokens:
                    return "token", self.tokens[cred]
                if cred in self.installation_tokens:
                    return "installation", f"{self.app_slug}[bot]"
            return "bad", None
        if scheme == "basic":
            try:
                _, _, password = base64.b64decode(cred).decode().partition(":")
            except Exception:
                return "bad", None
            with self.lock:
                if password in self.tokens:
                    return "token", self.tokens[password]
                if password in self.installation_tokens:
                    return "installation", f"{self.app_slug}[bot]"
            return "bad", None
        return "bad", None

    def _record(self, req: Request, path: str, status: int, body: Any, auth: str, kind: str) -> None:
        with self.lock:
            self.requests.append(Recorded(req.method, path, parse_qs(req.query_string.decode()),
                                          status, body, auth, kind))

    def _api(self, req: Request, path: str) -> Response:
        method = req.method.upper()
        raw = req.get_data()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                return self._json({"message": "Problems parsing JSON"}, 400)
        kind, who = self._auth(req)
        auth_label = f"{kind}:{who}" if who else kind
        if self.on_request is not None:
            self.on_request(method, path)
        fault = None
        with self.lock:
            for f in self.faults:
                if f.hits < f.times and f.method == method and f.pattern.fullmatch(path):
                    f.hits += 1
                    fault = f
                    break
        if fault is not None and fault.mode in ("fail", "ratelimit"):
            if fault.mode == "ratelimit":
                resp = self._json({"message": "You have exceeded a secondary rate limit. "
                                              "Please wait a few minutes before you try again.",
                                   "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"},
                                  403, {"Retry-After": str(fault.retry_after)})
            else:
                resp = self._json({"message": "Server Error"}, fault.status)
            self._record(req, path, resp.status_code, body, auth_label, "api")
            return resp
        if fault is not None and fault.mode == "apply_late":
            time.sleep(fault.stall)
        try:
            resp = self._route(method, path, req, body, kind, who)
        except _HTTPError as e:
            resp = self._json({"message": e.message}, e.status)
        if fault is not None and fault.mode == "apply":
            time.sleep(fault.stall)
        if fault is not None and fault.mode == "apply_then_fail":
            resp = self._json({"message": "Server Error"}, fault.status)
        self._record(req, path, resp.status_code, body, auth_label, "api")
        if fault is not None:
            with self.lock:
                fault.answered += 1
        return resp

    # --- API routes ------------------------------------------------------------------
    def _route(self, method: str, path: str, req: Request, body: Any, kind: str,
               who: str | None) -> Response:
        if kind in ("none", "bad"):
            raise _HTTPError(401, "Bad credentials")
        m = re.fullmatch
        if method == "GET" and path == "/user":
            if kind != "token":
                raise _HTTPError(403, "Resource not accessible by integration")
            return self._json(self._user(who or "", "User"))
        if method == "GET" and path == "/app":
            if kind != "jwt":
                raise _HTTPError(401, "A JSON web token could not be decoded")
            return self._json({"id": self.app_id, "slug": self.app_slug, "name": self.app_slug,
                               "node_id": "A_1", "owner": self._user("octo-org", "Organization"),
                               "html_url": f"{self.url}/apps/{self.app_slug}"})
        if (mm := m(r"/app/installations/(\d+)/access_tokens", path)) and method == "POST":
            if kind != "jwt":
                raise _HTTPError(401, "A JSON web token could not be decoded")
            inst = int(mm.group(1))
            if inst not in self.installations:
                raise _HTTPError(404, "Not Found")
            token = "ghs_" + secrets.token_hex(18)
            with self.lock:
                self.installation_tokens[token] = inst
            expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
            return self._json({"token": token, "expires_at": expires,
                               "permissions": {"checks": "write", "pull_requests": "write"},
                               "repository_selection": "all"}, 201)
        if kind == "jwt":
            raise _HTTPError(401, "A JSON web token cannot be used for this resource")
        if not (mm := m(r"/repos/([^/]+/[^/]+)(/.*)?", path)):
            raise _HTTPError(404, "Not Found")
        full, rest = mm.group(1), mm.group(2) or ""
        repo = self.repos.get(full)
        if repo is None:
            raise _HTTPError(404, "Not Found")
        if method == "GET" and rest == "":
            return self._json(self._repo(repo))
        if method == "GET" and rest == "/pulls":
            state = req.args.get("state", "open")
            with self.lock:
                pulls = [p for (name, _n), p in sorted(self.pulls.items()) if name == full
                         and state in ("all", p.state)]
            return self._page(req, path, [self._pull(repo, p) for p in pulls])
        if method == "GET" and (mm := m(r"/pulls/(\d+)", rest)):
            pull = self.pulls.get((full, int(mm.group(1))))
            if pull is None:
                raise _HTTPError(404, "Not Found")
            return self._json(self._pull(repo, pull))
        if (mm := m(r"/issues/(\d+)/comments", rest)):
            number = int(mm.group(1))
            if (full, number) not in self.pulls:
                raise _HTTPError(404, "Not Found")
            if method == "GET":
                return self._page(req, path, self.pr_comments(full, number))
            if method == "POST":
                if not isinstance(body, dict) or not isinstance(body.get("body"), str):
                    raise _HTTPError(422, "Validation Failed")
                if len(body["body"]) > 65536:
                    raise _HTTPError(422, "Validation Failed: body is too long (maximum is 65536 characters)")
                login, utype = self._actor(kind, who)
                with self.lock:
                    c = self._new_comment(full, number, body["body"], login, utype)
                return self._json(c, 201)
        if (mm := m(r"/issues/comments/(\d+)", rest)) and method == "GET":
            cid = int(mm.group(1))
            with self.lock:
                for (rname, _n), items in self.comments.items():
                    for c in items:
                        if rname == full and c["id"] == cid:
                            return self._json(dict(c))
            raise _HTTPError(404, "Not Found")
        if (mm := m(r"/issues/comments/(\d+)", rest)) and method == "PATCH":
            cid = int(mm.group(1))
            login, _ = self._actor(kind, who)
            with self.lock:
                for (rname, _n), items in self.comments.items():
                    for c in items:
                        if rname == full and c["id"] == cid:
                            if c["user"]["login"] != login:
                                raise _HTTPError(403, "Must have admin rights to Repository.")
                            if not isinstance(body, dict) or len(body.get("body", "")) > 65536:
                                raise _HTTPError(422, "Validation Failed")
                            c["body"] = body["body"]
                            c["updated_at"] = _now()
                            return self._json(dict(c))
            raise _HTTPError(404, "Not Found")
        if (mm := m(r"/statuses/([0-9a-f]{40})", rest)) and method == "POST":
            if not isinstance(body, dict) or body.get("state") not in ("error", "failure", "pending", "success"):
                raise _HTTPError(422, "Validation Failed")
            if len(body.get("description") or "") > 140:
                raise _HTTPError(422, "Validation Failed: description is too long (maximum is 140 characters)")
            sha = mm.group(1)
            st = {"id": next(self._ids), "state": body["state"], "context": body.get("context", "default"),
                  "description": body.get("description"), "target_url": body.get("target_url"),
                  "url": f"{self.api_url}/repos/{full}/statuses/{sha}", "created_at": _now(),
                  "creator": self._user(self._actor(kind, who)[0], "User")}
            with self.lock:
                self.statuses.setdefault((full, sha), []).append(st)
            return self._json(st, 201)
        if (mm := m(r"/commits/([0-9a-f]{40})/check-runs", rest)) and method == "GET":
            name = req.args.get("check_name")
            with self.lock:
                runs = [{k: v for k, v in r.items() if not k.startswith("_")} for r in self.check_runs.values()
                        if r["_repo"] == full and r["head_sha"] == mm.group(1) and (not name or r["name"] == name)]
            return self._json({"total_count": len(runs), "check_runs": runs})
        if rest == "/check-runs" and method == "POST":
            if kind != "installation":
                raise _HTTPError(403, "You must authenticate via a GitHub App.")
            return self._json(self._check_run_write(full, None, body), 201)
        if (mm := m(r"/check-runs/(\d+)", rest)) and method == "PATCH":
            if kind != "installation":
                raise _HTTPError(403, "You must authenticate via a GitHub App.")
            return self._json(self._check_run_write(full, int(mm.group(1)), body))
        raise _HTTPError(404, "Not Found")

    def _check_run_write(self, full: str, run_id: int | None, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _HTTPError(422, "Validation Failed")
        output = body.get("output") or {}
        anns = output.get("annotations") or []
        if len(anns) > 50:
            raise _HTTPError(422, "Validation Failed: at most 50 annotations per request")
        if len(output.get("summary") or "") > 65535 or len(output.get("text") or "") > 65535:
            raise _HTTPError(422, "Validation Failed: output too long (maximum is 65535 characters)")
        for a in anns:
            if not {"path", "start_line", "end_line", "annotation_level", "message"} <= set(a):
                raise _HTTPError(422, "Validation Failed: annotation fields")
        with self.lock:
            if run_id is None:
                if not body.get("name") or not re.fullmatch(r"[0-9a-f]{40}", body.get("head_sha", "")):
                    raise _HTTPError(422, "Validation Failed")
                run_id = next(self._ids)
                run = {"id": run_id, "_repo": full, "name": body["name"], "head_sha": body["head_sha"],
                       "status": "queued", "conclusion": None, "output": {},
                       "url": f"{self.api_url}/repos/{full}/check-runs/{run_id}",
                       "html_url": f"{self.url}/{full}/runs/{run_id}",
                       "app": {"id": self.app_id, "slug": self.app_slug}}
                self.check_runs[run_id] = run
                self.annotations[run_id] = []
            run = self.check_runs.get(run_id)
            if run is None or run["_repo"] != full:
                raise _HTTPError(404, "Not Found")
            for k in ("status", "conclusion", "details_url", "external_id", "name"):
                if k in body:
                    run[k] = body[k]
            if body.get("conclusion"):
                run["status"] = "completed"
            if output:
                run["output"] = {k: output.get(k) for k in ("title", "summary", "text")}
                self.annotations[run_id].extend(anns)
            run["output"]["annotations_count"] = len(self.annotations[run_id])
            return {k: v for k, v in run.items() if not k.startswith("_")}

    def _actor(self, kind: str, who: str | None) -> tuple[str, str]:
        return (who or "", "Bot" if kind == "installation" else "User")

    def _new_comment(self, full: str, number: int, body: str, login: str, utype: str) -> dict[str, Any]:
        cid = next(self._ids)
        c = {"id": cid, "node_id": f"IC_{cid}", "body": body, "user": self._user(login, utype),
             "url": f"{self.api_url}/repos/{full}/issues/comments/{cid}",
             "html_url": f"{self.url}/{full}/pull/{number}#issuecomment-{cid}",
             "issue_url": f"{self.api_url}/repos/{full}/issues/{number}",
             "created_at": _now(), "updated_at": _now(), "author_association": "NONE"}
        self.comments.setdefault((full, number), []).append(c)
        return dict(c)

    def _page(self, req: Request, path: str, items: list[Any]) -> Response:
        per_page = min(100, int(req.args.get("per_page", self.per_page_default)))
        page = max(1, int(req.args.get("page", 1)))
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page: page * per_page]
        links = []
        base = f"{self.api_url}{path}"
        if page < last:
            links.append(f'<{base}?{urlencode({"per_page": per_page, "page": page + 1})}>; rel="next"')
            links.append(f'<{base}?{urlencode({"per_page": per_page, "page": last})}>; rel="last"')
        if page > 1:
            links.append(f'<{base}?{urlencode({"per_page": per_page, "page": 1})}>; rel="first"')
            links.append(f'<{base}?{urlencode({"per_page": per_page, "page": page - 1})}>; rel="prev"')
        return self._json(chunk, 200, {"Link": ", ".join(links)} if links else None)

    def _user(self, login: str, utype: str) -> dict[str, Any]:
        uid = int(hashlib.sha256(login.encode()).hexdigest()[:6], 16)
        return {"login": login, "id": uid, "node_id": f"U_{uid}", "type": utype,
                "url": f"{self.api_url}/users/{login}", "site_admin": False}

    def _repo(self, repo: FakeRepo) -> dict[str, Any]:
        owner, name = repo.full_name.split("/")
        return {"id": repo.id, "node_id": f"R_{repo.id}", "name": name, "full_name": repo.full_name,
                "private": repo.private, "owner": self._user(owner, "Organization"),
                "html_url": f"{self.url}/{repo.full_name}", "url": f"{self.api_url}/repos/{repo.full_name}",
                "clone_url": self.clone_url(repo.full_name), "default_branch": repo.default_branch}

    def _pull(self, repo: FakeRepo, pull: FakePull) -> dict[str, Any]:
        base_sha = repo.work.rev(pull.base_ref) if repo.work is not None else None
        r = self._repo(repo)
        return {"id": pull.number + 10_000, "number": pull.number, "state": pull.state, "title": pull.title,
                "url": f"{self.api_url}/repos/{repo.full_name}/pulls/{pull.number}",
                "html_url": f"{self.url}/{repo.full_name}/pull/{pull.number}",
                "issue_url": f"{self.api_url}/repos/{repo.full_name}/issues/{pull.number}",
                "head": {"ref": pull.head_ref, "sha": pull.head_sha, "repo": r,
                         "label": f"{repo.full_name.split('/')[0]}:{pull.head_ref}"},
                "base": {"ref": pull.base_ref, "sha": base_sha, "repo": r,
                         "label": f"{repo.full_name.split('/')[0]}:{pull.base_ref}"},
                "user": self._user("contributor", "User")}

    # --- git smart HTTP via git http-backend (CGI) ------------------------------------------
    def _git(self, req: Request, environ: dict[str, Any]) -> Response:
        path = req.path
        mm = re.match(r"^/([^/]+/[^/]+)\.git(/.*)?$", path)
        full = mm.group(1) if mm else ""
        repo = self.repos.get(full)
        kind, who = self._auth(req)
        label = f"{kind}:{who}" if who else kind
        if repo is None:
            self._record(req, path, 404, None, label, "git")
            return Response("Repository not found\n", status=404)
        if repo.private and kind not in ("token", "installation"):
            self._record(req, path, 401, None, label, "git")
            return Response("Authentication required\n", status=401,
                            headers={"WWW-Authenticate": 'Basic realm="GitHub"'})
        data = req.get_data() if req.method == "POST" else b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.git_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path,
            "REQUEST_METHOD": req.method,
            "QUERY_STRING": req.query_string.decode(),
            "CONTENT_TYPE": req.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(data)),
            "REMOTE_USER": who or "",
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_PROTOCOL": req.headers.get("Git-Protocol", ""),
            "HTTP_CONTENT_ENCODING": req.headers.get("Content-Encoding", ""),
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "uploadpack.allowFilter",
            "GIT_CONFIG_VALUE_0": "true" if self.git_filters else "false",
        }
        proc = subprocess.run(["git", "http-backend"], input=data, env=env, capture_output=True,
                              timeout=60)
        head, _, payload = proc.stdout.partition(b"\r\n\r\n")
        status = 200
        headers: list[tuple[str, str]] = []
        for line in head.decode("latin-1").split("\r\n"):
            if not line:
                continue
            k, _, v = line.partition(":")
            if k.lower() == "status":
                status = int(v.strip().split()[0])
            else:
                headers.append((k.strip(), v.strip()))
        self._record(req, path, status, None, label, "git")
        return Response(payload, status=status, headers=headers)


_KEY: Any = None


def _app_key() -> Any:
    """One RSA key per test session: generating 2048-bit keys costs ~0.5 s each."""
    global _KEY
    if _KEY is None:
        _KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _KEY


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr: tests read the fake's :attr:`FakeGitHub.requests` instead."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class _HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def payload_for(name: str, gh: FakeGitHub, repo: str, pr: int, head_sha: str,
                base_ref: str = "main", installation_id: int | None = 31415926) -> dict[str, Any]:
    """A recorded payload pointed at ``gh``: repository, clone URL, PR number, shas, installation."""
    data = load_payload(name)
    owner, name_ = repo.split("/")
    r = data.get("repository")
    if isinstance(r, dict):
        r.update(full_name=repo, name=name_, clone_url=gh.clone_url(repo),
                 url=f"{gh.api_url}/repos/{repo}", html_url=f"{gh.url}/{repo}")
        r["owner"]["login"] = owner
    p = data.get("pull_request")
    if isinstance(p, dict):
        data["number"] = pr
        p.update(number=pr, url=f"{gh.api_url}/repos/{repo}/pulls/{pr}")
        p["head"]["sha"] = head_sha
        p["base"]["ref"] = base_ref
        p["base"]["repo"] = r
        if data.get("action") == "synchronize":
            data["after"] = head_sha
    for key in ("check_run", "check_suite"):
        cr = data.get(key)
        if not isinstance(cr, dict):
            continue
        cr["head_sha"] = head_sha
        cr["app"]["id"] = gh.app_id
        for item in cr.get("pull_requests", []):
            item["number"] = pr
            item["head"]["sha"] = head_sha
            item["base"]["ref"] = base_ref
    if installation_id is None:
        data.pop("installation", None)
    elif isinstance(data.get("installation"), dict):
        data["installation"]["id"] = installation_id
    return data


def webhook_headers(event: str, body: bytes, secret: str | None, delivery: str | None = None) -> dict[str, str]:
    """The headers GitHub sends with a delivery (signature only when ``secret`` is given)."""
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery or new_delivery_id(),
               "Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/abc1234",
               "X-GitHub-Hook-ID": "109948940"}
    if secret is not None:
        headers["X-Hub-Signature-256"] = sign(body, secret)
    return headers


def new_delivery_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def fake_github(tmp_path: Path) -> Iterator[FakeGitHub]:
    """A started FakeGitHub rooted in the test's tmp dir (stopped afterwards)."""
    with FakeGitHub(tmp_path / "fakegithub") as gh:
        yield gh


__all__ = ["FakeGitHub", "Recorded", "fake_github", "load_payload", "new_delivery_id", "payload_for", "sign",
           "webhook_headers"]


# --- a whole service against the fake: reused by job, Redis and benchmark tests -------------

SECRET = "whsec-test-0123456789"
NOVA_DRIVER = "nova/virt/libvirt/driver.py"


def fast_env(gh: FakeGitHub, data_dir: Path, **extra: str) -> dict[str, str]:
    """Service environment pointed at ``gh`` with retry delays shrunk for tests."""
    env = {"WEBHOOK_SECRET": SECRET, "GITHUB_API_URL": gh.api_url, "MINBUMP_DATA_DIR": str(data_dir),
           "MINBUMP_GITHUB_BACKOFF": "0.01", "MINBUMP_GITHUB_WRITE_INTERVAL": "0",
           "MINBUMP_GITHUB_REQUEST_INTERVAL": "0", "MINBUMP_GITHUB_TIMEOUT": "5",
           "MINBUMP_PUBLISH_BACKOFF": "0.01", "MINBUMP_RETRY_BASE": "0.05",
           "MINBUMP_SECONDARY_RATE_WAIT": "1", "MINBUMP_GIT_TIMEOUT": "30", "MINBUMP_REF_LAG_DELAY": "0.05",
           "MINBUMP_GITHUB_UNSURE_WAIT": "0.5"}
    env.update(extra)
    return env


def nova_repo(path: Path, *, head_min: str = "(1, 2, 9)",
              head_files: dict[str, Any] | None = None) -> tuple[Any, str, str]:
    """The Ocata-era nova bump: base 1.2.1 (tag 14.0.0, Newton), head raises to 1.2.9 unwarned.

    Returns (GitRepo, base sha, head sha); the head commit is on branch ``bump``.
    """
    from tests.support.gitrepo import GitRepo
    from tests.support.nova import CONFIG, driver

    work = GitRepo(path)
    base = work.commit({NOVA_DRIVER: driver("(1, 2, 1)", "(1, 2, 1)"), ".github/minbump.yml": CONFIG},
                       date="2016-09-01T10:00:00+00:00")
    work.tag("14.0.0", date="2016-10-06T10:00:00+00:00")
    work.branch("bump")
    files = {NOVA_DRIVER: driver(head_min, head_min)} if head_files is None else head_files
    head = work.commit(files, date="2016-11-20T10:00:00+00:00")
    work.checkout("main")
    return work, base, head


class Harness:
    """Web app + backend + job runner on one data dir, driven synchronously by tests.

    ``deliver`` posts a signed webhook through Flask's test client; ``work``
    runs the worker in burst mode until the queue is empty.
    """

    def __init__(self, gh: FakeGitHub, data_dir: Path, env: dict[str, str] | None = None,
                 backend: Any = None) -> None:
        from bot.service.job import JobRunner, JobSettings
        from bot.service.queue import get_backend
        from bot.service.settings import Settings
        from bot.service.wsgi import create_app

        self.gh = gh
        self.env = env or fast_env(gh, data_dir)
        self.backend = backend or get_backend(self.env)
        self.runner = JobRunner(JobSettings.from_env(self.env))
        self.app = create_app(Settings.from_env(self.env), backend=self.backend)
        self.client = self.app.test_client()

    def deliver(self, name: str, repo: str, pr: int, head_sha: str, base_ref: str = "main",
                delivery: str | None = None, event: str | None = None,
                mutate: Any = None, **kw: Any) -> Any:
        payload = payload_for(name, self.gh, repo, pr, head_sha, base_ref, **kw)
        if mutate is not None:
            mutate(payload)
        body = json.dumps(payload).encode()
        event = event or name.split(".")[0]
        return self.client.post("/webhook", data=body,
                                headers=webhook_headers(event, body, SECRET, delivery))

    def work(self, timeout: float = 30.0) -> int:
        stop = threading.Event()
        timer = threading.Timer(timeout, stop.set)
        timer.start()
        try:
            return self.backend.run_worker(self.runner.handler(), stop=stop, burst=True, poll=0.01)
        finally:
            timer.cancel()
