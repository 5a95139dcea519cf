"""Signed firmware images: the format (image), minisign-compatible Ed25519
signatures (minisign, sign, verify), trusted keys (keyring) and what the box
has accepted (slots: running images and the anti-rollback floor).

Knows nothing of the agent or of the card: the agent verifies here, then
hands the payload of an image whose verdict is ok to the driver."""
