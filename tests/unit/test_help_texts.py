"""Every option of every command a person runs says what it does (`--help`)."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

import pytest

from analysis import protocols

COMMANDS = ("logctl.upload", "logctl.results", "logctl.dlq", "logctl.dashboard", "logctl.deploy",
            "logctl.destroy", "logctl.policy", "logctl.generate", "logctl.provision",
            "localruntime.demo", "chalicelib.summarize", "loadtest.protocol", "analysis.__main__",
            "analysis.compact", "soak.__main__", "bench.bench_e2e_compare", "bench.bench_lag")


class Parsed(Exception):
    """Raised instead of parsing: carries the parser a command built."""


def parser_of(run: Callable[[], object], monkeypatch: pytest.MonkeyPatch
              ) -> argparse.ArgumentParser:
    def grab(self: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        raise Parsed(self)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", grab)
    with pytest.raises(Parsed) as caught:
        run()
    parser: argparse.ArgumentParser = caught.value.args[0]
    return parser


def parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found += [p for sub in action.choices.values() for p in parsers(sub)]
    return found


def options_without_help(parser: argparse.ArgumentParser) -> list[str]:
    return [action.option_strings[-1] for p in parsers(parser) for action in p._actions
            if action.option_strings and not action.help]


@pytest.mark.parametrize("module", COMMANDS)
def test_every_option_has_help(module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    main = importlib.import_module(module).main

    assert options_without_help(parser_of(lambda: main([]), monkeypatch)) == []


def test_the_runtime_options_have_help_and_say_the_true_defaults(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from localruntime.__main__ import parse_settings

    parser = parser_of(lambda: parse_settings([]), monkeypatch)

    assert options_without_help(parser) == []
    concurrency = next(a for a in parser._actions if "--concurrency" in a.option_strings)
    assert "reserved_concurrency" in (concurrency.help or "")


@pytest.mark.parametrize("module", ["logctl.upload", "logctl.deploy", "logctl.destroy"])
def test_the_endpoint_option_names_the_endpoint_file(module: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    main = importlib.import_module(module).main
    parser = parser_of(lambda: main([]), monkeypatch)

    endpoint = next(a for a in parser._actions if "--endpoint-url" in a.option_strings)
    assert ".localruntime-endpoint" in (endpoint.help or "")


def test_the_protocol_runner_defaults_are_the_documented_protocol(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from loadtest.protocol import main

    parser = parser_of(lambda: main([]), monkeypatch)

    assert parser.get_default("iterations") == protocols.PROTOCOL_ITERATIONS
    assert parser.get_default("warmup") == protocols.PROTOCOL_WARMUPS
