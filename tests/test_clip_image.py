"""The reference image's CLIP embeddings against their references, on the same images.

* Stage 1: the image encoder's own ``CLIPImageProcessor`` (sd-image-variations-diffusers'
  ``feature_extractor/preprocessor_config.json``, the standard CLIP one), fed the PIL image, as AnimateAnyone-family
  training code does (``clip_image_processor(images=ref_img_pil, return_tensors="pt")``).
* Stage 2: ``StableVideoDiffusionPipeline._encode_image`` on a PIL image.
"""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import StableVideoDiffusionPipeline
from transformers import CLIPImageProcessor

from dreamdance_core.models.clip_image import encode_clip_image, encode_reference_image, reference_tensor
from dreamdance_core.tiny import tiny_clip_vision

# sd-image-variations-diffusers (lambdalabs), feature_extractor/preprocessor_config.json
SD_IMAGE_VARIATIONS_PREPROCESSOR = {
    "crop_size": 224,
    "do_center_crop": True,
    "do_normalize": True,
    "do_resize": True,
    "feature_extractor_type": "CLIPFeatureExtractor",
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3,
    "size": 224,
}


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(5)
    return tiny_clip_vision()


def image(width: int, height: int, seed: int = 0) -> PIL.Image.Image:
    """A smooth random RGB image with detail at its edges (so a centre crop and a squash differ)."""
    rng = np.random.default_rng(seed)
    coarse = PIL.Image.fromarray(rng.integers(0, 256, (9, 6, 3), dtype=np.uint8))
    return coarse.resize((width, height), resample=PIL.Image.BICUBIC)


@pytest.mark.parametrize("size", [(240, 360), (48, 80), (300, 200)])
def test_stage1_embedding_is_the_encoders_own_clip_image_processor_on_the_image_as_given(encoder, size):
    """Larger and smaller than 224, portrait and landscape: resize shortest edge + centre crop both act."""
    pil = image(*size)
    processor = CLIPImageProcessor.from_dict(SD_IMAGE_VARIATIONS_PREPROCESSOR)
    with torch.no_grad():
        expected = encoder(**processor(images=pil, return_tensors="pt")).image_embeds
    torch.testing.assert_close(encode_reference_image(encoder, pil), expected, rtol=0, atol=1e-6)
    # a core tensor of the same 8-bit image gives the same (the tensor is rounded back to the same 8-bit pixels)
    torch.testing.assert_close(encode_reference_image(encoder, reference_tensor(pil)), expected, rtol=0, atol=1e-6)


def test_stage1_embedding_is_not_the_squashed_224_image(encoder):
    """Moore-AnimateAnyone's inference pipeline squashes the reference to 224x224 before the processor; its training
    data and the encoder's own pipeline do not - we follow the latter, and the two differ on a portrait image."""
    pil = image(240, 360)
    processor = CLIPImageProcessor.from_dict(SD_IMAGE_VARIATIONS_PREPROCESSOR)
    with torch.no_grad():
        squashed = encoder(**processor(images=pil.resize((224, 224)), return_tensors="pt")).image_embeds
    assert not torch.allclose(encode_reference_image(encoder, pil), squashed, atol=1e-4)


def test_stage2_embedding_is_the_svd_pipelines_encode_image(encoder):
    pil = image(72, 40, seed=3)
    pipeline = StableVideoDiffusionPipeline(
        vae=None, image_encoder=encoder, unet=None, scheduler=None, feature_extractor=CLIPImageProcessor()
    )
    expected = pipeline._encode_image(pil, "cpu", 1, do_classifier_free_guidance=False)[:, 0]
    torch.testing.assert_close(encode_clip_image(encoder, pil), expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(encode_clip_image(encoder, reference_tensor(pil)), expected, rtol=0, atol=1e-6)


def test_batches_embed_image_by_image(encoder):
    """Training encodes a batch of references (train/stage1.py, train/stage2.py): each as if alone."""
    batch = torch.cat([reference_tensor(image(64, 96, seed)) for seed in (1, 2)])
    for encode in (encode_reference_image, encode_clip_image):
        together = encode(encoder, batch)
        alone = torch.cat([encode(encoder, batch[i : i + 1]) for i in range(2)])
        assert together.shape == (2, encoder.config.projection_dim)
        torch.testing.assert_close(together, alone, rtol=0, atol=1e-5)
