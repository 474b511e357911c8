"""A local stand-in for the Hugging Face Hub's file endpoints, so downloads run the real huggingface_hub code offline.

What ``hf_hub_download(repo_id, filename, revision=commit)`` asks for, answered the way huggingface.co answers an LFS
file (huggingface_hub 2.x, ``file_download.get_hf_file_metadata`` then ``http_get``):

- ``HEAD``/``GET /{repo_id}/resolve/{revision}/{filename}``: ``302`` to a CDN address on *another host name*
  (``localhost`` instead of ``127.0.0.1``, so the client treats it as off-hub and drops the token), with
  ``X-Repo-Commit`` (the commit), ``X-Linked-Etag`` (the file's sha256) and ``X-Linked-Size``.
  Errors as the hub gives them: ``401`` + ``X-Error-Code: GatedRepo`` for a gated repository without the accepted
  token, ``401`` + ``RepoNotFound`` for an unknown repository, ``404`` + ``RevisionNotFound`` / ``EntryNotFound``.
- ``HEAD``/``GET /cdn/{sha256}``: the bytes, with ``Content-Length`` and ``ETag``, streamed in small writes.

``FakeHub.requests`` records ``(method, path, authorization)`` of every request; ``FakeHub.corrupt`` holds sha256s
whose bytes are served altered (same length), as a broken transfer would deliver them.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RESOLVE = "/resolve/"
CDN = "/cdn/"


@dataclass
class FakeRepo:
    commit: str
    files: dict[str, bytes]
    gated: bool = False


@dataclass
class FakeHub:
    """A running fake hub on ``127.0.0.1`` (``endpoint``); ``stop()`` shuts it down (a later request is refused)."""

    token: str = "hf_fake_token_accepted"
    repos: dict[str, FakeRepo] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    corrupt: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:  # noqa: N802  (http.server's naming)
                hub._answer(self, with_body=False)

            def do_GET(self) -> None:  # noqa: N802
                hub._answer(self, with_body=True)

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, repo_id: str, commit: str, files: dict[str, bytes], gated: bool = False) -> None:
        self.repos[repo_id] = FakeRepo(commit, files, gated)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _blob(self, sha256: str) -> bytes | None:
        for repo in self.repos.values():
            for data in repo.files.values():
                if hashlib.sha256(data).hexdigest() == sha256:
                    return bytes(b ^ 0xFF for b in data) if sha256 in self.corrupt else data
        return None

    def _answer(self, request: BaseHTTPRequestHandler, with_body: bool) -> None:
        path = request.path.split("?")[0]
        self.requests.append((request.command, path, request.headers.get("authorization")))
        if path.startswith(CDN):
            data = self._blob(path[len(CDN):])
            if data is None:
                return _send(request, 404, {})
            headers = {"Content-Length": str(len(data)), "ETag": f'"{path[len(CDN):]}"'}
            return _send(request, 200, headers, data if with_body else b"")
        if RESOLVE not in path:
            return _send(request, 404, {})
        repo_id, rest = path[1:].split(RESOLVE, 1)
        revision, filename = rest.split("/", 1)
        repo = self.repos.get(repo_id)
        if repo is None:
            return _send(request, 401, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})
        if repo.gated and request.headers.get("authorization") != f"Bearer {self.token}":
            message = f"Access to model {repo_id} is restricted. You must have access to it and be authenticated."
            return _send(request, 401, {"X-Error-Code": "GatedRepo", "X-Error-Message": message})
        if revision not in (repo.commit, "main"):
            return _send(request, 404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"})
        commit = {"X-Repo-Commit": repo.commit}
        if filename not in repo.files:
            missing = {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found"}
            return _send(request, 404, {**commit, **missing})
        sha256 = hashlib.sha256(repo.files[filename]).hexdigest()
        _send(request, 302, {
            **commit, "X-Linked-Etag": f'"{sha256}"', "X-Linked-Size": str(len(repo.files[filename])),
            "ETag": '"git-pointer-sha1"', "Location": f"http://localhost:{self.port}{CDN}{sha256}",
        })


def _send(request: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes = b"") -> None:
    request.send_response(status)
    headers = {"Content-Length": str(len(body)), **headers} if status != 200 else headers
    for name, value in headers.items():
        request.send_header(name, value)
    request.end_headers()
    for start in range(0, len(body), 4096):  # a stream of small writes, as a real transfer arrives
        request.wfile.write(body[start:start + 4096])
