"""Where the tests find the real parts they run against, and what happens when
one is missing: skipped with the reason on a developer's machine, a failure in CI
(``TALLYIO_REQUIRE_CHAIN=1``, set by .ci/run after it installed them).

- the chain: ``TALLYIO_CHAIN_DIR`` (default: the repo's ``chain/``), where
  ``npm ci --prefix chain`` put anvil and the Uniswap/Aave artifacts;
- real mainnet data: ``TALLYIO_MAINNET_DATA`` (default: ``../shared/data/mainnet``
  beside the repo, where CI has it).
"""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _missing(what: str):
    if os.environ.get("TALLYIO_REQUIRE_CHAIN") == "1":
        pytest.fail(f"{what} (TALLYIO_REQUIRE_CHAIN=1: CI installed it, so this is an error)")
    pytest.skip(what)


def chain_dir() -> Path:
    """The folder holding ``node_modules`` with anvil and the contract artifacts."""
    root = Path(os.environ.get("TALLYIO_CHAIN_DIR") or REPO / "chain")
    if not (root / "node_modules").is_dir():
        _missing(f"the test chain is not installed in {root} (run: npm ci --prefix chain --ignore-scripts, "
                 f"or set TALLYIO_CHAIN_DIR)")
    return root


def anvil_binary() -> Path:
    """anvil 1.7.1's executable, from the npm package's platform dependency."""
    modules = chain_dir() / "node_modules" / "@foundry-rs"
    for candidate in sorted(modules.glob("anvil-*/bin/anvil")):
        if os.access(candidate, os.X_OK):
            return candidate
    _missing(f"no anvil binary under {modules} (the platform package @foundry-rs/anvil-<os>-<arch> is missing)")


def artifact(package: str, name: str) -> dict:
    """A published contract artifact (``abi`` and creation ``bytecode``) by npm package and
    contract name, e.g. ``artifact("@uniswap/v2-core", "UniswapV2Factory")``."""
    import json

    base = chain_dir() / "node_modules" / package
    hits = [p for p in base.rglob(f"{name}.json")
            if "/interfaces/" not in p.as_posix() and not p.name.endswith(".dbg.json")]
    if not hits:
        _missing(f"no artifact {name}.json in {base}")
    hits.sort(key=lambda p: len(p.parts))
    return json.loads(hits[0].read_text())


def mainnet_dir() -> Path:
    """``shared/data/mainnet``: real transactions of 13 mainnet blocks (see its README)."""
    root = Path(os.environ.get("TALLYIO_MAINNET_DATA") or REPO.parent / "shared" / "data" / "mainnet")
    if not (root / "router_calls.json").is_file():
        _missing(f"the mainnet test data is not at {root} (set TALLYIO_MAINNET_DATA)")
    return root
