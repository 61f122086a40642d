"""The emulator's server on 127.0.0.1 (the emulator kit's; plain HTTP by default, as
hubspot-api-client takes any ``host``; ``tls=True`` serves HTTPS from a test CA)::

with EmulatorServer() as hs:
    token = hs.portal.seed()["access_token"]
    client = HubSpot(access_token=token, host=hs.url)
    ...  # hs.url, hs.portal, hs.requests

``spe emulator hubspot`` (:func:`main`) keeps its token and port in a state
folder (see :mod:`spe_adapters.emulator_kit.state`), so the ``spe.toml`` block
it prints keeps working across restarts.
"""

from __future__ import annotations

import argparse
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime

from spe_adapters.emulator_kit import CertificateAuthority, KitServer
from spe_adapters.emulator_kit import run as kit_run
from spe_adapters.emulator_kit.demo_team import DEMO_TEAM, team_tables, toml_string
from spe_adapters.hubspot.emulator.models import DEMO_TEAMS, Portal
from spe_adapters.hubspot.emulator.responses import EmulatorApp

__all__ = ["EmulatorServer", "config_block", "main"]

#: The demo portal's HubSpot teams and the SPE role each stands for.
DEMO_TEAM_ROLES = {team: role for role, team in DEMO_TEAMS.items()}
TOKEN_ENV = "HUBSPOT_ACCESS_TOKEN"


class EmulatorServer(KitServer):
    """A running emulator: ``url`` (http://127.0.0.1:PORT), ``portal``, ``requests``."""

    def __init__(
        self,
        *,
        port: int = 0,
        clock: Callable[[], datetime] | None = None,
        tls: bool | CertificateAuthority = False,
    ) -> None:
        self.portal = Portal(clock)
        super().__init__(EmulatorApp(self.portal), port=port, tls=tls, name="spe-hubspot-emulator")


def config_block(server: EmulatorServer) -> str:
    """The ``spe.toml`` tables that point SPE at this emulator (the token is read from
    ``HUBSPOT_ACCESS_TOKEN``); its teams' roles, the field salespeople's home bases and
    ``[[team]]`` tables for what owners do not hold about the demo team come with them."""
    owners = list(server.portal.owners.values())
    teams = sorted({t["name"] for o in owners for t in o["teams"]})
    emails = {str(o["email"]): str(o["id"]) for o in owners}
    lines = [
        "[adapter]",
        'name = "hubspot"',
        "",
        "[adapter.hubspot]",
        f"host = {toml_string(server.url)}",
        f"access_token_env = {toml_string(TOKEN_ENV)}",
        "",
        "# HubSpot owners carry no SPE role: the portal's teams map to roles",
        "[adapter.hubspot.team_roles]",
        *(
            f"{toml_string(t)} = {toml_string(DEMO_TEAM_ROLES[t])}"
            for t in teams
            if t in DEMO_TEAM_ROLES
        ),
    ]
    bases = [(p, p.home_base) for p in DEMO_TEAM if p.home_base and p.email in emails]
    if bases:
        lines += [
            "",
            "# HubSpot owners carry no address: the field salespeople's home bases, by e-mail",
            "[adapter.hubspot.home_bases]",
            *(
                f"{toml_string(p.email)} = {{ lat = {lat}, lon = {lon}, "
                f"address = {toml_string(city)} }}"
                for p, (lat, lon, city) in bases
            ),
        ]
    team = team_tables(emails, time_zone=True)
    if team:
        lines += [
            "",
            "# HubSpot owners carry no time zone, sales coordinator or working hours: those",
            "# are set here, by owner id.",
            *team[1:],
        ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator with a seeded demo portal until Ctrl-C; print the configuration."""
    parser = argparse.ArgumentParser(prog="spe emulator hubspot")
    kit_run.add_arguments(parser, "hubspot")
    args = parser.parse_args(argv)
    state = kit_run.open_state("hubspot", args)
    token = state.secret("access_token", lambda: "pat-emu-" + secrets.token_hex(16))
    server = kit_run.start_on_port(lambda port: EmulatorServer(port=port), state, args.port)
    if server is None:
        return 1
    server.portal.seed(args.seed)
    server.portal.add_token(token)
    block = config_block(server)
    exports = f"export {TOKEN_ENV}={token}\n"
    toml_file = state.write_private("adapter.toml", block)
    env_file = state.write_private("env.sh", exports)
    say = kit_run.say
    say(f"HubSpot emulator at {server.url}")
    say(f"plain HTTP, demo data of seed {args.seed}; state in {state.directory}")
    say("(token and port kept across restarts; --reset for new ones)")
    say("")
    say("# spe.toml: paste into a new spe.toml (into one from `spe init`, set its")
    say("# [adapter] name instead of pasting the first two lines):")
    for line in block.splitlines():
        say(line)
    say("")
    say("# the shell that runs spe:")
    say(exports.rstrip("\n"))
    say("")
    say(f"# both are also in {toml_file} and {env_file} (source it)")
    say("Records are not kept: each start seeds the same demo data.")
    return kit_run.serve(server, "ready; Ctrl-C stops it.")


if __name__ == "__main__":
    raise SystemExit(main())
