"""Multi-path verification: a domain or a URL checked through N independent
paths (resolvers over UDP/TCP/DoT, source addresses, HTTP proxies, SOCKS,
network namespaces), their consensus, confidence, outliers and differences."""
