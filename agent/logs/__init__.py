"""Protocol logs (Zeek-style conn, dns, http, tls, sip, rtp, arp, ndp, dhcp): records, files, index."""
