"""DreamDance for ComfyUI.

ComfyUI imports this folder as a package (whatever the folder is called). Importing it does no heavy work:
node modules import torch/diffusers inside their ``execute`` methods only.
"""

if __package__:  # ComfyUI (and any package import)
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
    from .nodes._example_inputs import install_example_inputs

    # The shipped workflows' example inputs, into ComfyUI's input folder where missing (never overwriting): they run
    # as shipped, and Load Image's upload button swaps in the user's own file. Why: nodes/_example_inputs.py.
    install_example_inputs()
else:  # loaded as a bare file: pytest does so when the checkout's folder name is no identifier (e.g. "fresh-check")
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
