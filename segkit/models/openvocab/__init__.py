"""Open-vocabulary segmentation: open_clip towers, prompt templates, text-conditioned heads.

The classes of these models are names given at run time (:meth:`Segmentor.set_classes`,
``Segmentor.predict(images, classes=[...])``); nothing in the weights fixes their number.
"""

from segkit.models.openvocab.clip import PretrainedUnavailableError, create_clip
from segkit.models.openvocab.head import NO_CLASS, OpenVocabHead, TextHead
from segkit.models.openvocab.image import CLIPImageEncoder
from segkit.models.openvocab.prompts import prompt_templates
from segkit.models.openvocab.san import SANEncoder, SANHead
from segkit.models.openvocab.text import CLIPTextEncoder

__all__ = [
    "NO_CLASS",
    "CLIPImageEncoder",
    "CLIPTextEncoder",
    "OpenVocabHead",
    "PretrainedUnavailableError",
    "SANEncoder",
    "SANHead",
    "TextHead",
    "create_clip",
    "prompt_templates",
]
