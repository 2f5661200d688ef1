"""tio_u256.h arithmetic against Python's integers: every operation, random
operands and operands built from corner-case limbs (0, 1, 2**63 +- 1, 2**64 - 1),
which is where carries, borrows and Knuth's add-back step hide."""
import re

import pytest
from hypothesis import given, settings, strategies as st

from tallyio.amm import _u256 as u

M256 = 1 << 256
LIMBS = st.one_of(st.sampled_from([0, 1, 2, 2**63 - 1, 2**63, 2**63 + 1, 2**64 - 2, 2**64 - 1]),
                  st.integers(0, 2**64 - 1))


def _from_limbs(limbs):
    return sum(limb << (64 * i) for i, limb in enumerate(limbs))


U256 = st.one_of(st.integers(0, M256 - 1), st.lists(LIMBS, min_size=1, max_size=4).map(_from_limbs),
                 st.integers(0, 2**64 - 1))
NONZERO = U256.filter(bool)
U512 = st.one_of(st.integers(0, (1 << 512) - 1), st.lists(LIMBS, min_size=1, max_size=8).map(_from_limbs))


@settings(deadline=None)   # a shared, loaded machine: no per-example deadline
@given(U256)
def test_roundtrip(a):
    assert u.roundtrip(a) == a
    assert u.bit_length(a) == a.bit_length()


@settings(deadline=None)   # a shared, loaded machine: no per-example deadline
@given(U256, U256)
def test_add_sub_cmp(a, b):
    assert u.add(a, b) == ((a + b) % M256, int(a + b >= M256))
    assert u.sub(a, b) == ((a - b) % M256, int(a < b))
    assert u.cmp(a, b) == (a > b) - (a < b)


@settings(deadline=None)   # a shared, loaded machine: no per-example deadline
@given(U256, st.integers(0, 2**64 - 1))
def test_mul_u64(a, b):
    assert u.mul_u64(a, b) == ((a * b) % M256, (a * b) >> 256)


@settings(deadline=None)   # a shared, loaded machine: no per-example deadline
@given(U256, U256)
def test_mul(a, b):
    assert u.mul_full(a, b) == a * b
    if a * b < M256:
        assert u.mul(a, b) == a * b
    else:
        with pytest.raises(OverflowError):
            u.mul(a, b)


@settings(max_examples=400, deadline=None)
@given(U256, NONZERO)
def test_divmod(a, b):
    assert u.divmod256(a, b) == divmod(a, b)


@settings(max_examples=400, deadline=None)
@given(U512, NONZERO)
def test_divmod512(x, d):
    if x // d < M256:
        assert u.divmod512(x, d) == divmod(x, d)
    else:
        with pytest.raises(OverflowError):
            u.divmod512(x, d)


def test_knuth_add_back_cases():
    # operands whose trial quotient is one too large after the rhat test (the rare add-back step)
    cases = [((1 << 192) * (2**63) + (2**64 - 1), (1 << 128) * 2**63 + 1),
             (_from_limbs([0, 0, 2**63, 2**63 - 1]), _from_limbs([1, 0, 2**63])),
             (_from_limbs([0, 2**64 - 1, 2**64 - 1, 2**63]), _from_limbs([2**64 - 1, 2**63])),
             (M256 - 1, _from_limbs([2**64 - 1, 2**64 - 1, 2**63 + 1]))]
    for a, b in cases:
        assert u.divmod256(a, b) == divmod(a, b)
        for hi in (0, 1, b - 1):
            x = (hi << 256) + a
            if x // b < M256:
                assert u.divmod512(x, b) == divmod(x, b)


@settings(max_examples=400, deadline=None)
@given(U256, U256, U256)
def test_full_math(a, b, d):
    # FullMath.mulDiv reverts on d == 0 and on a result >= 2**256; mulDivRoundingUp also on 2**256 after rounding
    if d == 0:
        with pytest.raises(ZeroDivisionError):
            u.mul_div(a, b, d)
        with pytest.raises(ZeroDivisionError):
            u.mul_div_rounding_up(a, b, d)
        assert u.div_rounding_up(a, d) == 0      # the EVM's DIV by zero gives 0
        return
    floor, rem = divmod(a * b, d)
    if floor < M256:
        assert u.mul_div(a, b, d) == floor
    else:
        with pytest.raises(OverflowError):
            u.mul_div(a, b, d)
    ceil = floor + (rem > 0)
    if ceil < M256:
        assert u.mul_div_rounding_up(a, b, d) == ceil
    else:
        with pytest.raises(OverflowError):
            u.mul_div_rounding_up(a, b, d)
    assert u.div_rounding_up(a, d) == -(-a // d)


def test_full_math_edges():
    top = M256 - 1
    assert u.mul_div(top, top, top) == top
    assert u.mul_div_rounding_up(top, top, top) == top
    with pytest.raises(OverflowError):
        u.mul_div(top, top, top - 1)
    with pytest.raises(OverflowError):               # floor fits, the rounded-up value does not
        u.mul_div_rounding_up(M256 - 2, M256 - 2, M256 - 3)   # (M-2)**2 = (M-3)(M-1) + 1
    assert u.mul_div(M256 - 2, M256 - 2, M256 - 3) == M256 - 1
    assert u.mul_div(2**128, 2**128, 2**200) == 2**56


@settings(deadline=None)   # a shared, loaded machine: no per-example deadline
@given(U256, st.integers(0, 300))
def test_shifts(a, n):
    assert u.shl(a, n) == (a << n) % M256
    assert u.shr(a, n) == a >> n


@settings(deadline=None)   # a shared, loaded machine: no per-example deadline
@given(U256)
def test_long_double_conversions(a):
    approx = u.to_float(a)
    assert approx <= a * (1 + 2**-52) + 1 and (a == 0 or approx >= a * (1 - 2**-52))
    assert u.from_float(float(2**200)) == 2**200
    assert u.from_float(-5.0) == 0 and u.from_float(3.99) == 3
    assert u.from_float(2.0**300) == M256 - 1


@pytest.mark.parametrize("bad, exc, words", [
    (-1, ValueError, ">= 0"), (M256, ValueError, "< 2**256"), (1.5, TypeError, "must be an int"),
    ("7", TypeError, "must be an int"), (True, TypeError, "must be an int")])
def test_bad_operands_name_the_argument(bad, exc, words):
    with pytest.raises(exc, match=re.escape(words)) as info:
        u.add(1, bad)
    assert "b " in str(info.value)
