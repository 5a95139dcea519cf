"""/v1/capture/recording, /v1/capture/encryption and /v1/recordings:
recording captured packets (pcapng, rotated, kept by size and age, filtered),
encryption at rest (AES-256-GCM with a key file from the key directory), and
the recordings themselves (list, download as stored or decrypted, delete)."""
import bottle

from agent.api.app import READ, WRITE, Api
from agent.api.validate import Field, bpf
from agent.recordings.keys import CIPHER_SUITES

RECORDING = {
    "action": Field(str, "start", choices=("start", "stop")),
    "rotate_mb": Field(int, None, 0, 1 << 20, doc="a new file after this many MB (0: never); default: as set"),
    "rotate_s": Field(int, None, 0, 31 * 86400, doc="or after this many seconds of packet time (0: never)"),
    "keep_mb": Field(int, None, 0, 1 << 30, doc="retention: the recordings together at most this (0: no limit)"),
    "keep_s": Field(int, None, 0, 3650 * 86400, doc="retention: delete files older than this (0: no limit)"),
    "bpf": bpf(None, "the recording's own BPF filter ('' for every packet); a tunnel's inner packet meets it"),
    "bpf_outer": Field(bool, None, doc="the filter sees a tunnel's outer packet instead of the one inside"),
    "snaplen": Field(int, None, 0, 262144, doc="bytes kept of each packet (0: whole packets)"),
}
ENCRYPTION = {
    "enable": Field(bool, True, aliases=("enabled",)),
    "cipher_suite": Field(str, "AES-256-GCM", choices=CIPHER_SUITES),
    "key_file": Field(str, "", doc="a key file in <data_dir>/keys: 32 raw bytes, mode 0600"),
}
DOWNLOAD = {"decrypt": Field(bool, False, doc="decrypt an encrypted recording (full keys only)")}


def register(api: Api) -> None:
    svc = api.agent.capture

    @api.route("POST", "/v1/capture/recording", "Start or stop recording packets (the running capture and the next)",
               access=WRITE, body=RECORDING)
    def recording(action, **settings):
        if action == "stop":
            return svc.stop_recording()
        return svc.start_recording(**settings)

    @api.route("GET", "/v1/capture/recording", "Recording settings, state, counters, the file being written")
    def recording_status():
        return svc.recording_status()

    @api.route("POST", "/v1/capture/encryption", "Encrypt recordings at rest with a key file (a new file starts)",
               access=WRITE, body=ENCRYPTION)
    def encryption(enable, cipher_suite, key_file):
        return svc.set_encryption(enable, cipher_suite, key_file)

    @api.route("GET", "/v1/capture/encryption", "Whether recordings are encrypted, with which key")
    def encryption_status():
        return svc.recording.encryption()

    @api.route("GET", "/v1/recordings", "Recordings: name, size, time, encrypted, key id, complete, being written")
    def recordings():
        return svc.recordings()

    @api.route("GET", "/v1/recordings/<name>", "Download a recording as stored, or decrypted (?decrypt=true, full key)",
               access=READ, query=DOWNLOAD)
    def download(name, decrypt):
        key = bottle.request.environ.get("capbox.key")
        headers, body = svc.recording.download(name, decrypt, full_key=key is not None and key.kind == "sk")
        keep = {k: v for k, v in bottle.response.headers.items() if k.lower().startswith("x-")}
        return bottle.HTTPResponse(body=body, status=200, headers={**keep, **headers})

    @api.route("DELETE", "/v1/recordings/<name>", "Delete a recording (not the one being written)", access=WRITE)
    def delete(name):
        return svc.delete_recording(name)
