"""``python -m coordination deploy``: deploy the contracts and write an address book.

Examples::

    python -m coordination deploy --rpc http://127.0.0.1:8545 --out addressbook.json
    AXL_CHAIN_KEY=0x... python -m coordination deploy --rpc $URL --out book.json --fee-bps 50
    python -m coordination deploy --out book.json          # embedded chain: a dry run
"""

from __future__ import annotations

import argparse
import os
import sys

from eth_account import Account

from ._chain import Chain, DeployParams
from ._errors import CoordinationError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m coordination")
    sub = parser.add_subparsers(dest="command", required=True)
    deploy = sub.add_parser("deploy", help="deploy the AXL contracts and write an address book")
    deploy.add_argument("--rpc", help="JSON-RPC URL (default: embedded in-process chain)")
    deploy.add_argument("--chain-id", type=int, help="refuse to deploy unless the node has it")
    deploy.add_argument(
        "--key-env",
        default="AXL_CHAIN_KEY",
        help="environment variable holding the deployer's hex private key "
        "(default AXL_CHAIN_KEY; unset on a dev node = its first dev account)",
    )
    deploy.add_argument("--out", required=True, help="address book JSON to write")
    for name, field in DeployParams.model_fields.items():
        if field.annotation is int:
            deploy.add_argument(f"--{name.replace('_', '-')}", type=int, default=field.default)
    deploy.add_argument("--resolver", help="dispute resolver address (default: deployer)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = _parser().parse_args(argv)
    key = os.environ.get(args.key_env)
    account = Account.from_key(key) if key else None
    try:
        if args.rpc:
            chain = Chain.connect(args.rpc, account, expected_chain_id=args.chain_id)
        else:
            chain = Chain.embedded(account)
        values = {
            name: getattr(args, name)
            for name, field in DeployParams.model_fields.items()
            if field.annotation is int
        }
        params = DeployParams(**values, resolver=args.resolver)
        deployed = chain.deploy(params)
    except CoordinationError as exc:
        print(f"deploy failed: {exc}", file=sys.stderr)
        return 1
    deployed.address_book.save(args.out)
    for name, address in deployed.address_book.contracts.items():
        print(f"{name:17} {address}")
    print(f"chain {deployed.chain_id}; address book written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
