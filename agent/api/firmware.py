"""/v1/firmware: the capture card and its slots, verification of images
(files in the firmware directory, or uploaded), and loading into the card.

Uploads are JSON: {"image": base64 of the image file, "signature": the
.minisig text}.  A verification answers 200 with its verdict whether or not
the image passes; a load that the verdict refuses is 422 FIRMWARE_REJECTED
and nothing reaches the card."""
import base64
import binascii

import bottle

from agent.api.app import ADMIN, READ, WRITE, Api
from agent.api.validate import Field
from agent.errors import AgentError
from agent.software.card import verdict_body
from firmware.minisign import SIGNATURE_MAX

VERIFY_FILES = {
    "firmware_path": Field(str, doc="image file in the firmware directory (absolute, or relative to it)"),
    "signature_path": Field(str, "", doc="its minisign signature; default: firmware_path + .minisig"),
}
UPLOAD = {
    "image": Field(str, "", doc="the image file, base64", max_len=1 << 31),    # the route's body limit bounds it
    "signature": Field(str, "", doc="the .minisig file's text", max_len=SIGNATURE_MAX),
    "firmware_path": Field(str, "", doc="instead of image: a file in the firmware directory"),
    "signature_path": Field(str, "", doc="instead of signature: a file in the firmware directory"),
}
LOAD = {**UPLOAD,
        "allow_rollback": Field(bool, False, doc="load an image below the anti-rollback floor (logged)"),
        "reason": Field(str, "", doc="why: required with allow_rollback")}


def register(api: Api) -> None:
    svc = api.agent.software.card
    upload_max = svc.max_image * 4 // 3 + SIGNATURE_MAX + 4096

    def image_and_signature(image, signature, firmware_path, signature_path) -> tuple:
        if image and firmware_path:
            raise AgentError("VALIDATION_ERROR", "give image or firmware_path, not both", {"field": "image"})
        if image:
            try:
                data = base64.b64decode(image, validate=True)
            except (binascii.Error, ValueError):
                raise AgentError("VALIDATION_ERROR", "image is not base64", {"field": "image"}) from None
        elif firmware_path:
            data = svc.read(svc.confine(firmware_path, "firmware_path"), svc.max_image, "firmware_path")
        else:
            raise AgentError("VALIDATION_ERROR", "image or firmware_path is required", {"field": "image"})
        if signature and signature_path:
            raise AgentError("VALIDATION_ERROR", "give signature or signature_path, not both",
                             {"field": "signature"})
        if not signature:
            sig_name = signature_path or (f"{firmware_path}.minisig" if firmware_path else "")
            if not sig_name:
                raise AgentError("VALIDATION_ERROR", "signature or signature_path is required", {"field": "signature"})
            signature = svc.read(svc.confine(sig_name, "signature_path"), SIGNATURE_MAX, "signature_path")
        return data, signature

    @api.route("GET", "/v1/firmware", "The capture card, its firmware slots, the rollback floor and the keyring")
    def status():
        return svc.status()

    @api.route("GET", "/v1/firmware/verify", "Verify an image and its signature in the firmware directory",
               access=READ, rate="verify", query=VERIFY_FILES)
    def verify_files(firmware_path, signature_path):
        return verdict_body(svc.verify_files(firmware_path, signature_path))

    @api.route("POST", "/v1/firmware/verify", "Verify an uploaded image and signature (nothing is stored)",
               access=WRITE, rate="verify", body=UPLOAD, max_body=upload_max)
    def verify_upload(**body):
        return verdict_body(svc.verify(*image_and_signature(**body)))

    @api.route("POST", "/v1/firmware/load", "Verify an image, then load it into the capture card",
               access=ADMIN, body=LOAD, max_body=upload_max)
    def load(allow_rollback, reason, **body):
        key = bottle.request.environ.get("capbox.key")
        return svc.load(*image_and_signature(**body), allow_rollback=allow_rollback, reason=reason,
                        who=f"API key {key.id}" if key else "")
