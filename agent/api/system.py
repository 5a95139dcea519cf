"""/v1/system: the disk image the agent runs from (release, A/B slots, which
is booted and committed, a trial under way, the units), and system updates.

POST /v1/system/update takes the bundle file itself as the body
(application/octet-stream, spooled to the data partition, never held in
memory) and its minisign signature, base64, in the X-Capbox-Signature header.
A refused verdict is 422 UPDATE_REJECTED and nothing is written to a slot, the
ESP or the boot loader; an accepted one is 202 and the box reboots into the
new slot (unless reboot=false) for its one trial."""
import base64
import binascii
import logging
import threading

import bottle

from agent.api.app import ADMIN, Api
from agent.api.validate import Field
from agent.errors import AgentError
from agent.software.system import spool
from firmware.minisign import SIGNATURE_MAX

log = logging.getLogger(__name__)
BUNDLE_MAX = 1 << 30
REBOOT_DELAY_S = 2.0
UPDATE = {"reboot": Field(bool, True, doc="reboot into the new slot once written"),
          "allow_rollback": Field(bool, False, doc="install below the rollback floor (logged)"),
          "reason": Field(str, "", doc="why: required with allow_rollback")}


def _signature() -> str:
    raw = bottle.request.get_header("X-Capbox-Signature", "")
    if not raw:
        raise AgentError("VALIDATION_ERROR", "the signature is required: base64 of the .minisig file in the "
                         "X-Capbox-Signature header", {"field": "X-Capbox-Signature"})
    try:
        text = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise AgentError("VALIDATION_ERROR", "X-Capbox-Signature is not base64",
                         {"field": "X-Capbox-Signature"}) from None
    if len(text) > SIGNATURE_MAX:
        raise AgentError("VALIDATION_ERROR", "the signature is too large", {"field": "X-Capbox-Signature"})
    return text


def register(api: Api) -> None:
    svc = api.agent.software.system

    @api.route("GET", "/v1/system", "The image: release, A/B slots (booted, committed, on trial), units, history")
    def system():
        return svc.status()

    @api.route("POST", "/v1/system/update", "Install a signed update bundle (body: the bundle; header "
               "X-Capbox-Signature: its .minisig, base64) into the inactive slot and reboot into it once",
               access=ADMIN, query=UPDATE, max_body=BUNDLE_MAX)
    def update(reboot, allow_rollback, reason):
        req = bottle.request
        ctype = (req.content_type or "").split(";")[0].strip().lower()
        if ctype != "application/octet-stream":
            raise AgentError("UNSUPPORTED_MEDIA_TYPE", "send the bundle as application/octet-stream",
                             {"content_type": ctype or None})
        signature = _signature()
        svc._require_image()
        path = spool(req.environ["wsgi.input"], req.content_length, svc.upload_dir, BUNDLE_MAX)
        key = req.environ.get("capbox.key")
        try:
            result = svc.install(path, signature, allow_rollback, reason,
                                 who=f"API key {key.id}" if key and hasattr(key, "id") else "")
        finally:
            path.unlink(missing_ok=True)
        if reboot:
            threading.Timer(REBOOT_DELAY_S, _reboot, (svc,)).start()
        return 202, {**result, "rebooting": reboot, "reboot_in_seconds": REBOOT_DELAY_S if reboot else None}


def _reboot(svc) -> None:
    try:
        svc.platform.reboot()
    except Exception:
        log.exception("reboot after the update failed")
