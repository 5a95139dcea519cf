"""/v1/capture/export: flow exporters (IPFIX, NetFlow v9/v5) to collectors."""
from agent.api.app import WRITE, Api
from agent.api.validate import Field

EXPORT = {
    "collector_ip": Field(str, doc="the collector's address (a name is resolved once)", max_len=253),
    "collector_port": Field(int, 9995, 1, 65535),
    "version": Field(str, "ipfix", choices=("ipfix", "v9", "v5")),
    "transport": Field(str, "udp", choices=("udp", "tcp"), doc="tcp: IPFIX only"),
    "export_interval_sec": Field(int, 60, 1, 3600, doc="a partly filled message leaves at most this late"),
    "template_refresh_sec": Field(int, 60, 1, 86400, doc="UDP: templates resent at least this often"),
    "observation_domain": Field(int, 0, 0, 0xFFFFFFFF, doc="IPFIX observation domain, v9 source id, v5 engine id"),
    "biflow": Field(bool, False, doc="IPFIX: one RFC 5103 biflow record per conversation"),
}


def register(api: Api) -> None:
    svc = api.agent.capture

    @api.route("POST", "/v1/capture/export", "Export flows to a collector (the running capture and every later one)",
               access=WRITE, body=EXPORT)
    def add(**fields):
        return 201, svc.add_exporter(**fields)

    @api.route("GET", "/v1/capture/export", "Exporters with their counters")
    def exporters():
        items = svc.exporters()
        return {"count": len(items), "exporters": items}

    @api.route("GET", "/v1/capture/export/<exporter_id:int>", "One exporter with its counters")
    def exporter(exporter_id):
        return svc.exporter(exporter_id)

    @api.route("DELETE", "/v1/capture/export/<exporter_id:int>", "Stop exporting to a collector (queued records are sent)",
               access=WRITE)
    def remove(exporter_id):
        return svc.remove_exporter(exporter_id)
