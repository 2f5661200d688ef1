"""Deploy a real Aave v3 market (``@aave/core-v3`` 1.19.3's published artifacts)
on a dev chain, and the helpers that act on it and read it back.

Owns: :func:`deploy_aave` (the Pool's seven logic libraries linked into its
bytecode, FlashLoanLogic linked to BorrowLogic and PoolConfigurator to
ConfiguratorLogic; the PoolAddressesProvider with its Pool and PoolConfigurator
proxies, the ACLManager, the mock ``PriceOracle``, the
``AaveProtocolDataProvider``; one reserve per :class:`AaveAssetSpec`: a
``MintableERC20`` underlying, AToken / StableDebtToken / VariableDebtToken
implementations, a ``DefaultReserveInterestRateStrategy``, collateral
parameters, borrowing on, the liquidation protocol fee),
:class:`AaveDeployment`, :class:`AaveReserve`, and the user-level helpers
(``supply``, ``borrow``, ``repay``, ``withdraw``, ``set_price``,
``liquidation_call``) and reads (``user_account_data``, ``reserve_data``,
``scaled_balances``). Sends transactions only through a
:class:`~tallyio.devnet.Sender`; imports nothing of the engine.

    >>> spec = AaveAssetSpec("USDCm", decimals=6, price=10**8, ltv=7700, liquidation_threshold=8000)
    >>> spec.liquidation_bonus, spec.liquidation_protocol_fee
    (10500, 1000)
    >>> AaveAssetSpec("BAD", ltv=9000, liquidation_threshold=8000)
    Traceback (most recent call last):
    ...
    ValueError: BAD: need 0 <= ltv < liquidation_threshold <= 10000, got 9000 and 8000
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Sequence

from tallyio.devnet._accounts import DevAccount, Sender, dev_accounts, encode_call, to_address
from tallyio.devnet._uniswap import load_artifact, set_automine
from tallyio.errors import DevnetError
from tallyio.mempool._wsrpc import RpcClient

__all__ = ["AaveAssetSpec", "AaveReserve", "AaveDeployment", "ReserveState", "deploy_aave", "supply", "borrow",
           "repay", "withdraw", "set_price", "liquidation_call", "user_account_data", "reserve_data",
           "scaled_balances", "mint_tokens", "set_collateral", "VARIABLE_RATE", "DEFAULT_ASSETS"]

#: the compiled artifacts (the package also ships ABI-only copies under contracts/, without bytecode)
AAVE_PACKAGE = "@aave/core-v3/artifacts"
MAX_UINT = 2**256 - 1
#: Aave's interestRateMode for variable-rate debt (stable borrowing stays off)
VARIABLE_RATE = 2
RAY = 10**27
#: the order the Pool links its libraries in does not matter; FlashLoanLogic needs BorrowLogic's address first
_POOL_LIBRARIES = ("BorrowLogic", "BridgeLogic", "EModeLogic", "LiquidationLogic", "PoolLogic", "SupplyLogic",
                   "FlashLoanLogic")
_INIT_RESERVE = ("(address,address,address,uint8,address,address,address,address,string,string,string,string,"
                 "string,string,bytes)[]")


@dataclass(frozen=True)
class AaveAssetSpec:
    """One reserve to list: its underlying's symbol and decimals, its starting
    oracle price (base-currency units, 8 decimals like Aave's USD feeds), its
    risk parameters in basis points (``liquidation_bonus`` as Aave configures
    it: 10500 is a 5 % bonus) and its variable-rate curve (ray)."""

    symbol: str
    decimals: int = 18
    price: int = 10**8
    ltv: int = 7500
    liquidation_threshold: int = 8000
    liquidation_bonus: int = 10500
    liquidation_protocol_fee: int = 1000
    reserve_factor: int = 1000
    optimal_usage: int = 8 * RAY // 10
    base_variable_rate: int = 0
    variable_slope1: int = 4 * RAY // 100
    variable_slope2: int = 75 * RAY // 100

    def __post_init__(self) -> None:
        if not (isinstance(self.decimals, int) and 0 < self.decimals <= 36):
            raise ValueError(f"{self.symbol}: decimals must be an int in 1..36, got {self.decimals!r}")
        if not (isinstance(self.price, int) and self.price > 0):
            raise ValueError(f"{self.symbol}: price must be a positive int, got {self.price!r}")
        if not 0 <= self.ltv < self.liquidation_threshold <= 10_000:
            raise ValueError(f"{self.symbol}: need 0 <= ltv < liquidation_threshold <= 10000, got "
                             f"{self.ltv} and {self.liquidation_threshold}")
        if not 10_000 < self.liquidation_bonus or self.liquidation_threshold * self.liquidation_bonus > 10**8:
            raise ValueError(f"{self.symbol}: liquidation_bonus must exceed 10000 and threshold x bonus stay "
                             f"<= 100 %, got {self.liquidation_bonus}")
        if not 0 <= self.liquidation_protocol_fee <= 10_000:
            raise ValueError(f"{self.symbol}: liquidation_protocol_fee must be in 0..10000 bps")


DEFAULT_ASSETS = (AaveAssetSpec("WETHm", 18, 2_000 * 10**8, 8000, 8250, 10500, 1000),
                  AaveAssetSpec("USDCm", 6, 10**8, 7700, 8000, 10450, 1000),
                  AaveAssetSpec("WBTCm", 8, 30_000 * 10**8, 7000, 7500, 10650, 1000))


@dataclass(frozen=True)
class AaveReserve:
    """One listed reserve: the underlying and its three tokens (lowercase hex)."""

    spec: AaveAssetSpec
    asset: str
    a_token: str
    stable_debt_token: str
    variable_debt_token: str
    interest_rate_strategy: str

    @property
    def decimals(self) -> int:
        return self.spec.decimals


@dataclass
class AaveDeployment:
    """Every address :func:`deploy_aave` created (lowercase ``0x`` hex)."""

    deployer: str
    addresses_provider: str
    pool: str
    configurator: str
    acl_manager: str
    oracle: str
    data_provider: str
    treasury: str
    reserves: tuple[AaveReserve, ...]
    libraries: dict[str, str] = field(default_factory=dict)

    def reserve(self, asset_or_symbol: str) -> AaveReserve:
        """The reserve of an underlying address or symbol."""
        for r in self.reserves:
            if r.spec.symbol == asset_or_symbol or r.asset == asset_or_symbol.lower():
                return r
        raise KeyError(f"no reserve {asset_or_symbol!r} in this deployment")

    def lending_reserves(self) -> list:
        """The reserves as ``tallyio.mempool.lending.LendingReserve`` records (the
        configured risk parameters, 20-byte addresses), in deployment order: what a
        ``PositionBook`` for this market is built from."""
        from tallyio.amm.aave import ReserveConfig
        from tallyio.mempool.lending import LendingReserve

        raw = lambda a: bytes.fromhex(a[2:])  # noqa: E731
        return [LendingReserve(ReserveConfig(raw(r.asset), r.spec.decimals, r.spec.ltv, r.spec.liquidation_threshold,
                                             r.spec.liquidation_bonus, r.spec.liquidation_protocol_fee),
                               raw(r.a_token), raw(r.variable_debt_token)) for r in self.reserves]

    def log_addresses(self) -> list:
        """Every address whose logs a position book reads: the pool, the oracle, the aTokens and debt tokens."""
        return [self.pool, self.oracle] + [t for r in self.reserves for t in (r.a_token, r.variable_debt_token)]

    def index_of(self, asset: str) -> int:
        """The position of ``asset`` in :attr:`reserves` (the asset index of a health matrix)."""
        asset = to_address(asset)
        for i, r in enumerate(self.reserves):
            if r.asset == asset:
                return i
        raise KeyError(f"{asset} is not a reserve of this deployment")


class ReserveState(NamedTuple):
    """The part of ``Pool.getReserveData`` positions need: indexes and rates (ray)
    as of ``last_update_timestamp``, and the configuration word."""

    configuration: int
    liquidity_index: int
    liquidity_rate: int
    variable_borrow_index: int
    variable_borrow_rate: int
    last_update_timestamp: int


def link(artifact: dict, name: str, libraries: dict[str, str]) -> bytes:
    """``artifact``'s creation bytecode with each library placeholder replaced by
    the deployed library's address (from ``linkReferences``)."""
    text = artifact.get("bytecode")
    if isinstance(text, dict):
        text = text.get("object")
    if not isinstance(text, str) or len(text) < 4:
        raise DevnetError(f"artifact {name} has no creation bytecode")
    hexcode = list(text[2:] if text.startswith("0x") else text)
    for _source, refs in (artifact.get("linkReferences") or {}).items():
        for lib, spots in refs.items():
            if lib not in libraries:
                raise DevnetError(f"{name} links {lib}, which is not deployed yet")
            address = to_address(libraries[lib])[2:]
            for spot in spots:  # offsets are in bytes; the placeholder is hex text
                hexcode[2 * spot["start"]: 2 * (spot["start"] + spot["length"])] = address
    linked = "".join(hexcode)
    if "__$" in linked:
        raise DevnetError(f"{name} still has an unlinked library placeholder")
    return bytes.fromhex(linked)


class _Deployer:
    def __init__(self, rpc: RpcClient, sender: Sender, me: DevAccount, chain: Any):
        self.rpc, self.sender, self.me, self.chain = rpc, sender, me, chain
        self.libraries: dict[str, str] = {}

    def art(self, name: str) -> dict:
        return load_artifact(AAVE_PACKAGE, name, self.chain)

    def create(self, name: str, ctor: str = "", *args: Any, code: bytes | None = None) -> str:
        from eth_abi import encode

        artifact = self.art(name)
        data = code if code is not None else link(artifact, name, self.libraries)
        if ctor:
            data += encode(ctor.split(","), list(args))
        receipt = self.sender.receipt(self.sender.send(self.me, None, data, gas=25_000_000))
        address = receipt.get("contractAddress")
        if not address:
            raise DevnetError(f"deploying {name} created no contract")
        return to_address(address)

    def send(self, to: str, signature: str, *args: Any) -> dict:
        return self.sender.receipt(self.sender.send(self.me, to, encode_call(signature, *args), wait=False))

    def call(self, to: str, signature: str, *args: Any, returns: Sequence[str]) -> tuple:
        return self.sender.call(to, signature, *args, returns=returns)


def deploy_aave(rpc: RpcClient, *, sender: Sender | None = None, assets: Sequence[AaveAssetSpec] = DEFAULT_ASSETS,
                deployer: DevAccount | None = None, chain: str | os.PathLike | None = None) -> AaveDeployment:
    """Deploy an Aave v3 market with one reserve per ``assets`` entry.

    The deployer is the provider's owner, the ACL admin and a pool admin, and
    also the treasury (so the liquidation protocol fee lands somewhere
    readable). Stable-rate borrowing stays off; every reserve is collateral
    (``ltv``, ``liquidation_threshold``, ``liquidation_bonus``) and
    borrowable at a variable rate. Automine is on while deploying and restored
    afterwards (about 40 transactions; ~1 s on anvil 1.7.1).
    """
    if not assets:
        raise ValueError("deploy_aave needs at least one asset")
    if len({a.symbol for a in assets}) != len(assets):
        raise ValueError("asset symbols must be distinct")
    sender = sender or Sender(rpc)
    me = deployer or dev_accounts(1)[0]
    automine_before = bool(rpc.call("anvil_getAutomine"))
    set_automine(rpc, True)
    try:
        return _deploy_all(_Deployer(rpc, sender, me, chain), tuple(assets))
    finally:
        set_automine(rpc, automine_before)


def _deploy_all(d: _Deployer, assets: tuple[AaveAssetSpec, ...]) -> AaveDeployment:
    me = d.me.address
    for lib in _POOL_LIBRARIES + ("ConfiguratorLogic",):
        d.libraries[lib] = d.create(lib)
    provider = d.create("PoolAddressesProvider", "string,address", "tallyio-devnet", me)
    pool_impl = d.create("Pool", "address", provider)
    d.send(pool_impl, "initialize(address)", provider)  # the implementation itself, so nobody else can
    d.send(provider, "setPoolImpl(address)", pool_impl)
    (pool,) = d.call(provider, "getPool()", returns=["address"])
    configurator_impl = d.create("PoolConfigurator")
    d.send(provider, "setPoolConfiguratorImpl(address)", configurator_impl)
    (configurator,) = d.call(provider, "getPoolConfigurator()", returns=["address"])
    d.send(provider, "setACLAdmin(address)", me)
    acl = d.create("ACLManager", "address", provider)
    d.send(provider, "setACLManager(address)", acl)
    d.send(acl, "addPoolAdmin(address)", me)
    oracle = d.create("PriceOracle")
    d.send(provider, "setPriceOracle(address)", oracle)
    data_provider = d.create("AaveProtocolDataProvider", "address", provider)
    d.send(provider, "setPoolDataProvider(address)", data_provider)
    pool, configurator = to_address(pool), to_address(configurator)

    a_impl = d.create("AToken", "address", pool)
    stable_impl = d.create("StableDebtToken", "address", pool)
    variable_impl = d.create("VariableDebtToken", "address", pool)
    inputs, strategies, underlyings = [], [], []
    for spec in assets:
        asset = d.create("MintableERC20", "string,string,uint8", spec.symbol, spec.symbol, spec.decimals)
        strategy = d.create("DefaultReserveInterestRateStrategy",
                            "address,uint256,uint256,uint256,uint256,uint256,uint256,uint256,uint256,uint256",
                            provider, spec.optimal_usage, spec.base_variable_rate, spec.variable_slope1,
                            spec.variable_slope2, 0, 0, 0, 0, 0)
        d.send(oracle, "setAssetPrice(address,uint256)", asset, spec.price)
        inputs.append((a_impl, stable_impl, variable_impl, spec.decimals, strategy, asset, me, "0x" + "00" * 20,
                       f"a{spec.symbol}", f"a{spec.symbol}", f"vd{spec.symbol}", f"vd{spec.symbol}",
                       f"sd{spec.symbol}", f"sd{spec.symbol}", b""))
        strategies.append(strategy)
        underlyings.append(asset)
    d.send(configurator, f"initReserves({_INIT_RESERVE})", inputs)
    reserves = []
    for spec, asset, strategy in zip(assets, underlyings, strategies):
        d.send(configurator, "configureReserveAsCollateral(address,uint256,uint256,uint256)", asset, spec.ltv,
               spec.liquidation_threshold, spec.liquidation_bonus)
        d.send(configurator, "setReserveBorrowing(address,bool)", asset, True)
        d.send(configurator, "setReserveFactor(address,uint256)", asset, spec.reserve_factor)
        d.send(configurator, "setLiquidationProtocolFee(address,uint256)", asset, spec.liquidation_protocol_fee)
        a_token, stable, variable = d.call(data_provider, "getReserveTokensAddresses(address)", asset,
                                           returns=["address", "address", "address"])
        reserves.append(AaveReserve(spec, asset, to_address(a_token), to_address(stable), to_address(variable),
                                    strategy))
    return AaveDeployment(me, provider, pool, configurator, acl, oracle, data_provider, me, tuple(reserves),
                          dict(d.libraries))


# ---- acting on the market (each returns the transaction hash; wait=True waits for the receipt) ----

def _act(sender: Sender, account: DevAccount, to: str, signature: str, *args: Any, wait: bool,
         gas: int | None) -> bytes:
    return sender.send(account, to, encode_call(signature, *args), gas=gas, wait=wait)


def mint_tokens(sender: Sender, account: DevAccount, asset: str, amount: int, *, approve: str | None = None,
                wait: bool = True) -> None:
    """Mint ``amount`` of a ``MintableERC20`` underlying to ``account`` and, with
    ``approve``, let that spender (the Pool) take any amount of it."""
    _act(sender, account, asset, "mint(uint256)", amount, wait=wait, gas=120_000)
    if approve is not None:
        _act(sender, account, asset, "approve(address,uint256)", approve, MAX_UINT, wait=wait, gas=80_000)


def supply(sender: Sender, account: DevAccount, deployment: AaveDeployment, asset: str, amount: int, *,
           mint: bool = True, wait: bool = True, gas: int | None = 400_000) -> bytes:
    """``Pool.supply(asset, amount, account, 0)``; with ``mint`` the account first
    mints the underlying and approves the Pool."""
    if mint:
        mint_tokens(sender, account, asset, amount, approve=deployment.pool, wait=wait)
    return _act(sender, account, deployment.pool, "supply(address,uint256,address,uint16)", asset, amount,
                account.address, 0, wait=wait, gas=gas)


def borrow(sender: Sender, account: DevAccount, deployment: AaveDeployment, asset: str, amount: int, *,
           wait: bool = True, gas: int | None = 500_000) -> bytes:
    """``Pool.borrow(asset, amount, VARIABLE, 0, account)``."""
    return _act(sender, account, deployment.pool, "borrow(address,uint256,uint256,uint16,address)", asset, amount,
                VARIABLE_RATE, 0, account.address, wait=wait, gas=gas)


def repay(sender: Sender, account: DevAccount, deployment: AaveDeployment, asset: str, amount: int, *,
          mint: bool = True, wait: bool = True, gas: int | None = 400_000) -> bytes:
    """``Pool.repay(asset, amount, VARIABLE, account)`` (``2**256-1``: all of it)."""
    if mint:
        mint_tokens(sender, account, asset, amount if amount != MAX_UINT else 10**30, approve=deployment.pool,
                    wait=wait)
    return _act(sender, account, deployment.pool, "repay(address,uint256,uint256,address)", asset, amount,
                VARIABLE_RATE, account.address, wait=wait, gas=gas)


def set_collateral(sender: Sender, account: DevAccount, deployment: AaveDeployment, asset: str, enabled: bool, *,
                   wait: bool = True, gas: int | None = 300_000) -> bytes:
    """``Pool.setUserUseReserveAsCollateral(asset, enabled)``."""
    return _act(sender, account, deployment.pool, "setUserUseReserveAsCollateral(address,bool)", asset, enabled,
                wait=wait, gas=gas)


def withdraw(sender: Sender, account: DevAccount, deployment: AaveDeployment, asset: str, amount: int, *,
             wait: bool = True, gas: int | None = 400_000) -> bytes:
    """``Pool.withdraw(asset, amount, account)`` (``2**256-1``: all of it)."""
    return _act(sender, account, deployment.pool, "withdraw(address,uint256,address)", asset, amount,
                account.address, wait=wait, gas=gas)


def set_price(sender: Sender, account: DevAccount, deployment: AaveDeployment, asset: str, price: int, *,
              wait: bool = True, gas: int | None = 80_000) -> bytes:
    """The mock oracle's ``setAssetPrice(asset, price)`` (base-currency units)."""
    if not (isinstance(price, int) and price > 0):
        raise ValueError(f"price must be a positive int, got {price!r}")
    return _act(sender, account, deployment.oracle, "setAssetPrice(address,uint256)", asset, price, wait=wait,
                gas=gas)


def liquidation_call(sender: Sender, account: DevAccount, deployment: AaveDeployment, collateral_asset: str,
                     debt_asset: str, user: str, debt_to_cover: int, *, receive_a_token: bool = False,
                     wait: bool = True, gas: int | None = 600_000) -> bytes:
    """``Pool.liquidationCall(collateral, debt, user, debt_to_cover, receive_a_token)``
    from ``account`` (which must hold and have approved the debt token)."""
    return _act(sender, account, deployment.pool, "liquidationCall(address,address,address,uint256,bool)",
                collateral_asset, debt_asset, user, debt_to_cover, receive_a_token, wait=wait, gas=gas)


# ---- reads ----

def _eth_call(rpc: RpcClient, to: str, signature: str, args: tuple, returns: Sequence[str], block: str) -> tuple:
    from eth_abi import decode

    out = rpc.call("eth_call", {"to": to_address(to), "data": "0x" + encode_call(signature, *args).hex()}, block)
    return decode(list(returns), bytes.fromhex(out[2:]))


def _block(block: int | str) -> str:
    return hex(block) if isinstance(block, int) else block


def user_account_data(rpc: RpcClient, pool: str, user: str, block: int | str = "latest") -> tuple[int, ...]:
    """The chain's ``Pool.getUserAccountData(user)``: ``(total_collateral_base,
    total_debt_base, available_borrows_base, current_liquidation_threshold, ltv,
    health_factor)`` at ``block``."""
    return tuple(_eth_call(rpc, pool, "getUserAccountData(address)", (to_address(user),), ["uint256"] * 6,
                           _block(block)))


def reserve_data(rpc: RpcClient, pool: str, asset: str, block: int | str = "latest") -> ReserveState:
    """``Pool.getReserveData(asset)``'s indexes, rates and last update time at ``block``."""
    types = ["uint256", "uint128", "uint128", "uint128", "uint128", "uint128", "uint40", "uint16", "address",
             "address", "address", "address", "uint128", "uint128", "uint128"]
    (values,) = _eth_call(rpc, pool, "getReserveData(address)", (to_address(asset),), [f"({','.join(types)})"],
                          _block(block))
    return ReserveState(values[0], values[1], values[2], values[3], values[4], values[6])


def scaled_balances(rpc: RpcClient, reserve: AaveReserve, user: str, block: int | str = "latest") -> tuple[int, int]:
    """``(scaled aToken balance, scaled variable-debt balance)`` of ``user`` at ``block``."""
    (collateral,) = _eth_call(rpc, reserve.a_token, "scaledBalanceOf(address)", (to_address(user),), ["uint256"],
                              _block(block))
    (debt,) = _eth_call(rpc, reserve.variable_debt_token, "scaledBalanceOf(address)", (to_address(user),),
                        ["uint256"], _block(block))
    return collateral, debt
