"""Samplers and the pieces both stages share: overlapping windows and classifier-free guidance."""
