"""Inference: ONNX Runtime sessions and predictors over registered models."""
