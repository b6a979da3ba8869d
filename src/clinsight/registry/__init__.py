"""Model registry: versioned artifacts with cards, checksums and stages — image models
(ONNX/safetensors, `store`), risk models (skops, `tabular`) and NER models (`ner`), all
versioned, staged and verified the same way (`versions`)."""
