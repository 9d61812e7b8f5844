"""pf-stream: real-time infrared + visible video fusion (PromptFusion contourlet networks).

The frame's path and the module map are in docs/ARCHITECTURE.md.
"""

__version__ = "0.1.0"
