"""``NodeExecutor``: carries a strategy's actions out on a real node -- signs
each ``SwapAction`` as a Router02 ``swapExactTokensForTokens`` and each
``LiquidationAction`` as an Aave v3 ``liquidationCall`` (EIP-1559),
sends it with ``eth_sendRawTransaction``, tracks the account's nonce, and
follows the receipt to the gas used and the realized profit.

Owns: one JSON-RPC connection to the node, one worker thread that makes every
blocking call (so sends keep their nonce order and the event loop never
blocks), the local next nonce, and the record of what it sent
(:class:`SentTransaction`).  Reads the :class:`~tallyio.engine.keys.Signer` it
is given (and never closes it: the caller owns it).  Implements the engine's
executor protocol: ``async execute(actions, ctx)``, ``async follow(result,
timeout)``.

Nonces: read once from ``eth_getTransactionCount(address, "pending")``, then
counted locally; re-read (a *resync*, counted in ``stats()`` and said in the
result's ``error``) when the node answers "nonce too low" or "replacement
transaction underpriced" (another transaction took the nonce: this one is
*not* resent, so nothing is ever sent twice), when the connection broke during
a send (the node may or may not have it: the pending count decides), and when
a followed transaction is no longer known to the node (dropped, e.g. by a
node restart, or replaced), and before a send when the connection to the node
broke and was re-opened since the nonce was read (a restarted node may have
dropped our pending transactions: counting on would leave a nonce gap the node
queues forever).

Gas pricing when the action leaves it open (``max_fee_per_gas`` is None): a
backrun copies its victim's fee caps (``maxFeePerGas`` and
``maxPriorityFeePerGas``; a legacy victim's ``gasPrice`` for both), so its
effective priority fee equals the victim's at every base fee and a builder
ordering by fee then arrival puts it right behind; a victim that is no longer
pending means a stale opportunity (REJECTED, not sent).  An action with no
victim (ARBITRAGE) pays the node's ``eth_maxPriorityFeePerGas`` plus
``priority_fee_bump`` over twice the base fee.

    >>> from tallyio.engine.node_executor import encode_swap_exact_tokens
    >>> encode_swap_exact_tokens(10, 11, [b"\\x0a" * 20, b"\\x0b" * 20], b"\\x01" * 20, 99)[:4].hex()
    '38ed1739'
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from typing import Any, Dict, NamedTuple, Optional, Sequence

from tallyio.engine.keys import Signer
from tallyio.engine.liquidation import FundingSwapAction
from tallyio.engine.records import Action, ExecutionResult, ExecutionStatus, LiquidationAction, SwapAction
from tallyio.engine.strategy import StrategyContext
from tallyio.errors import NodeConnectionError, RpcError
from tallyio.mempool._wsrpc import RpcClient

__all__ = ["NodeExecutor", "SentTransaction", "encode_swap_exact_tokens", "encode_liquidation_call",
           "encode_swap_eth_for_exact_tokens"]

log = logging.getLogger(__name__)

#: swapExactTokensForTokens(uint256,uint256,address[],address,uint256)
SWAP_EXACT_TOKENS_SELECTOR = bytes.fromhex("38ed1739")
#: balanceOf(address)
BALANCE_OF_SELECTOR = bytes.fromhex("70a08231")
#: Router02's WETH()
WETH_SELECTOR = bytes.fromhex("ad5c4648")
#: keccak256("Transfer(address,address,uint256)")
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _address_word(address: bytes) -> bytes:
    if not (isinstance(address, (bytes, bytearray)) and len(address) == 20):
        raise ValueError(f"an address is 20 bytes, got {address!r}")
    return bytes(12) + bytes(address)


def encode_swap_exact_tokens(amount_in: int, min_amount_out: int, path: Sequence[bytes], recipient: bytes,
                             deadline: int) -> bytes:
    """Calldata of Router02 ``swapExactTokensForTokens(amountIn, amountOutMin, path, to, deadline)``."""
    for name, value in (("amount_in", amount_in), ("min_amount_out", min_amount_out), ("deadline", deadline)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**256:
            raise ValueError(f"{name} must be an int in 0..2**256-1, got {value!r}")
    if len(path) < 2:
        raise ValueError(f"a swap path has at least 2 tokens, got {len(path)}")
    head = _word(amount_in) + _word(min_amount_out) + _word(5 * 32) + _address_word(recipient) + _word(deadline)
    tail = _word(len(path)) + b"".join(_address_word(t) for t in path)
    return SWAP_EXACT_TOKENS_SELECTOR + head + tail


#: swapETHForExactTokens(uint256,address[],address,uint256) (Router02)
SWAP_ETH_FOR_EXACT_TOKENS_SELECTOR = bytes.fromhex("fb3bdb41")
#: getAmountsIn(uint256,address[]) (Router02)
GET_AMOUNTS_IN_SELECTOR = bytes.fromhex("1f00ca74")
#: keccak256("Swap(address,uint256,uint256,uint256,uint256,address)") (UniswapV2Pair)
V2_SWAP_TOPIC = "0xd78ad95fa46c994b6551d0da85fc275fe613ce37657fb8d5e3d130840159d822"


def _path_words(path: Sequence[bytes]) -> bytes:
    return _word(len(path)) + b"".join(_address_word(t) for t in path)


def encode_swap_eth_for_exact_tokens(amount_out: int, path: Sequence[bytes], recipient: bytes, deadline: int) -> bytes:
    """Calldata of Router02 ``swapETHForExactTokens(amountOut, path, to, deadline)`` (the ETH goes as value).

        >>> encode_swap_eth_for_exact_tokens(10**6, [b"\\x0e" * 20, b"\\x0d" * 20], b"\\x01" * 20, 9)[:4].hex()
        'fb3bdb41'
    """
    for name, value in (("amount_out", amount_out), ("deadline", deadline)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**256:
            raise ValueError(f"{name} must be an int in 1..2**256-1, got {value!r}")
    if len(path) < 2:
        raise ValueError(f"a swap path has at least 2 tokens, got {len(path)}")
    return (SWAP_ETH_FOR_EXACT_TOKENS_SELECTOR + _word(amount_out) + _word(4 * 32) + _address_word(recipient)
            + _word(deadline) + _path_words(path))


#: liquidationCall(address,address,address,uint256,bool) (Aave v3 Pool)
LIQUIDATION_CALL_SELECTOR = bytes.fromhex("00a718a9")


def encode_liquidation_call(collateral_asset: bytes, debt_asset: bytes, user: bytes, debt_to_cover: int,
                            receive_a_token: bool = False) -> bytes:
    """Calldata of Aave v3 ``Pool.liquidationCall(collateral, debt, user, debtToCover, receiveAToken)``.

        >>> encode_liquidation_call(b"\\x0a" * 20, b"\\x0d" * 20, b"\\x55" * 20, 10**6)[:4].hex()
        '00a718a9'
    """
    if isinstance(debt_to_cover, bool) or not isinstance(debt_to_cover, int) or not 0 < debt_to_cover < 2**256:
        raise ValueError(f"debt_to_cover must be an int in 1..2**256-1, got {debt_to_cover!r}")
    return (LIQUIDATION_CALL_SELECTOR + _address_word(collateral_asset) + _address_word(debt_asset)
            + _address_word(user) + _word(debt_to_cover) + _word(1 if receive_a_token else 0))


class SentTransaction(NamedTuple):
    """What the executor knows of one transaction it sent (``NodeExecutor.sent``)."""

    tx_hash: bytes
    nonce: int
    start_token: bytes
    """the token whose balance change is the realized profit (the swap path's first; for a
    liquidation the collateral asset: its "realized profit" is the collateral received)."""
    expected_profit: Optional[int]
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    block_number: Optional[int] = None
    """the block it was mined in (None until followed to a receipt)."""
    transaction_index: Optional[int] = None
    status: Optional[int] = None
    """the receipt's status: 1 succeeded, 0 reverted."""
    gas_used: Optional[int] = None
    gas_cost_wei: Optional[int] = None
    """gasUsed x effectiveGasPrice: what the transaction cost in ETH (reported apart from profit)."""
    realized_profit: Optional[int] = None
    router: Optional[bytes] = None
    """the router the swap went to (its ``WETH()`` says whether the profit is in wei)."""
    funding: bool = False
    """a liquidation's funding swap: its cost (ETH into the pair) is reported apart, not as profit."""


def _swap_input(receipt: dict) -> int:
    """What a funding swap paid in (wei): the V2 pair's ``Swap`` log input (``amount0In +
    amount1In``; one of them is 0) -- the refund of the ETH sent beyond it never left.
    A reverted swap paid nothing."""
    paid = 0
    for entry in receipt.get("logs", ()):
        topics = entry.get("topics", ())
        if topics and topics[0] == V2_SWAP_TOPIC:
            data = bytes.fromhex(entry["data"][2:])
            paid += int.from_bytes(data[0:32], "big") + int.from_bytes(data[32:64], "big")
    return paid


def _hex_int(value: Any) -> int:
    return int(value, 16) if isinstance(value, str) else int(value)


class _Dropped(Exception):
    """A followed transaction the node no longer knows (internal)."""


class NodeExecutor:
    """Signs and sends actions to the node at ``rpc_url`` (``http://``/``https://``).

    ``gas_limit`` is used for actions that leave theirs open (a 2-3 hop V2 swap
    needs 110-200k); ``priority_fee_bump`` (wei) is added to the node's suggested
    priority fee for actions without a victim; ``deadline_margin`` (seconds) is
    added to the current time for actions without a deadline. ``stats()``
    counts sends, failures, outcomes and nonce resyncs.
    """

    def __init__(self, rpc_url: str, signer: Signer, *, chain_id: Optional[int] = None, gas_limit: int = 400_000,
                 priority_fee_bump: int = 0, deadline_margin: int = 300, rpc_timeout: float = 10.0,
                 poll_interval: float = 0.02):
        if not isinstance(signer, Signer):
            raise TypeError(f"signer must be a tallyio.engine.keys.Signer, got {type(signer).__name__}")
        for name, value, low in (("gas_limit", gas_limit, 21_000), ("priority_fee_bump", priority_fee_bump, 0),
                                 ("deadline_margin", deadline_margin, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if chain_id is not None and (isinstance(chain_id, bool) or not isinstance(chain_id, int) or chain_id <= 0):
            raise ValueError(f"chain_id must be a positive int or None (ask the node), got {chain_id!r}")
        if not poll_interval > 0:
            raise ValueError(f"poll_interval must be > 0 seconds, got {poll_interval!r}")
        self._rpc = RpcClient(rpc_url, timeout=rpc_timeout)
        self._signer = signer
        self.address: bytes = signer.address
        self._address_hex = "0x" + signer.address.hex()
        self.chain_id = chain_id
        self.gas_limit = gas_limit
        self.priority_fee_bump = priority_fee_bump
        self.deadline_margin = deadline_margin
        self.poll_interval = poll_interval
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tallyio-node-executor")
        self._lock = threading.Lock()
        self._next_nonce: Optional[int] = None
        self._broken_seen = 0     # the RpcClient's connections_broken when the nonce was last read
        self._weth_of: Dict[bytes, bytes] = {}    # router -> its WETH() (asked once, when a receipt is settled)
        self._sent: Dict[bytes, SentTransaction] = {}
        self._stats = dict(executions=0, sent=0, failed=0, rejected=0, landed=0, reverted=0, dropped=0,
                           nonce_resyncs=0)
        self._closed = False

    def __repr__(self) -> str:
        return f"NodeExecutor({self._rpc.url}, account={self._address_hex})"

    # ---- the executor protocol ----
    async def execute(self, actions: Sequence[Action], ctx: StrategyContext) -> ExecutionResult:
        """Sign and send ``actions`` in order (consecutive nonces). SENT when the
        node accepted every one; FAILED (with ``error``) at the first it refused;
        REJECTED when there was nothing to send or the victim is gone."""
        return await self._in_worker(self._execute, list(actions), ctx)

    async def follow(self, result: ExecutionResult, timeout: float) -> ExecutionResult:
        """Wait up to ``timeout`` seconds for the receipts of ``result``'s
        transactions. LANDED when all succeeded, REVERTED when one reverted
        (with ``gas_used``, ``gas_cost_wei``, ``realized_profit`` and, for a WETH
        cycle, ``realized_profit_net_of_gas`` filled in); FAILED when one
        was dropped or replaced (the nonce is resynced); ``result`` unchanged
        while they are still pending at the timeout."""
        if result.status is not ExecutionStatus.SENT or not result.tx_hashes:
            return result
        deadline = time.monotonic() + max(0.0, float(timeout))
        while True:
            outcome = await self._in_worker(self._try_settle, result, time.monotonic() >= deadline)
            if outcome is not None:
                return outcome
            await asyncio.sleep(self.poll_interval)

    def close(self) -> None:
        """Stop the worker thread and close the connection (the signer stays open:
        its owner closes it). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._worker.shutdown(wait=True)
        self._rpc.close()

    def __enter__(self) -> "NodeExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- introspection ----
    def stats(self) -> Dict[str, int]:
        """Counters: executions, sent, failed, rejected, landed, reverted, dropped, nonce_resyncs."""
        with self._lock:
            return dict(self._stats)

    def sent(self, tx_hash: bytes) -> Optional[SentTransaction]:
        """What the executor recorded of ``tx_hash`` (gas cost, block, index, profit), or None."""
        with self._lock:
            return self._sent.get(bytes(tx_hash))

    @property
    def next_nonce(self) -> Optional[int]:
        """The nonce the next transaction will use (None until read from the node)."""
        return self._next_nonce

    # ---- worker-thread side ----
    async def _in_worker(self, fn: Any, *args: Any) -> Any:
        if self._closed:
            raise RuntimeError("the NodeExecutor is closed")
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._stats[key] += n

    def _resync(self, why: str) -> str:
        old = self._next_nonce
        self._next_nonce = _hex_int(self._rpc.call("eth_getTransactionCount", self._address_hex, "pending"))
        self._count("nonce_resyncs")
        note = f"{why}; nonce resynced from the node: {old} -> {self._next_nonce}"
        log.info("node executor %s: %s", self._address_hex, note)
        return note

    def _resync_after_reconnect(self) -> None:
        """A connection that broke and was re-opened since the nonce was read may mean a
        node restart that dropped our pending transactions: counting on from the local
        nonce would leave a gap the node queues forever, so re-read the pending count."""
        if self._rpc.connections_broken != self._broken_seen:
            self._resync("the connection to the node broke and was re-opened (a restart drops pending "
                         "transactions)")
            self._broken_seen = self._rpc.connections_broken

    def _execute(self, actions: list, ctx: StrategyContext) -> ExecutionResult:
        self._count("executions")
        known = (SwapAction, LiquidationAction, FundingSwapAction)
        opportunity = next((a.opportunity for a in actions if isinstance(a, known)), None)
        expected = sum(a.opportunity.profit for a in actions
                       if isinstance(a, known[:2]) and a.opportunity)
        expected_profit = expected if opportunity is not None else None
        if not actions:
            self._count("rejected")
            return ExecutionResult.rejected("no actions to execute")
        for action in actions:
            if not isinstance(action, known):
                self._count("rejected")
                return ExecutionResult.rejected(f"the node executor cannot carry out {type(action).__name__}",
                                                opportunity)
        try:
            if self.chain_id is None:
                self.chain_id = _hex_int(self._rpc.call("eth_chainId"))
            if self._next_nonce is None:
                self._next_nonce = _hex_int(self._rpc.call("eth_getTransactionCount", self._address_hex, "pending"))
                self._broken_seen = self._rpc.connections_broken
        except (RpcError, NodeConnectionError) as exc:
            self._count("failed")
            return ExecutionResult(ExecutionStatus.FAILED, error=f"node unreachable before sending: {exc}",
                                   expected_profit=expected_profit, opportunity=opportunity)
        hashes: list = []
        latency = 0
        for action in actions:
            try:
                fees = self._price(action, ctx)
                self._resync_after_reconnect()
            except (RpcError, NodeConnectionError) as exc:
                self._count("failed")
                return ExecutionResult(ExecutionStatus.FAILED, tuple(hashes), error=f"pricing failed: {exc}",
                                       expected_profit=expected_profit, opportunity=opportunity)
            if isinstance(fees, str):  # the victim is gone: the opportunity is stale
                self._count("rejected")
                return ExecutionResult(ExecutionStatus.REJECTED, tuple(hashes), error=fees,
                                       expected_profit=expected_profit, opportunity=opportunity)
            outcome = self._send_one(action, fees)
            if isinstance(outcome, str):
                self._count("failed")
                return ExecutionResult(ExecutionStatus.FAILED, tuple(hashes), error=outcome,
                                       expected_profit=expected_profit, opportunity=opportunity)
            hashes.append(outcome)
            if action.opportunity is not None and action.opportunity.received_ns:
                latency = time.monotonic_ns() - action.opportunity.received_ns
        return ExecutionResult(ExecutionStatus.SENT, tuple(hashes), expected_profit=expected_profit,
                               latency_ns=max(0, latency), opportunity=opportunity)

    def _price(self, action: Action, ctx: StrategyContext) -> tuple[int, int] | str:
        """(maxFeePerGas, maxPriorityFeePerGas) for ``action``, or why it must not be sent."""
        if action.max_fee_per_gas is not None:
            priority = action.max_priority_fee_per_gas
            return action.max_fee_per_gas, (action.max_fee_per_gas if priority is None else priority)
        op = action.opportunity
        if op is not None and op.trigger_tx:
            victim = self._rpc.call("eth_getTransactionByHash", "0x" + op.trigger_tx.hex())
            if victim is None:
                return f"stale: the trigger transaction 0x{op.trigger_tx.hex()} is no longer known to the node"
            if victim.get("blockNumber") is not None:
                return f"stale: the trigger transaction 0x{op.trigger_tx.hex()} is already mined"
            if victim.get("maxFeePerGas") is not None:
                return _hex_int(victim["maxFeePerGas"]), _hex_int(victim["maxPriorityFeePerGas"])
            price = _hex_int(victim["gasPrice"])
            return price, price
        base_fee = ctx.base_fee_per_gas
        if not base_fee:
            block = self._rpc.call("eth_getBlockByNumber", "latest", False)
            base_fee = _hex_int(block.get("baseFeePerGas") or 0)
        priority = _hex_int(self._rpc.call("eth_maxPriorityFeePerGas")) + self.priority_fee_bump
        return 2 * base_fee + priority, priority

    def _send_one(self, action: Action, fees: tuple[int, int]) -> bytes | str:
        """Sign and send one swap or liquidation; its hash, or why it was not sent."""
        max_fee, priority = fees
        value = 0
        if isinstance(action, FundingSwapAction):
            value = action.max_amount_in
            if value is None:       # exactly what the pair asks now (a moved pair: refund or revert)
                out = self._rpc.call("eth_call", {"to": "0x" + bytes(action.router).hex(), "data": "0x" + (
                    GET_AMOUNTS_IN_SELECTOR + _word(action.amount_out) + _word(64) + _path_words(action.path)).hex()},
                    "latest")
                value = int(out[2 + 64 * 2: 2 + 64 * 3], 16)      # amounts[0] of (offset, length, amounts...)
            deadline = action.deadline
            if deadline is None:    # the chain's clock, not ours: a dev chain may run ahead of the wall clock
                latest = self._rpc.call("eth_getBlockByNumber", "latest", False)
                deadline = max(int(time.time()), _hex_int(latest["timestamp"])) + self.deadline_margin
            data = encode_swap_eth_for_exact_tokens(action.amount_out, action.path, self.address, deadline)
            to, start_token, router = action.router, action.path[0], None
        elif isinstance(action, LiquidationAction):
            data = encode_liquidation_call(action.collateral_asset, action.debt_asset, action.user,
                                           action.debt_to_cover, action.receive_a_token)
            # no router: its profit is in the collateral token, never netted against gas in wei here
            to, start_token, router = action.pool, action.collateral_asset, None
        else:
            deadline = action.deadline if action.deadline is not None else int(time.time()) + self.deadline_margin
            data = encode_swap_exact_tokens(action.amount_in, action.min_amount_out, action.path, self.address,
                                            deadline)
            to, start_token = action.router, action.path[0]
            router = bytes(action.router)
        nonce = self._next_nonce
        assert nonce is not None
        tx = {"type": 2, "chainId": self.chain_id, "nonce": nonce, "maxFeePerGas": max_fee,
              "maxPriorityFeePerGas": min(priority, max_fee), "gas": action.gas_limit or self.gas_limit,
              "to": to, "value": value, "data": data}
        raw, tx_hash = self._signer.sign_transaction(tx)
        try:
            self._rpc.call("eth_sendRawTransaction", "0x" + raw.hex())
        except RpcError as exc:
            message = (exc.node_message or "").lower()
            if "already known" in message:  # this very transaction is in the node's pool: it was sent
                log.debug("node executor: 0x%s already known to the node", tx_hash.hex())
            elif "nonce too low" in message or "underpriced" in message or "nonce" in message and "low" in message:
                return self._resync(f"node refused nonce {nonce} ({exc.node_message}); the action was not resent")
            else:
                return f"node refused the transaction: {exc}"  # nonce not consumed: reused next time
        except NodeConnectionError as exc:
            # the node may or may not have it: the pending count will say which
            self._next_nonce = None
            self._count("nonce_resyncs")
            return f"connection lost while sending nonce {nonce} ({exc}); the nonce will be re-read from the node"
        self._next_nonce = nonce + 1
        record = SentTransaction(tx_hash, nonce, bytes(start_token),
                                 action.opportunity.profit if action.opportunity is not None else None,
                                 max_fee, tx["maxPriorityFeePerGas"], router=router,
                                 funding=isinstance(action, FundingSwapAction))
        with self._lock:
            self._sent[tx_hash] = record
            self._stats["sent"] += 1
        log.debug("node executor: sent 0x%s nonce %d to 0x%s, max fee %d, priority %d", tx_hash.hex(), nonce,
                  bytes(to).hex(), max_fee, tx["maxPriorityFeePerGas"])
        return tx_hash

    def _try_settle(self, result: ExecutionResult, last_try: bool) -> Optional[ExecutionResult]:
        receipts = []
        for tx_hash in result.tx_hashes:
            receipt = self._rpc.call("eth_getTransactionReceipt", "0x" + tx_hash.hex())
            if receipt is None:
                if not last_try:
                    return None
                known = self._rpc.call("eth_getTransactionByHash", "0x" + tx_hash.hex())
                if known is not None:
                    return result  # still pending at the timeout: unchanged
                self._count("dropped")
                note = self._resync(f"transaction 0x{tx_hash.hex()} was dropped or replaced (not known to the node)")
                return result._replace(status=ExecutionStatus.FAILED, error=note)
            receipts.append((tx_hash, receipt))
        gas_used, gas_cost, profit, reverted, in_wei = 0, 0, 0, False, True
        funding_cost: Optional[int] = None
        for tx_hash, receipt in receipts:
            record = self._settle_one(tx_hash, receipt)
            gas_used += record.gas_used or 0
            gas_cost += record.gas_cost_wei or 0
            reverted |= record.status != 1
            if record.funding:
                funding_cost = (funding_cost or 0) + (record.realized_profit or 0)
                continue
            profit = None if profit is None or record.realized_profit is None else profit + record.realized_profit
            in_wei = in_wei and self._is_weth(record)
        self._count("reverted" if reverted else "landed")
        net = profit - gas_cost if profit is not None and in_wei else None
        return result._replace(status=ExecutionStatus.REVERTED if reverted else ExecutionStatus.LANDED,
                               gas_used=gas_used, realized_profit=profit, gas_cost_wei=gas_cost,
                               realized_profit_net_of_gas=net, funding_cost_wei=funding_cost)

    def _is_weth(self, record: SentTransaction) -> bool:
        """Whether ``record``'s start token is its router's WETH (profit and gas both in wei)."""
        if record.router is None:
            return False
        weth = self._weth_of.get(record.router)
        if weth is None:
            try:
                out = self._rpc.call("eth_call", {"to": "0x" + record.router.hex(), "data": "0x" + WETH_SELECTOR.hex()},
                                     "latest")
            except RpcError:               # not a Router02 (no WETH()): the profit's unit is unknown
                return False
            weth = self._weth_of[record.router] = bytes.fromhex(out[2:])[-20:]
        return weth == record.start_token

    def _settle_one(self, tx_hash: bytes, receipt: dict) -> SentTransaction:
        with self._lock:
            record = self._sent.get(tx_hash)
        if record is None:
            raise ValueError(f"0x{tx_hash.hex()} was not sent by this executor")
        if record.block_number is not None:
            return record
        block = _hex_int(receipt["blockNumber"])
        gas_used = _hex_int(receipt["gasUsed"])
        price = _hex_int(receipt.get("effectiveGasPrice") or record.max_fee_per_gas)
        record = record._replace(block_number=block, transaction_index=_hex_int(receipt["transactionIndex"]),
                                 status=_hex_int(receipt["status"]), gas_used=gas_used, gas_cost_wei=gas_used * price,
                                 realized_profit=self._realized_profit(record, receipt, block))
        with self._lock:
            self._sent[tx_hash] = record
        log.debug("node executor: 0x%s mined in block %d at index %d, status %d, gas %d, profit %s", tx_hash.hex(),
                  block, record.transaction_index, record.status, gas_used, record.realized_profit)
        return record

    def _balance(self, token: bytes, block: int) -> int:
        out = self._rpc.call("eth_call", {"to": "0x" + token.hex(),
                                          "data": "0x" + (BALANCE_OF_SELECTOR + _address_word(self.address)).hex()},
                             hex(block))
        return int(out, 16)

    def _realized_profit(self, record: SentTransaction, receipt: dict, block: int) -> int:
        if record.funding:
            return _swap_input(receipt)
        return self._balance_change(record, receipt, block)

    def _balance_change(self, record: SentTransaction, receipt: dict, block: int) -> int:
        """The start token's balance change of the account over ``block`` (balanceOf at
        the block before and at ``block``) when this is the account's only
        transaction in that block; otherwise (several of ours share the block) the
        net of the start token's Transfer logs to and from the account in this
        transaction's receipt, which separates them."""
        mined = self._rpc.call("eth_getBlockByNumber", hex(block), False)
        ours = 0
        for h in mined.get("transactions", ()):
            h = h if isinstance(h, str) else h.get("hash")
            with self._lock:
                ours += bytes.fromhex(h[2:]) in self._sent
        if ours <= 1:
            return self._balance(record.start_token, block) - self._balance(record.start_token, block - 1)
        me = "0x" + self._address_word_hex()
        token = "0x" + record.start_token.hex()
        net = 0
        for entry in receipt.get("logs", ()):
            topics = entry.get("topics", ())
            if entry.get("address", "").lower() != token or len(topics) != 3 or topics[0] != TRANSFER_TOPIC:
                continue
            amount = int(entry["data"], 16)
            net += amount if topics[2].lower() == me else 0
            net -= amount if topics[1].lower() == me else 0
        return net

    def _address_word_hex(self) -> str:
        return _address_word(self.address).hex()
