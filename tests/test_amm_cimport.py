"""The analyzer's view of tallyio.amm: a separate extension that cimports the .pxd C API
(as tallyio.mempool will) compiles without warnings and calls it without the GIL."""
import pytest

from conftest import build_user_extension
from tallyio.amm import best_cycle_input, get_amounts_out, v3_swap_within_range

SOURCE = '''
from libc.stdint cimport uint32_t
from tallyio._ext.u256 cimport tio_u256, u256_from_int, u256_to_int
from tallyio.amm._v2 cimport v2_amounts_out, AMM_OK, AMM_INSUFFICIENT_INPUT_AMOUNT
from tallyio.amm._cycle cimport v2_best_cycle_input
from tallyio.amm._v3 cimport v3_swap_step, v3_swap_result

def path_out(amount, r0, r1, r2, r3):
    cdef tio_u256 a
    cdef tio_u256 reserves[4]
    cdef tio_u256 amounts[3]
    cdef uint32_t fees[2]
    cdef int status
    u256_from_int(amount, &a, "amount")
    for i, r in enumerate((r0, r1, r2, r3)):
        u256_from_int(r, &reserves[i], "reserve")
    fees[0] = fees[1] = 30
    with nogil:
        status = v2_amounts_out(&a, reserves, fees, 2, amounts)
    return status, [u256_to_int(&amounts[i]) for i in range(3)] if status == AMM_OK else None

def zero_input_status():
    cdef tio_u256 a
    cdef tio_u256 reserves[2]
    cdef tio_u256 amounts[2]
    cdef uint32_t fee = 30
    a.w[0] = a.w[1] = a.w[2] = a.w[3] = 0
    reserves[0] = reserves[1] = a
    reserves[0].w[0] = reserves[1].w[0] = 1000
    with nogil:
        status = v2_amounts_out(&a, reserves, &fee, 1, amounts)
    return status == AMM_INSUFFICIENT_INPUT_AMOUNT

def cycle(r0, r1, r2, r3):
    cdef tio_u256 reserves[4]
    cdef tio_u256 amount, profit
    cdef uint32_t fees[2]
    cdef int certified, status
    cdef uint32_t evaluations
    for i, r in enumerate((r0, r1, r2, r3)):
        u256_from_int(r, &reserves[i], "reserve")
    fees[0] = fees[1] = 30
    with nogil:
        status = v2_best_cycle_input(reserves, fees, 2, 4096, &amount, &profit, &certified, &evaluations)
    return u256_to_int(&amount), u256_to_int(&profit)

def v3(price, liquidity, amount, limit, int tick_next):
    cdef tio_u256 p, l, a, lim
    cdef v3_swap_result r
    u256_from_int(price, &p, "price"); u256_from_int(liquidity, &l, "liquidity")
    u256_from_int(amount, &a, "amount"); u256_from_int(limit, &lim, "limit")
    with nogil:
        status = v3_swap_step(&p, &l, &a, True, True, 3000, &lim, tick_next, &r)
    return u256_to_int(&r.amount_in), u256_to_int(&r.amount_out), u256_to_int(&r.sqrt_price_x96), r.crosses_tick
'''


@pytest.mark.timeout(600)
def test_the_c_api_cimports_and_runs_without_the_gil(tmp_path, monkeypatch):
    ext = build_user_extension(tmp_path, "amm_user", SOURCE, monkeypatch)
    reserves = (10**9, 2 * 10**9, 5 * 10**9, 10**9)
    assert ext.path_out(10**6, *reserves) == (0, get_amounts_out(10**6, [reserves[:2], reserves[2:]]))
    assert ext.zero_input_status()
    assert ext.cycle(5000, 10000, 5000, 3000) == best_cycle_input([(5000, 10000, 30), (5000, 3000, 30)])
    swap = v3_swap_within_range(2**96, 10**21, 10**15, True, 3000, 4295128740, -60)
    assert ext.v3(2**96, 10**21, 10**15, 4295128740, -60) == (swap.amount_in, swap.amount_out,
                                                            swap.sqrt_price_x96, swap.crosses_tick)
