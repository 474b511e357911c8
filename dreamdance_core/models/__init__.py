"""diffusers-style modules of DreamDance (``ModelMixin`` + ``ConfigMixin``; saved config.json is the architecture)."""
