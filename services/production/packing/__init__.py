"""Packing build plates (production.md §4.13, §4.14; issue 16): a model's footprint from its mesh (footprint),
the plate from the build object or the printer type (plates), the nesting engines (engine), the picture of a layout
(picture), and the background job that runs them in a child process (worker, job). Kept apart from
services.production.domain, which holds the production resources' rules."""
