"""Offline jobs: uploaded captures processed in the background by a bounded worker pool."""
