"""tallyio.devnet: anvil's lifecycle, the JSON-RPC client, dev accounts that
keep their keys to themselves, and the real Uniswap contracts deployed from
their published artifacts and traded through both V2 routers and the V3 router."""
import os
import pickle
import socket

import pytest

import realparts
from tallyio.errors import DevnetError, NodeConnectionError, RpcError, TallyioError

pytestmark = pytest.mark.timeout(180)


def _account0_key_hex():
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    mnemonic = " ".join(["test"] * 11 + ["junk"])
    return Account.from_mnemonic(mnemonic, account_path="m/44'/60'/0'/0/0").key.hex().removeprefix("0x")


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): look at its state
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


def test_anvil_lifecycle_same_port_restart_and_no_process_left(tmp_path):
    from tallyio.devnet import Anvil

    node = Anvil(binary=realparts.anvil_binary(), log_path=tmp_path / "a.log", chain_id=1337)
    port, pid = node.port, node.pid
    assert node.url == f"http://127.0.0.1:{port}" and node.ws_url == f"ws://127.0.0.1:{port}"
    assert int(node.rpc.call("eth_chainId"), 16) == 1337 and node.rpc.call("anvil_getAutomine") is True
    node.kill()
    assert not _alive(pid) and not node.running()
    with pytest.raises(NodeConnectionError):
        node.rpc.call("eth_chainId")
    node.restart()
    assert node.port == port and node.pid != pid and node.rpc.call("eth_blockNumber") == "0x0"
    second = node.pid
    with node:
        pass
    assert not _alive(second)
    node.stop()  # idempotent
    assert "redacted" in (tmp_path / "a.log").read_text()


def test_anvil_automine_off_and_block_time_flags(tmp_path):
    from tallyio.devnet import Anvil, mine, set_automine

    with Anvil(automine=False, binary=realparts.anvil_binary(), log_path=tmp_path / "b.log") as node:
        assert node.rpc.call("anvil_getAutomine") is False
        mine(node.rpc, 3)
        assert node.rpc.call("eth_blockNumber") == "0x3"
        set_automine(node.rpc, True)
        assert node.rpc.call("anvil_getAutomine") is True


def test_the_log_never_holds_a_dev_key(anvil_node, chain_sender, uniswap):
    key = _account0_key_hex()
    text = anvil_node.log_path.read_text()
    assert "Listening on" in text and key not in text.lower()
    assert "test test test" not in text  # the mnemonic line is redacted too


def test_bad_anvil_arguments_say_what_is_wrong(tmp_path, monkeypatch):
    from tallyio.devnet import Anvil, find_anvil

    binary = realparts.anvil_binary()
    with pytest.raises(ValueError, match="port"):
        Anvil(port=70000, binary=realparts.anvil_binary())
    with pytest.raises(ValueError, match="block_time"):
        Anvil(block_time=0, binary=realparts.anvil_binary())
    with pytest.raises(DevnetError, match="not executable"):
        find_anvil(tmp_path / "nope")
    monkeypatch.delenv("TALLYIO_ANVIL", raising=False)
    monkeypatch.setenv("TALLYIO_CHAIN_DIR", str(tmp_path))
    with pytest.raises(DevnetError, match="node_modules"):
        find_anvil()
    # anvil refusing its arguments: the error quotes its log
    with pytest.raises(DevnetError, match="exited|log tail"):
        Anvil(binary=binary, extra_args=("--no-such-flag",), log_path=tmp_path / "c.log")
    assert issubclass(DevnetError, TallyioError) and issubclass(DevnetError, RuntimeError)


def test_rpc_client_errors_and_batches(anvil_node):
    from tallyio.devnet import RpcClient

    rpc = anvil_node.rpc
    with pytest.raises(RpcError) as info:
        rpc.call("eth_noSuchMethod", 1)
    assert info.value.method == "eth_noSuchMethod" and info.value.code is not None
    assert info.value.node_message and info.value.node_message in str(info.value)
    assert rpc.batch([("eth_chainId", []), ("net_version", [])]) == ["0x7a69", "31337"]
    with pytest.raises(RpcError, match="eth_noSuchMethod"):
        rpc.batch([("eth_chainId", []), ("eth_noSuchMethod", [])])
    with pytest.raises(ValueError, match="http"):
        RpcClient("ws://127.0.0.1:1")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(NodeConnectionError, match=str(port)):
        RpcClient(f"http://127.0.0.1:{port}", timeout=2).call("eth_chainId")


def test_dev_account_keys_stay_inside(anvil_node, chain_sender):
    from tallyio.devnet import dev_accounts

    key = _account0_key_hex()
    account = dev_accounts(1)[0]
    assert account.address == "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
    assert key not in repr(account).lower() and key not in str(account).lower()
    assert not any(key in str(getattr(account, name, "")).lower() for name in ("address", "index"))
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(account)
    # a rejected transaction: the error names the problem, not the key
    with pytest.raises(RpcError) as info:
        chain_sender.send(account, "0x" + "00" * 20, value=10**40, gas=21000)
    assert key not in str(info.value).lower() and "0x" + key not in repr(info.value).lower()


def test_router02_pair_hash_matches_and_swaps_follow_the_v2_formula(anvil_node, chain_sender, uniswap, traders):
    from tallyio.devnet import get_reserves, mine, swap_v2, v2_pair_address

    token, weth = uniswap.tokens[0], uniswap.weth
    prices = []
    for exchange in uniswap.v2:
        pair = exchange.pair(token, weth)
        (from_factory,) = chain_sender.call(exchange.factory, "getPair(address,address)", token, weth,
                                            returns=["address"])
        assert from_factory.lower() == pair == v2_pair_address(exchange.factory, token, weth)
        r0, r1 = get_reserves(anvil_node.rpc, pair)
        token_is_0 = token < weth
        reserve_in, reserve_out = (r0, r1) if token_is_0 else (r1, r0)
        prices.append(reserve_out / reserve_in)
        amount_in = 3 * 10**18
        expected_out = amount_in * 997 * reserve_out // (reserve_in * 1000 + amount_in * 997)
        tx_hash = swap_v2(chain_sender, traders[0], exchange.router, amount_in, [token, weth])
        mine(anvil_node.rpc)
        chain_sender.receipt(tx_hash)
        n0, n1 = get_reserves(anvil_node.rpc, pair)
        new_in, new_out = (n0, n1) if token_is_0 else (n1, n0)
        assert new_in == reserve_in + amount_in and new_out == reserve_out - expected_out
    assert abs(prices[0] - prices[1]) / prices[0] > 0.01  # the two exchanges disagree: an arbitrage exists


def test_v3_pool_has_liquidity_and_swaps_through_swaprouter(anvil_node, chain_sender, uniswap, traders):
    from tallyio.devnet import mine, swap_v3

    token, weth = uniswap.tokens[0], uniswap.weth
    pool = uniswap.v3_pools[(token, weth)]
    (liquidity,) = chain_sender.call(pool, "liquidity()", returns=["uint128"])
    assert liquidity > 0
    (before,) = chain_sender.call(weth, "balanceOf(address)", traders[1].address, returns=["uint256"])
    tx_hash = swap_v3(chain_sender, traders[1], uniswap.v3_router, token, weth, 10**18)
    mine(anvil_node.rpc)
    chain_sender.receipt(tx_hash)
    (after,) = chain_sender.call(weth, "balanceOf(address)", traders[1].address, returns=["uint256"])
    # price 1, fee 0.3 %, deep full-range liquidity: a little under 0.997 out
    assert 0.99 * 10**18 < after - before < 0.997 * 10**18


def test_sender_tracks_nonces_without_waiting_for_blocks(anvil_node, chain_sender, traders):
    trader = traders[2]
    start = int(anvil_node.rpc.call("eth_getTransactionCount", trader.address, "latest"), 16)
    hashes = [chain_sender.send_transaction(trader, "0x" + "22" * 20, value=1, gas=21000) for _ in range(5)]
    pending = anvil_node.rpc.call("txpool_content")["pending"]
    mine_nonces = sorted(int(n) for n in pending[next(a for a in pending if a.lower() == trader.address)])
    assert mine_nonces[-5:] == list(range(start, start + 5)) and len(set(hashes)) == 5


def test_base_install_imports_without_the_node_extra():
    """tallyio.devnet and tallyio.mempool import with eth-abi, eth-account,
    websockets, orjson, msgspec and pycryptodome all missing (the JSON codec
    falls back to the stdlib; keccak and RLP are compiled)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for name in ('eth_abi', 'eth_account', 'eth_utils', 'websockets', 'orjson', 'msgspec', 'Crypto',\n"
        "             'eth_hash'):\n"
        "    sys.modules[name] = None\n"
        "import tallyio.devnet, tallyio.mempool\n"
        "from tallyio.mempool._wsrpc import JSON_BACKEND, loads\n"
        "from tallyio.mempool._wstx import keccak256\n"
        "assert JSON_BACKEND == 'json' and loads(b'[1]') == [1]\n"
        "assert keccak256(b'').hex().startswith('c5d24601')\n"
        "try:\n"
        "    tallyio.devnet.encode_call('f(uint256)', 1)\n"
        "except ImportError as exc:\n"
        "    print('lazy:', exc.name)\n"
    )
    env = dict(os.environ)
    import tallyio
    from pathlib import Path
    env["PYTHONPATH"] = str(Path(tallyio.__file__).resolve().parent.parent)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "lazy: eth_abi" in proc.stdout


def test_no_anvil_outlives_its_object_or_the_interpreter(tmp_path):
    import gc
    import subprocess
    import sys
    import time

    from tallyio.devnet import Anvil

    binary = realparts.anvil_binary()
    node = Anvil(binary=binary, log_path=tmp_path / "gc.log")
    pid = node.pid
    del node
    gc.collect()  # the finalizer kills it
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)
    # an interpreter that exits without stopping its node: the atexit hook does it
    code = ("import sys; from tallyio.devnet import Anvil; "
            f"node = Anvil(binary={str(binary)!r}); print(node.pid); sys.stdout.flush()")
    from pathlib import Path

    import tallyio
    env = dict(os.environ, PYTHONPATH=str(Path(tallyio.__file__).resolve().parent.parent))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    child = int(proc.stdout.split()[0])
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)
