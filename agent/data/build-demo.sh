#!/usr/bin/env bash
# Rebuilds demo.pcap, the capture `capbox run` replays by default, from real
# captures in ../shared/pcaps (see README.md here for their origins).  Each
# capture is shifted to start one second after the previous one ends, so the
# demo is one timeline; the result is classic pcap for the fast reader.
set -euo pipefail
cd "$(dirname "$0")"
SRC=${SRC:-../../../shared/pcaps}
FILES="zeek__wikipedia.pcap chrissanders__dns_query_nonexistent.pcapng chrissanders__arp_resolution.pcapng
zeek__tls_tls1_1.pcap ndpi__http_ipv6.pcap chrissanders__http_ip4and6.pcapng ndpi__sip.pcap
zeek__tls_ssl.v3.pcap chrissanders__latency4.pcapng ndpi__tcp_scan.pcapng evilfingers__UDP_SCAN.pcap
ndpi__FAX-Call-t38-CA-TDM-SIP-FB-1.pcap zeek__q-in-q.pcap
chrissanders__tcp_retransmissions.pcapng zeek__http_http-11-request-then-cruft.pcap"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
t=1767225600  # 2026-01-01T00:00:00Z
parts=()
for f in $FILES; do
  first=$(capinfos -T -r -a -S "$SRC/$f" | cut -f2)
  last=$(capinfos -T -r -e -S "$SRC/$f" | cut -f2)
  shift=$(python3 -c "print(f'{$t - $first:.6f}')")
  editcap -F pcap -t "$shift" "$SRC/$f" "$tmp/$f.pcap"
  parts+=("$tmp/$f.pcap")
  t=$(python3 -c "print(int($t + ($last - $first) + 2))")
done
mergecap -F pcap -w demo.pcap "${parts[@]}"
capinfos -c -d -u demo.pcap
