"""Thin ComfyUI adapters over ``dreamdance_core``.

Every module in this folder that defines ``NODE_CLASS_MAPPINGS`` (and optionally ``NODE_DISPLAY_NAME_MAPPINGS``)
is collected here, so adding a node is adding a file. Node ids are stable (``DreamDance...``): saved workflows
depend on them.

The nodes are declared with ComfyUI's V1 API; ``NODE_API`` says how ComfyUI gets them: ``"v3"`` where ComfyUI has
the V3 node API (``comfy_api.latest``): :func:`comfy_entrypoint` builds V3 nodes from the V1 classes (``_v3.py``);
``"v1"`` elsewhere (older ComfyUI, the unit tests' stubs, or ``DREAMDANCE_NODE_API=v1``): the V1 mappings.
"""

import importlib
import pkgutil

from ._v3 import NODE_API, comfy_entrypoint  # noqa: F401  (re-exported for the pack's __init__)

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name.startswith("_"):
        continue
    _module = importlib.import_module(f"{__name__}.{_info.name}")
    for _node_id, _cls in getattr(_module, "NODE_CLASS_MAPPINGS", {}).items():
        if _node_id in NODE_CLASS_MAPPINGS:
            raise RuntimeError(f"DreamDance: node id {_node_id!r} is defined twice (second in nodes/{_info.name}.py)")
        NODE_CLASS_MAPPINGS[_node_id] = _cls
    NODE_DISPLAY_NAME_MAPPINGS.update(getattr(_module, "NODE_DISPLAY_NAME_MAPPINGS", {}))
