"""Peer methods run by the pipeline on the same data, with the same metrics, on the same machine."""
