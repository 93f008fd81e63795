"""``assistantctl keys``: this client's CURVE key pair for ``tcp://`` endpoints, or the daemon's
public key, with what to copy where.

A daemon serves ``tcp://`` only to clients whose public key is in its ``curve-clients`` folder,
and a client needs the daemon's public key to connect. So setting a frontend up on another
machine is: ``assistantctl keys`` there, its ``client.key`` into the daemon's folder, and the
daemon's key (``assistantctl keys --server`` on the daemon's machine) to the frontend.
"""

from __future__ import annotations

import argparse
import os
import sys

from assistantd.protocol.errors import AssistantdError
from assistantd.protocol.keys import (
    ENV_CLIENT_SECRET_KEY,
    ENV_SERVER_KEY,
    PUBLIC_SUFFIX,
    SECRET_SUFFIX,
    SERVER_KEY_NAME,
    KeyFileError,
    config_dir,
    create_key_pair,
    default_client_secret_key,
    read_public_key,
    read_secret_key,
    state_dir,
)

from . import output


def run(args: argparse.Namespace) -> int:
    """The ``keys`` command; its exit code."""
    as_json = bool(getattr(args, "json", False))
    env = os.environ
    home = os.path.expanduser("~")
    try:
        if args.server:
            folder = args.dir or state_dir(env, home)
            return _show_server(os.path.join(folder, SERVER_KEY_NAME + PUBLIC_SUFFIX), as_json)
        folder = args.dir or config_dir(env, home)
        return _make_client(os.path.abspath(folder), args.name, as_json)
    except KeyFileError as exc:
        raise _failure(str(exc)) from None


def _failure(message: str) -> AssistantdError:
    return AssistantdError(message, code="curve_key_unusable", status=400)


def _make_client(folder: str, name: str, as_json: bool) -> int:
    secret_file = os.path.join(folder, name + SECRET_SUFFIX)
    public_file = os.path.join(folder, name + PUBLIC_SUFFIX)
    try:
        create_key_pair(folder, name)
        created = True
    except FileExistsError:
        created = False
    except OSError as exc:
        raise _failure(f"cannot make a key pair in {folder}: {exc.strerror or exc}") from None
    public_key, _ = read_secret_key(secret_file)
    if not os.path.exists(public_file):
        raise KeyFileError(f"{secret_file} exists, but its public key file {public_file} does not")
    if as_json:
        return output.print_json(
            {
                "created": created,
                "secret_key_file": secret_file,
                "public_key_file": public_file,
                "public_key": public_key.decode(),
            }
        )
    default = default_client_secret_key(os.environ, os.path.expanduser("~"))
    write = sys.stdout.write
    write(
        f"{'made a new' if created else 'kept the existing'} CURVE key pair of this client:\n"
        f"  secret key  {secret_file}  (keep it here, mode 0600; never copy it)\n"
        f"  public key  {public_file}\n"
        f"  {public_key.decode()}\n\n"
        f"On the daemon's machine, put the public key file into the daemon's curve-clients\n"
        f"folder, under a name that says whose it is, e.g.:\n"
        f"  scp {public_file} DAEMON-HOST:CURVE-CLIENTS-DIR/$(hostname){PUBLIC_SUFFIX}\n"
        f"It is allowed from the next connection on (no restart).\n\n"
        f"This client also needs the daemon's public key (`assistantctl keys --server` there):\n"
        f"  export {ENV_SERVER_KEY}=THE-KEY\n"
        f"or copy the daemon's {SERVER_KEY_NAME}{PUBLIC_SUFFIX} to "
        f"{os.path.join(config_dir(os.environ, os.path.expanduser('~')), 'server.key')}\n"
    )
    if os.path.abspath(secret_file) != os.path.abspath(default):
        write(f"\nNot in the default place: set {ENV_CLIENT_SECRET_KEY}={secret_file}\n")
    return 0


def _show_server(public_file: str, as_json: bool) -> int:
    if not os.path.exists(public_file):
        raise KeyFileError(
            f"no server key at {public_file}: the daemon makes its pair when it first serves a "
            f"tcp:// endpoint with curve-clients set (its log then says where), or give --dir"
        )
    public_key = read_public_key(public_file).decode()
    if as_json:
        return output.print_json({"public_key_file": public_file, "public_key": public_key})
    sys.stdout.write(
        f"the daemon's public key ({public_file}):\n"
        f"  {public_key}\n\n"
        f"On each client machine: export {ENV_SERVER_KEY}={public_key}\n"
        f"or copy {public_file} to ~/.config/assistantd/server.key there.\n"
    )
    return 0
