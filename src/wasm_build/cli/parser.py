"""The argument parser every command shares: a mistyped option gets the closest valid one."""

from __future__ import annotations

import argparse

from ..config.suggest import closest


class Parser(argparse.ArgumentParser):
    """Reports an unknown option with the command it belongs to and the closest valid one
    (argparse alone would print the top-level usage with no hint)."""

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = self._command_parser(parsed)
            unknown = next((e for e in extras if e.startswith("-")), extras[0])
            options = [o for action in command._actions for o in action.option_strings]
            match = closest(unknown.partition("=")[0], options, cutoff=0.6)
            hint = f"; did you mean {match}?" if match else f"; see {command.prog} --help"
            command.error(f"unrecognized argument {unknown}{hint}")
        return parsed

    def _command_parser(self, parsed: argparse.Namespace) -> argparse.ArgumentParser:
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                return action.choices.get(getattr(parsed, "command", None), self)
        return self
