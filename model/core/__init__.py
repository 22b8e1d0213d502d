"""Inference core: images, detection, alignment, network, recognizer, matching (imports nothing above it)."""
