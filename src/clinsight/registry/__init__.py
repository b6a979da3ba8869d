"""Model registry: versioned ONNX/safetensors artifacts with cards, checksums and stages."""
