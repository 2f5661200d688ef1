"""tallyio.mempool.NodeSource against a real anvil running the real Uniswap
contracts (websocket full transactions, websocket hashes + fetch, HTTP filter
polling; kill and restart mid-stream), and against a tiny fake websocket server
for the faults anvil cannot produce (malformed frames, lying hashes, silence)."""
import json
import threading
import time

import pytest

from tallyio.eth.types import BlockHeader, PendingTx, SyncEvent
from tallyio.mempool import NodeSource
from tallyio.mempool._wstx import keccak256
from tallyio.mempool.node import RESYNC_LOG_INDEX

pytestmark = pytest.mark.timeout(180)


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


class Collector:
    """The sink: keeps every record, in order (list.append is atomic under the GIL)."""

    def __init__(self):
        self.records = []

    def __call__(self, record):
        self.records.append(record)

    def of(self, cls):
        return [r for r in self.records if type(r) is cls]

    def tx_hashes(self):
        return [r.hash for r in self.of(PendingTx)]


def send_swaps(sender, uniswap, traders, count, *, salt=0):
    """`count` swaps from the traders, alternating V2 router A, V2 router B and
    the V3 router; returns {hash: (raw, trader, router)}."""
    from tallyio.devnet import swap_v2, swap_v3

    sent = {}
    for i in range(count):
        trader = traders[i % len(traders)]
        amount = 10**16 + i + salt * 1000
        kind = i % 3
        if kind < 2:
            router = uniswap.v2[kind].router
            raw, tx_hash = swap_v2(sender, trader, router, amount, [uniswap.tokens[0], uniswap.weth], sign_only=True)
        else:
            router = uniswap.v3_router
            raw, tx_hash = swap_v3(sender, trader, router, uniswap.tokens[0], uniswap.weth, amount, sign_only=True)
        assert sender.send_raw(raw) == tx_hash
        sent[tx_hash] = (raw, trader, router)
    return sent


def assert_delivered_once(collector, sent):
    hashes = collector.tx_hashes()
    assert len(hashes) == len(set(hashes)), "a transaction was delivered twice"
    by_hash = {tx.hash: tx for tx in collector.of(PendingTx)}
    for tx_hash, (raw, trader, router) in sent.items():
        tx = by_hash[tx_hash]
        assert tx.raw == raw and keccak256(tx.raw) == tx_hash
        assert tx.sender.hex() == trader.address[2:] and tx.to.hex() == router[2:]
        assert tx.tx_type == 2 and tx.value == 0 and tx.gas in (250_000, 400_000)
        assert tx.max_fee_per_gas == 100 * 10**9 and tx.max_priority_fee_per_gas == 10**9
        assert tx.input[:4].hex() in ("38ed1739", "414bf389")  # swapExactTokensForTokens, exactInputSingle
        assert tx.received_ns > 0


def check_blocks_and_syncs(node, collector, pools, first_sync_index):
    """After evm_mine: a header equal to the node's block, and for each pool the
    last Sync equal to getReserves."""
    from tallyio.devnet import get_reserves, mine

    mine(node.rpc)
    number = int(node.rpc.call("eth_blockNumber"), 16)
    wait_for(lambda: any(h.number == number for h in collector.of(BlockHeader)), what="newHeads of the mined block")
    block = node.rpc.call("eth_getBlockByNumber", hex(number), False)
    header = [h for h in collector.of(BlockHeader) if h.number == number][0]
    assert header.hash.hex() == block["hash"][2:] and header.parent_hash.hex() == block["parentHash"][2:]
    assert header.base_fee_per_gas == int(block["baseFeePerGas"], 16)
    assert header.gas_used == int(block["gasUsed"], 16) > 0
    touched = {p for p in pools}
    def synced():
        seen = {"0x" + e.pool.hex() for e in collector.records[first_sync_index:]
                if type(e) is SyncEvent and e.block_number == number}
        return touched <= seen
    wait_for(synced, what="Sync logs of every touched pool")
    for pool in pools:
        last = [e for e in collector.of(SyncEvent) if "0x" + e.pool.hex() == pool][-1]
        assert (last.reserve0, last.reserve1) == get_reserves(node.rpc, pool)
        assert last.block_number == number and last.log_index != RESYNC_LOG_INDEX


def traded_v2_pools(uniswap):
    return sorted({ex.pair(uniswap.tokens[0], uniswap.weth) for ex in uniswap.v2})


@pytest.mark.parametrize("mode", ["full", "hashes", "http"])
def test_delivers_each_swap_once_with_its_fields_then_heads_and_syncs(anvil_node, chain_sender, uniswap, traders,
                                                                      mode):
    from tallyio.devnet import get_reserves

    pools = uniswap.all_v2_pairs()
    collector = Collector()
    url = anvil_node.url if mode == "http" else anvil_node.ws_url
    with NodeSource(url, collector, pools=pools, full_transactions={"full": True, "hashes": False}.get(mode),
                    poll_interval=0.01) as source:
        assert source.wait_connected(30)
        # the first resync reads every pool's reserves
        resynced = [e for e in collector.of(SyncEvent) if e.log_index == RESYNC_LOG_INDEX]
        assert {"0x" + e.pool.hex() for e in resynced} == set(pools)
        for e in resynced:
            assert (e.reserve0, e.reserve1) == get_reserves(anvil_node.rpc, "0x" + e.pool.hex())
        first_sync = len(collector.records)
        sent = send_swaps(chain_sender, uniswap, traders, 30, salt=len(mode))
        wait_for(lambda: set(sent) <= set(collector.tx_hashes()), what="every swap")
        assert_delivered_once(collector, sent)
        check_blocks_and_syncs(anvil_node, collector, traded_v2_pools(uniswap), first_sync)
        stats = source.stats()
    assert stats["pending_mode"] == mode.replace("http", "filter")
    assert stats["txs"] == len(collector.of(PendingTx)) and stats["skipped"] == 0 and stats["sink_errors"] == 0
    if mode != "full":
        assert stats["fetched"] >= len(sent)


def test_set_pools_resubscribes_and_reads_reserves(anvil_node, chain_sender, uniswap, traders):
    from tallyio.devnet import get_reserves

    collector = Collector()
    pool = uniswap.v2[1].pair(uniswap.tokens[0], uniswap.weth)
    with NodeSource(anvil_node.ws_url, collector, pending=False) as source:
        assert source.wait_connected(30)
        assert not collector.of(SyncEvent)
        source.set_pools([pool])
        wait_for(lambda: collector.of(SyncEvent), what="the resync of the new pool")
        event = collector.of(SyncEvent)[0]
        assert event.log_index == RESYNC_LOG_INDEX and event.transaction_hash == bytes(32)
        assert (event.reserve0, event.reserve1) == get_reserves(anvil_node.rpc, pool)
        first = len(collector.records)
        send_swaps(chain_sender, uniswap, traders, 2)  # router A then router B
        check_blocks_and_syncs(anvil_node, collector, [pool], first)
        # only the followed pool's logs arrive
        assert {"0x" + e.pool.hex() for e in collector.of(SyncEvent)} == {pool}


@pytest.mark.parametrize("transport", ["ws", "http"])
def test_survives_kill_and_restart_mid_stream(anvil_node, chain_sender, uniswap, traders, transport):
    from tallyio.devnet import mine

    pools = uniswap.all_v2_pairs()
    collector = Collector()
    url = anvil_node.ws_url if transport == "ws" else anvil_node.url
    salt = 7 if transport == "ws" else 17
    # a long first backoff so the swaps sent right after the restart land while the
    # source is away: they can only come back through the resync (txpool_content).
    # Over HTTP the source notices on its next poll (connection refused, or its
    # filters unknown to the new node).
    with NodeSource(url, collector, pools=pools, backoff_initial=5.0, backoff_max=10.0,
                    poll_interval=0.01) as source:
        assert source.wait_connected(30)
        mine(anvil_node.rpc)  # a head seen before the kill, so heads missed while away can be counted
        head = int(anvil_node.rpc.call("eth_blockNumber"), 16)
        wait_for(lambda: any(h.number == head for h in collector.of(BlockHeader)), what="the head before the kill")
        before = send_swaps(chain_sender, uniswap, traders, 6, salt=salt)
        wait_for(lambda: set(before) <= set(collector.tx_hashes()), what="the swaps before the kill")
        state = anvil_node.dump_state()
        anvil_node.kill()  # SIGKILL: the socket dies without a close frame
        wait_for(lambda: not source.connected.is_set(), what="the source to notice the node is gone")
        anvil_node.restart(state=state)  # same port, same chain, empty mempool
        mine(anvil_node.rpc, 3)           # three blocks the source never hears of
        chain_sender.forget_nonces()
        during = send_swaps(chain_sender, uniswap, traders, 6, salt=salt + 1)
        wait_for(lambda: source.stats()["reconnects"] >= 1 and source.connected.is_set(), what="the reconnect")
        wait_for(lambda: set(during) <= set(collector.tx_hashes()), what="the swaps sent while away")
        after = send_swaps(chain_sender, uniswap, traders, 6, salt=salt + 2)
        wait_for(lambda: set(after) <= set(collector.tx_hashes()), what="the swaps after the reconnect")
        stats = source.stats()
        first = len(collector.records)
        check_blocks_and_syncs(anvil_node, collector, traded_v2_pools(uniswap), first)
    assert_delivered_once(collector, {**before, **during, **after})
    assert stats["reconnects"] >= 1 and stats["gaps"] >= 1
    assert source.stats()["gap_blocks"] >= 3  # counted at the first head after the reconnect
    assert stats["resynced_txs"] >= 1, stats  # at least some of `during` came back through txpool_content
    assert stats["resynced_pools"] >= 2 * len(pools)  # at the first connect and again after the reconnect


# ---- faults anvil cannot produce: a fake websocket node on loopback ----
# (a mock only because a real node never sends malformed JSON, lies about a
# hash or goes silent on purpose; the records themselves are really signed)

def _signed_tx_json(nonce=5):
    """A real signed type-2 transaction as a node's JSON object, and its raw encoding."""
    pytest.importorskip("eth_account")
    import rlp
    from eth_utils import to_checksum_address

    from tallyio.devnet import dev_accounts

    account = dev_accounts(2)[1]
    to = "0x" + "ab" * 20
    tx = {"type": 2, "chainId": 31337, "nonce": nonce, "to": to_checksum_address(to), "value": 12345, "gas": 21000,
          "maxFeePerGas": 3 * 10**9, "maxPriorityFeePerGas": 10**9, "data": b"\x01\x02"}
    raw, tx_hash = account.sign(tx)
    y_parity, r, s = (int.from_bytes(x, "big") for x in rlp.decode(raw[1:])[-3:])
    return {"hash": "0x" + tx_hash.hex(), "from": account.address, "to": to, "nonce": hex(nonce),
            "value": hex(tx["value"]), "gas": hex(tx["gas"]), "maxFeePerGas": hex(tx["maxFeePerGas"]),
            "maxPriorityFeePerGas": hex(tx["maxPriorityFeePerGas"]), "input": "0x0102", "type": "0x2",
            "chainId": "0x7a69", "accessList": [], "v": hex(y_parity), "yParity": hex(y_parity), "r": hex(r),
            "s": hex(s)}, raw


class FakeNode:
    """A websocket server that answers eth_subscribe with subscription 0x1,
    txpool_content with "method not found", anything else with 0x10; after the
    first answer to something else than eth_subscribe, on the first connection
    only, it plays `script`: text frames to send (notifications of 0x1), or
    "silence" (stop answering, connection left open)."""

    def __init__(self, script, ssl_context=None):
        from websockets.sync.server import serve

        self.script = script
        self.connections = 0
        self._release = threading.Event()
        self._server = serve(self._handle, "127.0.0.1", 0, max_size=None, compression=None, ssl=ssl_context)
        self.port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _handle(self, ws):
        self.connections += 1
        first = self.connections == 1
        played = False
        try:
            for message in ws:
                request = json.loads(message)
                if request["method"] == "eth_subscribe":
                    ws.send(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": "0x1"}))
                else:
                    if request["method"] == "txpool_content":
                        ws.send(json.dumps({"jsonrpc": "2.0", "id": request["id"],
                                            "error": {"code": -32601, "message": "Method not found"}}))
                    else:
                        ws.send(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": "0x10"}))
                    for frame in (self.script if first and not played else []):
                        if frame == "silence":
                            self._release.wait(60)  # alive but mute: only the heartbeat can tell
                            return
                        ws.send(frame)
                    played = True
        except Exception:
            pass

    def close(self):
        self._release.set()
        self._server.shutdown()


def _note(result):
    return json.dumps({"jsonrpc": "2.0", "method": "eth_subscription",
                       "params": {"subscription": "0x1", "result": result}})


def test_malformed_frames_are_counted_and_skipped():
    good, raw = _signed_tx_json()
    lying = dict(good, value=hex(99999))
    script = [
        "{not json",
        json.dumps([1, 2, 3]),
        json.dumps("a string"),
        _note({"hash": 5}),
        _note(dict(good, nonce=17)),                      # wrong type: an int where hex text belongs
        _note(dict(good, gas="0xzz")),
        _note(lying),                                     # hash does not match the fields
        json.dumps({"jsonrpc": "2.0", "method": "eth_subscription",
                    "params": {"subscription": "0x99", "result": good}}),
        json.dumps({"jsonrpc": "2.0", "id": 123456, "result": "0x1"}),  # an answer to nothing we asked
        _note(good) + " " * (70_000),                     # over the 64 KiB cap set below
        _note(good),                                      # finally a good one: still delivered
        _note(good),                                      # and its repeat is a duplicate, not a delivery
    ]
    fake = FakeNode(script)
    collector = Collector()
    try:
        with NodeSource(f"ws://127.0.0.1:{fake.port}", collector, heads=False, full_transactions=True,
                        max_message_bytes=65536) as source:
            wait_for(lambda: source.stats()["duplicates"] == 1, what="the script to play")
            stats = source.stats()
    finally:
        fake.close()
    txs = collector.of(PendingTx)
    assert len(txs) == 1 and txs[0].raw == raw and txs[0].value == 12345
    reasons = stats["skipped_by_reason"]
    assert reasons["malformed_json"] == 1 and reasons["oversized"] == 1 and reasons["hash_mismatch"] == 1
    assert reasons["bad_type"] == 2 and reasons["bad_field"] == 3 and reasons["unknown_subscription"] == 1
    assert reasons["txpool_unavailable"] == 1 and reasons["unexpected_reply"] == 1
    assert stats["skipped"] == sum(reasons.values()) and stats["reconnects"] == 0


def test_silent_subscription_is_detected_by_the_heartbeat():
    fake = FakeNode(["silence"])
    collector = Collector()
    try:
        with NodeSource(f"ws://127.0.0.1:{fake.port}", collector, heads=False, full_transactions=True,
                        heartbeat_interval=0.3, heartbeat_timeout=0.3, backoff_initial=0.05) as source:
            wait_for(lambda: source.stats()["reconnects"] >= 1, what="the stall to be detected")
            stats = source.stats()
    finally:
        fake.close()
    assert stats["stalls"] >= 1 and stats["heartbeats"] >= 1 and stats["gaps"] >= 1


def test_a_newheads_subscription_that_stops_is_detected():
    """The fake node sends block 1 and then nothing, while answering the
    heartbeat's eth_blockNumber with 0x10: the heads subscription is dead."""
    header = {"number": "0x1", "hash": "0x" + "11" * 32, "parentHash": "0x" + "22" * 32, "timestamp": "0x5",
              "baseFeePerGas": "0x7", "gasLimit": "0x1c9c380", "gasUsed": "0x0"}
    fake = FakeNode([_note(header)])
    collector = Collector()
    try:
        with NodeSource(f"ws://127.0.0.1:{fake.port}", collector, pending=False, heartbeat_interval=0.3,
                        backoff_initial=0.05) as source:
            wait_for(lambda: source.stats()["reconnects"] >= 1, what="the dead subscription to be noticed")
            stats = source.stats()
    finally:
        fake.close()
    assert collector.of(BlockHeader)[0].number == 1 and collector.of(BlockHeader)[0].base_fee_per_gas == 7
    assert stats["stalls"] >= 1 and "newHeads stopped at 1" in stats["last_error"]


def test_a_failing_sink_is_counted_and_the_watcher_goes_on():
    first, _ = _signed_tx_json(5)
    second, raw = _signed_tx_json(6)
    fake = FakeNode([_note({"number": "0x1"}), _note(first), _note(second)])
    calls = []

    def sink(record):
        calls.append(record)
        if len(calls) == 1:
            raise RuntimeError("consumer bug")

    try:
        with NodeSource(f"ws://127.0.0.1:{fake.port}", sink, heads=False, full_transactions=True) as source:
            wait_for(lambda: source.stats()["txs"] == 2, what="both transactions")
            stats = source.stats()
    finally:
        fake.close()
    assert stats["skipped_by_reason"]["missing_field"] == 1  # the header-shaped "transaction"
    assert stats["sink_errors"] == 1 and len(calls) == 2 and calls[-1].raw == raw


def test_no_node_means_backoff_not_a_crash():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with NodeSource(f"ws://127.0.0.1:{port}", lambda r: None, backoff_initial=0.01, backoff_max=0.05) as source:
        wait_for(lambda: "Connection refused" in source.stats()["last_error"] or "refused" in
                 source.stats()["last_error"].lower(), what="a refused connection")
        assert not source.stats()["connected"]


@pytest.mark.parametrize("kwargs, message", [
    ({"url": "ftp://x"}, "url must be"),
    ({"url": "ws://h", "sink": 5}, "sink must be callable"),
    ({"url": "ws://h", "pools": ["0x12"]}, "pool address"),
    ({"url": "ws://h", "heartbeat_interval": 0}, "heartbeat_interval"),
    ({"url": "ws://h", "backoff_initial": 2.0, "backoff_max": 1.0}, "backoff_max"),
    ({"url": "ws://h", "max_message_bytes": 10}, "max_message_bytes"),
    ({"url": "ws://h", "on_idle": 5}, "on_idle must be callable"),
])
def test_bad_arguments_name_what_was_wrong(kwargs, message):
    args = {"sink": lambda r: None, **kwargs}
    with pytest.raises((ValueError, TypeError), match=message):
        NodeSource(args.pop("url"), args.pop("sink"), **args)


def test_repr_hides_the_url_path():
    source = NodeSource("wss://node.example:8546/v3/SECRETKEY", lambda r: None)
    assert "SECRETKEY" not in repr(source) and "node.example" in repr(source)


# ---- every transaction type anvil accepts passes the hash check ----

def test_every_transaction_type_is_reencoded_to_its_signed_bytes(anvil_node):
    pytest.importorskip("eth_account")
    from eth_utils import to_checksum_address

    from tallyio.devnet import Sender, dev_accounts

    sender = Sender(anvil_node.rpc)
    account, authority = dev_accounts(8)[6:8]
    nonce = int(anvil_node.rpc.call("eth_getTransactionCount", account.address, "pending"), 16)
    to = to_checksum_address("0x" + "11" * 20)
    auth = authority._signer.sign_authorization({"chainId": 31337, "address": to_checksum_address("0x" + "33" * 20),
                                                 "nonce": int(anvil_node.rpc.call(
                                                     "eth_getTransactionCount", authority.address, "pending"), 16)})
    txs = [
        {"nonce": nonce, "gasPrice": 10**10, "gas": 21000, "to": to, "value": 5, "data": b""},  # pre-EIP-155
        {"nonce": nonce + 1, "gasPrice": 10**10, "gas": 21000, "to": to, "value": 5, "data": b"", "chainId": 31337},
        {"type": 1, "nonce": nonce + 2, "gasPrice": 10**10, "gas": 40000, "to": to, "value": 0, "data": b"\x01",
         "chainId": 31337, "accessList": [{"address": to, "storageKeys": ["0x" + "00" * 31 + "07"]}]},
        {"type": 2, "nonce": nonce + 3, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 1, "gas": 100000,
         "data": b"\x60\x00", "value": 0, "chainId": 31337},                           # a contract creation
        {"type": 4, "nonce": nonce + 4, "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 1, "gas": 100000, "to": to,
         "value": 0, "data": b"", "chainId": 31337, "authorizationList": [auth]},       # EIP-7702
    ]
    collector = Collector()
    with NodeSource(anvil_node.ws_url, collector, heads=False) as source:
        assert source.wait_connected(30)
        signed = {}
        for tx in txs:
            raw, tx_hash = account.sign(tx)
            sender.send_raw(raw)
            signed[tx_hash] = (raw, tx.get("type", 0))
        wait_for(lambda: set(signed) <= set(collector.tx_hashes()), what="every transaction type")
        stats = source.stats()
    assert stats["skipped"] == 0
    by_hash = {tx.hash: tx for tx in collector.of(PendingTx)}
    for tx_hash, (raw, tx_type) in signed.items():
        assert by_hash[tx_hash].raw == raw and by_hash[tx_hash].tx_type == tx_type
    assert [by_hash[h].to for h in signed].count(None) == 1  # the creation


# ---- the parser against oracles and random input ----

def test_rlp_matches_the_rlp_package(seed):
    rlp = pytest.importorskip("rlp")
    from hypothesis import given, settings, strategies as st, HealthCheck

    from tallyio.mempool._wstx import rlp_encode

    items = st.recursive(st.binary(max_size=70) | st.integers(min_value=0, max_value=2**256 - 1),
                         lambda children: st.lists(children, max_size=5), max_leaves=20)

    def as_bytes(item):
        if isinstance(item, int):
            return item.to_bytes((item.bit_length() + 7) // 8, "big")
        return item if isinstance(item, bytes) else [as_bytes(x) for x in item]

    @settings(max_examples=400, derandomize=False, suppress_health_check=[HealthCheck.too_slow])
    @given(items)
    def check(item):
        assert rlp_encode(item) == rlp.encode(as_bytes(item))

    check()


def test_random_mutations_of_a_transaction_are_rejected_cleanly(seed):
    from hypothesis import given, settings, strategies as st

    from tallyio.mempool._wstx import BadRecord, parse_pending_tx

    good, raw = _signed_tx_json()
    assert parse_pending_tx(good, 1).raw == raw
    values = st.none() | st.booleans() | st.integers() | st.text(max_size=80) | \
        st.text(alphabet="0123456789abcdefx", max_size=80).map(lambda s: "0x" + s) | \
        st.lists(st.integers(), max_size=3) | st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)

    @settings(max_examples=600, deadline=None)
    @given(st.dictionaries(st.sampled_from(sorted(good)), values, max_size=4),
           st.lists(st.sampled_from(sorted(good)), max_size=3))
    def check(changes, removed):
        obj = dict(good, **changes)
        for key in removed:
            obj.pop(key, None)
        try:
            tx = parse_pending_tx(obj, 1)
        except BadRecord as exc:
            assert exc.reason in {"bad_field", "missing_field", "unknown_type", "hash_mismatch", "bad_type"}
            return
        # accepted only if it still hashes to what it claims
        assert keccak256(tx.raw) == tx.hash

    check()


def test_compiled_keccak_matches_pycryptodome(seed):
    keccak = pytest.importorskip("Crypto.Hash.keccak")
    from hypothesis import given, settings, strategies as st

    # every length around the 136-byte rate boundary, then random data
    for n in range(0, 3 * 136 + 2):
        data = bytes((i * 7 + n) & 0xFF for i in range(n))
        assert keccak256(data) == keccak.new(data=data, digest_bits=256).digest(), n

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=2000))
    def check(data):
        assert keccak256(data) == keccak.new(data=data, digest_bits=256).digest()
        assert keccak256(bytearray(data)) == keccak256(memoryview(data))

    check()


def test_wss_with_a_verified_certificate(tmp_path):
    """wss:// through TLS, the certificate checked against the context we pass
    (a self-signed one made here: a fake node, as anvil does not serve TLS)."""
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed (needed to make a test certificate)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    good, raw = _signed_tx_json()
    fake = FakeNode([_note(good)], ssl_context=server_ctx)
    try:
        collector = Collector()
        client_ctx = ssl.create_default_context(cafile=str(cert))
        with NodeSource(f"wss://localhost:{fake.port}", collector, heads=False, full_transactions=True,
                        ssl_context=client_ctx) as source:
            wait_for(lambda: collector.of(PendingTx), what="the transaction over TLS")
        assert collector.of(PendingTx)[0].raw == raw
        # without our CA the certificate is refused: counted as a connection error, never delivered
        refused = Collector()
        with NodeSource(f"wss://localhost:{fake.port}", refused, heads=False, backoff_initial=0.05) as source:
            wait_for(lambda: "CERTIFICATE" in source.stats()["last_error"].upper(), what="the refused certificate")
        assert not refused.records
    finally:
        fake.close()


def test_websocket_client_reassembles_fragments_answers_pings_and_caps_size():
    """The client side of RFC 6455 against the `websockets` server: a message in
    fragments with a ping between them, a binary message, an oversized one read
    past without losing the stream, and the server's close."""
    from websockets.sync.server import serve

    from tallyio.mempool._wsclient import OVERSIZED, WebSocket, WsClosed

    pong = {}

    def handler(ws):
        ws.send(iter(["frag", "ment", "ed"]))          # three frames: text + continuations
        pong["event"] = ws.ping(b"hb")                 # our client must answer it
        ws.send(b"\x00\x01binary")
        ws.send("x" * 5000)                            # over the client's 4096-byte cap
        ws.send("after")
        ws.recv()                                      # wait for the client's "bye"
        ws.close()

    server = serve(handler, "127.0.0.1", 0, compression=None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = WebSocket(f"ws://127.0.0.1:{server.socket.getsockname()[1]}", max_message_bytes=4096)
        client.settimeout(10)
        received = [client.recv()[0] for _ in range(4)]
        assert received[:2] == [b"fragmented", b"\x00\x01binary"]
        assert received[2] is OVERSIZED and received[3] == b"after"
        assert pong["event"].wait(5), "the client did not answer the ping"
        client.send(b"bye")
        with pytest.raises(WsClosed):
            client.recv()
        client.close()
    finally:
        server.shutdown()


def test_hash_mode_fetches_on_a_second_connection_and_checks_what_it_gets():
    """Hash notifications are fetched over a second websocket; the fake node answers
    the fetch with junk ("0x10"), which is counted, and a malformed hash is never fetched."""
    fake = FakeNode([_note("0x" + "ab" * 32), _note("0xnothex"), _note("0x" + "zz" * 32)])
    try:
        with NodeSource(f"ws://127.0.0.1:{fake.port}", lambda r: None, heads=False,
                        full_transactions=False) as source:
            wait_for(lambda: source.stats()["skipped"] >= 4, what="the three notifications")
            stats = source.stats()
    finally:
        fake.close()
    assert stats["pending_mode"] == "hashes" and fake.connections >= 2  # the fetch connection
    assert stats["fetched"] == 1 and stats["txs"] == 0
    reasons = stats["skipped_by_reason"]
    assert reasons["bad_type"] == 1 and reasons["bad_field"] == 2 and reasons["txpool_unavailable"] == 1


def test_a_burst_is_delivered_exactly_once(anvil_node):
    """300 transfers sent back to back from three accounts, as fast as one
    client sends: every one arrives once, in nonce order per sender."""
    pytest.importorskip("eth_account")
    from tallyio.devnet import Sender, dev_accounts

    sender = Sender(anvil_node.rpc)
    accounts = [dev_accounts(10)[i] for i in (5, 8, 9)]  # not used by the other tests of this module
    signed = [sender.sign(accounts[i % 3], "0x" + "44" * 20, value=i + 1, gas=21000) for i in range(300)]
    collector = Collector()
    with NodeSource(anvil_node.ws_url, collector, heads=False) as source:
        assert source.wait_connected(30)
        for raw, _ in signed:
            sender.send_raw(raw)
        wait_for(lambda: {h for _, h in signed} <= set(collector.tx_hashes()), what="the whole burst")
        stats = source.stats()
    hashes = [h for h in collector.tx_hashes() if h in {h for _, h in signed}]
    assert len(hashes) == 300 == len(set(hashes)) and stats["skipped"] == 0
    for account in accounts:
        nonces = [tx.nonce for tx in collector.of(PendingTx) if tx.sender.hex() == account.address[2:]]
        assert nonces == sorted(nonces) and len(nonces) == 100
