"""pf-export: turn models into ONNX files (and, on the target, TensorRT engines)."""
