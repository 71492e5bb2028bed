"""``urbansound ui``: the MLflow UI over the local store."""

from __future__ import annotations

import sys

from urbansound.pipeline.commands.options import STORE_DEFAULT_HELP, Command, add_tracking_uri


def add_parser(sub, d) -> None:
    ui = sub.add_parser(
        "ui",
        help="serve the MLflow UI for the local tracking store",
        description="Start `mlflow ui` on the tracking store `urbansound run` "
        "writes (default ./mlflow.db). Listens on 127.0.0.1 only, "
        "unless --host says otherwise.",
    )
    add_tracking_uri(ui, STORE_DEFAULT_HELP)
    ui.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to listen on (default 127.0.0.1: this machine only; "
        "0.0.0.0: every interface, for other machines; the UI has no "
        "login, see the README)",
    )
    ui.add_argument("--port", type=int, default=5000, help="default 5000")
    ui.add_argument(
        "--allowed-hosts",
        metavar="H1,H2",
        help="Host headers MLflow answers (its --allowed-hosts; wildcards like "
        "192.168.*); default for a --host other than loopback: this "
        "machine's names and addresses as printed, and localhost",
    )
    ui.add_argument(
        "--cors-allowed-origins",
        metavar="O1,O2",
        help="origins whose pages may change runs (MLflow's "
        "--cors-allowed-origins); default for a --host other than loopback: "
        "http://ADDRESS:PORT of each printed address",
    )


def ui_command(
    tracking_uri: str, host: str, port: int, *, allowed_hosts: str = "", cors_origins: str = ""
) -> list[str]:
    """The ``mlflow ui`` command line for a store (artifacts served from beside a sqlite
    db); ``allowed_hosts`` / ``cors_origins`` (comma-separated) go to MLflow's
    ``--allowed-hosts`` / ``--cors-allowed-origins`` when given."""
    from urbansound.components.tracking_store import default_artifact_location

    command = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        tracking_uri,
        "--host",
        host,
        "--port",
        str(port),
    ]
    artifacts = default_artifact_location(tracking_uri)
    if artifacts:
        command += ["--default-artifact-root", artifacts]
    if allowed_hosts:
        command += ["--allowed-hosts", allowed_hosts]
    if cors_origins:
        command += ["--cors-allowed-origins", cors_origins]
    return command


def cmd_ui(args) -> int:
    """Serve the UI; bound beyond loopback, warn that it has no login and print the
    addresses that reach it (not 0.0.0.0), which MLflow is told to allow."""
    import subprocess

    from urbansound.config import ConfigError
    from urbansound.pipeline import ui_network
    from urbansound.pipeline.local_runner import default_tracking_uri

    uri = args.tracking_uri or default_tracking_uri(".")
    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: must be 1..65535")
    allowed, origins = args.allowed_hosts or "", args.cors_allowed_origins or ""
    if ui_network.is_loopback(args.host):
        addresses = [args.host]
    else:
        addresses = ui_network.reachable_addresses(args.host)
        allowed = allowed or ",".join(ui_network.allowed_hosts(addresses, args.port))
        origins = origins or ",".join(ui_network.cors_origins(addresses, args.port))
    first = ui_network.url_host(addresses[0])
    page = ui_address(uri, first, args.port)
    # before mlflow's own output, also when stdout is a pipe
    print(f"MLflow UI for {uri}: {page}  (Ctrl-C stops it)", flush=True)
    if not ui_network.is_loopback(args.host):
        root = f"http://{first}:{args.port}"
        for other in addresses[1:]:
            other_root = f"http://{ui_network.url_host(other)}:{args.port}"
            print(f"  also: {page.replace(root, other_root, 1)}")
        print(
            f"  MLflow allows Host headers {allowed} and origins {origins or 'localhost'} "
            f"(--allowed-hosts, --cors-allowed-origins)",
            flush=True,
        )
        print(ui_network.NO_AUTH_WARNING.format(uri=uri), file=sys.stderr, flush=True)
    return subprocess.call(
        ui_command(uri, args.host, args.port, allowed_hosts=allowed, cors_origins=origins)
    )


def ui_address(tracking_uri: str, host: str, port: int) -> str:
    """The page to open: the urbansound experiment's runs table in MLflow 3's model-training
    view (``workflowType=machine_learning``; without it the UI opens on its GenAI overview).
    The server's root where the store holds no urbansound experiment yet."""
    from urbansound.components.runs import EXPERIMENT
    from urbansound.components.tracking_store import sqlite_path

    root = f"http://{host}:{port}"
    db = sqlite_path(tracking_uri)
    if db is not None and not db.exists():
        return root  # do not create an empty store just to look
    try:
        from mlflow.tracking import MlflowClient

        found = MlflowClient(tracking_uri).get_experiment_by_name(EXPERIMENT)
    except Exception:
        return root
    if found is None:
        return root
    from urbansound.components.runs import VIEW_KEY, VIEW_TAGS

    try:  # a store written before the view tags: give it them (runs add them too)
        for key, value in VIEW_TAGS.items():
            if found.tags.get(key) != value:
                MlflowClient(tracking_uri).set_experiment_tag(found.experiment_id, key, value)
    except Exception:
        pass

    # the accuracy columns come from the experiment's shared view state (urbansound.components.runs)
    return (
        f"{root}/#/experiments/{found.experiment_id}/runs?workflowType=machine_learning"
        f"&viewStateShareKey={VIEW_KEY}"
    )


COMMANDS = {"ui": Command(add_parser, cmd_ui)}
