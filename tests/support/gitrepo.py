"""Real git repositories for tests: dated commits, tags, branches, renames.

Every test that proves a feature builds one of these instead of mocking git.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


class GitRepo:
    """A throwaway non-bare repository; `bare()` gives a bare clone of it."""

    def __init__(self, path: Path, branch: str = "main") -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", branch)
        self.git("config", "user.name", "Test Author")
        self.git("config", "user.email", "test@example.org")
        self.git("config", "commit.gpgsign", "false")

    def git(self, *args: str, date: str | None = None) -> str:
        env = dict(os.environ)
        env.pop("GIT_DIR", None)
        if date:
            env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = date
        out = subprocess.run(
            ["git", *args], cwd=self.path, env=env, check=True,
            capture_output=True, text=True,
        )
        return out.stdout.strip()

    def write(self, files: dict[str, str | bytes | None]) -> None:
        """Write (str/bytes) or delete (None) files relative to the work tree."""
        for rel, content in files.items():
            p = self.path / rel
            if content is None:
                if p.exists():
                    self.git("rm", "-q", "--", rel)
                continue
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                p.write_bytes(content)
            else:
                p.write_text(content)
            self.git("add", "--", rel)

    def commit(self, files: dict[str, str | bytes | None] | None = None,
               message: str = "change", date: str = "2016-01-01T12:00:00+00:00") -> str:
        """Commit the given changes with author and committer `date`; return the sha."""
        if files:
            self.write(files)
        self.git("commit", "-q", "--allow-empty", "-m", message, date=date)
        return self.head()

    def mv(self, old: str, new: str) -> None:
        (self.path / new).parent.mkdir(parents=True, exist_ok=True)
        self.git("mv", old, new)

    def tag(self, name: str, ref: str = "HEAD", date: str | None = None,
            annotated: bool = True) -> None:
        if annotated:
            self.git("tag", "-a", "-m", f"release {name}", name, ref, date=date)
        else:
            self.git("tag", name, ref)

    def branch(self, name: str, start: str = "HEAD") -> None:
        self.git("checkout", "-q", "-b", name, start)

    def checkout(self, name: str) -> None:
        self.git("checkout", "-q", name)

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def rev(self, ref: str) -> str:
        return self.git("rev-parse", ref)

    def bare(self, dest: Path) -> Path:
        """A bare clone, as the bot's cache and GitHub's side hold them."""
        subprocess.run(["git", "clone", "-q", "--bare", "--", str(self.path), str(dest)],
                       check=True, capture_output=True)
        return Path(dest)
