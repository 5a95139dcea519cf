"""The agent's health (agent/health.py), read from other threads than the ones that change it."""
import threading

from agent.health import Health


def test_health_reads_while_parts_register():
    """Parts and loss paths register while the agent runs (a service enabled over REST, the protocol logs):
    /v1/health's snapshot, status and losses read meanwhile, whose details run Python, never fail."""
    h = Health()
    errors, done = [], threading.Event()

    def register():
        for i in range(3000):
            h.register(f"part-{i}", critical=False, detail=lambda: {"n": sum(range(50))})
            h.register_losses(f"path-{i}", lambda: {"drop": sum(range(50)) * 0})
        done.set()

    def read():
        while not done.is_set():
            try:
                h.snapshot(), h.status(), h.losses()
            except RuntimeError as e:
                errors.append(e)
                return

    threads = [threading.Thread(target=register), threading.Thread(target=read)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
