"""A local Ethereum chain for tests, examples and recordings: anvil on a free
loopback port, a JSON-RPC client, anvil's dev accounts with nonce-tracked
signing, the real Uniswap V2/V3 contracts and a real Aave v3 market deployed
from their published npm artifacts.

Not part of the data flow (source -> decode -> filter -> analyze): nothing in the
engine imports it. Needs the anvil binary (argument, ``TALLYIO_ANVIL`` or
``TALLYIO_CHAIN_DIR``); signing and ABI encoding need the ``node`` extra
(eth-account, coincurve, eth-abi), imported only when used.

    >>> from tallyio.devnet import selector, to_address
    >>> selector("getReserves()").hex()
    '0902f1ac'

A session against a real node (needs anvil, so not run here)::

    with Anvil(automine=False) as node:
        sender = Sender(node.rpc)
        uni = deploy_uniswap(node.rpc, sender=sender)
        trader = dev_accounts(3)[2]
        fund_trader(node.rpc, uni, trader, sender=sender)
        swap_v2(sender, trader, uni.v2[0].router, 10**18, [uni.tokens[0], uni.weth])
        mine(node.rpc)
"""
from tallyio.devnet._accounts import (DevAccount, Sender, decode_result, dev_accounts, encode_call, selector,
                                      to_address)
from tallyio.devnet._aave import (DEFAULT_ASSETS, AaveAssetSpec, AaveDeployment, AaveReserve, ReserveState, borrow,
                                  deploy_aave, liquidation_call, mint_tokens, repay, reserve_data, scaled_balances,
                                  set_collateral, set_price, supply, user_account_data, withdraw)
from tallyio.devnet._anvil import Anvil, chain_dir, find_anvil
from tallyio.devnet._uniswap import (DEADLINE, UniswapDeployment, V2Exchange, deploy_uniswap, fund_trader,
                                     get_reserves, load_artifact, mine, set_automine, swap_v2, swap_v3,
                                     v2_pair_address)
from tallyio.mempool._wsrpc import RpcClient

__all__ = ["Anvil", "chain_dir", "find_anvil", "RpcClient", "DevAccount", "dev_accounts", "Sender", "selector",
           "encode_call", "decode_result", "to_address", "load_artifact", "deploy_uniswap", "UniswapDeployment",
           "V2Exchange", "v2_pair_address", "get_reserves", "mine", "set_automine", "fund_trader", "swap_v2",
           "swap_v3", "DEADLINE", "deploy_aave", "AaveDeployment", "AaveReserve", "AaveAssetSpec", "ReserveState",
           "supply", "borrow", "repay", "withdraw", "set_price", "liquidation_call", "mint_tokens",
           "set_collateral", "DEFAULT_ASSETS", "user_account_data", "reserve_data", "scaled_balances"]
