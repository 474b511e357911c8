"""Stage-2 control maps as a list: one Control Map node per modality, chained, into Animate's control_maps."""

from __future__ import annotations

from ._common import comfy_to_core
from ._validate import queue_check

CONTROL_MAPS = "DREAMDANCE_CONTROL_MAPS"


class DreamDanceControlMap:
    """Adds one modality's maps (image batch, modality, strength) to a control-map list."""

    CATEGORY = "DreamDance/video"
    RETURN_TYPES = (CONTROL_MAPS,)
    RETURN_NAMES = ("control_maps",)
    FUNCTION = "add"
    DESCRIPTION = ("Adds one modality's control maps to a list for DreamDance Animate (its control_maps input). Chain "
                   "one node per modality; the video model's controller decides which modalities it reads, and a "
                   "modality it was trained on but not given is black (absent). Any registered modality can be "
                   "chosen (pose, depth and normal by default).")

    @classmethod
    def INPUT_TYPES(cls):
        from ..dreamdance_core.modalities import names

        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The maps, one per frame (any size: fitted to the video by Animate's "
                          "fit)."}),
                "modality": (list(names()), {"tooltip": "Which control modality these maps are; the video model's "
                             "controller must have been trained on it."}),
                "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 2.0, "step": 0.05, "tooltip": "Weight of "
                             "these maps in the controller: 0 = as if they were absent (black maps), 1 = as given."}),
            },
            "optional": {
                "control_maps": (CONTROL_MAPS, {"tooltip": "The list so far (from another Control Map node); these "
                                 "maps are appended to it."}),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, strength):
        return queue_check(cls, {"strength": strength})  # ComfyUI's own FLOAT check lets NaN through

    def add(self, image, modality, strength, control_maps=None):
        from ..dreamdance_core.modalities import add_control_map

        return (add_control_map(control_maps, modality, comfy_to_core(image), strength),)


NODE_CLASS_MAPPINGS = {"DreamDanceControlMap": DreamDanceControlMap}
NODE_DISPLAY_NAME_MAPPINGS = {"DreamDanceControlMap": "DreamDance Control Map"}
