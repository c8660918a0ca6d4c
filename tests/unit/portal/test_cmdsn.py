"""The CmdSN window: in-order delivery, holes, duplicates, the window's edges, wrap-around."""

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from isns_server.portal.session.cmdsn import CommandWindow, serial_distance


@dataclass(frozen=True)
class Command:
    cmdsn: int
    immediate: bool = False


def test_in_order_commands_are_delivered_and_acknowledged() -> None:
    window: CommandWindow[Command] = CommandWindow(10, 4)
    assert (window.expcmdsn, window.maxcmdsn) == (10, 13)
    assert window.admit(Command(10)) == [Command(10)]
    assert (window.expcmdsn, window.maxcmdsn) == (11, 14)


def test_an_early_command_waits_for_the_hole_to_fill() -> None:
    window: CommandWindow[Command] = CommandWindow(1, 8)
    assert window.admit(Command(3)) == []
    assert window.admit(Command(2)) == []
    assert window.admit(Command(1)) == [Command(1), Command(2), Command(3)]
    assert window.expcmdsn == 4


def test_duplicates_and_commands_outside_the_window_are_ignored() -> None:
    window: CommandWindow[Command] = CommandWindow(5, 4)
    assert window.admit(Command(4)) == []  # already acknowledged
    assert window.admit(Command(9)) == []  # past MaxCmdSN 8
    assert window.admit(Command(7)) == []
    assert window.admit(Command(7)) == []  # a duplicate of one waiting
    assert window.admit(Command(5)) == [Command(5)]
    assert window.admit(Command(6)) == [Command(6), Command(7)]


def test_immediate_commands_pass_at_once_without_advancing() -> None:
    window: CommandWindow[Command] = CommandWindow(5, 4)
    assert window.admit(Command(99, immediate=True)) == [Command(99, immediate=True)]
    assert window.expcmdsn == 5


def test_numbers_wrap_at_two_to_the_32() -> None:
    window: CommandWindow[Command] = CommandWindow(0xFFFFFFFF, 4)
    assert window.maxcmdsn == 2
    assert window.admit(Command(0)) == []
    assert window.admit(Command(0xFFFFFFFF)) == [Command(0xFFFFFFFF), Command(0)]
    assert window.expcmdsn == 1


@given(st.integers(0, 2**32 - 1), st.integers(-(2**31) + 1, 2**31 - 1))
def test_serial_distance(a: int, delta: int) -> None:
    assert serial_distance((a + delta) % 2**32, a) == delta
