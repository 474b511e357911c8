"""Hub downloads through the real huggingface_hub code path, against a local fake hub (``tests/fake_hub.py``)."""

from __future__ import annotations

import hashlib
import importlib
import json
import random
import types
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save
from transformers import CLIPConfig, CLIPModel

from dreamdance_core import download as dl
from dreamdance_core.loading.clip_vision import load_clip_image_encoder
from tests.fake_hub import FakeHub
from tests.node_stubs import InterruptProcessingException, comfy_stubs, import_pack_module  # noqa: F401

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = "someone/base-model"
PAYLOAD = random.Random(0).randbytes(300_000)
CHUNK = 64 * 1024


def _entry(**changes) -> dl.CatalogEntry:
    entry = dl.CatalogEntry(
        name="base", repo_id=REPO, revision=COMMIT, filename="weights/base.safetensors", kind="checkpoints",
        target_name="base.safetensors", size=len(PAYLOAD), sha256=hashlib.sha256(PAYLOAD).hexdigest(), gated=False,
        purpose="test", source="test",
    )
    return replace(entry, **changes)


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A fake hub that huggingface_hub talks to as if HF_ENDPOINT pointed at it; no token, an empty HF cache."""
    from huggingface_hub import constants

    server = FakeHub()
    server.add(REPO, COMMIT, {"weights/base.safetensors": PAYLOAD})
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    # huggingface_hub reads HF_ENDPOINT once, at import: patch the constants it derived from it
    monkeypatch.setattr(constants, "ENDPOINT", server.endpoint)
    template = server.endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", CHUNK)  # several progress steps for a small file
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield server
    server.stop()


def _download(folder: Path, entry: dl.CatalogEntry, **kwargs) -> Path:
    return dl.download(entry.name, {entry.kind: folder}, catalog={entry.name: entry}, **kwargs)


def _resolve_requests(hub: FakeHub) -> list[str]:
    return [path for _, path, _ in hub.requests if "/resolve/" in path]


def test_shipped_catalog_is_pinned_and_invents_no_dreamdance_weights():
    catalog = dl.load_catalog()
    assert {"checkpoints", "clip_vision"} <= {entry.kind for entry in catalog.values()}
    assert all(entry.kind != "dreamdance" for entry in catalog.values())  # none exist on any hub
    assert all(entry.source for entry in catalog.values())
    clip = next(entry for entry in catalog.values() if entry.kind == "clip_vision")
    assert clip.keep_prefixes  # the full CLIPModel file is cut down to its image tower


def test_download_lands_verified_with_progress_and_leaves_nothing_else(hub, tmp_path):
    folder = tmp_path / "checkpoints"
    steps = []
    path = _download(folder, _entry(), progress=lambda done, total, preview: steps.append((done, total, preview)))
    assert path == folder / "base.safetensors" and path.read_bytes() == PAYLOAD
    assert list(folder.iterdir()) == [path]  # the staging folder is gone
    assert len(steps) >= len(PAYLOAD) // CHUNK and steps[-1] == (len(PAYLOAD), len(PAYLOAD), None)
    assert [done for done, _, _ in steps] == sorted(done for done, _, _ in steps)
    assert _resolve_requests(hub) == [f"/{REPO}/resolve/{COMMIT}/weights/base.safetensors"]  # the pinned commit


def test_second_call_skips_and_a_foreign_file_is_left_untouched(hub, tmp_path):
    folder = tmp_path / "checkpoints"
    first = _download(folder, _entry())
    hub.requests.clear()
    assert _download(folder, _entry()) == first and hub.requests == []  # verified locally, no network
    first.write_bytes(b"someone else's model")
    with pytest.raises(dl.VerificationError, match="already exists") as error:
        _download(folder, _entry())
    assert "left untouched" in str(error.value) and first.read_bytes() == b"someone else's model"
    assert hub.requests == []


@pytest.mark.parametrize("fault", ["catalog sha256", "corrupted transfer"])
def test_a_file_that_fails_verification_is_refused_and_leaves_no_file(hub, tmp_path, fault):
    entry = _entry()
    if fault == "catalog sha256":
        entry = replace(entry, sha256=hashlib.sha256(b"another file").hexdigest())
    else:
        hub.corrupt.add(entry.sha256)  # same length, other bytes
    folder = tmp_path / "checkpoints"
    with pytest.raises(dl.VerificationError, match="sha256") as error:
        _download(folder, entry)
    assert "discarded" in str(error.value)
    assert list(folder.iterdir()) == []


def test_gated_repository_needs_the_licence_and_a_token(hub, tmp_path):
    hub.add(REPO, COMMIT, {"weights/base.safetensors": PAYLOAD}, gated=True)
    folder = tmp_path / "checkpoints"
    with pytest.raises(dl.GatedRepoAccessError) as error:
        _download(folder, _entry(gated=True))
    message = str(error.value)
    assert f"https://huggingface.co/{REPO}" in message and "HF_TOKEN" in message and "licence" in message
    assert "weights/base.safetensors" in message and str(folder / "base.safetensors") in message
    assert list(folder.iterdir()) == []
    hub.requests.clear()
    assert _download(folder, _entry(gated=True), token=hub.token).read_bytes() == PAYLOAD
    sent = {path.split("/")[1]: auth for _, path, auth in hub.requests if auth or "/cdn/" in path}
    assert sent["someone"] == f"Bearer {hub.token}" and sent["cdn"] is None  # the token never leaves the hub host


@pytest.mark.parametrize(
    ("change", "named"),
    [({"filename": "weights/missing.safetensors"}, "weights/missing.safetensors"),
     ({"revision": "f" * 40}, "f" * 40),
     ({"repo_id": "nobody/nothing"}, "nobody/nothing")],
)
def test_missing_file_revision_or_repository_is_named(hub, tmp_path, change, named):
    entry = _entry(**change)
    with pytest.raises(dl.RemoteFileNotFoundError) as error:
        _download(tmp_path / "checkpoints", entry)
    message = str(error.value)
    assert named in message and entry.repo_id in message and entry.revision in message
    assert entry.filename in message and str(tmp_path / "checkpoints" / "base.safetensors") in message


def test_offline_gives_a_clear_error(hub, tmp_path, monkeypatch):
    import huggingface_hub.utils._http as hub_http

    monkeypatch.setattr(hub_http, "time", types.SimpleNamespace(sleep=lambda seconds: None))  # skip retry waits
    hub.stop()
    with pytest.raises(dl.HubUnreachableError, match="cannot reach the Hugging Face Hub") as error:
        _download(tmp_path / "checkpoints", _entry())
    assert "Connection refused" in str(error.value) and _entry().url in str(error.value)
    assert list((tmp_path / "checkpoints").iterdir()) == []


def test_offline_mode_is_reported_as_such(hub, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(dl.HubUnreachableError, match="offline mode is enabled"):
        _download(tmp_path / "checkpoints", _entry())
    assert _resolve_requests(hub) == []


def test_not_enough_disk_space_is_refused_before_downloading(hub, tmp_path):
    with pytest.raises(dl.DiskError, match="GB are free"):
        _download(tmp_path / "checkpoints", _entry(size=10**18, sha256=None))
    assert _resolve_requests(hub) == []


def _tiny_clip_model() -> CLIPModel:
    torch.manual_seed(0)
    small = dict(hidden_size=16, intermediate_size=32, num_attention_heads=2, num_hidden_layers=2)
    text = dict(small, vocab_size=99, max_position_embeddings=16, bos_token_id=0, eos_token_id=2, pad_token_id=1)
    vision = dict(small, image_size=28, patch_size=14, projection_dim=8)
    return CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)).eval()


def test_image_tower_of_a_full_clip_file_loads_as_the_clip_image_encoder(hub, tmp_path):
    model = _tiny_clip_model()
    full = save({key: value.contiguous() for key, value in model.state_dict().items()})
    hub.add("openai/tiny-clip", COMMIT, {"model.safetensors": full})
    entry = _entry(repo_id="openai/tiny-clip", filename="model.safetensors", kind="clip_vision",
                   target_name="clip_tiny.safetensors", size=len(full), sha256=hashlib.sha256(full).hexdigest(),
                   keep_prefixes=("vision_model.", "visual_projection."))
    config = tmp_path / "config"
    model.config.vision_config.save_pretrained(config)
    (tmp_path / "full.safetensors").write_bytes(full)

    path = _download(tmp_path / "clip_vision", entry)  # the catalogue keeps only the image tower: a smaller file
    with safe_open(str(path), framework="pt") as file:
        assert all(key.startswith(entry.keep_prefixes) for key in file.keys())
        assert file.metadata()[dl.PROVENANCE_KEY] == f"openai/tiny-clip@{COMMIT}/model.safetensors"
    assert path.stat().st_size < len(full)
    pixels = torch.randn(1, 3, 28, 28)
    with torch.no_grad():
        expected = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)
        for source in (path, tmp_path / "full.safetensors"):  # the full file loads too: its text tower is dropped
            encoder = load_clip_image_encoder(source, config=config)
            torch.testing.assert_close(encoder(pixel_values=pixels).image_embeds, expected)
    hub.requests.clear()
    assert _download(tmp_path / "clip_vision", entry) == path and hub.requests == []  # provenance verifies it


# ---------------------------------------------------------------------------------------------------------------------
# the node


@pytest.fixture
def node(comfy_stubs, hub, tmp_path, monkeypatch):
    """The node module, with the core's catalog replaced by one entry served by the fake hub."""
    module = import_pack_module("nodes.download")
    core = importlib.import_module(module.__name__.rsplit(".", 2)[0] + ".dreamdance_core.download")
    catalog = tmp_path / "downloads.json"
    catalog.write_text(json.dumps({"entries": [asdict(_entry())]}))
    monkeypatch.setattr(core, "CATALOG_PATH", catalog)
    return module.DreamDanceDownloadWeights


def test_node_refuses_without_confirm(node, comfy_stubs, hub):
    assert node.INPUT_TYPES()["required"]["weights"][0] == ["base"]
    with pytest.raises(ValueError, match="confirm") as error:
        node().download(weights="base", confirm=False)
    assert str(comfy_stubs.models_dir / "checkpoints") in str(error.value)
    assert hub.requests == [] and not (comfy_stubs.models_dir / "checkpoints").exists()


def test_node_downloads_into_comfyui_checkpoints_with_progress(node, comfy_stubs):
    assert node().download(weights="base", confirm=True) == ("base.safetensors",)
    assert (comfy_stubs.models_dir / "checkpoints" / "base.safetensors").read_bytes() == PAYLOAD
    assert comfy_stubs.progress[-1] == (len(PAYLOAD), len(PAYLOAD))


def test_node_cancel_lands_between_chunks_and_leaves_nothing(node, comfy_stubs):
    comfy_stubs.interrupt()
    with pytest.raises(InterruptProcessingException):
        node().download(weights="base", confirm=True)
    assert list((comfy_stubs.models_dir / "checkpoints").iterdir()) == []
