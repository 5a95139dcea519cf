/* app.c - application protocol of a flow from its ports (refined later by
 * payload signatures in the session: TLS hellos, HTTP heads, SIP). */
#include <pthread.h>

#include "hw.h"

static const char *const app_names[HW_APP_COUNT] = {
    "other", "dns", "http", "tls", "ssh", "smtp", "ntp", "dhcp", "snmp", "sip", "rtp",
    "quic", "mdns", "llmnr", "netbios", "ssdp", "imap", "pop3", "ftp", "telnet", "smb",
    "rdp", "database", "icmp",
};

enum { SSH = 4, SMTP, NTP, DHCP, SNMP, SIP, RTP, QUIC, MDNS, LLMNR, NETBIOS, SSDP, IMAP, POP3,
       FTP, TELNET, SMB, RDP, DATABASE };

struct port_app { uint16_t port; uint8_t tcp, udp; };

static const struct port_app table[] = {
    {53, HW_APP_DNS, HW_APP_DNS},   {853, HW_APP_DNS, HW_APP_DNS},  {80, HW_APP_HTTP, 0},
    {8080, HW_APP_HTTP, 0},         {8000, HW_APP_HTTP, 0},         {3128, HW_APP_HTTP, 0},
    {443, HW_APP_TLS, QUIC},        {8443, HW_APP_TLS, QUIC},       {465, HW_APP_TLS, 0},
    {636, HW_APP_TLS, 0},           {989, HW_APP_TLS, 0},           {990, HW_APP_TLS, 0},
    {993, HW_APP_TLS, 0},           {995, HW_APP_TLS, 0},           {5061, HW_APP_TLS, 0},
    {22, SSH, 0},                   {25, SMTP, 0},                  {587, SMTP, 0},
    {123, 0, NTP},                  {67, 0, DHCP},                  {68, 0, DHCP},
    {546, 0, DHCP},                 {547, 0, DHCP},                 {161, 0, SNMP},
    {162, 0, SNMP},                 {5060, SIP, SIP},               {5353, 0, MDNS},
    {5355, LLMNR, LLMNR},           {137, 0, NETBIOS},              {138, 0, NETBIOS},
    {139, NETBIOS, 0},              {1900, 0, SSDP},                {143, IMAP, 0},
    {110, POP3, 0},                 {20, FTP, 0},                   {21, FTP, 0},
    {23, TELNET, 0},                {445, SMB, 0},                  {3389, RDP, RDP},
    {3306, DATABASE, 0},            {5432, DATABASE, 0},            {1433, DATABASE, 0},
    {1521, DATABASE, 0},            {6379, DATABASE, 0},            {27017, DATABASE, 0},
};

static uint8_t by_port[2][65536];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void build(void)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        by_port[0][table[i].port] = table[i].tcp;
        by_port[1][table[i].port] = table[i].udp;
    }
}

uint8_t hwint_app_by_ports(uint8_t proto, uint16_t sport, uint16_t dport)
{
    if (proto == 1 || proto == 58) return HW_APP_ICMP;
    if (proto != 6 && proto != 17) return HW_APP_OTHER;
    pthread_once(&once, build);
    const uint8_t *t = by_port[proto == 17];
    /* the responder's port names the service; the lower port breaks ties */
    uint8_t a = t[dport], b = t[sport];
    if (a && b) return dport <= sport ? a : b;
    return a ? a : b;
}

const char *hw_app_name(int app) { return app >= 0 && app < HW_APP_COUNT ? app_names[app] : NULL; }
