"""Calls: SIP dialogs, SDP media, RTP quality; live and from capture files."""
