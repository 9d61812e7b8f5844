"""Trained weights shipped with the package (<model>.safetensors + <model>.json)."""
