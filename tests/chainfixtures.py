"""pytest fixtures for a real chain: anvil on a free loopback port (one per test
module), the Uniswap contracts deployed from their published artifacts, and
funded trader accounts. Load from conftest with ``pytest_plugins = ["chainfixtures"]``
(or import the fixtures by name). A missing anvil or artifact skips with the
reason, or fails under ``TALLYIO_REQUIRE_CHAIN=1`` (realparts decides).

Fixtures (module scope, so a module's tests share one chain and must not assume
a fresh one):

- ``anvil_node``: ``tallyio.devnet.Anvil`` with automine OFF (mempool scenarios;
  mine with ``tallyio.devnet.mine``);
- ``chain_sender``: a ``Sender`` (nonce tracking) on it;
- ``uniswap``: the ``UniswapDeployment``;
- ``traders``: dev accounts 1..4, each funded with every token and with every
  router approved.
"""
import pytest

import realparts


@pytest.fixture(scope="module")
def anvil_node(tmp_path_factory):
    from tallyio.devnet import Anvil

    binary = realparts.anvil_binary()
    log = tmp_path_factory.mktemp("anvil") / "anvil.log"
    node = Anvil(automine=False, binary=binary, log_path=log)
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="module")
def chain_sender(anvil_node):
    pytest.importorskip("eth_account")
    from tallyio.devnet import Sender

    return Sender(anvil_node.rpc)


@pytest.fixture(scope="module")
def uniswap(anvil_node, chain_sender):
    pytest.importorskip("eth_abi")
    from tallyio.devnet import deploy_uniswap

    realparts.artifact("@uniswap/v2-core", "UniswapV2Factory")  # skip/fail with the reason when missing
    return deploy_uniswap(anvil_node.rpc, chain=realparts.chain_dir(), sender=chain_sender)


@pytest.fixture(scope="module")
def traders(anvil_node, chain_sender, uniswap):
    from tallyio.devnet import dev_accounts, fund_trader

    accounts = dev_accounts(5)[1:]
    for trader in accounts:
        fund_trader(anvil_node.rpc, uniswap, trader, sender=chain_sender)
    return accounts


# ---- Aave v3 (issue 15): its own anvil (automine ON: every helper waits for its receipt) ----

@pytest.fixture(scope="module")
def aave_node(tmp_path_factory):
    """anvil with automine on and 40 funded dev accounts, for the Aave market."""
    from tallyio.devnet import Anvil

    binary = realparts.anvil_binary()
    log = tmp_path_factory.mktemp("anvil-aave") / "anvil.log"
    node = Anvil(automine=True, binary=binary, log_path=log, accounts=40)
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="module")
def aave_sender(aave_node):
    pytest.importorskip("eth_account")
    from tallyio.devnet import Sender

    return Sender(aave_node.rpc)


@pytest.fixture(scope="module")
def aave_market(aave_node, aave_sender):
    """``AaveDeployment`` of ``@aave/core-v3`` 1.19.3 (WETHm 18, USDCm 6, WBTCm 8 decimals), once per module."""
    pytest.importorskip("eth_abi")
    from tallyio.devnet import deploy_aave

    realparts.artifact("@aave/core-v3", "PoolAddressesProvider")  # skip/fail with the reason when missing
    return deploy_aave(aave_node.rpc, sender=aave_sender, chain=realparts.chain_dir())
