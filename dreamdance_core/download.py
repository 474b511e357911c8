"""Optional downloads of base weights from the Hugging Face Hub, only when a user asks.

The catalog (``configs/downloads.json``) names each downloadable file: repository, **pinned commit**, file in the
repository, the kind of model folder it belongs to (``checkpoints``, ``clip_vision``, ``dreamdance``) and the file
name it gets there, with its size and sha256 where known. :func:`download` fetches one entry through
``huggingface_hub.hf_hub_download`` into a hidden staging folder next to the destination, verifies it, and only then
renames it into place, so a failed or cancelled download never leaves a partial or unverified file where loaders
look. An entry with ``keep_prefixes`` keeps only those tensors (e.g. the image tower of a full CLIP model) and
records where they came from in the safetensors metadata.

Progress uses the core callback convention ``(step, total, None)`` with bytes as steps; an exception raised by the
callback (a cancel) stops the download between chunks.

Failures are :class:`DownloadError` subclasses whose message names the repository, revision, file and destination,
and says what to do (accept a licence and set ``HF_TOKEN``, check the connection, free disk space...).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

CATALOG_PATH = Path(__file__).resolve().parent / "configs" / "downloads.json"
KINDS = ("checkpoints", "clip_vision", "dreamdance")
HUB_URL = "https://huggingface.co"
STAGING_PREFIX = ".dreamdance-download-"
PROVENANCE_KEY = "dreamdance_source"
HASH_CHUNK = 16 * 1024 * 1024
_COMMIT = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")

Progress = Callable[[int, int, None], None]


class CatalogError(ValueError):
    """The download catalog is malformed, or names no such entry."""


class DownloadError(RuntimeError):
    """A download could not be completed; the message says which file, from where, to where, and what to do."""


class GatedRepoAccessError(DownloadError):
    """The hub refused access (401/403): a gated or private repository without an accepted licence or token."""


class RemoteFileNotFoundError(DownloadError):
    """The repository, the pinned revision or the file does not exist on the hub."""


class HubUnreachableError(DownloadError):
    """No connection to the hub (offline, ``HF_HUB_OFFLINE`` set, proxy or DNS trouble, hub down)."""


class VerificationError(DownloadError):
    """The downloaded or existing file does not match the catalog (size, sha256 or content)."""


class DiskError(DownloadError):
    """Not enough free space, or the destination folder cannot be written."""


@dataclass(frozen=True)
class CatalogEntry:
    """One downloadable file, pinned to a commit (see ``configs/downloads.json``)."""

    name: str
    repo_id: str
    revision: str
    filename: str
    kind: str
    target_name: str
    size: int | None
    sha256: str | None
    gated: bool
    purpose: str
    source: str
    keep_prefixes: tuple[str, ...] = ()

    @property
    def page(self) -> str:
        """The repository's page on the hub (where a gated licence is accepted)."""
        return f"{HUB_URL}/{self.repo_id}"

    @property
    def url(self) -> str:
        """Direct URL of the pinned file, for a manual download."""
        return f"{self.page}/resolve/{self.revision}/{self.filename}"

    def describe(self) -> str:
        """``'file' from repo at revision R`` for error messages."""
        return f"{self.filename!r} from {self.repo_id} at revision {self.revision}"


def load_catalog(path: str | os.PathLike | None = None) -> dict[str, CatalogEntry]:
    """Entries of a download catalog (default: the shipped one) by name, checked (full commit hashes, known folder
    kinds, plain file names)."""
    path = CATALOG_PATH if path is None else path
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))["entries"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CatalogError(f"cannot read the download catalog {path}: {error}") from error
    entries: dict[str, CatalogEntry] = {}
    for item in raw:
        entry = _parse_entry(item, path)
        if entry.name in entries:
            raise CatalogError(f"{path}: entry name {entry.name!r} is used twice")
        entries[entry.name] = entry
    return entries


def _parse_entry(item: dict, path: str | os.PathLike) -> CatalogEntry:
    """One catalog entry, or a :class:`CatalogError` naming the entry and the problem."""
    try:
        entry = CatalogEntry(**{**item, "keep_prefixes": tuple(item.get("keep_prefixes", ()))})
    except TypeError as error:
        raise CatalogError(f"{path}: malformed entry {item.get('name', item)!r}: {error}") from error
    problems = []
    if not _COMMIT.fullmatch(entry.revision):
        problems.append(f"revision {entry.revision!r} is not a full 40-hex commit hash")
    if entry.kind not in KINDS:
        problems.append(f"kind {entry.kind!r} is not one of {', '.join(KINDS)}")
    if entry.sha256 is not None and not _SHA256.fullmatch(entry.sha256):
        problems.append(f"sha256 {entry.sha256!r} is not 64 lowercase hex digits")
    if Path(entry.target_name).name != entry.target_name or not entry.target_name.endswith(".safetensors"):
        problems.append(f"target_name {entry.target_name!r} must be a plain .safetensors file name")
    if problems:
        raise CatalogError(f"{path}: entry {entry.name!r}: " + "; ".join(problems))
    return entry


def download(
    entry_name: str,
    folders: Mapping[str, str | os.PathLike],
    progress: Progress | None = None,
    token: str | None = None,
    *,
    catalog: Mapping[str, CatalogEntry] | None = None,
    endpoint: str | None = None,
) -> Path:
    """Download one catalog entry into its model folder and return the destination file.

    Args:
        entry_name: a name from the catalog (``load_catalog()``).
        folders: folder kind (``checkpoints``, ``clip_vision``, ``dreamdance``) -> folder to place files of that kind.
        progress: ``callback(bytes_done, bytes_total, None)``; an exception it raises (a cancel) aborts the download.
        token: Hugging Face token for gated repositories; default: ``HF_TOKEN`` or the stored ``hf auth login``.
        catalog: entries to choose from; default: the shipped catalog.
        endpoint: hub URL; default: huggingface_hub's (``HF_ENDPOINT``).

    An existing destination file that verifies against the catalog is kept and nothing is downloaded; an existing file
    that does not is never overwritten (:class:`VerificationError`).

    Raises:
        CatalogError: unknown entry name. DownloadError (subclasses): see the module docstring.
    """
    entries = load_catalog() if catalog is None else catalog
    if entry_name not in entries:
        raise CatalogError(f"no download named {entry_name!r}; known: {', '.join(entries)}")
    entry = entries[entry_name]
    if entry.kind not in folders:
        raise CatalogError(f"{entry.name!r} goes into a {entry.kind!r} folder, but none was given ({sorted(folders)})")
    folder = Path(folders[entry.kind])
    destination = folder / entry.target_name
    if destination.exists():
        _check_existing(entry, destination)
        return destination
    staging = _staging_folder(entry, folder)
    try:
        fetched = _fetch(entry, staging, destination, progress, token, endpoint)
        _verify(entry, fetched)
        if entry.keep_prefixes:
            fetched = _keep_tensors(entry, fetched, staging / f"kept-{entry.target_name}")
        os.replace(fetched, destination)
    except OSError as error:
        raise DiskError(f"could not write {entry.describe()} to {destination}: {error}") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return destination


def _staging_folder(entry: CatalogEntry, folder: Path) -> Path:
    """A new hidden folder inside ``folder`` (same file system: the final rename is atomic), after checking there is
    room for the file (twice for an entry that keeps a part of it)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(folder).free
        needed = (entry.size or 0) * (2 if entry.keep_prefixes else 1)
        if free < needed:
            raise DiskError(
                f"{entry.describe()} needs {needed / 1e9:.2f} GB in {folder}, but only {free / 1e9:.2f} GB are free. "
                f"Free some space, or download {entry.url} yourself and save it as {folder / entry.target_name}."
            )
        return Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=folder))
    except OSError as error:
        raise DiskError(
            f"cannot write into the {entry.kind} folder {folder} for {entry.describe()}: {error}"
        ) from error


def _fetch(
    entry: CatalogEntry, staging: Path, destination: Path, progress: Progress | None, token: str | None,
    endpoint: str | None,
) -> Path:
    """``hf_hub_download`` of the pinned file into ``staging``; hub failures become :class:`DownloadError`."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{entry.describe()} (into {destination})"
    manual = f"Or download {entry.url} yourself and save it as {destination}."
    extra = {}
    if "tqdm_class" in inspect.signature(hf_hub_download).parameters:  # older huggingface_hub: no byte progress
        extra["tqdm_class"] = _progress_class(progress, entry.size)
    try:
        return Path(
            hf_hub_download(
                entry.repo_id, entry.filename, revision=entry.revision, local_dir=staging, token=token,
                endpoint=endpoint, **extra,
            )
        )
    except GatedRepoError as error:
        raise _access_error(entry, where) from error
    except RevisionNotFoundError as error:
        raise RemoteFileNotFoundError(f"revision {entry.revision} does not exist in {entry.repo_id}: {where}. "
                                      f"The catalog pins a wrong commit. {manual}") from error
    except RepositoryNotFoundError as error:
        if entry.gated or _status(error) == 403:
            raise _access_error(entry, where) from error
        raise RemoteFileNotFoundError(f"repository {entry.repo_id} not found on the hub: {where}. {manual}") from error
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError, TimeoutError) as error:
        if _status(error) in (401, 403):
            raise _access_error(entry, where) from error
        raise HubUnreachableError(
            f"cannot reach the Hugging Face Hub to download {where}: {_root_message(error)}. Check the internet "
            f"connection, proxy and HF_ENDPOINT, and that HF_HUB_OFFLINE is not set. {manual}"
        ) from error
    except EntryNotFoundError as error:
        raise RemoteFileNotFoundError(f"file {entry.filename!r} not found in {entry.repo_id} at revision "
                                      f"{entry.revision} (wanted for {destination}). {manual}") from error
    except HfHubHTTPError as error:
        if _status(error) in (401, 403):
            raise _access_error(entry, where) from error
        raise DownloadError(f"the hub answered {_status(error)} for {where}: {_root_message(error)}. Try again "
                            f"later. {manual}") from error


def _access_error(entry: CatalogEntry, where: str) -> GatedRepoAccessError:
    """The 401/403 message: what to accept where, and how to hand over the token."""
    return GatedRepoAccessError(
        f"the hub refused access to {where}. {entry.repo_id} is a gated repository: log in at {HUB_URL}, accept "
        f"the licence on {entry.page}, create a read token ({HUB_URL}/settings/tokens) and set it as the HF_TOKEN "
        f"environment variable (or run `hf auth login`) before starting ComfyUI."
    )


def _status(error: BaseException) -> int | None:
    """The HTTP status behind ``error`` or any exception it was raised from, if any."""
    seen: BaseException | None = error
    while seen is not None:
        response = getattr(seen, "response", None)
        if getattr(response, "status_code", None) is not None:
            return response.status_code
        seen = seen.__cause__ or seen.__context__
    return None


def _root_message(error: BaseException) -> str:
    """The first line of the innermost cause (e.g. the connection error under huggingface_hub's wrapper)."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    return (str(error).strip().splitlines() or [type(error).__name__])[0].rstrip(".")


def _progress_class(progress: Progress | None, size: int | None):
    """A ``tqdm`` subclass for huggingface_hub's ``tqdm_class`` that reports bytes to ``progress``."""
    from huggingface_hub.utils import tqdm

    class CallbackProgress(tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.bytes_done = kwargs.get("initial") or 0
            self.bytes_total = kwargs.get("total") or size or 0

        def update(self, n: int | float | None = 1):
            self.bytes_done += n or 0
            if progress is not None:
                progress(int(self.bytes_done), int(max(self.bytes_total, self.bytes_done)), None)
            return super().update(n)

    return CallbackProgress


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _mismatch(entry: CatalogEntry, path: Path) -> str | None:
    """What differs between ``path`` and the catalog's size/sha256 (None when it matches or nothing is known)."""
    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        return f"it has {size} bytes, the catalog expects {entry.size}"
    if entry.sha256 is not None and (digest := _sha256(path)) != entry.sha256:
        return f"its sha256 is {digest}, the catalog expects {entry.sha256}"
    return None


def _verify(entry: CatalogEntry, fetched: Path) -> None:
    """Refuse a download whose size or sha256 differ from the catalog (the staged file is then discarded)."""
    problem = _mismatch(entry, fetched)
    if problem:
        raise VerificationError(
            f"downloaded {entry.describe()} does not match the catalog: {problem}. It was discarded. Either the "
            f"transfer was corrupted (try again) or the catalog is wrong (report it)."
        )


def _provenance(entry: CatalogEntry) -> dict[str, str]:
    """safetensors metadata recording which pinned file a kept-tensors file was cut from."""
    return {PROVENANCE_KEY: f"{entry.repo_id}@{entry.revision}/{entry.filename}", "source_sha256": entry.sha256 or ""}


def _keep_tensors(entry: CatalogEntry, source: Path, target: Path) -> Path:
    """Write the tensors of ``source`` whose names start with ``entry.keep_prefixes`` to ``target``."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import save_file

    try:
        with safe_open(str(source), framework="pt") as file:
            tensors = {key: file.get_tensor(key) for key in file.keys() if key.startswith(entry.keep_prefixes)}
    except SafetensorError as error:
        raise VerificationError(f"{entry.describe()} is not a readable safetensors file ({error}).") from error
    if not tensors:
        raise VerificationError(
            f"{entry.describe()} has no tensors starting with {', '.join(entry.keep_prefixes)}: the catalog entry "
            f"does not fit this file."
        )
    save_file(tensors, str(target), metadata=_provenance(entry))
    return target


def _check_existing(entry: CatalogEntry, destination: Path) -> None:
    """Accept an existing destination that verifies against the catalog; refuse to touch one that does not."""
    if entry.keep_prefixes:
        problem = _provenance_mismatch(entry, destination)
    else:
        problem = _mismatch(entry, destination)
    if problem:
        raise VerificationError(
            f"{destination} already exists but is not {entry.describe()}: {problem}. It was left untouched: move or "
            f"rename it (or delete it if it is a broken download), then download again."
        )


def _provenance_mismatch(entry: CatalogEntry, destination: Path) -> str | None:
    """Why ``destination`` is not the kept-tensors file this entry writes (None when its metadata matches)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(destination), framework="pt") as file:
            metadata = file.metadata() or {}
    except (SafetensorError, OSError) as error:
        return f"it is not a readable safetensors file ({error})"
    if metadata.get(PROVENANCE_KEY) != _provenance(entry)[PROVENANCE_KEY]:
        return f"its recorded source is {metadata.get(PROVENANCE_KEY)!r}"
    return None
