"""``python -m hipsluigi.luigid``: Luigi's central scheduler and web visualiser, with the
indexed scheduler of :mod:`hipsluigi.execution.scheduler` (same options as ``luigid``).

    python -m hipsluigi.luigid --address 127.0.0.1 --port 8082 --background \\
        --pidfile luigid.pid --logdir luigid-log --state-path luigi-state.pickle

Every file it writes (state, pid file, logs) is private to its user (umask 077): the state is
unpickled on the next start, so a file others could write would let them run code as this user.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys

#: Files luigid writes are readable and writable by its user only.
PRIVATE_UMASK = 0o077


def _serve(api_port=8082, address=None, unix_socket=None):
    import luigi.server

    from hipsluigi.execution.scheduler import indexed_or_luigi_scheduler

    luigi.server.run(api_port=api_port, address=address, unix_socket=unix_socket,
                     scheduler=indexed_or_luigi_scheduler())


def _daemonize(opts: argparse.Namespace) -> None:
    """``luigi.process.daemonize`` with a private umask.

    python-daemon's ``DaemonContext`` sets umask 0 by default, which is how Luigi's own
    daemonize leaves the pid file, the log and the pickled state writable by every local user.
    """
    import daemon
    import luigi.process

    logdir = opts.logdir or "/var/log/luigi"
    os.makedirs(logdir, exist_ok=True)
    today = datetime.date.today()
    stdout = open(os.path.join(logdir, f"luigi-server-{today:%Y-%m-%d}.out"), "a+")  # noqa: SIM115
    stderr = open(os.path.join(logdir, f"luigi-server-{today:%Y-%m-%d}.err"), "a+")  # noqa: SIM115
    with daemon.DaemonContext(stdout=stdout, stderr=stderr, working_directory=".",
                              umask=PRIVATE_UMASK):
        luigi.process.rootlogger.addHandler(
            luigi.process.get_spool_handler(os.path.join(logdir, "luigi-server.log")))
        if opts.pidfile:
            if luigi.process.check_pid(opts.pidfile):
                return
            luigi.process.write_pid(opts.pidfile)
        _serve(api_port=opts.port, address=opts.address, unix_socket=opts.unix_socket)


def main(argv: list[str]) -> None:
    import luigi.configuration
    from luigi.setup_logging import DaemonLogging

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--background", action="store_true", help="run as a daemon")
    parser.add_argument("--pidfile", help="write the daemon's pid here")
    parser.add_argument("--logdir", help="log directory")
    parser.add_argument("--state-path", help="pickled scheduler state")
    parser.add_argument("--address", default="127.0.0.1", help="listening address")
    parser.add_argument("--unix-socket", help="listen on a unix socket instead")
    parser.add_argument("--port", type=int, default=8082)
    opts = parser.parse_args(argv)
    os.umask(PRIVATE_UMASK)
    if opts.state_path:
        luigi.configuration.get_config().set("scheduler", "state_path", opts.state_path)
    DaemonLogging.setup(opts)
    if opts.background:
        _daemonize(opts)
    else:
        _serve(api_port=opts.port, address=opts.address, unix_socket=opts.unix_socket)


if __name__ == "__main__":
    main(sys.argv[1:])
