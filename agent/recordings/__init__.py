"""Recordings at rest: the encrypted file format, key files, the recordings directory."""
