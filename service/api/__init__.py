"""HTTP adapters over the data plane: health, /v1 (JSON) and /v2 (Open Inference Protocol)."""
