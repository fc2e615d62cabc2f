"""Necks sit between the encoder and the decoder and re-shape its feature pyramid.

Contract: ``Neck(in_channels, in_strides, ...)`` with ``forward(features) -> list[Tensor]`` and
attributes ``channels`` and ``strides`` describing its outputs (like an encoder's).
"""
