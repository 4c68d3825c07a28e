"""Live-stream simulator: drives the real HTTP ingest and writes ground truth (docs/simulator.md)."""
