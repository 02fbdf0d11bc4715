"""``axl run <role>`` before it starts the agent: config, keys, chain, address book, identity
binding and stake. Every mistake is one line; a good start binds and stakes what is missing."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents import Agent
from agents.cli import _cmd_run
from agents.cli._rolespec import RoleSpec
from coordination import Chain, DeployParams, Role, anvil_node, find_anvil

from .conftest import Axl, one_line

pytestmark = pytest.mark.skipif(find_anvil() is None, reason="anvil not installed (npm ci)")


class Probe(Agent):
    def __init__(self, table: dict[str, Any]) -> None:
        super().__init__("probe")
        self.table = table


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("chain")
    with anvil_node() as url:
        funder = Chain.connect(url)  # anvil's first account: `axl chain fund` sends from it
        chain = funder.deploy(DeployParams(), {funder.address: 100_000 * 10**18})
        book = folder / "addressbook.json"
        chain.address_book.save(book)
        yield url, book


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace the role lookup with a probe agent and the hosting with a recorder."""
    calls: list[dict[str, Any]] = []
    spec = RoleSpec("solver", Role.SOLVER, lambda table, chain: Probe(table))
    monkeypatch.setattr(_cmd_run, "role_spec", lambda name: spec)
    monkeypatch.setattr(_cmd_run, "host", lambda agent, **kw: calls.append({"agent": agent, **kw}))
    return calls


def new_node(axl: Axl, folder: Path, url: str, book: Path, tokens: str = "0") -> str:
    code, out, _ = axl("keys", "new", "--data-dir", str(folder))
    assert code == 0
    account = out.split("account ")[1].split()[0]
    if tokens != "0":
        code, _, err = axl(
            "chain", "fund", str(folder), "--rpc", url, "--address-book", str(book),
            "--tokens", tokens,
        )  # fmt: skip
        assert code == 0, err
    return account


def run_args(folder: Path, url: str, book: Path, *extra: str) -> list[str]:
    return [
        "run", "solver", "--data-dir", str(folder), "--rpc", url, "--address-book", str(book),
        "--listen", "/ip4/127.0.0.1/tcp/0", *extra,
    ]  # fmt: skip


def test_a_good_start_binds_and_stakes_only_what_is_missing(
    axl: Axl, tmp_path: Path, deployment: tuple[str, Path], started: list[dict[str, Any]]
) -> None:
    url, book = deployment
    folder = tmp_path / "solver"
    account = new_node(axl, folder, url, book, tokens="250")
    config = tmp_path / "solver.toml"
    config.write_text('[role]\nprice = "0.5"\n[chain]\nstake = "150"\n')
    code, _, err = axl(*run_args(folder, url, book, "--config", str(config), "--capacity", "3"))
    assert code == 0, err
    (call,) = started
    assert call["agent"].table == {"price": "0.5", "capacity": 3}
    reader = _reader(url, book)
    assert reader.stake_of(Role.SOLVER, account).active == 150 * 10**18
    assert str(reader.peer_of(account)) == str(call["identity"].peer_id)

    code, _, err = axl(*run_args(folder, url, book, "--stake", "200"))
    assert code == 0, err
    assert reader.stake_of(Role.SOLVER, account).active == 200 * 10**18  # 50 more, not 200
    assert reader.balance_of(account) == 50 * 10**18


def _reader(url: str, book: Path) -> Chain:
    from coordination import AddressBook

    return Chain.connect(url).with_address_book(AddressBook.load(book))


def test_not_enough_tokens_to_stake(
    axl: Axl, tmp_path: Path, deployment: tuple[str, Path], started: list[dict[str, Any]]
) -> None:
    url, book = deployment
    folder = tmp_path / "poor"
    new_node(axl, folder, url, book, tokens="10")
    code, _, err = axl(*run_args(folder, url, book))
    assert code == 1
    assert "not enough tokens to stake: solver needs 100 more" in one_line(err)
    assert not started


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--stake", "5"], 2, "stake 5 is below the solver minimum of 100 tokens"),
        (["--stake", "lots"], 2, "stake 'lots' is not an amount of tokens"),
        (["--chain-id", "1"], 1, "is on the wrong chain"),
    ],
)
def test_chain_mistakes(
    axl: Axl,
    tmp_path: Path,
    deployment: tuple[str, Path],
    started: list[dict[str, Any]],
    extra: list[str],
    code: int,
    message: str,
) -> None:
    url, book = deployment
    folder = tmp_path / "node"
    new_node(axl, folder, url, book, tokens="500")
    status, _, err = axl(*run_args(folder, url, book, *extra))
    assert status == code
    assert message in one_line(err)
    assert not started


def test_unreachable_rpc_missing_and_foreign_address_books(
    axl: Axl, tmp_path: Path, deployment: tuple[str, Path], started: list[dict[str, Any]]
) -> None:
    url, book = deployment
    folder = tmp_path / "node"
    new_node(axl, folder, url, book)
    code, _, err = axl(*run_args(folder, "http://127.0.0.1:9", book))
    assert code == 1 and "cannot reach the chain at http://127.0.0.1:9" in one_line(err)
    code, _, err = axl(*run_args(folder, url, tmp_path / "absent.json"))
    assert code == 2 and "cannot read address book" in one_line(err)
    data = json.loads(book.read_text())
    other_chain = tmp_path / "other_chain.json"
    other_chain.write_text(json.dumps({**data, "chain_id": 10}))
    code, _, err = axl(*run_args(folder, url, other_chain))
    assert code == 2 and "is for chain 10, the node at" in one_line(err)
    other_deployment = tmp_path / "other_deployment.json"
    contracts = {name: "0x" + f"{i + 1:040x}" for i, name in enumerate(data["contracts"])}
    other_deployment.write_text(json.dumps({**data, "contracts": contracts}))
    code, _, err = axl(*run_args(folder, url, other_deployment))
    assert code == 2 and "no contract at the address of" in one_line(err)
    assert not started


def test_key_and_binding_mistakes(
    axl: Axl, tmp_path: Path, deployment: tuple[str, Path], started: list[dict[str, Any]]
) -> None:
    url, book = deployment
    folder = tmp_path / "nokeys"
    code, _, err = axl(*run_args(folder, url, book))
    assert code == 2 and "no account key at" in one_line(err)
    (folder / "account.key").write_text("zz\n")
    (folder / "account.key").chmod(0o600)
    code, _, err = axl(*run_args(folder, url, book))
    assert code == 2 and "is corrupt" in one_line(err)
    (folder / "account.key").chmod(0o644)
    code, _, err = axl(*run_args(folder, url, book))
    assert code == 2 and "has mode 0644" in one_line(err)

    first, second = tmp_path / "first", tmp_path / "second"
    new_node(axl, first, url, book, tokens="200")
    new_node(axl, second, url, book)
    assert axl(*run_args(first, url, book))[0] == 0  # binds first's identity
    (second / "account.key").unlink()
    (second / "account.key").write_bytes((first / "account.key").read_bytes())
    (second / "account.key").chmod(0o600)
    code, _, err = axl(*run_args(second, url, book))
    assert code == 2 and "is bound to peer" in one_line(err)


def test_config_mistakes(axl: Axl, tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[network]\nlisen = []\n")
    code, _, err = axl("run", "solver", "--config", str(config))
    assert code == 2 and "network.lisen: Extra inputs are not permitted" in one_line(err)
    config.write_text('[http]\nstatus_port = "eighty"\n')
    code, _, err = axl("run", "solver", "--config", str(config))
    assert code == 2 and "http.status_port" in one_line(err)
    code, _, err = axl("run", "miner")
    assert code == 2 and "unknown role 'miner'" in one_line(err)


def test_keys_show_and_chain_info_print_their_tables(
    axl: Axl, tmp_path: Path, deployment: tuple[str, Path]
) -> None:
    """The tables for people (``rich``, which only these commands and ``axl status`` import:
    a node does not pay for it at start-up)."""
    url, book = deployment
    folder = tmp_path / "node"
    new_node(axl, folder, url, book, tokens="5")
    code, out, err = axl(
        "keys", "show", "--data-dir", str(folder), "--rpc", url, "--address-book", str(book)
    )
    assert code == 0, err
    assert "bound on chain" in out and "│ tokens         │ 5  │" in out
    code, out, err = axl(
        "chain", "info", "--rpc", url, "--address-book", str(book), "--data-dir", str(folder)
    )
    assert code == 0, err
    assert "at block" in out


def test_a_node_process_does_not_import_rich() -> None:
    code = "import sys, agents.cli; print('rich' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
