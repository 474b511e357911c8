"""Download base weights from the Hugging Face Hub into ComfyUI's model folders, only when the user confirms."""

from __future__ import annotations

from ._common import DREAMDANCE_FOLDER, progress_callback


def _entry_names() -> list[str]:
    from ..dreamdance_core.download import load_catalog

    return list(load_catalog())


class DreamDanceDownloadWeights:
    """One pinned file of the download catalog -> ComfyUI/models/<checkpoints|clip_vision|dreamdance>."""

    CATEGORY = "DreamDance/loaders"
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("file_name",)
    FUNCTION = "download"
    OUTPUT_NODE = True
    DESCRIPTION = ("Downloads a base model the DreamDance loaders need (SD1.5, SVD-XT 1.1, CLIP ViT-L/14 image "
                   "encoder) from a pinned Hugging Face commit, verifies it and places it in ComfyUI's model folder. "
                   "Nothing is downloaded unless 'confirm' is on. There are no DreamDance weights to download: "
                   "train them with train/.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "weights": (_entry_names(), {"tooltip": "What to download. The file lands in models/checkpoints or "
                            "models/clip_vision under the name the DreamDance loaders list; an already verified file "
                            "is kept and not downloaded again."}),
                "confirm": ("BOOLEAN", {"default": False, "tooltip": "Must be on to download (several GB). Off: the "
                            "node stops with a message saying what it would download, and where. Gated repositories "
                            "(SVD-XT 1.1) need their licence accepted on the hub and a token in the HF_TOKEN "
                            "environment variable (never stored in the workflow)."}),
            }
        }

    def download(self, weights: str, confirm: bool):
        import folder_paths

        from ..dreamdance_core.download import download, load_catalog

        entry = load_catalog()[weights]
        if entry.kind == DREAMDANCE_FOLDER:
            from ._common import register_model_folder

            register_model_folder()
        folder = folder_paths.get_folder_paths(entry.kind)[0]
        if not confirm:
            raise ValueError(
                f"Not downloading: turn on 'confirm' to download {entry.describe()} "
                f"({_size(entry.size)}) into {folder}."
            )
        callback = progress_callback(entry.size or 1)
        return (download(weights, {entry.kind: folder}, progress=callback).name,)


def _size(size: int | None) -> str:
    return f"{size / 1e9:.2f} GB" if size else "size not published"


NODE_CLASS_MAPPINGS = {"DreamDanceDownloadWeights": DreamDanceDownloadWeights}
NODE_DISPLAY_NAME_MAPPINGS = {"DreamDanceDownloadWeights": "DreamDance Download Weights (Hugging Face)"}
