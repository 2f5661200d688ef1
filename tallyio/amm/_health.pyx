"""The native store behind ``tallyio.amm.health.HealthMatrix``: exact scaled
balances of accounts x assets (tio_u256), their float64 images, and per account
the float health factor with a bound on its error.  Owns its C arrays; touches
nothing else.  The exact decisions (who is liquidatable) are made on 256-bit
integers from the exact balances kept here (below).

One writer at a time: no method releases the GIL, and the C entries in
``_health.pxd`` are for a caller that already owns the matrix.

The float screen: cells hold each scaled balance in whole tokens (``scaled /
10**decimals``) as float32, column-major (one column per asset), so a price update
streams the two columns of that asset and nothing else; with per-asset
``collateral_value = income/RAY * price`` and ``debt_value = debt_index/RAY *
price``, an account's

    numerator   = sum_a cell_collateral[a] * collateral_value[a] * threshold[a]  (enabled, threshold != 0)
    denominator = sum_a cell_debt[a] * debt_value[a]

are the real-number images of GenericLogic's sums.  The exact integers differ by
at most one ``rounding[a] = 0.5 * price/unit + 1`` per asset held (rayMul's
half-up, then the truncating ``/ 10**decimals``), plus 1 bp of the collateral
(the weighted threshold is truncated to whole bps), plus percentMul's 0.5; so
the exact health factor can be below 1 only when
``numerator < denominator + slack`` with ``slack`` twice that sum plus 1e-6 of
the totals for the float32 cells (docs/liquidations.md).

A price (or index) update of asset j does not re-sum the rows: every account's
sums (numerator, denominator, and the slack sum of the roundings and the 1 bp
and float32 terms) move by ``cell_j * (new - old factor)`` in one branch-free,
vectorized pass over column j (a non-holder's cells are 0: its sums move by
exactly 0).  Each such step adds a float error of at most a few ulps of the
terms involved; the slack sum takes a bound on it too (4 ulps of every term and
new sum), so the screen stays a proven superset.  A re-sum (a position event, a
non-finite value, and every ``REFRESH_EVERY`` updates for all rows) drops the
accumulated drift.

The screen's candidates are decided in C as well (``_confirm``:
GenericLogic's health factor on the exact scaled balances, through
``tallyio.amm._aave``); an account whose computation passes 2**256 - 1 is
handed back to the reference, ``tallyio.amm.aave``.
"""
from libc.stdint cimport int8_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport calloc, free, realloc
from libc.string cimport memcpy, memset
from libc.math cimport INFINITY, isfinite, isinf
from libc.float cimport FLT_MAX

import numpy

from tallyio._ext.common cimport TIO_OK, TIO_INVALID
from tallyio._ext.u256 cimport (tio_u256, tio_u256_add, tio_u256_to_ld, tio_u256_is_zero, tio_u256_cmp,
                                tio_u256_from_u64, u256_from_int, u256_to_int)
from tallyio.amm._aave cimport aave_asset, aave_balances, aave_account_health

cdef extern from *:
    """
    #include <Python.h>
    /* a signed Python int (-2**255 <= v < 2**255) as a 256-bit two's complement; -1 with
       OverflowError set when it does not fit */
    static inline int tio_health_s256_from_pylong(PyObject *v, tio_u256 *out)
    {
        unsigned char le[32];
    #if PY_VERSION_HEX >= 0x030d0000
        int rc = _PyLong_AsByteArray((PyLongObject *)v, le, 32, 1, 1, 1);
    #else
        int rc = _PyLong_AsByteArray((PyLongObject *)v, le, 32, 1, 1);
    #endif
        if (rc == 0)
            for (int limb = 0; limb < 4; limb++) {
                uint64_t x = 0;
                for (int i = 7; i >= 0; i--)
                    x = (x << 8) | le[8 * limb + i];
                out->w[limb] = x;
            }
        return rc;
    }
    """
    int tio_health_s256_from_pylong(object v, tio_u256 *out) except? -1

__all__ = ["HealthCore"]

#: relative error allowed for the float sums themselves (a few ulps of 8 terms, with room to spare)
cdef double FLOAT_SLACK = 1e-12
#: float32 cells carry a relative error of 2**-24 (6e-8) each
cdef double CELL_SLACK = 1e-6
#: the weighted liquidation threshold is truncated to whole bps: up to 1 bp of the collateral
cdef double THRESHOLD_TRUNCATION = 1e-4
#: the slack of an account holding nothing: twice (numerator and denominator) the 1 of percentMul's
#: and wadDiv's half-up rounding, with room
cdef double BASE_SLACK = 2.0
#: incremental asset updates between two re-sums of every row (keeps the drift, and so the screen, tight)
cdef Py_ssize_t REFRESH_EVERY = 4096

cdef extern from *:
    """
    #include <float.h>
    #include <math.h>
    #include <stddef.h>
    /* One asset's factors moved: every account's sums move by its cells times the change
       (a non-holder's cells are 0, so its sums move by exactly 0).  The error each step adds
       is at most an ulp of each product and of each new sum (rounded to nearest); the slack
       sum takes 4 ulps (2**-51) of all of them on top (its own rounding included), a bound
       with room to spare.  Branch-free (selects, no division by 0, no reductions) over
       restrict pointers so GCC vectorizes it; it may do so only when told that the compares
       do not trap (we never read the FP exception flags), hence the attribute. */
    #if defined(__GNUC__) && !defined(__clang__)
    __attribute__((optimize("no-trapping-math")))
    #endif
    static void tio_health_column_update(
        ptrdiff_t n, const float *restrict ccol, const float *restrict dcol, double d_weight, double d_debt,
        double d_slack_per_token, double d_slack_collateral, double d_slack_debt,
        double *restrict numerator, double *restrict denominator, double *restrict slack,
        double *restrict health)
    {
        const double ulps = 0x1p-51;
        for (ptrdiff_t s = 0; s < n; s++) {
            double c = ccol[s], d = dcol[s];
            double has_c = c != 0.0 ? 1.0 : 0.0, has_d = d != 0.0 ? 1.0 : 0.0;
            double tn = c * d_weight, td = d * d_debt;
            double ts = c * d_slack_per_token + has_c * d_slack_collateral + has_d * d_slack_debt;
            double num = numerator[s] + tn, den = denominator[s] + td, sl = slack[s] + ts;
            sl += ulps * (fabs(tn) + fabs(td) + fabs(ts) + fabs(num) + fabs(den) + fabs(sl));
            numerator[s] = num;
            denominator[s] = den;
            slack[s] = sl;
            double positive = den > 0.0 ? den : 1.0;
            double q = num / positive;
            health[s] = den > 0.0 ? q : INFINITY;
        }
    }
    """
    void tio_health_column_update(Py_ssize_t n, const float *ccol, const float *dcol, double d_weight,
                                  double d_debt, double d_slack_per_token, double d_slack_collateral,
                                  double d_slack_debt, double *numerator, double *denominator,
                                  double *slack, double *health) noexcept nogil


cdef inline int _is_negative(const tio_u256 *x) noexcept nogil:
    return <int>(x.w[3] >> 63)


cdef inline int _add_signed(tio_u256 *out, const tio_u256 *balance, const tio_u256 *delta) noexcept nogil:
    """out = balance + delta (delta in two's complement); 0 when the result is a
    uint256 (no underflow below 0, no overflow past 2**256 - 1), else -1."""
    cdef uint64_t carry = tio_u256_add(out, balance, delta)
    if _is_negative(delta):
        return 0 if carry == 1 else -1   # balance + (2**256 - |d|) wraps iff balance >= |d|
    return 0 if carry == 0 else -1


cdef inline double _to_double(const tio_u256 *x) noexcept nogil:
    return <double>tio_u256_to_ld(x)


cdef inline float _to_cell(double tokens) noexcept nogil:
    """A balance in whole tokens as a float32 cell; past float32's range, infinity
    (explicitly: the C conversion of an out-of-range double is undefined)."""
    return <float>tokens if tokens <= FLT_MAX else <float>INFINITY


cdef void health_refresh_row(health_core *core, Py_ssize_t slot) noexcept nogil:
    cdef Py_ssize_t a, n = core.n_assets, capacity = core.capacity
    cdef double c, d, numerator = 0.0, denominator = 0.0, slack = BASE_SLACK
    # branch-free: whether a cell is empty is a coin toss across accounts, and a
    # mispredicted branch per cell cost more than the arithmetic it skipped
    for a in range(n):
        c = core.collateral_cells[a * capacity + slot]
        d = core.debt_cells[a * capacity + slot]
        numerator += c * core.collateral_weight[a]
        denominator += d * core.debt_value[a]
        slack += (c * core.slack_per_token[a] + <double>(c != 0.0) * core.slack_collateral[a]
                  + <double>(d != 0.0) * core.slack_debt[a])
    core.numerator[slot] = numerator
    core.denominator[slot] = denominator
    core.slack[slot] = slack
    core.health[slot] = numerator / denominator if denominator > 0.0 else INFINITY


cdef inline bint _finite_asset(const health_core *core, Py_ssize_t asset) noexcept nogil:
    return (isfinite(core.collateral_weight[asset]) and isfinite(core.debt_value[asset])
            and isfinite(core.slack_per_token[asset]) and isfinite(core.slack_collateral[asset])
            and isfinite(core.slack_debt[asset]))


cdef Py_ssize_t _resum_holders(health_core *core, Py_ssize_t asset) noexcept nogil:
    """Re-sum every account holding ``asset``; returns how many."""
    cdef Py_ssize_t slot, k, held = 0
    cdef const float *ccol = &core.collateral_cells[asset * core.capacity]
    cdef const float *dcol = &core.debt_cells[asset * core.capacity]
    # first the holders' slots, compacted without a branch (who holds the asset is a coin
    # toss from one account to the next), then their rows
    for slot in range(core.n_accounts):
        core.scratch[held] = slot
        held += (ccol[slot] != 0.0) | (dcol[slot] != 0.0)
    for k in range(held):
        health_refresh_row(core, core.scratch[k])
    return held


cdef Py_ssize_t health_update_asset(health_core *core, Py_ssize_t asset, double collateral_weight,
                                    double debt_value, double slack_per_token, double slack_collateral,
                                    double slack_debt) noexcept nogil:
    cdef Py_ssize_t slot
    cdef bint incremental
    cdef double d_weight, d_debt, d_slack_per_token, d_slack_collateral, d_slack_debt
    if asset < 0 or asset >= core.n_assets:
        return 0
    incremental = (_finite_asset(core, asset) and isfinite(collateral_weight) and isfinite(debt_value)
                   and isfinite(slack_per_token) and isfinite(slack_collateral) and isfinite(slack_debt)
                   and core.infinite_cells[asset] == 0 and core.updates < REFRESH_EVERY)
    d_weight = collateral_weight - core.collateral_weight[asset]
    d_debt = debt_value - core.debt_value[asset]
    d_slack_per_token = slack_per_token - core.slack_per_token[asset]
    d_slack_collateral = slack_collateral - core.slack_collateral[asset]
    d_slack_debt = slack_debt - core.slack_debt[asset]
    core.collateral_weight[asset] = collateral_weight
    core.debt_value[asset] = debt_value
    core.slack_per_token[asset] = slack_per_token
    core.slack_collateral[asset] = slack_collateral
    core.slack_debt[asset] = slack_debt
    if not incremental:
        if core.updates >= REFRESH_EVERY:
            # the periodic re-sum of every row: every account's accumulated drift back to 0
            core.updates = 0
            for slot in range(core.n_accounts):
                health_refresh_row(core, slot)
            return core.holders[asset]
        return _resum_holders(core, asset)
    core.updates += 1
    tio_health_column_update(core.n_accounts, &core.collateral_cells[asset * core.capacity],
                             &core.debt_cells[asset * core.capacity], d_weight, d_debt, d_slack_per_token,
                             d_slack_collateral, d_slack_debt, core.numerator, core.denominator, core.slack,
                             core.health)
    if _any_infinite(core):
        # a row with an infinite cell (or factor) elsewhere has infinite or nan sums (inf - inf is
        # nan from then on): re-sum those rows; no other row can leave the finite doubles (a
        # finite float32 cell times a finite factor is far below the double range)
        for slot in range(core.n_accounts):
            if not (isfinite(core.numerator[slot]) and isfinite(core.denominator[slot])
                    and isfinite(core.slack[slot])):
                health_refresh_row(core, slot)
    return core.holders[asset]


cdef inline bint _any_infinite(const health_core *core) noexcept nogil:
    cdef Py_ssize_t a
    for a in range(core.n_assets):
        if core.infinite_cells[a] != 0 or not _finite_asset(core, a):
            return True
    return False


cdef inline void _store(health_core *core, Py_ssize_t i, const tio_u256 *collateral,
                        const tio_u256 *debt) noexcept nogil:
    """Install the exact balances of cell ``i`` (row-major: slot * n_assets + asset)
    and their float images in the columns, counting the columns' infinite cells."""
    cdef Py_ssize_t n = core.n_assets, asset = i % n, slot = i // n
    cdef float *c = &core.collateral_cells[asset * core.capacity + slot]
    cdef float *d = &core.debt_cells[asset * core.capacity + slot]
    core.scaled_collateral[i] = collateral[0]
    core.scaled_debt[i] = debt[0]
    core.infinite_cells[asset] -= isinf(c[0]) + isinf(d[0])
    core.holders[asset] -= (c[0] != 0.0) | (d[0] != 0.0)
    c[0] = _to_cell(_to_double(collateral) * core.inverse_unit[asset]) if core.enabled[i] else 0.0
    d[0] = _to_cell(_to_double(debt) * core.inverse_unit[asset])
    core.infinite_cells[asset] += isinf(c[0]) + isinf(d[0])
    core.holders[asset] += (c[0] != 0.0) | (d[0] != 0.0)


cdef int health_apply_delta(health_core *core, Py_ssize_t slot, Py_ssize_t asset,
                            const tio_u256 *d_collateral, const tio_u256 *d_debt) noexcept nogil:
    cdef tio_u256 collateral, debt
    cdef Py_ssize_t i
    if slot < 0 or slot >= core.n_accounts or asset < 0 or asset >= core.n_assets:
        return TIO_INVALID
    i = slot * core.n_assets + asset
    if _add_signed(&collateral, &core.scaled_collateral[i], d_collateral) != 0:
        return TIO_INVALID
    if _add_signed(&debt, &core.scaled_debt[i], d_debt) != 0:
        return TIO_INVALID
    _store(core, i, &collateral, &debt)
    health_refresh_row(core, slot)
    return TIO_OK


cdef inline double _slack(const health_core *core, Py_ssize_t slot) noexcept nogil:
    """How far the exact numerator/denominator may lie from the float sums (see the module):
    the row's slack sum (roundings, threshold truncation and cells of the collateral, drift)
    plus the float32 cells of the debt and the float sums' own error."""
    cdef double numerator = core.numerator[slot], denominator = core.denominator[slot]
    return core.slack[slot] + denominator * CELL_SLACK + (numerator + denominator) * FLOAT_SLACK


cdef inline bint _may_be_liquidatable(const health_core *core, Py_ssize_t slot) noexcept nogil:
    cdef double numerator = core.numerator[slot], denominator = core.denominator[slot]
    if not (isfinite(numerator) and isfinite(denominator)):
        # a balance past float32's range (inf, or inf * 0 = nan): the exact path decides
        return denominator != 0.0
    return denominator > 0.0 and numerator < denominator + _slack(core, slot)


cdef int _s256_from_int(object value, tio_u256 *out, str name) except -1:
    if type(value) is not int and (not isinstance(value, int) or isinstance(value, bool)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    try:
        tio_health_s256_from_pylong(value, out)
    except OverflowError:
        raise ValueError(f"{name} must fit a signed 256-bit int, got a {value.bit_length()}-bit int") from None
    return 0


cdef class HealthCore:
    """Accounts x ``n_assets`` exact scaled balances with float64 health
    factors; see ``tallyio.amm.health.HealthMatrix``, the face to use."""

    def __cinit__(self, reserves, Py_ssize_t capacity=1024, *args, **kwargs):
        cdef Py_ssize_t n = len(reserves)
        if n < 1:
            raise ValueError("a HealthMatrix needs at least one reserve")
        if capacity < 1:
            capacity = 1
        self.core.n_assets = n
        self.core.n_accounts = 0
        self.core.capacity = 0
        self._addresses = []
        self._slots = {}
        self.core.updates = 0
        self.core.collateral_weight = <double *>calloc(n, sizeof(double))
        self.core.debt_value = <double *>calloc(n, sizeof(double))
        self.core.slack_per_token = <double *>calloc(n, sizeof(double))
        self.core.slack_collateral = <double *>calloc(n, sizeof(double))
        self.core.slack_debt = <double *>calloc(n, sizeof(double))
        self.core.inverse_unit = <double *>calloc(n, sizeof(double))
        self.core.infinite_cells = <Py_ssize_t *>calloc(n, sizeof(Py_ssize_t))
        self.core.holders = <Py_ssize_t *>calloc(n, sizeof(Py_ssize_t))
        self.exact = <aave_asset *>calloc(n, sizeof(aave_asset))
        self.income = <tio_u256 *>calloc(n, sizeof(tio_u256))
        self.debt_index = <tio_u256 *>calloc(n, sizeof(tio_u256))
        if self.exact == NULL or self.income == NULL or self.debt_index == NULL:
            raise MemoryError("HealthMatrix: out of memory for the per-asset arrays")
        if (self.core.slack_per_token == NULL or self.core.debt_value == NULL
                or self.core.collateral_weight == NULL or self.core.slack_collateral == NULL
                or self.core.slack_debt == NULL or self.core.inverse_unit == NULL
                or self.core.infinite_cells == NULL or self.core.holders == NULL):
            raise MemoryError("HealthMatrix: out of memory for the per-asset arrays")
        for a in range(n):
            # the face checks that reserves are ReserveConfig records; here only their decimals matter
            self.core.inverse_unit[a] = 10.0 ** -int(getattr(reserves[a], "decimals", 0))
        self._grow(capacity)

    def __dealloc__(self):
        free(self.core.scaled_collateral)
        free(self.core.scaled_debt)
        free(self.core.enabled)
        free(self.core.collateral_cells)
        free(self.core.debt_cells)
        free(self.core.infinite_cells)
        free(self.core.holders)
        free(self.core.numerator)
        free(self.core.denominator)
        free(self.core.slack)
        free(self.core.health)
        free(self.core.scratch)
        free(self.core.collateral_weight)
        free(self.core.debt_value)
        free(self.core.slack_per_token)
        free(self.core.slack_collateral)
        free(self.core.slack_debt)
        free(self.core.inverse_unit)
        free(self.exact)
        free(self.income)
        free(self.debt_index)

    cdef int _grow(self, Py_ssize_t capacity) except -1:
        """Make room for ``capacity`` accounts (zeroed); all or nothing."""
        cdef Py_ssize_t old = self.core.capacity, n = self.core.n_assets
        cdef Py_ssize_t cells = capacity * n, old_cells = old * n
        cdef void *p
        if capacity <= old:
            return 0
        # each realloc either moves the array (the pointer is replaced at once) or fails
        # leaving it intact; capacity is raised only when every array has the room
        p = realloc(self.core.scaled_collateral, cells * sizeof(tio_u256))
        if p == NULL:
            raise MemoryError(f"HealthMatrix: out of memory growing to {capacity} accounts")
        self.core.scaled_collateral = <tio_u256 *>p
        p = realloc(self.core.scaled_debt, cells * sizeof(tio_u256))
        if p == NULL:
            raise MemoryError(f"HealthMatrix: out of memory growing to {capacity} accounts")
        self.core.scaled_debt = <tio_u256 *>p
        p = realloc(self.core.enabled, cells * sizeof(uint8_t))
        if p == NULL:
            raise MemoryError(f"HealthMatrix: out of memory growing to {capacity} accounts")
        self.core.enabled = <uint8_t *>p
        p = realloc(self.core.scratch, capacity * sizeof(Py_ssize_t))
        if p == NULL:
            raise MemoryError(f"HealthMatrix: out of memory growing to {capacity} accounts")
        self.core.scratch = <Py_ssize_t *>p
        self._grow_row(&self.core.numerator, capacity)
        self._grow_row(&self.core.denominator, capacity)
        self._grow_row(&self.core.slack, capacity)
        self._grow_row(&self.core.health, capacity)
        memset(&self.core.scaled_collateral[old_cells], 0, (cells - old_cells) * sizeof(tio_u256))
        memset(&self.core.scaled_debt[old_cells], 0, (cells - old_cells) * sizeof(tio_u256))
        memset(&self.core.enabled[old_cells], 0, (cells - old_cells) * sizeof(uint8_t))
        self._grow_columns(old, capacity)     # last: it moves the cells to the new layout
        self.core.capacity = capacity
        return 0

    cdef int _grow_row(self, double **array, Py_ssize_t capacity) except -1:
        cdef void *p = realloc(array[0], capacity * sizeof(double))
        if p == NULL:
            raise MemoryError(f"HealthMatrix: out of memory growing to {capacity} accounts")
        array[0] = <double *>p
        return 0

    cdef int _grow_columns(self, Py_ssize_t old, Py_ssize_t capacity) except -1:
        """Both column-major cell blocks to ``capacity`` rows: new zeroed blocks, each
        column copied to its new place, then the old blocks freed (all or nothing:
        the layout depends on ``capacity``, which the caller raises only after)."""
        cdef Py_ssize_t a, n = self.core.n_assets
        cdef float *collateral = <float *>calloc(n * capacity, sizeof(float))
        cdef float *debt = <float *>calloc(n * capacity, sizeof(float))
        if collateral == NULL or debt == NULL:
            free(collateral)
            free(debt)
            raise MemoryError(f"HealthMatrix: out of memory growing to {capacity} accounts")
        if old:
            for a in range(n):
                memcpy(&collateral[a * capacity], &self.core.collateral_cells[a * old], old * sizeof(float))
                memcpy(&debt[a * capacity], &self.core.debt_cells[a * old], old * sizeof(float))
        free(self.core.collateral_cells)
        free(self.core.debt_cells)
        self.core.collateral_cells = collateral
        self.core.debt_cells = debt
        return 0

    @property
    def n_assets(self) -> int:
        """The number of reserves (columns)."""
        return self.core.n_assets

    def __len__(self):
        return self.core.n_accounts

    def add_account(self, address):
        """The slot of ``address`` (20 bytes), added with empty positions when new."""
        if not isinstance(address, bytes) or len(address) != 20:
            raise ValueError(f"add_account: address must be 20 bytes, got {address!r}")
        slot = self._slots.get(address)
        if slot is not None:
            return slot
        cdef Py_ssize_t new_slot = self.core.n_accounts
        if new_slot == self.core.capacity:
            self._grow(2 * self.core.capacity)
        self.core.numerator[new_slot] = 0.0
        self.core.denominator[new_slot] = 0.0
        self.core.slack[new_slot] = BASE_SLACK
        self.core.health[new_slot] = INFINITY
        self._addresses.append(address)
        self._slots[address] = new_slot
        self.core.n_accounts = new_slot + 1
        return new_slot

    def slot_of(self, address):
        """The slot of ``address``, or None when it was never added."""
        return self._slots.get(address)

    def address_of(self, Py_ssize_t slot):
        """The address held in ``slot``."""
        self._check(slot, 0)
        return self._addresses[slot]

    cdef int _check(self, Py_ssize_t slot, Py_ssize_t asset) except -1:
        if not 0 <= slot < self.core.n_accounts:
            raise IndexError(f"slot {slot} out of range (the matrix has {self.core.n_accounts} accounts)")
        if not 0 <= asset < self.core.n_assets:
            raise IndexError(f"asset index {asset} out of range (the matrix has {self.core.n_assets} reserves)")
        return 0

    def set_position(self, Py_ssize_t slot, Py_ssize_t asset_index, scaled_collateral, scaled_debt,
                     bint use_as_collateral):
        """Replace one account's position in one reserve: scaled balances
        (``scaledBalanceOf`` of the aToken and the variable debt token) and the
        use-as-collateral flag."""
        cdef tio_u256 collateral, debt
        self._check(slot, asset_index)
        u256_from_int(scaled_collateral, &collateral, "scaled_collateral")
        u256_from_int(scaled_debt, &debt, "scaled_debt")
        cdef Py_ssize_t i = slot * self.core.n_assets + asset_index
        self.core.enabled[i] = 1 if use_as_collateral else 0
        _store(&self.core, i, &collateral, &debt)
        health_refresh_row(&self.core, slot)

    def set_collateral_enabled(self, Py_ssize_t slot, Py_ssize_t asset_index, bint enabled):
        """Set the account's use-as-collateral flag for one reserve
        (ReserveUsedAsCollateralEnabled / Disabled)."""
        self._check(slot, asset_index)
        cdef Py_ssize_t i = slot * self.core.n_assets + asset_index
        self.core.enabled[i] = 1 if enabled else 0
        _store(&self.core, i, &self.core.scaled_collateral[i], &self.core.scaled_debt[i])
        health_refresh_row(&self.core, slot)

    def apply_delta(self, Py_ssize_t slot, Py_ssize_t asset_index, d_scaled_collateral, d_scaled_debt):
        """Add signed deltas to one position's scaled balances (one Supply,
        Withdraw, Borrow, Repay or liquidation event) and refresh the account.
        A delta taking a balance below 0 changes nothing and raises ValueError."""
        cdef tio_u256 dc, dd
        _s256_from_int(d_scaled_collateral, &dc, "d_scaled_collateral")
        _s256_from_int(d_scaled_debt, &dd, "d_scaled_debt")
        if health_apply_delta(&self.core, slot, asset_index, &dc, &dd) != TIO_OK:
            self._check(slot, asset_index)
            collateral, debt, _ = self.position(slot, asset_index)
            raise ValueError(f"apply_delta(slot {slot}, asset {asset_index}): scaled collateral {collateral} + "
                             f"{d_scaled_collateral} or scaled debt {debt} + {d_scaled_debt} leaves [0, 2**256)")

    def position(self, Py_ssize_t slot, Py_ssize_t asset_index):
        """``(scaled_collateral, scaled_debt, use_as_collateral)`` of one position, exact."""
        self._check(slot, asset_index)
        cdef Py_ssize_t i = slot * self.core.n_assets + asset_index
        return (u256_to_int(&self.core.scaled_collateral[i]), u256_to_int(&self.core.scaled_debt[i]),
                bool(self.core.enabled[i]))

    def positions(self, Py_ssize_t slot):
        """``[(asset_index, scaled_collateral, scaled_debt, use_as_collateral)]`` for
        every reserve the account holds anything in, exact."""
        self._check(slot, 0)
        cdef Py_ssize_t a, i
        out = []
        for a in range(self.core.n_assets):
            i = slot * self.core.n_assets + a
            if not tio_u256_is_zero(&self.core.scaled_collateral[i]) or not tio_u256_is_zero(&self.core.scaled_debt[i]):
                out.append((a, u256_to_int(&self.core.scaled_collateral[i]),
                            u256_to_int(&self.core.scaled_debt[i]), bool(self.core.enabled[i])))
        return out

    def _set_asset(self, Py_ssize_t asset_index, double collateral_value, double debt_value, double threshold,
                   double rounding):
        """Install one reserve's float factors and refresh the accounts holding it;
        returns how many were refreshed."""
        self._check_asset(asset_index)
        # a reserve with threshold 0 is never collateral (GenericLogic skips it)
        # per collateral token: 1 bp (the weighted threshold's truncation) plus the float32 cell's error;
        # per position held: twice its rounding (numerator and denominator each)
        return health_update_asset(&self.core, asset_index, collateral_value * threshold, debt_value,
                                   collateral_value * (THRESHOLD_TRUNCATION + CELL_SLACK) if threshold != 0.0 else 0.0,
                                   2.0 * rounding if threshold != 0.0 else 0.0, 2.0 * rounding)

    cdef int _check_asset(self, Py_ssize_t asset) except -1:
        if not 0 <= asset < self.core.n_assets:
            raise IndexError(f"asset index {asset} out of range (the matrix has {self.core.n_assets} reserves)")
        return 0

    def refresh_all(self):
        """Recompute every account's float health factor from scratch."""
        cdef Py_ssize_t slot
        self.core.updates = 0
        for slot in range(self.core.n_accounts):
            health_refresh_row(&self.core, slot)

    def health_factors(self):
        """The float64 health factor of every account, by slot (``inf`` without
        debt): a screen, not the protocol's value (``account_data`` is)."""
        out = numpy.empty(self.core.n_accounts, dtype=numpy.float64)
        cdef double[::1] view = out
        if self.core.n_accounts:
            memcpy(&view[0], self.core.health, self.core.n_accounts * sizeof(double))
        return out

    def _set_exact(self, Py_ssize_t asset_index, price, income, debt_index, unit, threshold):
        """One reserve's exact price, normalized indexes (ray), unit and liquidation
        threshold (bps), for ``_confirm``."""
        self._check_asset(asset_index)
        cdef aave_asset *row = &self.exact[asset_index]
        u256_from_int(price, &row.price, "price")
        u256_from_int(unit, &row.unit, "unit")
        u256_from_int(income, &self.income[asset_index], "income")
        u256_from_int(debt_index, &self.debt_index[asset_index], "debt_index")
        if not 0 <= threshold <= 10_000:
            raise ValueError(f"threshold {threshold} outside [0, 10000] bps")
        row.liquidation_threshold = threshold
        return None

    def _confirm(self, candidates):
        """The exact decision on the screen's candidates, in C: ``(liquidatable,
        undecided)`` slot lists; ``liquidatable`` have a health factor below 1
        (GenericLogic on the exact scaled balances), ``undecided`` are those whose
        computation passed 2**256 - 1 somewhere (the reference decides them: it
        raises where the contract reverts)."""
        cdef Py_ssize_t n = self.core.n_assets, a, k, count, slot
        cdef const int64_t[::1] slots = numpy.ascontiguousarray(candidates, dtype=numpy.int64)
        count = slots.shape[0]
        for k in range(count):
            self._check(slots[k], 0)
        cdef aave_asset *assets = <aave_asset *>calloc(n, sizeof(aave_asset))
        cdef int8_t *verdict = <int8_t *>calloc(count if count else 1, sizeof(int8_t))
        cdef tio_u256 hf, wad
        if assets == NULL or verdict == NULL:
            free(assets)
            free(verdict)
            raise MemoryError("HealthMatrix: out of memory confirming candidates")
        tio_u256_from_u64(&wad, 1000000000000000000)
        with nogil:
            for k in range(count):
                slot = slots[k]
                for a in range(n):
                    assets[a] = self.exact[a]
                    assets[a].collateral = self.core.scaled_collateral[slot * n + a]
                    assets[a].debt = self.core.scaled_debt[slot * n + a]
                    assets[a].use_as_collateral = self.core.enabled[slot * n + a]
                if aave_balances(assets, n, self.income, self.debt_index) != 0 \
                        or aave_account_health(assets, n, &hf) != 0:
                    verdict[k] = -1
                else:
                    verdict[k] = 1 if tio_u256_cmp(&hf, &wad) < 0 else 0
        try:
            return ([slots[k] for k in range(count) if verdict[k] == 1],
                    [slots[k] for k in range(count) if verdict[k] == -1])
        finally:
            free(assets)
            free(verdict)

    def _sums(self, Py_ssize_t slot):
        """``(numerator, denominator, slack sum, slack)`` of one account's float row
        (for tests of the incremental updates' error bound)."""
        self._check(slot, 0)
        return (self.core.numerator[slot], self.core.denominator[slot], self.core.slack[slot],
                _slack(&self.core, slot))

    def _screen(self):
        """Slots whose exact health factor may be below 1 (a superset of the
        liquidatable ones: numerator < denominator + slack)."""
        cdef Py_ssize_t slot, count = 0
        for slot in range(self.core.n_accounts):
            if _may_be_liquidatable(&self.core, slot):
                count += 1
        out = numpy.empty(count, dtype=numpy.int64)
        cdef int64_t[::1] view = out
        count = 0
        for slot in range(self.core.n_accounts):
            if _may_be_liquidatable(&self.core, slot):
                view[count] = slot
                count += 1
        return out


def _bench_apply_delta_c(HealthCore matrix, Py_ssize_t events, Py_ssize_t asset_index):
    """ns per ``health_apply_delta`` from C (no GIL): ``events`` events over every
    slot in turn, +1/-1 scaled units of collateral and debt so balances end
    where they started; returns ``(ns_per_event, events_applied)``."""
    from time import perf_counter_ns
    cdef Py_ssize_t e, applied = 0, n = matrix.core.n_accounts
    cdef tio_u256 plus, minus
    if n == 0 or not 0 <= asset_index < matrix.core.n_assets:
        raise ValueError("_bench_apply_delta_c needs accounts and a valid asset index")
    plus.w[0] = 1
    plus.w[1] = plus.w[2] = plus.w[3] = 0
    minus.w[0] = minus.w[1] = minus.w[2] = minus.w[3] = 0xFFFFFFFFFFFFFFFF   # -1
    start = perf_counter_ns()
    with nogil:
        for e in range(events):
            if (e // n) % 2 == 0:
                applied += health_apply_delta(&matrix.core, e % n, asset_index, &plus, &plus) == TIO_OK
            else:
                applied += health_apply_delta(&matrix.core, e % n, asset_index, &minus, &minus) == TIO_OK
    elapsed = perf_counter_ns() - start
    return elapsed / max(1, events), applied
