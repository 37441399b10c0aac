"""Readers of the datasets in their release layouts (FreiHAND, RHD, STB, the real-world photos) into one
in-memory form (:class:`cliphand.data.readers.sources.HandSamples`)."""
