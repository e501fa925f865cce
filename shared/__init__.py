"""Stratum's common library: configuration, errors, URIs, the resource catalogue, event-store and bus plumbing."""
