"""Stratum's common library: settings, errors, URIs, the resource catalogue, event-store and bus plumbing.

It imports nothing from the services, the gateway or the process wiring (runtime/)."""
