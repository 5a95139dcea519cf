"""Protocol logs (Zeek-style conn, dns, http, tls, sip, rtp, arp, ndp, dhcp): records, files, index."""

# the log types ([logs] types' default: all): here, not in agent.config, so that `capbox logs -r` names them
# without loading the agent's configuration
TYPES = ("conn", "dns", "http", "tls", "sip", "rtp", "arp", "ndp", "dhcp")
