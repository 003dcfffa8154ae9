"""bench/apps/services.py - the cotyledon side of the benchmark.

    /usr/bin/python3 bench/apps/services.py KIND N

The same program as bench/apps/services.lua, for Python's cotyledon:
KIND "idle" runs N workers whose run() reports "run WID PID" and returns
(the worker then idles until a signal) and whose reload() reports
"reload WID PID"; KIND "crash" runs one worker whose run() reports and
exits 1 at once. Reports are single short lines on stdout (a pipe that
the driver timestamps on receipt). Cotyledon's defaults are kept.
"""
import os
import sys

import cotyledon


def report(what, worker_id):
    os.write(1, b"%s %d %d\n" % (what, worker_id, os.getpid()))


class Idle(cotyledon.Service):
    name = "idle"

    def __init__(self, worker_id):
        super().__init__(worker_id)
        self.wid = worker_id

    def run(self):
        report(b"run", self.wid)

    def reload(self):
        report(b"reload", self.wid)

    def terminate(self):
        pass


class Crash(cotyledon.Service):
    name = "crash"

    def __init__(self, worker_id):
        super().__init__(worker_id)
        self.wid = worker_id

    def run(self):
        report(b"run", self.wid)
        os._exit(1)


def main():
    kind, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1
    services = {"idle": Idle, "crash": Crash}
    manager = cotyledon.ServiceManager()
    manager.add(services[kind], workers=1 if kind == "crash" else n)
    manager.run()


if __name__ == "__main__":
    main()
