"""Deploy the real Uniswap contracts from their published npm artifacts on a
dev chain, and the helpers that trade on them.

Owns: :func:`deploy_uniswap` (WETH9, two ERC20 test tokens, two Uniswap V2
"exchanges" (factory + Router02 each) with pairs at different prices, one
Uniswap V3 factory + NonfungiblePositionManager + SwapRouter with a pool holding
liquidity), :class:`UniswapDeployment`, swap builders for V2 and V3 routers,
``getReserves``, mining switches. Sends transactions only through a
:class:`~tallyio.devnet.Sender`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from tallyio.devnet._accounts import DevAccount, Sender, dev_accounts, encode_call, to_address
from tallyio.devnet._anvil import chain_dir as _chain_dir
from tallyio.errors import DevnetError
from tallyio.mempool._wsrpc import RpcClient
from tallyio.mempool._wstx import keccak256

__all__ = ["load_artifact", "deploy_uniswap", "UniswapDeployment", "V2Exchange", "v2_pair_address",
           "get_reserves", "mine", "set_automine", "fund_trader", "swap_v2", "swap_v3", "DEADLINE"]

#: a deadline no dev chain reaches (routers check `deadline >= block.timestamp`)
DEADLINE = 2**64
MAX_UINT = 2**256 - 1
#: the init-code hash UniswapV2Library.pairFor has hard-coded in Router02
ROUTER02_PAIR_INIT_CODE_HASH = bytes.fromhex("96e8ac4277198ff8b6f785478aa9a39f403cb768dd02cbee326c3e7da348845f")
V3_FEE = 3000
V3_TICK_SPACING = 60


def load_artifact(package: str, name: str, chain: str | os.PathLike | None = None) -> dict:
    """A published artifact (``abi`` and creation ``bytecode``) by npm package and
    contract name, from the chain folder (``chain`` or ``TALLYIO_CHAIN_DIR``)."""
    base = _chain_dir(chain) / "node_modules" / package
    hits = [p for p in base.rglob(f"{name}.json")
            if "/interfaces/" not in p.as_posix() and not p.name.endswith(".dbg.json")]
    if not hits:
        raise DevnetError(f"no artifact {name}.json under {base}")
    hits.sort(key=lambda p: len(p.parts))
    return json.loads(hits[0].read_text())


def _bytecode(artifact: dict, name: str) -> bytes:
    code = artifact.get("bytecode")
    if isinstance(code, dict):
        code = code.get("object")
    if not isinstance(code, str) or not code.strip("0x"):
        raise DevnetError(f"artifact {name} has no creation bytecode")
    return bytes.fromhex(code[2:] if code.startswith("0x") else code)


@dataclass
class V2Exchange:
    """One Uniswap V2 deployment (a factory and its Router02) and its pairs."""

    name: str
    factory: str
    router: str
    #: (token_x, token_y) -> pair address, both orders present
    pairs: dict[tuple[str, str], str] = field(default_factory=dict)

    def pair(self, token_x: str, token_y: str) -> str:
        return self.pairs[(to_address(token_x), to_address(token_y))]


@dataclass
class UniswapDeployment:
    """Every address :func:`deploy_uniswap` created (lowercase ``0x`` hex)."""

    deployer: str
    weth: str
    tokens: tuple[str, ...]
    v2: tuple[V2Exchange, ...]
    v3_factory: str
    v3_position_manager: str
    v3_router: str
    #: (token_x, token_y) -> V3 pool (fee 0.3 %), both orders present
    v3_pools: dict[tuple[str, str], str] = field(default_factory=dict)

    def all_v2_pairs(self) -> list[str]:
        """Every V2 pair address, each once."""
        return sorted({p for ex in self.v2 for p in ex.pairs.values()})


def v2_pair_address(factory: str, token_x: str, token_y: str,
                    init_code_hash: bytes = ROUTER02_PAIR_INIT_CODE_HASH) -> str:
    """The CREATE2 address Router02's ``pairFor`` computes for a pair."""
    a, b = sorted((to_address(token_x), to_address(token_y)))
    salt = keccak256(bytes.fromhex(a[2:]) + bytes.fromhex(b[2:]))
    return "0x" + keccak256(b"\xff" + bytes.fromhex(to_address(factory)[2:]) + salt + init_code_hash)[12:].hex()


def _deploy(sender: Sender, account: DevAccount, artifact: dict, name: str, ctor: str = "", *args: Any) -> str:
    from eth_abi import encode

    code = _bytecode(artifact, name)
    if ctor:
        code += encode([t for t in ctor.split(",")], list(args))
    tx_hash = sender.send(account, None, code)
    receipt = sender.receipt(tx_hash)
    address = receipt.get("contractAddress")
    if not address:
        raise DevnetError(f"deploying {name} created no contract")
    return to_address(address)


def mine(rpc: RpcClient, blocks: int = 1) -> None:
    """Mine ``blocks`` blocks now (``evm_mine``), with whatever is pending."""
    for _ in range(blocks):
        rpc.call("evm_mine")


def set_automine(rpc: RpcClient, enabled: bool) -> None:
    """Turn anvil's automine on (a block per transaction) or off (transactions wait)."""
    rpc.call("evm_setAutomine", bool(enabled))


def get_reserves(rpc: RpcClient, pair: str, block: str = "latest") -> tuple[int, int]:
    """A V2 pair's ``(reserve0, reserve1)`` from ``getReserves()``."""
    out = rpc.call("eth_call", {"to": to_address(pair), "data": "0x0902f1ac"}, block)
    raw = bytes.fromhex(out[2:])
    if len(raw) != 96:
        raise DevnetError(f"getReserves() of {pair} returned {len(raw)} bytes, expected 96 (not a V2 pair?)")
    return int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big")


def deploy_uniswap(rpc: RpcClient, *, chain: str | os.PathLike | None = None, deployer: DevAccount | None = None,
                   sender: Sender | None = None, liquidity: int = 1_000 * 10**18,
                   price_gap_bps: int = 300) -> UniswapDeployment:
    """Deploy the published Uniswap contracts and seed liquidity.

    Two V2 exchanges ("A", "B") each get pairs token0/WETH, token1/WETH and
    token0/token1; exchange B's token0/WETH price differs from A's by
    ``price_gap_bps`` (so an arbitrage exists between them). Router02's
    hard-coded pair hash is proven by adding liquidity through each router
    (its ``pairFor`` must find the pair the factory created) and checked
    against ``getPair``. A V3 pool token0/WETH (0.3 %) is created, initialized
    at price 1 and given full-range liquidity through the position manager.
    Automine is on while deploying and restored afterwards.
    """
    sender = sender or Sender(rpc)
    deployer = deployer or dev_accounts(1)[0]
    automine_before = bool(rpc.call("anvil_getAutomine"))
    set_automine(rpc, True)
    try:
        return _deploy_all(rpc, sender, deployer, chain, liquidity, price_gap_bps)
    finally:
        set_automine(rpc, automine_before)


def _deploy_all(rpc: RpcClient, sender: Sender, me: DevAccount, chain: Any, liquidity: int,
                price_gap_bps: int) -> UniswapDeployment:
    art = lambda pkg, name: load_artifact(pkg, name, chain)  # noqa: E731
    send = lambda to, sig, *args, value=0: sender.send(me, to, encode_call(sig, *args), value=value,  # noqa: E731
                                                         wait=True)
    weth = _deploy(sender, me, art("@uniswap/v2-periphery", "WETH9"), "WETH9")
    erc20 = art("@uniswap/v2-periphery", "ERC20")
    supply = 10**9 * 10**18
    tokens = tuple(_deploy(sender, me, erc20, "ERC20", "uint256", supply) for _ in range(2))
    send(weth, "deposit()", value=40 * liquidity)

    factory_art = art("@uniswap/v2-core", "UniswapV2Factory")
    router_art = art("@uniswap/v2-periphery", "UniswapV2Router02")
    exchanges = []
    for index, name in enumerate(("A", "B")):
        factory = _deploy(sender, me, factory_art, "UniswapV2Factory", "address", me.address)
        router = _deploy(sender, me, router_art, "UniswapV2Router02", "address,address", factory, weth)
        for token in tokens + (weth,):
            send(token, "approve(address,uint256)", router, MAX_UINT)
        ex = V2Exchange(name, factory, router)
        gap = price_gap_bps if index == 1 else 0
        seeds = [(tokens[0], weth, liquidity * (10_000 + gap) // 10_000, liquidity),
                 (tokens[1], weth, 2 * liquidity, liquidity),
                 (tokens[0], tokens[1], liquidity, 2 * liquidity)]
        for x, y, amount_x, amount_y in seeds:
            # through the router: its pairFor (hard-coded init-code hash) must find the pair
            send(router, "addLiquidity(address,address,uint256,uint256,uint256,uint256,address,uint256)",
                 x, y, amount_x, amount_y, 0, 0, me.address, DEADLINE)
            (pair,) = sender.call(factory, "getPair(address,address)", x, y, returns=["address"])
            pair = to_address(pair)
            if pair != v2_pair_address(factory, x, y):
                raise DevnetError(f"exchange {name}: factory pair {pair} differs from Router02's pairFor "
                                  f"{v2_pair_address(factory, x, y)} (init-code hash mismatch)")
            ex.pairs[(x, y)] = ex.pairs[(y, x)] = pair
        exchanges.append(ex)

    v3_factory = _deploy(sender, me, art("@uniswap/v3-core", "UniswapV3Factory"), "UniswapV3Factory")
    npm = _deploy(sender, me, art("@uniswap/v3-periphery", "NonfungiblePositionManager"),
                  "NonfungiblePositionManager", "address,address,address", v3_factory, weth, "0x" + "00" * 20)
    v3_router = _deploy(sender, me, art("@uniswap/v3-periphery", "SwapRouter"), "SwapRouter", "address,address",
                        v3_factory, weth)
    t0, t1 = sorted((tokens[0], weth))
    send(npm, "createAndInitializePoolIfNecessary(address,address,uint24,uint160)", t0, t1, V3_FEE, 2**96)
    for token in (t0, t1):
        send(token, "approve(address,uint256)", npm, MAX_UINT)
    top = 887272 // V3_TICK_SPACING * V3_TICK_SPACING
    send(npm, "mint((address,address,uint24,int24,int24,uint256,uint256,uint256,uint256,address,uint256))",
         (t0, t1, V3_FEE, -top, top, liquidity, liquidity, 0, 0, me.address, DEADLINE))
    (pool,) = sender.call(v3_factory, "getPool(address,address,uint24)", t0, t1, V3_FEE, returns=["address"])
    pool = to_address(pool)
    return UniswapDeployment(me.address, weth, tokens, tuple(exchanges), v3_factory, npm, v3_router,
                             {(t0, t1): pool, (t1, t0): pool})


def fund_trader(rpc: RpcClient, deployment: UniswapDeployment, trader: DevAccount, *, sender: Sender,
                deployer: DevAccount | None = None, amount: int = 1_000 * 10**18) -> None:
    """Give ``trader`` ``amount`` of each test token and WETH and approve every
    router for them (mined at once; automine is restored)."""
    me = deployer or dev_accounts(1)[0]
    automine_before = bool(rpc.call("anvil_getAutomine"))
    set_automine(rpc, True)
    try:
        for token in deployment.tokens + (deployment.weth,):
            sender.send(me, token, encode_call("transfer(address,uint256)", trader.address, amount), wait=True)
            for router in [ex.router for ex in deployment.v2] + [deployment.v3_router]:
                sender.send(trader, token, encode_call("approve(address,uint256)", router, MAX_UINT), wait=True)
    finally:
        set_automine(rpc, automine_before)


def swap_v2(sender: Sender, trader: DevAccount, router: str, amount_in: int, path: list[str], *,
            gas: int = 250_000, sign_only: bool = False) -> bytes | tuple[bytes, bytes]:
    """``swapExactTokensForTokens(amount_in, 0, path, trader, DEADLINE)`` through
    ``router``: sent (returns the hash) or, with ``sign_only``, ``(raw, hash)``."""
    data = encode_call("swapExactTokensForTokens(uint256,uint256,address[],address,uint256)",
                       amount_in, 0, [to_address(t) for t in path], trader.address, DEADLINE)
    if sign_only:
        return sender.sign(trader, router, data, gas=gas)
    return sender.send(trader, router, data, gas=gas)


def swap_v3(sender: Sender, trader: DevAccount, router: str, token_in: str, token_out: str, amount_in: int, *,
            fee: int = V3_FEE, gas: int = 400_000, sign_only: bool = False) -> bytes | tuple[bytes, bytes]:
    """SwapRouter ``exactInputSingle`` of ``amount_in`` (no price limit, no minimum out)."""
    data = encode_call("exactInputSingle((address,address,uint24,address,uint256,uint256,uint256,uint160))",
                       (to_address(token_in), to_address(token_out), fee, trader.address, DEADLINE,
                        amount_in, 0, 0))
    if sign_only:
        return sender.sign(trader, router, data, gas=gas)
    return sender.send(trader, router, data, gas=gas)
