"""The serial console: a line console on a tty, a pty or a pyserial URL,
with the same verbs as REST (docs/CONSOLE.md).

lineio: the line editor over the port; session: login, lockout, idle logout;
commands: the verbs, each a REST call; password: the hashed console
password; service: the port's loop (reopen with backoff) and the agent's
ConsoleService."""
