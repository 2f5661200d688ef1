"""The native store behind ``tallyio.amm.health.HealthMatrix``: exact scaled
balances of accounts x assets (tio_u256), their float64 images, and per account
the float health factor with a bound on its error.  Owns its C arrays; touches
nothing else.  The exact decisions (account data, who is liquidatable) are made
in Python by ``tallyio.amm.aave`` from the exact balances kept here.

One writer at a time: no method releases the GIL, and the C entries in
``_health.pxd`` are for a caller that already owns the matrix.

The float screen: cells hold each scaled balance in whole tokens (``scaled /
10**decimals``) as float32, so a row of 8 reserves is one 64-byte line; with
per-asset ``collateral_value = income/RAY * price`` and ``debt_value =
debt_index/RAY * price``, an account's

    numerator   = sum_a cell_collateral[a] * collateral_value[a] * threshold[a]  (enabled, threshold != 0)
    denominator = sum_a cell_debt[a] * debt_value[a]

are the real-number images of GenericLogic's sums.  The exact integers differ by
at most one ``rounding[a] = 0.5 * price/unit + 1`` per asset held (rayMul's
half-up, then the truncating ``/ 10**decimals``), plus 1 bp of the collateral
(the weighted threshold is truncated to whole bps), plus percentMul's 0.5; so
the exact health factor can be below 1 only when
``numerator < denominator + slack`` with ``slack`` twice that sum plus 1e-6 of
the totals for the float32 cells (docs/liquidations.md).
"""
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.stdlib cimport calloc, free, realloc
from libc.string cimport memset
from libc.math cimport INFINITY, isfinite
from libc.float cimport FLT_MAX

import numpy

from tallyio._ext.common cimport TIO_OK, TIO_INVALID
from tallyio._ext.u256 cimport (tio_u256, tio_u256_add, tio_u256_to_ld, tio_u256_is_zero,
                                u256_from_int, u256_to_int)

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
    cdef Py_ssize_t a, n = core.n_assets
    cdef const float *cell = &core.cells[2 * slot * n]
    cdef double c, d, numerator = 0.0, denominator = 0.0, collateral = 0.0, rounding = 1.0
    cdef health_row *row = &core.rows[slot]
    # branch-free: whether a cell is empty is a coin toss across accounts, and a
    # mispredicted branch per cell cost more than the arithmetic it skipped
    for a in range(n):
        c = cell[2 * a]
        d = cell[2 * a + 1]
        numerator += c * core.collateral_weight[a]
        collateral += c * core.collateral_value[a]
        denominator += d * core.debt_value[a]
        rounding += <double>(c != 0.0) * core.collateral_rounding[a] + <double>(d != 0.0) * core.rounding[a]
    row.numerator = numerator
    row.denominator = denominator
    row.slack = (2.0 * rounding + collateral * THRESHOLD_TRUNCATION + (numerator + denominator) * FLOAT_SLACK
                 + (collateral + denominator) * CELL_SLACK)
    row.health = numerator / denominator if denominator > 0.0 else INFINITY


cdef Py_ssize_t health_refresh_asset(health_core *core, Py_ssize_t asset) noexcept nogil:
    cdef Py_ssize_t slot, k, held = 0, n = core.n_assets
    cdef const float *cell
    if asset < 0 or asset >= n:
        return 0
    # first the holders' slots, compacted without a branch (who holds the asset is a coin
    # toss from one account to the next), then their rows
    cell = &core.cells[2 * asset]
    for slot in range(core.n_accounts):
        core.scratch[held] = slot
        held += (cell[0] != 0.0) | (cell[1] != 0.0)
        cell += 2 * n
    for k in range(held):
        health_refresh_row(core, core.scratch[k])
    return held


cdef inline void _store(health_core *core, Py_ssize_t i, const tio_u256 *collateral,
                        const tio_u256 *debt) noexcept nogil:
    """Install the exact balances of cell ``i`` and their float images."""
    core.scaled_collateral[i] = collateral[0]
    core.scaled_debt[i] = debt[0]
    core.cells[2 * i] = _to_cell(_to_double(collateral) * core.inverse_unit[i % core.n_assets]) \
        if core.enabled[i] else 0.0
    core.cells[2 * i + 1] = _to_cell(_to_double(debt) * core.inverse_unit[i % core.n_assets])


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


cdef inline bint _may_be_liquidatable(const health_row *row) noexcept nogil:
    if not (isfinite(row.numerator) and isfinite(row.denominator)):
        # a balance past float32's range (inf, or inf * 0 = nan): the exact path decides
        return row.denominator != 0.0
    return row.denominator > 0.0 and row.numerator < row.denominator + row.slack


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
        self.core.collateral_value = <double *>calloc(n, sizeof(double))
        self.core.collateral_weight = <double *>calloc(n, sizeof(double))
        self.core.debt_value = <double *>calloc(n, sizeof(double))
        self.core.rounding = <double *>calloc(n, sizeof(double))
        self.core.inverse_unit = <double *>calloc(n, sizeof(double))
        self.core.collateral_rounding = <double *>calloc(n, sizeof(double))
        if (self.core.collateral_value == NULL or self.core.debt_value == NULL
                or self.core.collateral_weight == NULL or self.core.rounding == NULL
                or self.core.collateral_rounding == NULL or self.core.inverse_unit == NULL):
            raise MemoryError("HealthMatrix: out of memory for the per-asset arrays")
        for a in range(n):
            # the face checks that reserves are ReserveConfig records; here only their decimals matter
            self.core.inverse_unit[a] = 10.0 ** -int(getattr(reserves[a], "decimals", 0))
        self._grow(capacity)

    def __dealloc__(self):
        free(self.core.scaled_collateral)
        free(self.core.scaled_debt)
        free(self.core.enabled)
        free(self.core.cells)
        free(self.core.rows)
        free(self.core.scratch)
        free(self.core.collateral_value)
        free(self.core.collateral_weight)
        free(self.core.debt_value)
        free(self.core.rounding)
        free(self.core.collateral_rounding)
        free(self.core.inverse_unit)

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
        p = realloc(self.core.cells, 2 * cells * sizeof(float))
        if p == NULL:
            raise MemoryError(f"HealthMatrix: out of memory growing to {capacity} accounts")
        self.core.cells = <float *>p
        p = realloc(self.core.scratch, capacity * sizeof(Py_ssize_t))
        if p == NULL:
            raise MemoryError(f"HealthMatrix: out of memory growing to {capacity} accounts")
        self.core.scratch = <Py_ssize_t *>p
        p = realloc(self.core.rows, capacity * sizeof(health_row))
        if p == NULL:
            raise MemoryError(f"HealthMatrix: out of memory growing to {capacity} accounts")
        self.core.rows = <health_row *>p
        memset(&self.core.scaled_collateral[old_cells], 0, (cells - old_cells) * sizeof(tio_u256))
        memset(&self.core.scaled_debt[old_cells], 0, (cells - old_cells) * sizeof(tio_u256))
        memset(&self.core.enabled[old_cells], 0, (cells - old_cells) * sizeof(uint8_t))
        memset(&self.core.cells[2 * old_cells], 0, 2 * (cells - old_cells) * sizeof(float))
        self.core.capacity = capacity
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
        self.core.rows[new_slot].numerator = 0.0
        self.core.rows[new_slot].denominator = 0.0
        self.core.rows[new_slot].slack = 0.0
        self.core.rows[new_slot].health = INFINITY
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
        self.core.collateral_value[asset_index] = collateral_value if threshold != 0.0 else 0.0
        self.core.collateral_weight[asset_index] = collateral_value * threshold
        self.core.debt_value[asset_index] = debt_value
        self.core.rounding[asset_index] = rounding
        self.core.collateral_rounding[asset_index] = rounding if threshold != 0.0 else 0.0
        return health_refresh_asset(&self.core, asset_index)

    cdef int _check_asset(self, Py_ssize_t asset) except -1:
        if not 0 <= asset < self.core.n_assets:
            raise IndexError(f"asset index {asset} out of range (the matrix has {self.core.n_assets} reserves)")
        return 0

    def refresh_all(self):
        """Recompute every account's float health factor from scratch."""
        cdef Py_ssize_t slot
        for slot in range(self.core.n_accounts):
            health_refresh_row(&self.core, slot)

    def health_factors(self):
        """The float64 health factor of every account, by slot (``inf`` without
        debt): a screen, not the protocol's value (``account_data`` is)."""
        out = numpy.empty(self.core.n_accounts, dtype=numpy.float64)
        cdef double[::1] view = out
        cdef Py_ssize_t slot
        for slot in range(self.core.n_accounts):
            view[slot] = self.core.rows[slot].health
        return out

    def _screen(self):
        """Slots whose exact health factor may be below 1 (a superset of the
        liquidatable ones: numerator < denominator + slack)."""
        cdef Py_ssize_t slot, count = 0
        for slot in range(self.core.n_accounts):
            if _may_be_liquidatable(&self.core.rows[slot]):
                count += 1
        out = numpy.empty(count, dtype=numpy.int64)
        cdef int64_t[::1] view = out
        count = 0
        for slot in range(self.core.n_accounts):
            if _may_be_liquidatable(&self.core.rows[slot]):
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
