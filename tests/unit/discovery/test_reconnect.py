"""The bridge's reconnect loop: pauses from 1 s doubling to 60 s, afresh after a session
that got to following the registry; stepped with an injected sleep, no server."""

import pytest

from discovery_agent.bridge import RETRY_MAX, RegistryBridge, reconnect_pause
from discovery_agent.mirror import RegistryMirror
from discovery_agent.slp.agent import AgentSettings, DirectoryAgent
from isns_server.client import IsnsClientError

from ...polling import Pacer

FOLLOWED = "followed"  # a session that reads the registry, follows it, then loses it


class ScriptedBridge(RegistryBridge):
    """Sessions that end as the test says, instead of connecting."""

    def __init__(self, outcomes: list[object], sleep: Pacer) -> None:
        agent = DirectoryAgent(
            AgentSettings(url="service:directory-agent://192.0.2.1"), boot_timestamp=1
        )
        super().__init__(
            server=("127.0.0.1", 3205),
            node_name="iqn.2026-11.org.example.test:agent",
            scn_port=0,
            agent=agent,
            mirror=RegistryMirror(agent, [("127.0.0.1", 3205)], now=0.0),
            sleep=sleep,
        )
        self.outcomes = outcomes

    async def _session(self) -> None:
        outcome = self.outcomes.pop(0)
        if outcome == FOLLOWED:
            self._reconnects = 0  # as a session that got to following does
            raise IsnsClientError("it closed the connection")
        assert isinstance(outcome, BaseException)
        raise outcome


def test_the_pause_doubles_from_1_s_up_to_60_s() -> None:
    assert [reconnect_pause(n) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert reconnect_pause(1_000) == RETRY_MAX


async def test_failures_back_off_and_a_session_that_worked_starts_afresh(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refused = ConnectionRefusedError(111, "Connection refused")
    outcomes: list[object] = [refused, refused, refused, FOLLOWED, refused, TimeoutError()]
    pacer = Pacer(hold=True)
    bridge = ScriptedBridge(outcomes, pacer)
    bridge.start()
    for _ in range(5):
        await pacer.asked()
        pacer.resume()
    await pacer.asked()
    assert pacer.pauses == [1, 2, 4, 1, 2, 4]
    said = [r.getMessage().rsplit("; ", 1)[1] for r in caplog.records]
    assert said == [f"reconnecting in {n} s" for n in (1, 2, 4, 1, 2, 4)]
    await bridge.stop()
