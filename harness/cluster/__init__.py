"""Taking a scenario to a real cluster and its results back: manifests per cell, ingest of the outputs."""
