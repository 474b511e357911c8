"""A real ComfyUI server with this pack loaded: start it, talk to its HTTP API, drive its frontend, stop it.

Used by the tests against real ComfyUI (``tests/comfyui/``) and by ``python -m scripts.make_workflows``.

Standard library only (the tests' interpreter needs nothing extra for the HTTP side). Written against ComfyUI 0.3.75:
a pack that fails to import does not stop the server (it is only logged, hence the log check), ``/prompt`` answers a
validation error with HTTP 400 + JSON, and ``/history/<id>`` holds ``status.completed`` once a prompt has finished.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_INSTALL = REPO_ROOT / ".comfyui-test"
# The pack is loaded through a link with a name other than the repository's: it must work whatever its folder is.
PACK_FOLDER_NAME = "ComfyUI-DreamDance-renamed"
START_TIMEOUT_S = 180.0

CHROMIUM = "/usr/bin/chromium"
# A closed network: without the background-networking flags Chromium keeps trying to reach Google's hosts.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]
# The frontend is ready when the app, its graph and canvas exist, the core nodes are registered and the start-up
# workflow (the default graph, as the tutorial is marked done) has loaded.
APP_READY = (
    "() => !!(window.app && app.graph && app.canvas && window.LiteGraph?.registered_node_types?.SaveImage"
    " && app.graph.nodes.length > 0)"
)

# The frontends the browser tests run: the one ComfyUI 0.3.75 bundles (comfyui-frontend-package 1.32.9) and the newest
# comfyui-frontend-package, which scripts/setup_comfyui.sh installs with pip into its own folder (pinned there too) and
# the server serves with --front-end-root.
BUNDLED_FRONTEND = "bundled"
NEWEST_FRONTEND = "1.58.1"
FRONTENDS = (BUNDLED_FRONTEND, NEWEST_FRONTEND)
# The frontend setting that draws nodes as Vue components ("Nodes 2.0") instead of on the LiteGraph canvas.
VUE_NODES_SETTING = "Comfy.VueNodes.Enabled"


def frontend_root(frontend: str) -> Path | None:
    """The static folder to serve for ``frontend`` (None: the bundled one). DREAMDANCE_FRONTEND_ROOT_<version with
    underscores> (e.g. DREAMDANCE_FRONTEND_ROOT_1_58_1) points at another copy of that version's static folder."""
    if frontend == BUNDLED_FRONTEND:
        return None
    override = os.environ.get("DREAMDANCE_FRONTEND_ROOT_" + frontend.replace(".", "_"))
    root = Path(override) if override else (
        DEFAULT_INSTALL / f"frontend-{frontend}" / "comfyui_frontend_package" / "static")
    if not (root / "index.html").is_file():
        raise FileNotFoundError(f"no comfyui-frontend-package {frontend} in {root} (run scripts/setup_comfyui.sh)")
    return root


class PromptRejected(RuntimeError):
    """``POST /prompt`` answered with an error (HTTP 400: validation); ``body`` holds the server's JSON."""

    def __init__(self, status: int, body: Any):
        super().__init__(f"/prompt rejected (HTTP {status}): {json.dumps(body)[:2000]}")
        self.status, self.body = status, body


class PromptFailed(RuntimeError):
    """The prompt was accepted but a node raised (or it was interrupted); ``entry`` is its /history entry."""

    def __init__(self, prompt_id: str, entry: dict[str, Any]):
        messages = entry.get("status", {}).get("messages", [])
        errors = [data for kind, data in messages if kind in ("execution_error", "execution_interrupted")]
        super().__init__(f"prompt {prompt_id} failed: {json.dumps(errors)[:4000]}")
        self.prompt_id, self.entry = prompt_id, entry


@dataclass(frozen=True)
class ComfyInstall:
    """Where ComfyUI lives and the interpreter that runs it."""

    comfy_dir: Path
    python: Path

    @classmethod
    def from_env(cls) -> ComfyInstall:
        """``DREAMDANCE_COMFYUI_DIR`` / ``DREAMDANCE_COMFYUI_PYTHON``, else what scripts/setup_comfyui.sh installs."""
        external = os.environ.get("DREAMDANCE_COMFYUI_DIR")
        if external:
            return cls(Path(external).resolve(), Path(os.environ.get("DREAMDANCE_COMFYUI_PYTHON", sys.executable)))
        return cls(DEFAULT_INSTALL / "ComfyUI", DEFAULT_INSTALL / "venv" / "bin" / "python")


def run_setup_script() -> str:
    """Run scripts/setup_comfyui.sh (idempotent); returns its output, raises with the output when it fails."""
    env = dict(os.environ, DREAMDANCE_TEST_PYTHON=sys.executable)
    done = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "setup_comfyui.sh")],
        env=env, capture_output=True, text=True, check=False,
    )
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise RuntimeError(f"scripts/setup_comfyui.sh failed (exit {done.returncode}):\n{output[-6000:]}")
    return output


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class ServerDirs:
    """Throw-away state of one server run, all under ``root``."""

    root: Path
    packs: Path = field(init=False)
    models: Path = field(init=False)
    user: Path = field(init=False)
    input: Path = field(init=False)
    output: Path = field(init=False)
    temp: Path = field(init=False)
    log: Path = field(init=False)
    extra_paths: Path = field(init=False)

    def __post_init__(self) -> None:
        for name in ("packs", "models", "user", "input", "output", "temp"):
            setattr(self, name, self.root / name)
        self.log = self.root / "comfyui.log"
        self.extra_paths = self.root / "extra_model_paths.yaml"

    def create(self) -> None:
        """Folders, the pack link, model folders, frontend settings and the extra paths yaml."""
        for path in (self.packs, self.models / "dreamdance", self.models / "checkpoints", self.input, self.output,
                     self.temp, self.user / "default"):
            path.mkdir(parents=True, exist_ok=True)
        (self.packs / PACK_FOLDER_NAME).symlink_to(REPO_ROOT, target_is_directory=True)
        # Without it the frontend opens its template browser over the canvas on a first run.
        (self.user / "default" / "comfy.settings.json").write_text(json.dumps({"Comfy.TutorialCompleted": True}))
        self.extra_paths.write_text(
            "dreamdance_tests:\n"
            f"    base_path: {self.models}\n"
            f"    custom_nodes: {self.packs}\n"
            "    checkpoints: checkpoints\n"
            "    dreamdance: dreamdance\n"
        )


class ComfyServer:
    """One ComfyUI process (CPU, no caching) serving on 127.0.0.1, with this pack loaded from ``dirs.packs``."""

    def __init__(self, install: ComfyInstall, dirs: ServerDirs, front_end_root: Path | None = None):
        self.install, self.dirs = install, dirs
        self.front_end_root = front_end_root  # a frontend's static folder (--front-end-root); None: the bundled one
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen | None = None

    @property
    def models_dir(self) -> Path:
        return self.dirs.models

    @property
    def input_dir(self) -> Path:
        return self.dirs.input

    @property
    def output_dir(self) -> Path:
        return self.dirs.output

    def command(self) -> list[str]:
        return [
            str(self.install.python), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
            "--disable-auto-launch", "--disable-api-nodes", "--preview-method", "none",
            "--extra-model-paths-config", str(self.dirs.extra_paths),
            "--user-directory", str(self.dirs.user), "--output-directory", str(self.dirs.output),
            "--input-directory", str(self.dirs.input), "--temp-directory", str(self.dirs.temp),
            "--database-url", "sqlite:///:memory:", "--cache-none",
        ] + (["--front-end-root", str(self.front_end_root)] if self.front_end_root else [])

    def start(self) -> float:
        """Start the server and wait until it answers; returns the seconds that took. Raises with the log tail."""
        self.dirs.create()
        started = time.monotonic()
        with self.dirs.log.open("w") as log:
            self._process = subprocess.Popen(
                self.command(), cwd=self.install.comfy_dir, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        while time.monotonic() - started < START_TIMEOUT_S:
            if self._process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with code {self._process.returncode}:\n{self.log_tail()}")
            if self._answers():
                self.check_pack_imported()
                return time.monotonic() - started
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"ComfyUI did not answer within {START_TIMEOUT_S:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Terminate the server (then kill it if it lingers)."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=15)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/system_stats", timeout=2):
                return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def pack_import_failures(self) -> list[str]:
        """Log lines saying that this pack failed to import (other packs' failures are not ours)."""
        link = self.dirs.packs / PACK_FOLDER_NAME
        paths = "|".join(
            re.escape(str(path)) for path in {link, self.dirs.packs.resolve() / PACK_FOLDER_NAME, REPO_ROOT}
        )
        pattern = re.compile(
            rf"(Cannot import|IMPORT FAILED\):|Error while calling comfy_entrypoint in) *({paths})(\s|$)"
        )
        return [line for line in self.log_text().splitlines() if pattern.search(line)]

    def check_pack_imported(self) -> None:
        failures = self.pack_import_failures()
        if failures:
            raise RuntimeError("the DreamDance pack failed to import in ComfyUI:\n"
                               + "\n".join(failures) + "\n" + self.log_tail())

    def log_text(self) -> str:
        return self.dirs.log.read_text(errors="replace")

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def request(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> tuple[int, Any]:
        """(HTTP status, decoded JSON body); error statuses are returned, not raised (/prompt answers 400 + JSON)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                return response.status, _json_or_text(response.read())
        except urllib.error.HTTPError as error:
            return error.code, _json_or_text(error.read())

    def get(self, path: str) -> Any:
        """GET ``path`` and return its JSON; raises on an error status."""
        status, body = self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path} -> HTTP {status}: {body}")
        return body

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        """POST JSON to ``path``; returns (status, JSON body)."""
        return self.request("POST", path, body)

    def interrupt(self) -> None:
        self.post("/interrupt", {})

    def run_prompt(self, prompt: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        """Queue an API-format prompt and wait for it; returns its /history entry.

        Raises PromptRejected (validation, HTTP 400), PromptFailed (a node raised) or TimeoutError (after
        interrupting the run).
        """
        status, body = self.post("/prompt", {"prompt": prompt, "client_id": uuid.uuid4().hex})
        if status != 200:
            raise PromptRejected(status, body)
        prompt_id = body["prompt_id"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.get(f"/history/{prompt_id}").get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None:
                if entry["status"]["status_str"] != "success":
                    raise PromptFailed(prompt_id, entry)
                return entry
            time.sleep(0.1)
        self.interrupt()
        raise TimeoutError(f"prompt {prompt_id} not done after {timeout} s (interrupted):\n{self.log_tail(30)}")


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except json.JSONDecodeError:
        return raw.decode(errors="replace")
