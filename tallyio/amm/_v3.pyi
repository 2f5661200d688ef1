"""Type stub for the compiled module tallyio.amm._v3 (V3 within a tick range; C API in _v3.pxd)."""
from typing import NamedTuple, Optional

MIN_TICK: int
MAX_TICK: int
MIN_SQRT_RATIO: int
MAX_SQRT_RATIO: int

class V3Swap(NamedTuple):
    amount0: int
    amount1: int
    amount_in: int
    amount_out: int
    fee_amount: int
    sqrt_price_x96: int
    tick: int | None
    crosses_tick: bool

def get_sqrt_ratio_at_tick(tick: int) -> int: ...
def get_tick_at_sqrt_ratio(sqrt_price_x96: int) -> int: ...
def get_next_sqrt_price_from_input(sqrt_price_x96: int, liquidity: int, amount_in: int, zero_for_one: bool) -> int: ...
def get_next_sqrt_price_from_output(sqrt_price_x96: int, liquidity: int, amount_out: int,
                                    zero_for_one: bool) -> int: ...
def get_amount0_delta(sqrt_ratio_a_x96: int, sqrt_ratio_b_x96: int, liquidity: int, round_up: bool) -> int: ...
def get_amount1_delta(sqrt_ratio_a_x96: int, sqrt_ratio_b_x96: int, liquidity: int, round_up: bool) -> int: ...
def compute_swap_step(sqrt_ratio_current_x96: int, sqrt_ratio_target_x96: int, liquidity: int,
                      amount_remaining: int, fee_pips: int) -> tuple[int, int, int, int]: ...
def v3_swap_within_range(sqrt_price_x96: int, liquidity: int, amount_specified: int, zero_for_one: bool,
                         fee_pips: int, sqrt_price_limit_x96: int, tick_next: int) -> V3Swap: ...
def v3_swap_in_range(sqrt_price_x96: int, liquidity: int, tick: int, amount_specified: int, zero_for_one: bool,
                     fee_pips: int, tick_spacing: int, tick_lower: int, tick_upper: int,
                     sqrt_price_limit_x96: Optional[int] = None, max_steps: int = 256) -> V3Swap: ...
