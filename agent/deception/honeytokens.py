"""Honeytokens: generated strings that only a decoy ever carried.

Each has a needle, a random core of 12 lowercase letters and digits that
survives every encoding a stolen credential is likely to travel in (URL
encoding, DNS labels, JSON, headers); the C core searches payloads for the
needles.  Profiles decide which tokens a session plants and where."""
import secrets
import string

TYPES = ("email", "password", "api_key", "url", "dns")
PROFILES = {
    # (token type, where it is embedded), and how often the profile acts (x interval)
    "average_user": {"tokens": [("email", "login_form"), ("password", "login_form"), ("dns", "dns_lookup")],
                     "pace": 1.0},
    "banking_user": {"tokens": [("email", "login_form"), ("password", "login_form"), ("url", "password_reset_link"),
                                ("dns", "dns_lookup")], "pace": 0.7},
    "developer": {"tokens": [("api_key", "fake_config_file"), ("password", "login_form"), ("url", "git_remote"),
                             ("dns", "dns_lookup")], "pace": 0.5},
    "executive": {"tokens": [("email", "email_signature"), ("password", "login_form"), ("url", "shared_document"),
                             ("dns", "dns_lookup")], "pace": 1.5},
}
_ALPHABET = string.ascii_lowercase + string.digits


def needle() -> str:
    return "ht" + "".join(secrets.choice(_ALPHABET) for _ in range(10))


def make(token_type: str, domain: str) -> tuple:
    """(token, needle) of a new honeytoken of that type for a domain."""
    n = needle()
    base = domain.strip(".") or "example.invalid"
    if token_type == "email":
        return f"{secrets.choice(['j.smith', 'a.lee', 'm.garcia', 'k.chen'])}.{n}@{base}", n
    if token_type == "password":
        return f"{secrets.choice(['Summer', 'Winter', 'Autumn'])}!{n}#", n
    if token_type == "api_key":
        return f"sk_live_{n}{secrets.token_hex(8)}", n
    if token_type == "url":
        return f"http://{base}/reset?token={n}", n
    if token_type == "dns":
        return f"{n}.{base}", n
    raise ValueError(f"unknown token type {token_type!r}")
