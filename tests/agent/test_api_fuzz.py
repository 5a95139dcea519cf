"""schemathesis (an OpenAPI fuzzer) against the running agent's own
/v1/openapi.json, over every operation: any 5xx fails, and so does an answer
that does not match the response schema or media type its operation declares.  The schema carries
the constraints validation enforces, so the fuzzer's data and the server agree
on what is valid and everything else must be a 4xx."""
import os
import re
import subprocess
import sys

from tests.agent.conftest import AgentProcess

RATES = "".join(f"rate_{r} = 1000000\n" for r in ("get", "write", "verify", "verify_dns", "threats",
                                                    "deception_start"))
CONFIG = f"[capture]\nautostart = false\n[api]\n{RATES}[verify]\ndefault_timeout = 1\n"


def test_schemathesis_finds_no_server_error(tmp_path):
    a = AgentProcess(tmp_path / "var", CONFIG)
    try:
        st = os.path.join(os.path.dirname(sys.executable), "schemathesis")
        # GET /v1/events is an endless event stream (every request would wait out the
        # timeout); its malformed queries are in test_api_malformed and test_api_platform
        p = subprocess.run(
            [st, "run", f"{a.url}/v1/openapi.json", "-H", f"Authorization: Bearer {a.key}",
             "--checks", "not_a_server_error,response_schema_conformance,content_type_conformance", "--max-examples", "25", "--no-shrink", "--seed", "18",
             "--phases", "examples,coverage,fuzzing", "--request-timeout", "20", "--exclude-path", "/v1/events",
             "--workers", "2"],
            capture_output=True, text=True, timeout=600, cwd=tmp_path)
        out = p.stdout + p.stderr
        assert p.returncode == 0 and "passed" in out, out[-6000:]
        # every operation but the event stream was selected, and every selected one tested
        selected, total = map(int, re.search(r"Selected: (\d+)/(\d+)", out).groups())
        assert selected == total - 1 and f"Tested: {selected}" in out, out[-3000:]
        assert a.proc.poll() is None and "Traceback" not in a.output()
    finally:
        a.stop()
