"""Settings of the mempool pipeline's stages: the filter's floors and table sizes, the
analyzer's work bounds and gas model.  Owns validation only; imports nothing downstream.

    >>> FilterConfig(min_gas_price_wei=10**9).min_gas_price_wei
    1000000000
    >>> FilterConfig(recent_hashes=0)
    Traceback (most recent call last):
    ...
    tallyio.errors.ConfigError: FilterConfig.recent_hashes must be an int in 1 .. 16777216, got 0
"""
from __future__ import annotations

from dataclasses import dataclass

from tallyio.errors import ConfigError

__all__ = ["FilterConfig", "AnalyzerConfig"]


def _check_int(owner: str, name: str, value, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{owner}.{name} must be an int in {low} .. {high}, got {value!r}")


@dataclass(frozen=True)
class FilterConfig:
    """What the filter lets through to decoding and analysis.

    A transaction passes when it calls a known router or pool, is not a duplicate of
    one of the last ``recent_hashes`` hashes, meets both floors, and (with
    ``check_nonces``) does not leave a gap after the highest nonce seen from its sender
    (a gapped transaction cannot be mined before the gap is filled)."""

    min_value_wei: int = 0
    """drop calls sending less ETH than this (0: token-for-token swaps send none)."""
    min_gas_price_wei: int = 0
    """drop transactions whose max fee per gas is below this."""
    recent_hashes: int = 65536
    """how many recent hashes the duplicate check remembers."""
    nonce_senders: int = 65536
    """slots of the per-sender nonce table (a direct-mapped cache: a collision forgets)."""
    check_nonces: bool = True

    def __post_init__(self):
        _check_int("FilterConfig", "min_value_wei", self.min_value_wei, 0, 2**256 - 1)
        _check_int("FilterConfig", "min_gas_price_wei", self.min_gas_price_wei, 0, 2**256 - 1)
        _check_int("FilterConfig", "recent_hashes", self.recent_hashes, 1, 1 << 24)
        _check_int("FilterConfig", "nonce_senders", self.nonce_senders, 1, 1 << 24)
        if not isinstance(self.check_nonces, bool):
            raise ConfigError(f"FilterConfig.check_nonces must be a bool, got {self.check_nonces!r}")


@dataclass(frozen=True)
class AnalyzerConfig:
    """Work bounds and the gas model of the backrun analyzer.

    Per transaction at most ``max_cycles`` cycles are screened in float64 and at most
    ``max_sized`` of the best are sized exactly, with at most ``max_evaluations`` exact
    evaluations each; what is cut is counted (a wash-trading
    transaction once sent a Python route search into an endless loop)."""

    max_cycles: int = 512
    max_sized: int = 1
    max_evaluations: int = 4
    """exact cycle evaluations allowed per sized cycle (tallyio.amm's search budget): when
    the region the integer optimum can lie in holds at most this many inputs the size is
    certified optimal (small reserves); beyond, it is the best input examined (reserves of
    10**18 make that region billions wide: no budget would certify it)."""
    min_profit_wei: int = 1
    """report a cycle only when its exact profit (start token units) reaches this."""
    gas_base: int = 60_000
    gas_per_hop: int = 90_000
    """gas estimate of a backrun: gas_base + gas_per_hop x hops."""
    standing_arbitrage: bool = True
    """after a block's Sync logs, scan the cycles through the pools they touched for
    arbitrage on the new state alone (Pipeline: ARBITRAGE, each cycle once per block)."""
    max_arbitrage_cycles: int = 65536
    """cycles screened per such scan at most (the rest counted ``truncated``)."""

    def __post_init__(self):
        _check_int("AnalyzerConfig", "max_cycles", self.max_cycles, 1, 1 << 20)
        _check_int("AnalyzerConfig", "max_sized", self.max_sized, 1, 64)
        _check_int("AnalyzerConfig", "max_evaluations", self.max_evaluations, 0, 1 << 20)
        _check_int("AnalyzerConfig", "min_profit_wei", self.min_profit_wei, 1, 2**255)
        _check_int("AnalyzerConfig", "gas_base", self.gas_base, 0, 2**32)
        _check_int("AnalyzerConfig", "gas_per_hop", self.gas_per_hop, 0, 2**32)
        if not isinstance(self.standing_arbitrage, bool):
            raise ConfigError(f"AnalyzerConfig.standing_arbitrage must be a bool, got {self.standing_arbitrage!r}")
        _check_int("AnalyzerConfig", "max_arbitrage_cycles", self.max_arbitrage_cycles, 1, 1 << 24)

