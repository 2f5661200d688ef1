"""The 128-bit fast paths of tallyio/_ext/u256.pxd (tio_u256_mul_fast, tio_u256_divmod_fast,
tio_u256_divmod_q128, tio_u256_from_ld_fast) give exactly what Python's integers and the
general routines give, on random operands and on the edges of every branch: a one-digit
divisor, a quotient below and above 2**64, a remainder of 0 and of b - 1, divisors with and
without their top bit set, and the Knuth correction steps (trial digits one and two too big)."""
from hypothesis import given, settings, strategies as st

from tallyio.amm import _u256

U256 = (1 << 256) - 1
U128 = (1 << 128) - 1

# operands concentrated at the limb boundaries, where carries, shifts and corrections happen
EDGY = st.one_of(
    st.integers(0, U256),
    st.integers(0, U128),
    st.integers(0, (1 << 64) - 1),
    st.builds(lambda k, d: max(0, (1 << k) + d), st.integers(0, 255), st.integers(-3, 3)),
    st.builds(lambda hi, lo: (hi << 64) | lo, st.sampled_from([1, 2, (1 << 63), (1 << 64) - 1]),
              st.sampled_from([0, 1, (1 << 63), (1 << 64) - 1])),
)


@settings(max_examples=3000, deadline=None)
@given(EDGY, EDGY)
def test_mul_fast_equals_mul(a, b):
    try:
        expected = _u256.mul(a, b)
    except OverflowError:
        expected = OverflowError
    try:
        got = _u256.mul_fast(a, b)
    except OverflowError:
        got = OverflowError
    assert got == expected
    if a * b <= U256:
        assert got == a * b


@settings(max_examples=3000, deadline=None)
@given(EDGY, EDGY.filter(lambda b: b > 0))
def test_divmod_fast_equals_python(a, b):
    assert _u256.divmod_fast(a, b) == divmod(a, b) == _u256.divmod256(a, b)
    short = _u256.divmod_q128(a, b)
    if b <= U128 and a // b <= U128:
        assert short == divmod(a, b)
    else:
        assert short is None


@settings(max_examples=3000, deadline=None)
@given(st.integers(1, U128), st.integers(0, U128), st.integers(0, U128))
def test_short_division_on_every_quotient_it_accepts(b, q, r):
    """Build a = q b + r with q, r < 2**128 and r < b: the short route must take it and
    give q, r back exactly (the quotients the V2 hop sees)."""
    r %= b
    a = q * b + r
    assert _u256.divmod_q128(a, b) == (q, r)


def test_short_division_edges():
    for b in [1, 2, 3, (1 << 64) - 1, 1 << 64, (1 << 64) + 1, (1 << 127) - 1, 1 << 127, U128,
              (1 << 127) + (1 << 64) - 1, 0xFFFFFFFFFFFFFFFF_0000000000000001]:
        for q in [0, 1, (1 << 64) - 1, 1 << 64, U128 if b > 1 else U128]:
            for r in {0, 1, b - 1}:
                if r >= b:
                    continue
                assert _u256.divmod_q128(q * b + r, b) == (q, r)
    assert _u256.divmod_q128(1 << 128, 1) is None          # quotient 2**128: the general route
    assert _u256.divmod_fast(1 << 128, 1) == (1 << 128, 0)
    assert _u256.divmod_q128(5, 0) is None
    assert _u256.divmod_q128(5, 1 << 128) is None
    assert _u256.divmod_fast(5, 1 << 128) == (0, 5)


def test_trial_digit_corrections():
    """Divisors whose low digit makes the top-digit trial quotient too big by one and by two
    (v = (2**63, 2**64 - 1) and neighbours), and a running remainder whose top digit equals
    the divisor's (the 2**64 - 1 trial)."""
    top = 1 << 63
    for v1 in [top, top + 1, (1 << 64) - 1]:
        for v0 in [0, 1, (1 << 64) - 2, (1 << 64) - 1]:
            b = (v1 << 64) | v0
            for q in [1, (1 << 64) - 1, (1 << 64) - 2, (1 << 64) + 1, U128 >> 1, U128]:
                for r in [0, b - 1, b // 2]:
                    a = q * b + r
                    if a <= U256:
                        assert _u256.divmod_q128(a, b) == (q, r)


def test_zero_division_still_raises():
    import pytest
    with pytest.raises(ZeroDivisionError):
        _u256.divmod_fast(1, 0)


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                 st.floats(0, 2.0 ** 70), st.integers(0, 1 << 66).map(float),
                 st.sampled_from([0.0, 0.5, 1.0, 2.0 ** 64, 2.0 ** 64 - 2048, 2.0 ** 256, -1.0])))
def test_from_float_fast_equals_from_float(x):
    assert _u256.from_float_fast(x) == _u256.from_float(x)


def _around(bits):
    return st.builds(lambda k, d: max(1, (1 << k) + d), st.sampled_from(bits), st.integers(-2, 2))


# V2 operands on both sides of the 128-bit getAmountOut's bounds (amount_in, reserve_in < 2**113,
# reserve_out < 2**128) and of 2**64 (one or two quotient digits)
V2_OPERAND = st.one_of(st.integers(1, (1 << 112) - 1), _around([1, 63, 64, 65, 112, 113, 114, 127, 128, 129, 250]),
                       st.integers(1, U256))


@settings(max_examples=3000, deadline=None)
@given(V2_OPERAND, V2_OPERAND, V2_OPERAND, st.sampled_from([30, 25, 0, 1, 100, 9999]))
def test_v2_amount_out_equals_the_solidity_reference_across_the_short_route(amount, reserve_in, reserve_out, fee):
    from tallyio.amm import get_amount_out
    from tallyio.amm import reference as ref
    from tallyio.errors import AmmError
    try:
        expected = ref.amount_out(amount, reserve_in, reserve_out, fee)
    except ref.Revert:
        expected = "revert"
    try:
        got = get_amount_out(amount, reserve_in, reserve_out, fee)
    except AmmError:
        got = "revert"
    assert got == expected
