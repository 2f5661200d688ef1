"""Aave v3 (1.19.3) liquidation sizing in C over 256-bit integers: the C API of
``_aave.pxd`` and its Python face.  Owns only this math; touches nothing but
``tallyio.amm.aave`` (its records) and ``tallyio.errors``.

Bit for bit with ``tallyio.amm.aave.liquidation_amounts`` (the reference,
line by line from LiquidationLogic): the same results, and an
``AaveRevertError`` wherever the reference raises one, its message starting
with the same words.  ``LiquidationSizer`` sizes every (collateral, debt) pair
of many accounts straight from their scaled balances, without the GIL: the
path ``PositionBook.best_liquidation`` takes.

>>> from tallyio.amm.aave import Holding, ReserveConfig, UINT256_MAX
>>> usdc = ReserveConfig(b"\\x01" * 20, 6, 7500, 8000, 10500, 1000)
>>> weth = ReserveConfig(b"\\x02" * 20, 18, 8000, 8250, 10500, 1000)
>>> coll = Holding(weth, 2000 * 10**8, 10**18, True, 0)
>>> debt = Holding(usdc, 10**8, 0, False, 1700 * 10**6)
>>> liquidation_amounts(coll, debt, 970588235294117647, UINT256_MAX)
LiquidationAmounts(debt_to_cover=850000000, collateral_to_liquidator=444125000000000000, \
protocol_fee_collateral=2125000000000000)
"""
from libc.stdint cimport uint64_t
from libc.stdlib cimport calloc, free

from tallyio._ext.u256 cimport (tio_u256, tio_u512, tio_u256_is_zero, tio_u256_cmp, tio_u256_add, tio_u256_sub,
                                tio_u256_mul, tio_u256_mul_u64, tio_u256_mul_full, tio_u256_divmod,
                                tio_u256_from_u64, u256_from_int, u256_to_int)

from tallyio.amm.aave import Holding, LiquidationAmounts, ReserveConfig
from tallyio.errors import AaveRevertError

__all__ = ["liquidation_amounts", "sized_liquidation", "size_liquidations", "LiquidationSizer"]

cdef extern from "tio_u256.h" nogil:
    uint64_t tio_div_128_64(uint64_t hi, uint64_t lo, uint64_t d, uint64_t *rem)

#: PercentageMath / WadRayMath constants as limbs (RAY = 10**27 needs two)
cdef uint64_t PERCENTAGE_FACTOR = 10000
cdef uint64_t HALF_PERCENTAGE = 5000
cdef uint64_t WAD_U64 = 1000000000000000000
cdef uint64_t CLOSE_FACTOR_HF_U64 = 950000000000000000
cdef uint64_t DEFAULT_CLOSE_FACTOR = 5000
cdef uint64_t MAX_CLOSE_FACTOR = 10000
cdef int MAX_ASSETS = 64


cdef inline void _div_u64(tio_u256 *q, const tio_u256 *a, uint64_t d) noexcept nogil:
    """q = a / d for a 64-bit d > 0, limb by limb, no Knuth D: while the remainder
    is 0 a limb is a 64-bit division (by a constant once inlined: a multiply), a
    128/64 DIV only after (most amounts here fit one or two limbs)."""
    cdef uint64_t rem = 0
    cdef int i
    for i in range(3, -1, -1):
        if rem == 0:
            q.w[i] = a.w[i] // d
            rem = a.w[i] % d
        else:
            q.w[i] = tio_div_128_64(rem, a.w[i], d, &rem)


cdef inline bint _add_u64(tio_u256 *out, const tio_u256 *a, uint64_t b) noexcept nogil:
    """out = a + b; True when it overflowed 256 bits."""
    cdef tio_u256 bb
    tio_u256_from_u64(&bb, b)
    return tio_u256_add(out, a, &bb) != 0


cdef inline bint _percent_mul(tio_u256 *out, const tio_u256 *value, uint64_t percentage) noexcept nogil:
    """PercentageMath.percentMul: (value * p + 5000) / 10000, half up; True where
    the contract reverts (value * p + 5000 past 2**256 - 1)."""
    cdef tio_u256 t
    if tio_u256_mul_u64(&t, value, percentage) != 0:
        return True
    if _add_u64(&t, &t, HALF_PERCENTAGE):
        return True
    _div_u64(out, &t, PERCENTAGE_FACTOR)
    return False


cdef inline int _percent_div(tio_u256 *out, const tio_u256 *value, uint64_t percentage) noexcept nogil:
    """PercentageMath.percentDiv: (value * 10000 + p / 2) / p; 1 on overflow, 2
    for p == 0 (the contract reverts both)."""
    cdef tio_u256 t
    if percentage == 0:
        return 2
    if tio_u256_mul_u64(&t, value, PERCENTAGE_FACTOR) != 0:
        return 1
    if _add_u64(&t, &t, percentage // 2):
        return 1
    _div_u64(out, &t, percentage)
    return 0


cdef inline bint _mul3(tio_u256 *out, const tio_u256 *a, const tio_u256 *b, const tio_u256 *c) noexcept nogil:
    """out = a * b * c with Solidity 0.8's checks; True when it overflows (an
    intermediate past 2**256 - 1 means the whole does: every factor is an int >= 0
    and c, a unit, is >= 1)."""
    cdef tio_u256 t
    if tio_u256_mul(&t, a, b) != 0:
        return True
    return tio_u256_mul(out, &t, c) != 0


cdef inline bint _ray_mul(tio_u256 *out, const tio_u256 *a, const tio_u256 *ray_b) noexcept nogil:
    """WadRayMath.rayMul: (a * b + RAY/2) / RAY; True where the contract reverts."""
    cdef tio_u512 p
    cdef tio_u256 t, ray, half_ray
    tio_u256_mul_full(&p, a, ray_b)
    if p.w[4] | p.w[5] | p.w[6] | p.w[7]:
        return True
    t.w[0], t.w[1], t.w[2], t.w[3] = p.w[0], p.w[1], p.w[2], p.w[3]
    _ray(&ray)
    _div_u64(&half_ray, &ray, 2)
    if tio_u256_add(&t, &t, &half_ray) != 0:
        return True
    tio_u256_divmod(out, NULL, &t, &ray)
    return False


cdef inline void _ray(tio_u256 *out) noexcept nogil:
    # 10**27 = 0x33b2e3c9fd0803ce8000000
    out.w[0] = 0x9fd0803ce8000000
    out.w[1] = 0x33b2e3c
    out.w[2] = 0
    out.w[3] = 0


cdef int aave_liquidation_amounts(const aave_pair *pair, const tio_u256 *debt_to_cover,
                                  aave_amounts *out) noexcept nogil:
    cdef tio_u256 max_liquidatable, actual_debt, numerator, denominator, base, max_collateral, wad, threshold
    cdef tio_u256 collateral_amount, debt_needed, principal, bonus_collateral, fee
    cdef uint64_t close_factor
    cdef int status
    # _calculateDebt: the close factor caps the debt (50 % above HF 0.95, 100 % at or below)
    tio_u256_from_u64(&threshold, CLOSE_FACTOR_HF_U64)
    close_factor = DEFAULT_CLOSE_FACTOR if tio_u256_cmp(&pair.health_factor, &threshold) > 0 else MAX_CLOSE_FACTOR
    if _percent_mul(&max_liquidatable, &pair.debt_balance, close_factor):
        return AAVE_OVERFLOW_MAX_LIQUIDATABLE
    actual_debt = debt_to_cover[0] if tio_u256_cmp(debt_to_cover, &max_liquidatable) < 0 else max_liquidatable
    # ValidationLogic.validateLiquidationCall, in the contract's order
    tio_u256_from_u64(&wad, WAD_U64)
    if tio_u256_cmp(&pair.health_factor, &wad) >= 0:
        return AAVE_HEALTH_FACTOR_NOT_BELOW_THRESHOLD
    if pair.liquidation_threshold == 0 or not pair.use_as_collateral:
        return AAVE_COLLATERAL_CANNOT_BE_LIQUIDATED
    if tio_u256_is_zero(&pair.debt_balance):
        return AAVE_NOT_BORROWED
    # _calculateAvailableCollateralToLiquidate
    if _mul3(&numerator, &pair.debt_price, &actual_debt, &pair.collateral_unit):
        return AAVE_OVERFLOW_BASE_NUMERATOR
    if tio_u256_mul(&denominator, &pair.collateral_price, &pair.debt_unit) != 0:
        return AAVE_OVERFLOW_BASE_DENOMINATOR
    if tio_u256_is_zero(&denominator):
        return AAVE_ZERO_COLLATERAL_PRICE
    tio_u256_divmod(&base, NULL, &numerator, &denominator)
    if _percent_mul(&max_collateral, &base, pair.liquidation_bonus):
        return AAVE_OVERFLOW_BONUS
    if tio_u256_cmp(&max_collateral, &pair.collateral_balance) > 0:
        # the cap binds: all the collateral, and the debt that buys it at the bonus
        collateral_amount = pair.collateral_balance
        if _mul3(&numerator, &pair.collateral_price, &collateral_amount, &pair.debt_unit):
            return AAVE_OVERFLOW_CAP_NUMERATOR
        if tio_u256_mul(&denominator, &pair.debt_price, &pair.collateral_unit) != 0:
            return AAVE_OVERFLOW_CAP_DENOMINATOR
        if tio_u256_is_zero(&denominator):
            return AAVE_ZERO_DEBT_PRICE
        tio_u256_divmod(&base, NULL, &numerator, &denominator)
        status = _percent_div(&debt_needed, &base, pair.liquidation_bonus)
        if status != 0:
            return AAVE_OVERFLOW_DEBT_NEEDED if status == 1 else AAVE_ZERO_BONUS
    else:
        collateral_amount = max_collateral
        debt_needed = actual_debt
    if pair.liquidation_protocol_fee == 0:
        tio_u256_from_u64(&fee, 0)
    else:
        # the protocol's share of the bonus part of what the liquidator receives
        status = _percent_div(&principal, &collateral_amount, pair.liquidation_bonus)
        if status != 0:
            return AAVE_OVERFLOW_FEE_PRINCIPAL if status == 1 else AAVE_ZERO_BONUS
        tio_u256_sub(&bonus_collateral, &collateral_amount, &principal)   # principal <= amount: bonus > 100 %
        if _percent_mul(&fee, &bonus_collateral, pair.liquidation_protocol_fee):
            return AAVE_OVERFLOW_FEE
        tio_u256_sub(&collateral_amount, &collateral_amount, &fee)
    out.debt_to_cover = debt_needed
    out.collateral_to_liquidator = collateral_amount
    out.protocol_fee_collateral = fee
    return AAVE_OK


cdef inline bint _same(const aave_amounts *a, const aave_amounts *b) noexcept nogil:
    return (tio_u256_cmp(&a.debt_to_cover, &b.debt_to_cover) == 0
            and tio_u256_cmp(&a.collateral_to_liquidator, &b.collateral_to_liquidator) == 0
            and tio_u256_cmp(&a.protocol_fee_collateral, &b.protocol_fee_collateral) == 0)


cdef int aave_liquidation_sized(const aave_pair *pair, aave_amounts *out) noexcept nogil:
    cdef aave_amounts amounts, again
    cdef tio_u256 all_allowed
    cdef int status, _round
    all_allowed.w[0] = all_allowed.w[1] = all_allowed.w[2] = all_allowed.w[3] = 0xFFFFFFFFFFFFFFFF
    status = aave_liquidation_amounts(pair, &all_allowed, &amounts)
    if status != AAVE_OK:
        return status
    for _round in range(8):
        if tio_u256_is_zero(&amounts.debt_to_cover):
            out[0] = amounts
            return AAVE_OK
        status = aave_liquidation_amounts(pair, &amounts.debt_to_cover, &again)
        if status != AAVE_OK:
            return status
        if _same(&again, &amounts):
            out[0] = amounts
            return AAVE_OK
        amounts = again
    return AAVE_NO_FIXED_POINT


cdef Py_ssize_t aave_size_pairs(const aave_pair *pairs, Py_ssize_t n, aave_amounts *out,
                                int *statuses) noexcept nogil:
    cdef Py_ssize_t i, sized = 0
    for i in range(n):
        statuses[i] = aave_liquidation_sized(&pairs[i], &out[i])
        sized += statuses[i] == AAVE_OK
    return sized


# ---- the Python face ----

cdef dict _MESSAGES = {
    AAVE_HEALTH_FACTOR_NOT_BELOW_THRESHOLD: "HEALTH_FACTOR_NOT_BELOW_THRESHOLD (45): health factor {hf} >= 1e18",
    AAVE_COLLATERAL_CANNOT_BE_LIQUIDATED: "COLLATERAL_CANNOT_BE_LIQUIDATED (46): the collateral's liquidation "
                                          "threshold is 0 or use_as_collateral is False",
    AAVE_NOT_BORROWED: "SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER (47): no debt in the debt reserve",
    AAVE_OVERFLOW_MAX_LIQUIDATABLE: "percent_mul overflow: debt * close factor",
    AAVE_OVERFLOW_BASE_NUMERATOR: "debtPrice * debtToCover * collateralUnit: overflow (panic 0x11)",
    AAVE_OVERFLOW_BASE_DENOMINATOR: "collateralPrice * debtUnit: overflow (panic 0x11)",
    AAVE_ZERO_COLLATERAL_PRICE: "division by zero (panic 0x12): the collateral price is 0",
    AAVE_OVERFLOW_BONUS: "percent_mul overflow: base collateral * liquidation bonus",
    AAVE_OVERFLOW_CAP_NUMERATOR: "collateralPrice * collateral * debtUnit: overflow (panic 0x11)",
    AAVE_OVERFLOW_CAP_DENOMINATOR: "debtPrice * collateralUnit: overflow (panic 0x11)",
    AAVE_ZERO_DEBT_PRICE: "division by zero (panic 0x12): the debt price is 0",
    AAVE_OVERFLOW_DEBT_NEEDED: "percent_div overflow: capped collateral value / liquidation bonus",
    AAVE_ZERO_BONUS: "percent_div by zero: the liquidation bonus is 0",
    AAVE_OVERFLOW_FEE_PRINCIPAL: "percent_div overflow: collateral amount / liquidation bonus",
    AAVE_OVERFLOW_FEE: "percent_mul overflow: bonus collateral * protocol fee",
    AAVE_NO_FIXED_POINT: "liquidation sizing did not reach a fixed point in 8 rounds",
}


cdef object _revert(int status, object health_factor):
    """The AaveRevertError for a status (its message starts as the reference's does)."""
    message = _MESSAGES.get(status, f"unknown status {status}")
    return AaveRevertError(message.format(hf=health_factor))


cdef uint64_t _bps(object value, str name) except? 0xFFFFFFFFFFFFFFFF:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value < 2**63:
        raise ValueError(f"{name} must be a basis-point count in [0, 2**63), got {value}")
    return <uint64_t>value


cdef int _load_pair(aave_pair *pair, object collateral, object debt, object health_factor) except -1:
    if not isinstance(collateral, Holding) or not isinstance(debt, Holding):
        raise TypeError("liquidation_amounts takes a collateral Holding and a debt Holding")
    creserve, dreserve = collateral.reserve, debt.reserve
    u256_from_int(collateral.price, &pair.collateral_price, "collateral.price")
    u256_from_int(collateral.collateral, &pair.collateral_balance, "collateral.collateral")
    u256_from_int(creserve.unit, &pair.collateral_unit, "collateral.reserve.unit")
    u256_from_int(debt.price, &pair.debt_price, "debt.price")
    u256_from_int(debt.debt, &pair.debt_balance, "debt.debt")
    u256_from_int(dreserve.unit, &pair.debt_unit, "debt.reserve.unit")
    _load_health_factor(pair, health_factor)
    pair.liquidation_threshold = _bps(creserve.liquidation_threshold, "liquidation_threshold")
    pair.liquidation_bonus = _bps(creserve.liquidation_bonus, "liquidation_bonus")
    pair.liquidation_protocol_fee = _bps(creserve.liquidation_protocol_fee, "liquidation_protocol_fee")
    pair.use_as_collateral = 1 if collateral.use_as_collateral else 0
    return 0


cdef int _load_health_factor(aave_pair *pair, object health_factor) except -1:
    if isinstance(health_factor, bool) or not isinstance(health_factor, int):
        raise TypeError(f"health_factor must be an int, got {type(health_factor).__name__}")
    try:
        u256_from_int(health_factor, &pair.health_factor, "health_factor")
    except ValueError:
        raise AaveRevertError(f"health_factor={health_factor} is not a uint256") from None
    return 0


cdef object _amounts(const aave_amounts *a):
    return LiquidationAmounts(u256_to_int(&a.debt_to_cover), u256_to_int(&a.collateral_to_liquidator),
                              u256_to_int(&a.protocol_fee_collateral))


def liquidation_amounts(collateral, debt, health_factor, debt_to_cover):
    """``tallyio.amm.aave.liquidation_amounts`` in C: what one
    ``liquidationCall(collateral, debt, user, debt_to_cover)`` moves, or
    ``AaveRevertError`` where the call reverts.

    >>> from tallyio.amm.aave import Holding, ReserveConfig
    >>> r = ReserveConfig(b"\\x07" * 20, 18, 8000, 8500, 10500, 0)
    >>> liquidation_amounts(Holding(r, 10**8, 10**18, True, 0), Holding(r, 10**8, 0, False, 10**18),
    ...                     9 * 10**17, 10**17)
    LiquidationAmounts(debt_to_cover=100000000000000000, collateral_to_liquidator=105000000000000000, \
protocol_fee_collateral=0)
    """
    cdef aave_pair pair
    cdef aave_amounts out
    cdef tio_u256 cover
    _load_pair(&pair, collateral, debt, health_factor)
    if isinstance(debt_to_cover, bool) or not isinstance(debt_to_cover, int):
        raise TypeError(f"debt_to_cover must be an int, got {type(debt_to_cover).__name__}")
    try:
        u256_from_int(debt_to_cover, &cover, "debt_to_cover")
    except ValueError:
        raise AaveRevertError(f"debt_to_cover={debt_to_cover} is not a uint256") from None
    cdef int status = aave_liquidation_amounts(&pair, &cover, &out)
    if status != AAVE_OK:
        raise _revert(status, health_factor)
    return _amounts(&out)


def sized_liquidation(collateral, debt, health_factor):
    """The liquidation the pool performs when called with the returned
    ``debt_to_cover``: sized with "all allowed", then re-sized with its own
    ``debt_to_cover`` until nothing moves (the collateral cap's ``percentDiv``
    rounds a unit apart from the uncapped path).

    >>> from tallyio.amm.aave import Holding, ReserveConfig
    >>> r = ReserveConfig(b"\\x07" * 20, 18, 8000, 8500, 10500, 1000)
    >>> sized_liquidation(Holding(r, 10**8, 10**16, True, 0), Holding(r, 10**8, 0, False, 10**18), 9 * 10**17)
    LiquidationAmounts(debt_to_cover=9523809523809524, collateral_to_liquidator=9952380952380952, \
protocol_fee_collateral=47619047619048)
    """
    cdef aave_pair pair
    cdef aave_amounts out
    _load_pair(&pair, collateral, debt, health_factor)
    cdef int status = aave_liquidation_sized(&pair, &out)
    if status != AAVE_OK:
        raise _revert(status, health_factor)
    return _amounts(&out)


def size_liquidations(pairs):
    """The batch entry: ``sized_liquidation`` of many ``(collateral Holding,
    debt Holding, health_factor)`` triples (of any accounts) in one nogil pass;
    per triple its ``LiquidationAmounts``, or the ``AaveRevertError`` the call
    would revert with (returned, not raised: one bad pair spoils no other).

    >>> from tallyio.amm.aave import Holding, ReserveConfig
    >>> r = ReserveConfig(b"\\x07" * 20, 18, 8000, 8500, 10500, 0)
    >>> c, d = Holding(r, 10**8, 10**18, True, 0), Holding(r, 10**8, 0, False, 10**18)
    >>> [type(x).__name__ for x in size_liquidations([(c, d, 9 * 10**17), (c, d, 10**18)])]
    ['LiquidationAmounts', 'AaveRevertError']
    """
    triples = list(pairs)
    cdef Py_ssize_t i, n = len(triples)
    if n == 0:
        return []
    cdef aave_pair *buf = <aave_pair *>calloc(n, sizeof(aave_pair))
    cdef aave_amounts *out = <aave_amounts *>calloc(n, sizeof(aave_amounts))
    cdef int *statuses = <int *>calloc(n, sizeof(int))
    try:
        if buf == NULL or out == NULL or statuses == NULL:
            raise MemoryError(f"size_liquidations: out of memory for {n} pairs")
        for i in range(n):
            try:
                collateral, debt, health_factor = triples[i]
            except (TypeError, ValueError):
                raise TypeError(f"pairs[{i}] must be a (collateral Holding, debt Holding, health_factor) "
                                f"triple, got {triples[i]!r}") from None
            _load_pair(&buf[i], collateral, debt, health_factor)
        with nogil:
            aave_size_pairs(buf, n, out, statuses)
        return [_amounts(&out[i]) if statuses[i] == AAVE_OK else _revert(statuses[i], triples[i][2])
                for i in range(n)]
    finally:
        free(buf)
        free(out)
        free(statuses)


# ---- whole accounts: exact health factor and every pair sized, from scaled balances ----

cdef inline int _wad_div(tio_u256 *out, const tio_u256 *a, const tio_u256 *b) noexcept nogil:
    """WadRayMath.wadDiv: (a * WAD + b / 2) / b; 1 where the contract reverts."""
    cdef tio_u512 wide
    cdef tio_u256 wad, t, half
    if tio_u256_is_zero(b):
        return 1
    tio_u256_from_u64(&wad, WAD_U64)
    tio_u256_mul_full(&wide, a, &wad)
    if wide.w[4] | wide.w[5] | wide.w[6] | wide.w[7]:
        return 1
    t.w[0], t.w[1], t.w[2], t.w[3] = wide.w[0], wide.w[1], wide.w[2], wide.w[3]
    half.w[0] = (b.w[0] >> 1) | (b.w[1] << 63)
    half.w[1] = (b.w[1] >> 1) | (b.w[2] << 63)
    half.w[2] = (b.w[2] >> 1) | (b.w[3] << 63)
    half.w[3] = b.w[3] >> 1
    if tio_u256_add(&t, &t, &half) != 0:
        return 1
    tio_u256_divmod(out, NULL, &t, b)
    return 0


cdef int aave_account_health(const aave_asset *assets, Py_ssize_t n, tio_u256 *health_factor) noexcept nogil:
    cdef Py_ssize_t a
    cdef tio_u256 total_collateral, total_debt, weighted, value, t, avg
    tio_u256_from_u64(&total_collateral, 0)
    tio_u256_from_u64(&total_debt, 0)
    tio_u256_from_u64(&weighted, 0)
    for a in range(n):
        if assets[a].use_as_collateral and assets[a].liquidation_threshold != 0:
            if tio_u256_mul(&t, &assets[a].collateral, &assets[a].price) != 0:
                return 1
            tio_u256_divmod(&value, NULL, &t, &assets[a].unit)
            if tio_u256_add(&total_collateral, &total_collateral, &value) != 0:
                return 1
            if tio_u256_mul_u64(&t, &value, assets[a].liquidation_threshold) != 0:
                return 1
            if tio_u256_add(&weighted, &weighted, &t) != 0:
                return 1
        if not tio_u256_is_zero(&assets[a].debt):
            if tio_u256_mul(&t, &assets[a].debt, &assets[a].price) != 0:
                return 1
            tio_u256_divmod(&value, NULL, &t, &assets[a].unit)
            if tio_u256_add(&total_debt, &total_debt, &value) != 0:
                return 1
    tio_u256_from_u64(&avg, 0)
    if not tio_u256_is_zero(&total_collateral):
        tio_u256_divmod(&avg, NULL, &weighted, &total_collateral)   # <= 10000: a weighted average of bps
    # percentMul(collateral, avg threshold): the reference computes it (and the borrowable
    # percentMul(collateral, avg ltv <= avg threshold)) even without debt
    if _percent_mul(&t, &total_collateral, avg.w[0]):
        return 1
    if tio_u256_is_zero(&total_debt):
        health_factor.w[0] = health_factor.w[1] = health_factor.w[2] = health_factor.w[3] = 0xFFFFFFFFFFFFFFFF
        return 0
    return _wad_div(health_factor, &t, &total_debt)


cdef int aave_size_account(const aave_asset *assets, Py_ssize_t n, tio_u256 *health_factor,
                           aave_amounts *out, int *statuses) noexcept nogil:
    cdef Py_ssize_t c, d
    cdef aave_pair pair
    cdef tio_u256 wad
    if aave_account_health(assets, n, health_factor) != 0:
        return 1
    tio_u256_from_u64(&wad, WAD_U64)
    for c in range(n * n):
        statuses[c] = AAVE_NOT_SIZED
    if tio_u256_cmp(health_factor, &wad) >= 0:
        return 0
    for c in range(n):
        if not (assets[c].use_as_collateral and assets[c].liquidation_threshold != 0
                and not tio_u256_is_zero(&assets[c].collateral)):
            continue
        pair.collateral_price = assets[c].price
        pair.collateral_balance = assets[c].collateral
        pair.collateral_unit = assets[c].unit
        pair.health_factor = health_factor[0]
        pair.liquidation_threshold = assets[c].liquidation_threshold
        pair.liquidation_bonus = assets[c].liquidation_bonus
        pair.liquidation_protocol_fee = assets[c].liquidation_protocol_fee
        pair.use_as_collateral = 1
        for d in range(n):
            if tio_u256_is_zero(&assets[d].debt):
                continue
            pair.debt_price = assets[d].price
            pair.debt_balance = assets[d].debt
            pair.debt_unit = assets[d].unit
            statuses[c * n + d] = aave_liquidation_sized(&pair, &out[c * n + d])
            if statuses[c * n + d] != AAVE_OK:
                return 1
    return 0


cdef class LiquidationSizer:
    """Every account's exact health factor and every (collateral, debt) pair
    sized, from scaled balances, in C: ``size_accounts`` is the batch entry.

    ``reserves`` (``aave.ReserveConfig`` records) fix the asset order.  The
    result per account is None where the reference (``aave.py``) must decide (an
    intermediate past 2**256 - 1: it raises there), else ``(health_factor,
    [(collateral_index, debt_index, LiquidationAmounts), ...])`` with a pair for
    every enabled collateral x every debt when the health factor is below 1
    (in that order), none otherwise.

    >>> from tallyio.amm.aave import RAY, ReserveConfig
    >>> weth = ReserveConfig(b"\\x01" * 20, 18, 8000, 8250, 10500, 1000)
    >>> usdc = ReserveConfig(b"\\x02" * 20, 6, 7500, 8000, 10450, 1000)
    >>> sizer = LiquidationSizer([weth, usdc])
    >>> [(hf, pairs)] = sizer.size_accounts([1900 * 10**8, 10**8], [RAY, RAY], [RAY, RAY],
    ...                                     [([10**18, 0], [0, 1600 * 10**6], [True, False])])
    >>> hf, pairs[0][:2], pairs[0][2].debt_to_cover
    (979687500000000000, (0, 1), 800000000)
    """

    cdef Py_ssize_t n
    cdef aave_asset *template
    # set_market's columns and size_account's work space (one account: n assets, n * n pairs)
    cdef bint has_market
    cdef tio_u256 *price
    cdef tio_u256 *income
    cdef tio_u256 *debt_index
    cdef aave_asset *assets
    cdef aave_amounts *out
    cdef int *statuses

    def __cinit__(self, reserves, *args, **kwargs):
        configs = list(reserves)
        self.n = len(configs)
        if not 1 <= self.n <= MAX_ASSETS:
            raise ValueError(f"LiquidationSizer takes 1 to {MAX_ASSETS} reserves, got {self.n}")
        self.has_market = False
        self.template = <aave_asset *>calloc(self.n, sizeof(aave_asset))
        self.price = <tio_u256 *>calloc(self.n, sizeof(tio_u256))
        self.income = <tio_u256 *>calloc(self.n, sizeof(tio_u256))
        self.debt_index = <tio_u256 *>calloc(self.n, sizeof(tio_u256))
        self.assets = <aave_asset *>calloc(self.n, sizeof(aave_asset))
        self.out = <aave_amounts *>calloc(self.n * self.n, sizeof(aave_amounts))
        self.statuses = <int *>calloc(self.n * self.n, sizeof(int))
        if (self.template == NULL or self.price == NULL or self.income == NULL or self.debt_index == NULL
                or self.assets == NULL or self.out == NULL or self.statuses == NULL):
            raise MemoryError("LiquidationSizer: out of memory")
        for a, config in enumerate(configs):
            if not isinstance(config, ReserveConfig):
                raise TypeError(f"reserves[{a}] must be a ReserveConfig, got {type(config).__name__}")
            u256_from_int(config.unit, &self.template[a].unit, f"reserves[{a}].unit")
            self.template[a].liquidation_threshold = _bps(config.liquidation_threshold, "liquidation_threshold")
            self.template[a].liquidation_bonus = _bps(config.liquidation_bonus, "liquidation_bonus")
            self.template[a].liquidation_protocol_fee = _bps(config.liquidation_protocol_fee,
                                                             "liquidation_protocol_fee")

    def __dealloc__(self):
        free(self.template)
        free(self.price)
        free(self.income)
        free(self.debt_index)
        free(self.assets)
        free(self.out)
        free(self.statuses)

    def set_market(self, prices, incomes, debt_indexes):
        """Install the prices and normalized indexes (ray) ``size_account`` sizes at."""
        self.has_market = False
        self._column(prices, self.price, "prices")
        self._column(incomes, self.income, "incomes")
        self._column(debt_indexes, self.debt_index, "debt_indexes")
        self.has_market = True

    def size_account(self, scaled_collateral, scaled_debt, flags):
        """``size_accounts`` for one account at the market of ``set_market``,
        without allocating: the per-account path of ``PositionBook``.

        >>> from tallyio.amm.aave import RAY, ReserveConfig
        >>> sizer = LiquidationSizer([ReserveConfig(b"\\x01" * 20, 18, 8000, 8250, 10500, 1000)])
        >>> sizer.set_market([10**8], [RAY], [RAY])
        >>> sizer.size_account([10**18], [0], [True])   # no debt: health factor 2**256 - 1, nothing to size
        (115792089237316195423570985008687907853269984665640564039457584007913129639935, [])
        """
        cdef Py_ssize_t n = self.n, a, k
        cdef aave_asset *row
        cdef tio_u256 health
        cdef int status
        if not self.has_market:
            raise RuntimeError("LiquidationSizer.size_account needs set_market first")
        if len(scaled_collateral) != n or len(scaled_debt) != n or len(flags) != n:
            raise ValueError(f"size_account needs one entry per reserve ({n}) in each list")
        for a in range(n):
            row = &self.assets[a]
            row[0] = self.template[a]
            row.price = self.price[a]
            row.use_as_collateral = 1 if flags[a] else 0
            u256_from_int(scaled_collateral[a], &row.collateral, f"scaled_collateral[{a}]")
            u256_from_int(scaled_debt[a], &row.debt, f"scaled_debt[{a}]")
        with nogil:
            status = aave_balances(self.assets, n, self.income, self.debt_index)
            if status == 0:
                status = aave_size_account(self.assets, n, &health, self.out, self.statuses)
        if status != 0:
            return None
        return (u256_to_int(&health), [(k // n, k % n, _amounts(&self.out[k])) for k in range(n * n)
                                       if self.statuses[k] == AAVE_OK])

    @property
    def n_assets(self):
        """The number of reserves."""
        return self.n

    def best_liquidations(self, accounts):
        """Each account's most profitable ``liquidationCall`` at the market of
        ``set_market``, in one nogil pass over the batch (``PositionBook.opportunities``
        after an oracle update: one call for every account the screen found).

        ``accounts``: ``(scaled_collateral, scaled_debt, use_as_collateral)`` lists,
        one entry per reserve.  Per account: None where the reference must decide
        (an intermediate past 2**256 - 1, as ``size_accounts``), else
        ``(health_factor, c, d, debt_to_cover, collateral_to_liquidator, got_base,
        paid_base)``: the pair (collateral ``c``, debt ``d``; -1, -1 when the health
        factor is not below 1 or no pair moves anything) whose collateral value
        ``collateral * price[c] // unit[c]`` minus debt value ``debt * price[d] //
        unit[d]`` (base currency, truncated as Aave converts) is largest, the first
        such in ``size_accounts``' pair order -- what ``PositionBook.best_liquidation``
        picks from the per-account path, without a Python object per pair.

        >>> from tallyio.amm.aave import RAY, ReserveConfig
        >>> weth = ReserveConfig(b"\\x01" * 20, 18, 8000, 8250, 10500, 1000)
        >>> usdc = ReserveConfig(b"\\x02" * 20, 6, 7500, 8000, 10450, 1000)
        >>> sizer = LiquidationSizer([weth, usdc])
        >>> sizer.set_market([1900 * 10**8, 10**8], [RAY, RAY], [RAY, RAY])
        >>> sizer.best_liquidations([([10**18, 0], [0, 1600 * 10**6], [True, False]),
        ...                          ([10**18, 0], [0, 10**6], [True, False])])
        [(979687500000000000, 0, 1, 800000000, 439999999999999999, 83599999999, 80000000000), \
(1567500000000000000000, -1, -1, 0, 0, 0, 0)]
        """
        cdef Py_ssize_t n = self.n, count, i
        if not self.has_market:
            raise RuntimeError("LiquidationSizer.best_liquidations needs set_market first")
        rows = accounts if isinstance(accounts, list) else list(accounts)
        count = len(rows)
        if count == 0:
            return []
        cdef aave_asset *assets = <aave_asset *>calloc(count * n, sizeof(aave_asset))
        cdef aave_best *best = <aave_best *>calloc(count, sizeof(aave_best))
        cdef aave_amounts *out = <aave_amounts *>calloc(n * n, sizeof(aave_amounts))
        cdef int *statuses = <int *>calloc(n * n, sizeof(int))
        cdef aave_best *b
        try:
            if assets == NULL or best == NULL or out == NULL or statuses == NULL:
                raise MemoryError(f"LiquidationSizer: out of memory for {count} accounts")
            self._load_accounts(rows, assets, self.price)
            with nogil:
                for i in range(count):
                    best[i].status = aave_balances(&assets[i * n], n, self.income, self.debt_index)
                    if best[i].status == 0:
                        best[i].status = aave_best_pair(&assets[i * n], n, &best[i], out, statuses)
            results = []
            for i in range(count):
                b = &best[i]
                if b.status != 0:
                    results.append(None)
                elif b.collateral < 0:
                    results.append((u256_to_int(&b.health_factor), -1, -1, 0, 0, 0, 0))
                else:
                    results.append((u256_to_int(&b.health_factor), b.collateral, b.debt,
                                    u256_to_int(&b.amounts.debt_to_cover),
                                    u256_to_int(&b.amounts.collateral_to_liquidator),
                                    u256_to_int(&b.got_base), u256_to_int(&b.paid_base)))
            return results
        finally:
            free(assets)
            free(best)
            free(out)
            free(statuses)

    cdef int _load_accounts(self, list rows, aave_asset *assets, const tio_u256 *price) except -1:
        """Fill ``assets`` (``len(rows)`` x n, calloc'd by the caller) from the
        accounts' Python lists at ``price``: the GIL-held half of a batch."""
        cdef Py_ssize_t n = self.n, i, a
        cdef aave_asset *row
        for i in range(len(rows)):
            try:
                scaled_collateral, scaled_debt, flags = rows[i]
            except (TypeError, ValueError):
                raise TypeError(f"accounts[{i}] must be (scaled_collateral, scaled_debt, use_as_collateral) "
                                f"lists") from None
            if len(scaled_collateral) != n or len(scaled_debt) != n or len(flags) != n:
                raise ValueError(f"accounts[{i}] needs one entry per reserve ({n}) in each list")
            for a in range(n):
                row = &assets[i * n + a]
                row[0] = self.template[a]
                row.price = price[a]
                row.use_as_collateral = 1 if flags[a] else 0
                u256_from_int(scaled_collateral[a], &row.collateral, f"accounts[{i}] scaled_collateral[{a}]")
                u256_from_int(scaled_debt[a], &row.debt, f"accounts[{i}] scaled_debt[{a}]")
        return 0

    cdef int _column(self, object values, tio_u256 *out, str name) except -1:
        if len(values) != self.n:
            raise ValueError(f"{name} needs one value per reserve ({self.n}), got {len(values)}")
        for a in range(self.n):
            u256_from_int(values[a], &out[a], f"{name}[{a}]")
        return 0

    def size_accounts(self, prices, incomes, debt_indexes, accounts):
        """Size ``accounts``, each ``(scaled_collateral, scaled_debt,
        use_as_collateral)`` lists (one entry per reserve), at ``prices`` and the
        normalized ``incomes`` / ``debt_indexes`` (ray): balances are
        ``rayMul(scaled, index)`` as the tokens' ``balanceOf``.  One nogil pass
        over all of them; see the class for the result."""
        cdef Py_ssize_t n = self.n, count, i, k
        cdef tio_u256 price[64]
        cdef tio_u256 income[64]
        cdef tio_u256 debt_index[64]
        self._column(prices, price, "prices")
        self._column(incomes, income, "incomes")
        self._column(debt_indexes, debt_index, "debt_indexes")
        rows = accounts if isinstance(accounts, list) else list(accounts)
        count = len(rows)
        if count == 0:
            return []
        cdef aave_asset *assets = <aave_asset *>calloc(count * n, sizeof(aave_asset))
        cdef tio_u256 *health = <tio_u256 *>calloc(count, sizeof(tio_u256))
        cdef aave_amounts *out = <aave_amounts *>calloc(count * n * n, sizeof(aave_amounts))
        cdef int *statuses = <int *>calloc(count * n * n, sizeof(int))
        cdef int *account_status = <int *>calloc(count, sizeof(int))
        try:
            if assets == NULL or health == NULL or out == NULL or statuses == NULL or account_status == NULL:
                raise MemoryError(f"LiquidationSizer: out of memory for {count} accounts")
            self._load_accounts(rows, assets, price)
            with nogil:
                for i in range(count):
                    account_status[i] = aave_balances(&assets[i * n], n, income, debt_index)
                    if account_status[i] == 0:
                        account_status[i] = aave_size_account(&assets[i * n], n, &health[i], &out[i * n * n],
                                                              &statuses[i * n * n])
            results = []
            for i in range(count):
                if account_status[i] != 0:
                    results.append(None)
                    continue
                pairs = []
                for k in range(n * n):
                    if statuses[i * n * n + k] == AAVE_OK:
                        pairs.append((k // n, k % n, _amounts(&out[i * n * n + k])))
                results.append((u256_to_int(&health[i]), pairs))
            return results
        finally:
            free(assets)
            free(health)
            free(out)
            free(statuses)
            free(account_status)


ctypedef struct aave_best:
    int status                      # 0, or 1: the reference decides (an intermediate past 2**256 - 1)
    tio_u256 health_factor
    Py_ssize_t collateral           # -1: nothing to liquidate
    Py_ssize_t debt
    aave_amounts amounts
    tio_u256 got_base               # collateral_to_liquidator * price / unit (truncated)
    tio_u256 paid_base              # debt_to_cover * price / unit (truncated)


cdef inline bint _base_value(tio_u256 *out, const tio_u256 *amount, const aave_asset *asset) noexcept nogil:
    """out = amount * price // unit; True on overflow (the reference decides)."""
    cdef tio_u256 t, r
    if tio_u256_mul(&t, amount, &asset.price) != 0:
        return True
    return tio_u256_divmod(out, &r, &t, &asset.unit) != 0


cdef int aave_best_pair(const aave_asset *assets, Py_ssize_t n, aave_best *best, aave_amounts *out,
                        int *statuses) noexcept nogil:
    """Size every pair of one account (balances already normalized) and keep the one whose
    got_base - paid_base is largest (the first on a tie); 1 where the reference decides."""
    cdef Py_ssize_t k
    cdef tio_u256 got, paid, lhs, rhs
    best.collateral = best.debt = -1
    if aave_size_account(assets, n, &best.health_factor, out, statuses) != 0:
        return 1
    for k in range(n * n):
        if statuses[k] != AAVE_OK or tio_u256_is_zero(&out[k].debt_to_cover) \
                or tio_u256_is_zero(&out[k].collateral_to_liquidator):
            continue
        if _base_value(&got, &out[k].collateral_to_liquidator, &assets[k // n]) \
                or _base_value(&paid, &out[k].debt_to_cover, &assets[k % n]):
            return 1
        if best.collateral >= 0:
            # got - paid > best.got - best.paid  <=>  got + best.paid > best.got + paid (no signed values)
            if tio_u256_add(&lhs, &got, &best.paid_base) != 0 or tio_u256_add(&rhs, &best.got_base, &paid) != 0:
                return 1
            if tio_u256_cmp(&lhs, &rhs) <= 0:
                continue
        best.collateral, best.debt = k // n, k % n
        best.amounts = out[k]
        best.got_base, best.paid_base = got, paid
    return 0


cdef int aave_balances(aave_asset *assets, Py_ssize_t n, const tio_u256 *income,
                       const tio_u256 *debt_index) noexcept nogil:
    cdef Py_ssize_t a
    for a in range(n):
        if not tio_u256_is_zero(&assets[a].collateral):
            if _ray_mul(&assets[a].collateral, &assets[a].collateral, &income[a]):
                return 1
        if not tio_u256_is_zero(&assets[a].debt):
            if _ray_mul(&assets[a].debt, &assets[a].debt, &debt_index[a]):
                return 1
    return 0
