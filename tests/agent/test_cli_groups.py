"""`capbox COMMAND` builds only its command group's parser (agent.cli.COMMANDS): what it parses, prints and
refuses must be what the whole parser does, and `capbox run` (the image's agent, at every boot) must not
load the other commands, the consoles or rich."""
import argparse
import json
import subprocess
import sys

import pytest

from agent import cli


def commands(parser: argparse.ArgumentParser) -> dict:
    """The command parsers under the top-level parser, by name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_each_command_names_the_group_that_adds_it():
    added = {}
    for group in cli.GROUPS:
        p = argparse.ArgumentParser(prog="capbox")
        cli.importlib.import_module(f"agent.cli.{group}").add_parsers(p.add_subparsers())
        added.update({name: group for name in commands(p)})
    assert added == cli.COMMANDS


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_a_commands_own_parser_prints_what_the_whole_one_does(command):
    whole, own = commands(cli.build_parser())[command], commands(cli.build_parser(command))[command]
    assert own.format_help() == whole.format_help()
    assert own.prog == whole.prog == f"capbox {command}"


def run(argv, code: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import sys\nfrom agent.cli import main\n" + code +
                           f"sys.exit(main({argv!r}))"], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("argv", [["run", "--help"], ["run", "--backend", "nosuch"], ["run", "--nosuch"],
                                  ["keys", "list", "--help"], ["keys"], ["update", "--help"]])
def test_the_command_line_answers_as_before(argv):
    """The same words through the whole parser (sys.argv empty, so main() is handed the words) and through
    the command's own: the same output and status."""
    own = run(argv)
    whole = run(argv, "import agent.cli as c\nc.build_parser = lambda command='', b=c.build_parser: b()\n")
    assert (own.returncode, own.stdout, own.stderr) == (whole.returncode, whole.stdout, whole.stderr)
    assert own.returncode in (0, 2) and (own.stdout or own.stderr)


def test_capbox_run_loads_no_other_command_and_no_console():
    code = ("import json, sys\nfrom agent.cli import parse\nargs = parse(['run', '--headless'])\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    loaded = set(json.loads(out.stdout))
    assert "agent.cli.box" in loaded
    others = {f"agent.cli.{g}" for g in cli.GROUPS if g != "box"}
    assert not loaded & (others | {"rich", "textual", "tui", "agent.console.commands"})


def test_an_agent_without_a_serial_console_does_not_load_one(tmp_path):
    """The image's agent (no [console] port: its console is capbox-console.service) is built without the
    console face and pyserial."""
    code = ("import json, sys\nfrom agent.cli import parse\nfrom agent.cli.box import build_agent\n"
            "from agent.cli.common import load_config\n"
            f"args = parse(['run', '--headless', '--data-dir', {str(tmp_path)!r}])\n"
            "agent = build_agent(load_config(args), console=False)\n"
            "print(json.dumps([sorted(sys.modules), [type(f).__name__ for f in agent.faces]]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    loaded, faces = json.loads(out.stdout.splitlines()[-1])
    assert faces == ["RestFace"]
    assert not {"agent.console.port", "serial"} & set(loaded)
