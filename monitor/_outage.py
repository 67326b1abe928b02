"""Whose fault a network failure is: when every fetch of one claim fails at the network level,
across at least OUTAGE_MIN_HOSTS hosts, the fault is ours (network, resolver, proxy) and no source
is penalised (`monitor.pipeline`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

log = logging.getLogger("monitor.pipeline")

# Failure kinds that say nothing about the source when every host fails them at once.
NETWORK_KINDS = frozenset({"dns", "connect", "timeout", "network", "tls"})
OUTAGE_MIN_HOSTS = 3


class Tick:
    """The sources one claim handed out, and whether their network failures are ours. The verdict
    is "ours" when every fetch of the tick failed at the network level and they span at least
    OUTAGE_MIN_HOSTS hosts; it is "theirs" as soon as one fetch of the tick got any answer (or
    failed otherwise). A network failure waits for the verdict before it is recorded."""

    def __init__(self, hosts: Mapping[str, str]) -> None:
        self._pending = set(hosts)
        self._hosts = len(set(hosts.values()))
        self._decided = asyncio.Event()
        self.ours = False
        if self._hosts < OUTAGE_MIN_HOSTS:
            self._decided.set()

    def settle(self, source_id: str, *, network: bool) -> None:
        """The fetch of `source_id` ended; `network`: with a network-level failure. Idempotent."""
        if source_id not in self._pending:
            return
        self._pending.discard(source_id)
        if self._decided.is_set():
            return
        if not network:
            self._decided.set()
        elif not self._pending:
            self.ours = True
            self._decided.set()
            log.warning(
                "every fetch of this round failed at the network level, across %d hosts: the "
                "problem is most likely on this side (network, DNS, proxy); the sources are not "
                "penalised",
                self._hosts,
            )

    async def network_failure(self, source_id: str, *, wait: float) -> bool:
        """Report a network-level failure and wait (at most `wait` s) for the verdict: True when
        the failure is ours, not the source's."""
        self.settle(source_id, network=True)
        try:
            async with asyncio.timeout(wait):
                await self._decided.wait()
        except TimeoutError:
            return False  # undecided: count it, as for any failure
        return self.ours
