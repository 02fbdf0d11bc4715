"""``python -m coordination deploy``: deploy the contracts and write an address book.

Examples::

    python -m coordination deploy --rpc http://127.0.0.1:8545 --out addressbook.json
    AXL_CHAIN_KEY=0x... python -m coordination deploy --rpc $URL --out book.json --fee-bps 50
    python -m coordination deploy --out book.json          # embedded chain: a dry run

Every failure prints one line (``deploy failed: ...``) and exits 1; the output file is checked
to be writable before anything is deployed, so a deployment is never lost for want of a place
to write its address book.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from eth_account import Account
from pydantic import ValidationError

from ._chain import Chain
from ._errors import CoordinationError
from ._types import DeployParams


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m coordination")
    sub = parser.add_subparsers(dest="command", required=True)
    deploy = sub.add_parser("deploy", help="deploy the AXL contracts and write an address book")
    deploy.add_argument("--rpc", help="JSON-RPC URL (default: embedded in-process chain)")
    deploy.add_argument("--chain-id", type=int, help="refuse to deploy unless the node has it")
    deploy.add_argument(
        "--timeout", type=float, default=30.0, help="seconds per JSON-RPC request (default 30)"
    )
    deploy.add_argument(
        "--key-env",
        default="AXL_CHAIN_KEY",
        help="environment variable holding the deployer's hex private key "
        "(default AXL_CHAIN_KEY; unset on a dev node = its first dev account)",
    )
    deploy.add_argument("--out", required=True, help="address book JSON to write")
    for name, field in DeployParams.model_fields.items():
        deploy.add_argument(f"--{name.replace('_', '-')}", type=int, default=field.default)
    return parser


def _fail(message: str) -> int:
    line = message.splitlines()[0] if message else "unknown error"
    print(f"deploy failed: {line}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 deployed, 1 failed with a one-line reason)."""
    args = _parser().parse_args(argv)
    try:
        params = DeployParams(**{name: getattr(args, name) for name in DeployParams.model_fields})
    except ValidationError as exc:
        first = exc.errors()[0]
        return _fail(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}")
    key = os.environ.get(args.key_env)
    try:
        account = Account.from_key(key) if key else None
    except Exception:
        return _fail(f"${args.key_env} does not hold a valid hex private key")
    out = Path(args.out)
    if not out.parent.is_dir():
        return _fail(f"--out: directory {out.parent} does not exist")
    existed = out.exists()
    try:
        with out.open("a"):
            pass  # writable: checked before deploying
    except OSError as exc:
        return _fail(f"--out: cannot write {out}: {exc.strerror}")
    status = _deploy(args, account, params, out)
    if status != 0 and not existed:
        out.unlink(missing_ok=True)
    return status


def _deploy(args: argparse.Namespace, account: Any, params: DeployParams, out: Path) -> int:
    try:
        if args.rpc:
            chain = Chain.connect(
                args.rpc, account, expected_chain_id=args.chain_id, timeout=args.timeout
            )
        else:
            chain = Chain.embedded(account)
        deployed = chain.deploy(params)
        deployed.address_book.save(out)
    except CoordinationError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot write {out}: {exc.strerror}")
    for name, address in deployed.address_book.contracts.items():
        print(f"{name:17} {address}")
    print(f"chain {deployed.chain_id}; address book written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
