"""The persistent store: encrypted PHI, predictions with provenance, feedback, audit chain."""
