# Aave v3 health factors of many accounts at once (tallyio/amm/_health.pyx): exact scaled
# balances (tio_u256) per account x asset, their float64 images, and per account the float
# numerator/denominator of the health factor with a bound on how far the exact integer value
# can lie from it (the slack, computed by the screen from the sums and the drift).  One writer
# at a time (no locks, no atomics); the C entries need no GIL.
#
# Statuses: TIO_OK, or TIO_INVALID when a slot/asset is out of range or a delta would take a
# balance below 0 or past 2**256 - 1 (nothing is changed then).
from libc.stdint cimport uint8_t
from tallyio._ext.u256 cimport tio_u256
from tallyio.amm._aave cimport aave_asset

ctypedef struct health_core:
    Py_ssize_t n_assets
    Py_ssize_t n_accounts
    Py_ssize_t capacity           # accounts the arrays below hold
    tio_u256 *scaled_collateral   # [capacity * n_assets], row = account: aToken scaledBalanceOf
    tio_u256 *scaled_debt         # [capacity * n_assets]: variable debt token scaledBalanceOf
    uint8_t *enabled              # [capacity * n_assets]: reserve used as collateral
    # float32 images in whole tokens, COLUMN-major ([n_assets * capacity], cell (slot, a) at
    # a * capacity + slot): a price update of asset a streams its two columns only
    float *collateral_cells       # the scaled collateral (0 when not enabled)
    float *debt_cells             # the scaled debt
    Py_ssize_t *infinite_cells    # [n_assets]: cells of the column past float32's range (inf)
    Py_ssize_t *holders           # [n_assets]: accounts with a non-zero cell in the column
    # per account [capacity], structure of arrays: the float sums of the health factor
    double *numerator             # sum collateral value * threshold (base currency)
    double *denominator           # sum debt value
    # the per-position roundings, 1 bp + float32 error of the collateral, and the drift bound of
    # the incremental updates since the last re-sum
    double *slack
    double *health                # numerator / denominator (inf without debt)
    Py_ssize_t *scratch           # [capacity]: the slots a re-sum visits
    Py_ssize_t updates            # incremental asset updates since every row was last re-summed
    double *collateral_weight     # [n_assets]: income index / RAY * price * liquidation threshold / 10000
    double *debt_value            # [n_assets]: debt index / RAY * price, per whole token
    double *slack_per_token       # [n_assets]: income / RAY * price * (1 bp + float32 error): 0 if never collateral
    double *slack_collateral      # [n_assets]: 2 * (0.5 * price / 10**decimals + 1) per collateral held (0: never)
    double *slack_debt            # [n_assets]: 2 * (0.5 * price / 10**decimals + 1) per debt held
    double *inverse_unit          # [n_assets]: 10 ** -decimals

# One position event: add the signed (two's complement) deltas to the exact scaled balances
# and refresh the account's float row.
cdef int health_apply_delta(health_core *core, Py_ssize_t slot, Py_ssize_t asset,
                            const tio_u256 *d_collateral, const tio_u256 *d_debt) noexcept nogil
# Re-sum one account's numerator, denominator, slack and health from its cells (drift back to 0).
cdef void health_refresh_row(health_core *core, Py_ssize_t slot) noexcept nogil
# Install new per-asset factors for `asset` and bring every account holding it up to date:
# an incremental column pass (each holder's sums move by cell * (new - old factor)) when
# everything is finite, else a re-sum of each holder.  Returns the number of holders.
cdef Py_ssize_t health_update_asset(health_core *core, Py_ssize_t asset, double collateral_weight,
                                    double debt_value, double slack_per_token, double slack_collateral,
                                    double slack_debt) noexcept nogil

cdef class HealthCore:
    cdef health_core core
    cdef list _addresses
    cdef dict _slots
    # the exact per-asset state for the C confirmation of the screen's candidates: price, unit
    # and threshold in exact[a] (balances filled per account), the normalized indexes (ray)
    cdef aave_asset *exact
    cdef tio_u256 *income
    cdef tio_u256 *debt_index
    cdef int _grow(self, Py_ssize_t capacity) except -1
    cdef int _grow_row(self, double **array, Py_ssize_t capacity) except -1
    cdef int _grow_columns(self, Py_ssize_t old, Py_ssize_t capacity) except -1
    cdef int _check(self, Py_ssize_t slot, Py_ssize_t asset) except -1
    cdef int _check_asset(self, Py_ssize_t asset) except -1
