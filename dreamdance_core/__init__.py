"""DreamDance core library: torch + diffusers + einops + safetensors. Never imports ComfyUI.

Submodules are imported on demand (``from dreamdance_core.sampling.windows import ...``); importing the package
itself is cheap.
"""

__version__ = "0.1.0"
