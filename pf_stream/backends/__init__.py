"""Inference backends: one interface (Backend.fuse), several engines (torch, onnxruntime, tensorrt)."""

from pf_stream.backends.base import Backend, create_backend

__all__ = ["Backend", "create_backend"]
