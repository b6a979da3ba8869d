"""Model registry: versioned artifacts with cards, checksums and stages, one module per kind
of model — image models (ONNX/safetensors, `image`), risk models (skops, `risk`) and NER
models (`ner`) — all versioned, staged and verified the same way (`versions`), and reached
by their `ModelKind` through `kinds`."""
