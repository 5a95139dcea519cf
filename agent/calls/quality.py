"""Voice quality from RTP figures: a MOS estimate by the ITU-T G.107 E-model,
reduced to what a passive capture can know (see docs/CALLS.md)."""

# Equipment impairment Ie and packet-loss robustness Bpl by codec (ITU-T G.113 Appendix I).
CODECS = {"PCMU": (0.0, 25.1), "PCMA": (0.0, 25.1), "G722": (0.0, 25.1), "G729": (11.0, 19.0),
          "G723": (15.0, 16.1), "GSM": (20.0, 10.0), "ILBC": (10.0, 22.0), "AMR": (5.0, 10.0),
          "AMR-WB": (0.0, 10.0), "OPUS": (0.0, 25.1)}
DEFAULT_CODEC = (0.0, 25.1)
R0_MINUS_IS = 93.2           # G.107 default basic signal-to-noise minus simultaneous impairments
PACKET_MS = 20.0             # packetisation delay assumed (ptime 20)
PROCESSING_MS = 10.0         # codec and playout processing assumed


def r_factor(loss_fraction: float, jitter_ms: float, codec: str = "", latency_ms: float = 0.0) -> float:
    """R of the E-model: delay impairment Id from an estimated mouth-to-ear
    delay (a jitter buffer of twice the jitter, packetisation, processing and
    whatever network latency is known), equipment impairment Ie_eff from the
    codec and random loss."""
    ie, bpl = CODECS.get(codec.upper(), DEFAULT_CODEC)
    d = latency_ms + 2 * jitter_ms + PACKET_MS + PROCESSING_MS
    idd = 0.024 * d + (0.11 * (d - 177.3) if d > 177.3 else 0.0)
    ppl = max(0.0, min(100.0, loss_fraction * 100))
    ie_eff = ie + (95 - ie) * ppl / (ppl + bpl)
    return R0_MINUS_IS - idd - ie_eff


def mos(r: float) -> float:
    """G.107 Annex B: R to the MOS (conversational quality estimate), 1..4.5."""
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r)


def estimate(loss_fraction: float, jitter_ms: float, codec: str = "") -> float:
    return round(mos(r_factor(loss_fraction, jitter_ms, codec)), 2)
