"""DreamDance for ComfyUI.

ComfyUI imports this folder as a package (whatever the folder is called). Importing it does no heavy work:
node modules import torch/diffusers inside their ``execute`` methods only.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
