# Aave v3 (1.19.3) liquidation sizing on tio_u256, as a C API that sizes many pairs without the
# GIL: LiquidationLogic's close factor, base collateral, bonus, collateral cap and protocol fee
# with PercentageMath's half-up rounding and Solidity 0.8's checked arithmetic, bit for bit with
# tallyio/amm/aave.py's liquidation_amounts (tests/test_amm_aave_native.py proves it).
#
# Every function returns AAVE_OK or the status naming where the contract reverts; outputs are
# written only on AAVE_OK.  Pointers may not be NULL; outputs may not alias inputs.
from libc.stdint cimport uint64_t
from tallyio._ext.u256 cimport tio_u256

cdef enum:
    AAVE_OK = 0
    AAVE_HEALTH_FACTOR_NOT_BELOW_THRESHOLD = 45   # ValidationLogic error 45
    AAVE_COLLATERAL_CANNOT_BE_LIQUIDATED = 46     # error 46: threshold 0 or not used as collateral
    AAVE_NOT_BORROWED = 47                        # error 47: SPECIFIED_CURRENCY_NOT_BORROWED_BY_USER
    AAVE_OVERFLOW_MAX_LIQUIDATABLE = 201          # percentMul(debt, close factor)
    AAVE_OVERFLOW_BASE_NUMERATOR = 202            # debtPrice * debtToCover * collateralUnit
    AAVE_OVERFLOW_BASE_DENOMINATOR = 203          # collateralPrice * debtUnit
    AAVE_ZERO_COLLATERAL_PRICE = 204              # division by zero (panic 0x12)
    AAVE_OVERFLOW_BONUS = 205                     # percentMul(baseCollateral, bonus)
    AAVE_OVERFLOW_CAP_NUMERATOR = 206             # collateralPrice * collateralBalance * debtUnit
    AAVE_OVERFLOW_CAP_DENOMINATOR = 207           # debtPrice * collateralUnit
    AAVE_ZERO_DEBT_PRICE = 208                    # division by zero (panic 0x12)
    AAVE_OVERFLOW_DEBT_NEEDED = 209               # percentDiv(cap value, bonus)
    AAVE_ZERO_BONUS = 210                         # percentDiv by 0 (a bonus of 0 with the cap binding)
    AAVE_OVERFLOW_FEE_PRINCIPAL = 211             # percentDiv(collateralAmount, bonus)
    AAVE_OVERFLOW_FEE = 212                       # percentMul(bonusCollateral, protocol fee)
    AAVE_NO_FIXED_POINT = 213                     # aave_liquidation_sized: 8 rounds without a fixed point
    AAVE_NOT_SIZED = 214                          # aave_size_account: a pair that is not eligible

# One (collateral reserve, debt reserve) pair of one account, balances in underlying units
# (aToken / variable debt balanceOf), prices from the oracle, units 10**decimals.
ctypedef struct aave_pair:
    tio_u256 collateral_price
    tio_u256 collateral_balance
    tio_u256 collateral_unit
    tio_u256 debt_price
    tio_u256 debt_balance
    tio_u256 debt_unit
    tio_u256 health_factor          # the account's, wad
    uint64_t liquidation_threshold  # the collateral reserve's, bps
    uint64_t liquidation_bonus      # bps, principal included (10500 = 5 %)
    uint64_t liquidation_protocol_fee
    int use_as_collateral

# One reserve of one account at the current prices: balances in underlying units.
ctypedef struct aave_asset:
    tio_u256 price
    tio_u256 unit
    tio_u256 collateral
    tio_u256 debt
    uint64_t liquidation_threshold
    uint64_t liquidation_bonus
    uint64_t liquidation_protocol_fee
    int use_as_collateral

ctypedef struct aave_amounts:
    tio_u256 debt_to_cover
    tio_u256 collateral_to_liquidator
    tio_u256 protocol_fee_collateral

# LiquidationLogic.executeLiquidationCall's sizing for a given debtToCover (UINT256_MAX: all allowed)
cdef int aave_liquidation_amounts(const aave_pair *pair, const tio_u256 *debt_to_cover,
                                  aave_amounts *out) noexcept nogil
# the liquidation the pool performs when called with the returned debt_to_cover: sized with
# "all allowed", then re-sized with its own debt_to_cover until nothing moves (the cap's
# percentDiv and the uncapped path round differently by a unit)
cdef int aave_liquidation_sized(const aave_pair *pair, aave_amounts *out) noexcept nogil
# aave_liquidation_sized over n pairs: statuses[i] and out[i] per pair; returns how many sized
cdef Py_ssize_t aave_size_pairs(const aave_pair *pairs, Py_ssize_t n, aave_amounts *out,
                                int *statuses) noexcept nogil
# GenericLogic's health factor of one account (n reserves): 0, or 1 where an intermediate
# overflows (the reference raises there); UINT256_MAX without debt
cdef int aave_account_health(const aave_asset *assets, Py_ssize_t n, tio_u256 *health_factor) noexcept nogil
# the health factor, and when it is below 1 every enabled collateral c x debt d sized into
# out[c * n + d] (statuses AAVE_OK; AAVE_NOT_SIZED for pairs not eligible); 1 on any revert
cdef int aave_size_account(const aave_asset *assets, Py_ssize_t n, tio_u256 *health_factor,
                           aave_amounts *out, int *statuses) noexcept nogil
# scaled balances -> balances, in place: collateral = rayMul(scaled, income[a]), debt =
# rayMul(scaled, debt_index[a]) (the tokens' balanceOf); 1 where rayMul reverts
cdef int aave_balances(aave_asset *assets, Py_ssize_t n, const tio_u256 *income,
                       const tio_u256 *debt_index) noexcept nogil
