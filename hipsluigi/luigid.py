"""``python -m hipsluigi.luigid``: Luigi's central scheduler and web visualiser, with the
indexed scheduler of :mod:`hipsluigi.execution.scheduler` (same options as ``luigid``).

    python -m hipsluigi.luigid --address 127.0.0.1 --port 8082 --background \\
        --pidfile luigid.pid --logdir luigid-log --state-path luigi-state.pickle
"""

from __future__ import annotations

import argparse
import sys


def _serve(api_port=8082, address=None, unix_socket=None):
    import luigi.server

    from hipsluigi.execution.scheduler import indexed_or_luigi_scheduler

    luigi.server.run(api_port=api_port, address=address, unix_socket=unix_socket,
                     scheduler=indexed_or_luigi_scheduler())


def main(argv: list[str]) -> None:
    import luigi.configuration
    import luigi.process
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
    if opts.state_path:
        luigi.configuration.get_config().set("scheduler", "state_path", opts.state_path)
    DaemonLogging.setup(opts)
    if opts.background:
        luigi.process.daemonize(_serve, api_port=opts.port, address=opts.address,
                                pidfile=opts.pidfile, logdir=opts.logdir,
                                unix_socket=opts.unix_socket)
    else:
        _serve(api_port=opts.port, address=opts.address, unix_socket=opts.unix_socket)


if __name__ == "__main__":
    main(sys.argv[1:])
