"""The emulator's HTTPS server on 127.0.0.1 (the emulator kit's), with a test certificate
authority: a temporary one, or ``ca=`` one kept in a folder.

simple-salesforce forces https; it accepts ``instance_url="https://127.0.0.1:PORT"``
and a ``session=`` whose ``verify`` is this server's CA file (and whose
``trust_env`` is False, or ``REQUESTS_CA_BUNDLE`` would silently win)::

    with EmulatorServer() as sf:
        login = sf.org.seed()
        ...  # sf.url, sf.ca_path, sf.org, sf.requests

``spe emulator salesforce`` (:func:`main`) keeps its CA, connected-app
credentials and port in a state folder (see
:mod:`spe_adapters.emulator_kit.state`), so the ``spe.toml`` block it prints
keeps working across restarts.
"""

from __future__ import annotations

import argparse
import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from spe_adapters.emulator_kit import CertificateAuthority, KitServer
from spe_adapters.emulator_kit import run as kit_run
from spe_adapters.emulator_kit.demo_team import team_tables, toml_string
from spe_adapters.salesforce.emulator.models import Org
from spe_adapters.salesforce.emulator.responses import EmulatorApp

__all__ = ["EmulatorServer", "config_block", "main"]

#: The environment variables the printed configuration reads (the adapter's defaults).
ENV = {
    "username": "SF_USERNAME",
    "password": "SF_PASSWORD",
    "client_id": "SF_CLIENT_ID",
    "client_secret": "SF_CLIENT_SECRET",
}


class EmulatorServer(KitServer):
    """A running emulator: ``url`` (https://127.0.0.1:PORT), ``ca_path``, ``org``,
    ``requests``."""

    def __init__(
        self,
        *,
        port: int = 0,
        clock: Callable[[], datetime] | None = None,
        ca: CertificateAuthority | None = None,
    ) -> None:
        self.org = Org(clock)
        super().__init__(EmulatorApp(self.org), port=port, tls=ca or True, name="spe-sf-emulator")


def config_block(server: EmulatorServer) -> str:
    """The ``spe.toml`` tables that point SPE at this emulator (password login; the
    credentials are read from the ``SF_*`` environment variables), with ``[[team]]``
    tables for what the seeded org's Users do not hold about the demo team."""
    lines = [
        "[adapter]",
        'name = "salesforce"',
        "",
        "[adapter.salesforce]",
        'auth = "password"',
        f"login_url = {toml_string(server.url)}",
        f"ca_bundle = {toml_string(server.ca_path)}",
    ]
    users = {str(u.get("Username")): str(u["Id"]) for u in server.org.all("User")}
    team = team_tables(users, time_zone=False)
    if team:
        lines += [
            "",
            "# Salesforce Users hold names, roles, time zones and addresses (home bases), not",
            "# who coordinates a field salesperson or their working hours: those are set here,",
            "# by User id.",
            *team[1:],
        ]
    return "\n".join(lines) + "\n"


def exports(credentials: Mapping[str, str]) -> str:
    """The shell lines that export ``credentials`` under the names :data:`ENV` gives."""
    return "".join(f"export {ENV[k]}={credentials[k]}\n" for k in ENV)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator with a seeded demo org until Ctrl-C; print the configuration."""
    parser = argparse.ArgumentParser(prog="spe emulator salesforce")
    kit_run.add_arguments(parser, "salesforce")
    args = parser.parse_args(argv)
    state = kit_run.open_state("salesforce", args)
    ca = CertificateAuthority(state.directory)
    server = kit_run.start_on_port(lambda port: EmulatorServer(port=port, ca=ca), state, args.port)
    if server is None:
        return 1
    login = server.org.seed(args.seed)
    credentials = {
        "username": login["username"],
        "password": login["password"],
        # the emulator's connected app: kept across restarts; its client credentials flow
        # runs as the demo user (auth = "client_credentials" works with the same exports)
        "client_id": state.secret("client_id", lambda: "3MVG9emulator" + secrets.token_hex(12)),
        "client_secret": state.secret("client_secret", lambda: secrets.token_hex(16)),
    }
    server.org.add_client_app(
        credentials["client_id"], credentials["client_secret"], login["username"]
    )
    block = config_block(server)
    env = exports(credentials)
    toml_file = state.write_private("adapter.toml", block)
    env_file = state.write_private("env.sh", env)
    say = kit_run.say
    say(f"Salesforce emulator at {server.url}")
    say(f"HTTPS, demo data of seed {args.seed}; state in {state.directory}")
    say(f"(CA {server.ca_path}, credentials and port kept across restarts; --reset for new ones)")
    say("")
    say("# spe.toml: paste into a new spe.toml (into one from `spe init`, set its")
    say("# [adapter] name instead of pasting the first two lines):")
    for line in block.splitlines():
        say(line)
    say("")
    say("# the shell that runs spe:")
    for line in env.splitlines():
        say(line)
    say("")
    say(f"# both are also in {toml_file} and {env_file} (source it)")
    say("Records are not kept: each start seeds the same demo data.")
    return kit_run.serve(server, "ready; Ctrl-C stops it.")


if __name__ == "__main__":
    raise SystemExit(main())
