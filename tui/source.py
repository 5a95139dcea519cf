"""Where the console's data comes from: an agent over HTTP, or the agent
in this process through its own WSGI app (agent.client.InProcessClient).
The screens see one interface and never know which; every action goes
through the agent's REST routes, so through the same services and checks."""
from typing import Optional

from agent.client import ApiError, Client


class SourceError(Exception):
    """What went wrong, in a sentence for a notification."""


class Source:
    def __init__(self, client: Client, where: str):
        self.client = client
        self.where = where

    def get(self, path: str, **query) -> dict:
        return self._call(self.client.get, path, **query)

    def post(self, path: str, body: Optional[dict] = None) -> dict:
        return self._call(self.client.post, path, body or {})

    def patch(self, path: str, body: dict) -> dict:
        return self._call(self.client.request, "PATCH", path, body)

    def pcap(self, out, **query) -> dict:
        """GET /v1/pcap (flow, threat, call...) into the binary file out: the response's headers."""
        return self._call(self.client.pcap, out, **query)

    def optional(self, path: str, **query) -> Optional[dict]:
        """A route that may not answer here (nothing computed yet, feature off): None instead of an error."""
        try:
            return self.client.get(path, **query)
        except ApiError as e:
            if e.status in (400, 404, 409, 503):
                return None
            raise SourceError(f"{e.code}: {e.message}") from None
        except OSError as e:
            raise SourceError(f"agent at {self.where} unreachable: {e}") from None

    def health(self) -> dict:
        try:
            return self.client.health()
        except ApiError as e:
            raise SourceError(f"{e.code}: {e.message}") from None
        except OSError as e:
            raise SourceError(f"agent at {self.where} unreachable: {e}") from None

    @staticmethod
    def _call(fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ApiError as e:
            field = e.details.get("field")
            raise SourceError(f"{e.message}" + (f" ({field})" if field else "")) from None
        except OSError as e:
            raise SourceError(f"agent unreachable: {e}") from None


def remote(url: str, key: Optional[str], cacert: Optional[str] = None, pin: Optional[str] = None) -> Source:
    return Source(Client(url, key, timeout=5, cacert=cacert, pin=pin), url)


def local(app) -> Source:
    """The agent's REST app in this process (agent.api.rest.RestFace.app)."""
    from agent.client import InProcessClient
    return Source(InProcessClient(app), "this process")
