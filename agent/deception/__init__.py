"""Deception: sessions of decoy traffic carrying honeytokens, sent only to a
session's target, and the triggers that say a token was used."""
