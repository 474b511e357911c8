"""DreamDance for ComfyUI.

ComfyUI imports this folder as a package (whatever the folder is called). Importing it does no heavy work:
node modules import torch/diffusers inside their ``execute`` methods only.
"""

if __package__:  # ComfyUI (and any package import)
    from .nodes import NODE_API

    if NODE_API == "v3":  # V3 nodes: ComfyUI calls comfy_entrypoint only without NODE_CLASS_MAPPINGS (nodes/_v3.py)
        from .nodes import comfy_entrypoint  # noqa: F401  (listed in __all__ below)
    else:  # an older ComfyUI, or no ComfyUI: the V1 node classes
        from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
    from .nodes._example_inputs import install_example_inputs

    # The shipped workflows' example inputs, into ComfyUI's input folder where missing (never overwriting): they run
    # as shipped, and Load Image's upload button swaps in the user's own file. Why: nodes/_example_inputs.py.
    install_example_inputs()
else:  # loaded as a bare file: pytest does so when the checkout's folder name is no identifier (e.g. "fresh-check")
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}

WEB_DIRECTORY = "./web"

__all__ = [name for name in ("NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "comfy_entrypoint", "WEB_DIRECTORY")
           if name in globals()]
