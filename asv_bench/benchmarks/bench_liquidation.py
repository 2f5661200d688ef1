"""tallyio.amm.health benchmarks: Aave v3 health factors of 100,000 accounts x
8 reserves after one price update (set_price + health_factors) beside the same
computation in a plain Python loop over lists of accounts, and one position
event (apply_delta from Python, 1,000 calls per timing)."""
from tallyio.bench._liquidation import BASE_PRICES, build

ACCOUNTS = 100_000
CALLS = 1000


class HealthFactors:
    timeout = 600

    def setup(self, *_):
        self.matrix, self.peer = build(ACCOUNTS)
        self.step = 0

    def _next(self):
        self.step += 1
        asset = self.step % len(BASE_PRICES)
        return asset, BASE_PRICES[asset] * (90 + self.step % 20) // 100

    def time_price_update_tallyio(self, *_):
        asset, price = self._next()
        self.matrix.set_price(asset, price)
        self.matrix.health_factors()

    def time_price_update_python_loop(self, *_):
        asset, price = self._next()
        self.peer.set_price(asset, price)
        list(self.peer.health)

    def time_apply_delta_tallyio(self, *_):
        apply = self.matrix.apply_delta
        for slot in range(CALLS):
            apply(slot, 2, 1, 1)
        for slot in range(CALLS):
            apply(slot, 2, -1, -1)

    def time_liquidatable_tallyio(self, *_):
        self.matrix.liquidatable()
