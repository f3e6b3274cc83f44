"""A tiny in-memory Hugging Face Hub for tests, served over HTTP on 127.0.0.1.

It speaks just the part of the Hub protocol that ``huggingface_hub`` 2.x uses to create a repo, commit
files and download them back, so the tests exercise the real client end to end (not mocks). Test
fixture only, not product code. Stdlib only: ``http.server`` + a thread.

Endpoints (repo ids are ``namespace/name``; only model repos):

- ``POST /api/repos/create``                       ``create_repo`` (records the ``private`` flag)
- ``POST /api/validate-yaml``                      ``create_commit`` validates a README's metadata first
- ``POST /api/models/{repo}/preupload/{rev}``      upload modes: always ``"regular"`` (base64 inside the
  commit), which the client honours, so no LFS or Xet transfer is needed
- ``POST /api/models/{repo}/commit/{rev}``         the NDJSON commit itself
- ``GET  /api/models/{repo}[/revision/{rev}]``     ``model_info`` / ``repo_info``
- ``GET  /api/models/{repo}/tree/{rev}[/{path}]``  ``list_repo_tree`` (``snapshot_download``)
- ``HEAD|GET /{repo}/resolve/{rev}/{path}``        ``hf_hub_download``: ``X-Repo-Commit``, ``ETag``,
  ``Content-Length`` (no ``X-Xet-*`` headers, so the client downloads over plain HTTP)

Every request is recorded with its ``Authorization`` header, so tests can check what was sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

_REPO = r"(?P<repo>[^/]+/[^/]+)"
KNOWN_LICENSES = {"apache-2.0", "mit", "cc-by-4.0", "llama3.2", "other"}  # a few of the Hub's license ids
_ROUTES = [
    ("POST", re.compile(r"^/api/repos/create$"), "create_repo"),
    ("POST", re.compile(r"^/api/validate-yaml$"), "validate_yaml"),
    ("POST", re.compile(rf"^/api/models/{_REPO}/preupload/(?P<rev>[^/]+)$"), "preupload"),
    ("POST", re.compile(rf"^/api/models/{_REPO}/commit/(?P<rev>[^/]+)$"), "commit"),
    ("GET", re.compile(rf"^/api/models/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$"), "tree"),
    ("GET", re.compile(rf"^/api/models/{_REPO}(?:/revision/(?P<rev>[^/]+))?$"), "model_info"),
    ("GET", re.compile(rf"^/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"), "resolve"),
    ("HEAD", re.compile(rf"^/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"), "resolve"),
]


def git_blob_oid(content: bytes) -> str:
    """The git blob sha1 the Hub uses as a regular file's oid and ETag."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class Commit:
    oid: str
    message: str
    files: dict[str, bytes]


@dataclass
class Repo:
    owner: str
    private: bool
    commits: list[Commit] = field(default_factory=list)

    def resolve(self, revision: str) -> Commit | None:
        if revision == "main":
            return self.commits[-1] if self.commits else None
        return next((c for c in self.commits if c.oid == revision), None)


@dataclass
class Recorded:
    method: str
    path: str
    authorization: str | None


class HubError(Exception):
    """An HTTP error the way the Hub reports it: status, ``X-Error-Code`` and a JSON ``error``."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None, **body):
        super().__init__(message)
        self.status, self.message, self.code, self.headers, self.body = status, message, code, headers or {}, body


class HubServer:
    """In-memory Hub. ``tokens`` maps each accepted token to its user name.

    Use as a context manager, or call :meth:`start` / :meth:`stop`; :attr:`url` is the endpoint.
    """

    def __init__(self, tokens: dict[str, str]):
        self.tokens = dict(tokens)
        self.repos: dict[str, Repo] = {}
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.hub = self  # type: ignore[attr-defined]
        # A short poll interval: stop() waits for it, once per test.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- helpers for tests ------------------------------------------------------------------------

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """The files of ``repo_id`` at ``revision`` (default: the latest commit)."""
        commit = self.repos[repo_id].resolve(revision)
        return dict(commit.files) if commit else {}

    # -- request handling -------------------------------------------------------------------------

    def _user(self, authorization: str | None, required: bool) -> str | None:
        if authorization is None:
            if required:
                raise HubError(401, "You must be authenticated to do this")
            return None
        token = authorization.removeprefix("Bearer ").strip()
        if token not in self.tokens:
            # The exact message huggingface_hub recognises as a bad token (not a missing repo).
            raise HubError(401, "Invalid credentials in Authorization header")
        return self.tokens[token]

    def _repo(self, repo_id: str, user: str | None, write: bool = False) -> Repo:
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and user != repo.owner):
            # The Hub hides private repos from others behind the same answer as a missing one.
            raise HubError(401 if user is None else 404, "Repository not found", code="RepoNotFound")
        if write and user != repo.owner:
            raise HubError(403, f"You don't have the rights to write to {repo_id}")
        return repo

    def _commit_of(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(unquote(revision))
        if commit is None:
            raise HubError(404, "Invalid rev id", code="RevisionNotFound")
        return commit

    def handle(self, method: str, path: str, authorization: str | None, body: bytes):
        """Answer one request: ``(status, headers, body bytes)``."""
        for route_method, pattern, name in _ROUTES:
            match = pattern.match(path)
            if match and route_method == method:
                params = {k: unquote(v) if v is not None else None for k, v in match.groupdict().items()}
                with self._lock:
                    return getattr(self, f"_{name}")(method, authorization, body, **params)
        raise HubError(404, f"no route for {method} {path}")

    def _create_repo(self, method, authorization, body):
        user = self._user(authorization, required=True)
        payload = json.loads(body)
        namespace = payload.get("organization") or user
        repo_id = f"{namespace}/{payload['name']}"
        if namespace != user:
            raise HubError(403, f"You don't have the rights to create a model under the namespace {namespace}")
        if repo_id in self.repos:
            # Like the Hub, a conflict still tells the URL: `create_repo(exist_ok=True)` returns it.
            raise HubError(409, "You already created this model repo", url=f"{self.url}/{repo_id}")
        self.repos[repo_id] = Repo(owner=user, private=payload.get("visibility") == "private")
        return _json(200, {"url": f"{self.url}/{repo_id}", "name": repo_id, "id": repo_id})

    def _validate_yaml(self, method, authorization, body):
        # One real check, enough to exercise the client's "invalid metadata" path: the license id.
        content = json.loads(body)["content"]
        front = content.split("---")[1] if content.startswith("---") else ""
        licenses = [line.split(":", 1)[1].strip() for line in front.splitlines() if line.startswith("license:")]
        errors = [{"message": f'"license" must be one of {sorted(KNOWN_LICENSES)}'} for x in licenses if x not in KNOWN_LICENSES]
        return _json(400 if errors else 200, {"errors": errors, "warnings": []})

    def _preupload(self, method, authorization, body, repo, rev):
        user = self._user(authorization, required=True)
        self._repo(repo, user, write=True)
        files = json.loads(body)["files"]
        answer = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None} for f in files]
        return _json(200, {"files": answer, "commitOid": None})

    def _commit(self, method, authorization, body, repo, rev):
        user = self._user(authorization, required=True)
        target = self._repo(repo, user, write=True)
        if unquote(rev) != "main":
            raise HubError(400, "this test Hub only commits to main")
        parent = target.resolve("main")
        files = dict(parent.files) if parent else {}
        message = ""
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                message = value["summary"]
            elif key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, "only base64 file content is supported")
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                files.pop(value["path"], None)
            else:  # lfsFile, deletedFolder, ...: never asked for, since preupload answers "regular"
                raise HubError(400, f"unsupported commit operation {key!r}")
        seed = json.dumps([parent.oid if parent else None, message, sorted((p, git_blob_oid(c)) for p, c in files.items())])
        oid = hashlib.sha1(seed.encode()).hexdigest()
        target.commits.append(Commit(oid=oid, message=message, files=files))
        return _json(200, {"commitUrl": f"{self.url}/{repo}/commit/{oid}", "commitOid": oid, "pullRequestUrl": None})

    def _model_info(self, method, authorization, body, repo, rev=None):
        user = self._user(authorization, required=False)
        target = self._repo(repo, user)
        commit = self._commit_of(target, rev or "main")
        info = {
            "id": repo,
            "author": repo.split("/")[0],
            "sha": commit.oid,
            "private": target.private,
            "siblings": [{"rfilename": p} for p in sorted(commit.files)],
        }
        return _json(200, info)

    def _tree(self, method, authorization, body, repo, rev, path=None):
        user = self._user(authorization, required=False)
        commit = self._commit_of(self._repo(repo, user), rev)
        prefix = f"{path.rstrip('/')}/" if path else ""
        entries = [
            {"type": "file", "path": p, "size": len(c), "oid": git_blob_oid(c)}
            for p, c in sorted(commit.files.items())
            if p.startswith(prefix)
        ]
        return _json(200, entries)

    def _resolve(self, method, authorization, body, repo, rev, path):
        user = self._user(authorization, required=False)
        commit = self._commit_of(self._repo(repo, user), rev)
        if path not in commit.files:
            raise HubError(404, "Entry not found", code="EntryNotFound", headers={"X-Repo-Commit": commit.oid})
        content = commit.files[path]
        headers = {
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{git_blob_oid(content)}"',
            "Content-Type": "application/octet-stream",
        }
        return 200, headers, content


def _json(status: int, data) -> tuple[int, dict, bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(data).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects; every answer carries Content-Length

    def _serve(self) -> None:
        hub: HubServer = self.server.hub  # type: ignore[attr-defined]
        path = urlsplit(self.path).path
        authorization = self.headers.get("Authorization")
        hub.requests.append(Recorded(self.command, path, authorization))
        body = self._read_body()
        try:
            status, headers, content = hub.handle(self.command, path, authorization, body)
        except HubError as e:
            headers = {"Content-Type": "application/json", "X-Error-Message": e.message, **e.headers}
            if e.code:
                headers["X-Error-Code"] = e.code
            status, content = e.status, json.dumps({"error": e.message, **e.body}).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # the CRLF after each chunk
                if size == 0:
                    return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format, *args) -> None:  # noqa: A002 - quiet: tests read hub.requests instead
        pass
