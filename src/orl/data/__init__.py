"""Image decoding that survives odd files, data-set sources and fingerprints, the demo photos."""
