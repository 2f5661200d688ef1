# Aave v3 health factors of many accounts at once (tallyio/amm/_health.pyx): exact scaled
# balances (tio_u256) per account x asset, their float64 images, and per account the float
# numerator/denominator of the health factor with a bound on how far the exact integer value
# can lie from it.  One writer at a time (no locks, no atomics); the C entries need no GIL.
#
# Statuses: TIO_OK, or TIO_INVALID when a slot/asset is out of range or a delta would take a
# balance below 0 or past 2**256 - 1 (nothing is changed then).
from libc.stdint cimport uint8_t
from tallyio._ext.u256 cimport tio_u256

ctypedef struct health_row:
    double numerator              # sum collateral value * threshold (base currency)
    double denominator            # sum debt value
    double slack                  # the exact numerator/denominator lie within this of the floats
    double health                 # numerator / denominator (inf without debt)

ctypedef struct health_core:
    Py_ssize_t n_assets
    Py_ssize_t n_accounts
    Py_ssize_t capacity           # accounts the arrays below hold
    tio_u256 *scaled_collateral   # [capacity * n_assets], row = account: aToken scaledBalanceOf
    tio_u256 *scaled_debt         # [capacity * n_assets]: variable debt token scaledBalanceOf
    uint8_t *enabled              # [capacity * n_assets]: reserve used as collateral
    # [capacity * n_assets * 2]: float32 images in whole tokens, per position the scaled collateral
    # (0 when not enabled) then the scaled debt: a row of 8 reserves is one 64-byte line
    float *cells
    health_row *rows              # [capacity]
    Py_ssize_t *scratch           # [capacity]: the slots a refresh visits
    double *collateral_value      # [n_assets]: income index / RAY * price, per whole token (0: not collateral)
    double *collateral_weight     # [n_assets]: collateral_value * liquidation threshold / 10000
    double *debt_value            # [n_assets]: debt index / RAY * price, per whole token
    double *inverse_unit          # [n_assets]: 10 ** -decimals
    double *rounding              # [n_assets]: 0.5 * price / 10**decimals + 1, one asset's rounding
    double *collateral_rounding   # [n_assets]: rounding, or 0 for a reserve that is never collateral

# One position event: add the signed (two's complement) deltas to the exact scaled balances
# and refresh the account's float row.
cdef int health_apply_delta(health_core *core, Py_ssize_t slot, Py_ssize_t asset,
                            const tio_u256 *d_collateral, const tio_u256 *d_debt) noexcept nogil
# Recompute one account's numerator, denominator, slack and health from its row.
cdef void health_refresh_row(health_core *core, Py_ssize_t slot) noexcept nogil
# Recompute every account holding `asset` (after its price or indexes moved).
cdef Py_ssize_t health_refresh_asset(health_core *core, Py_ssize_t asset) noexcept nogil

cdef class HealthCore:
    cdef health_core core
    cdef list _addresses
    cdef dict _slots
    cdef int _grow(self, Py_ssize_t capacity) except -1
    cdef int _check(self, Py_ssize_t slot, Py_ssize_t asset) except -1
    cdef int _check_asset(self, Py_ssize_t asset) except -1
