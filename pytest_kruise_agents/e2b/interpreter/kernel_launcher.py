"""The kernel process's entry point: ipykernel whose IOPub socket drops nothing (run as a script).

ipykernel publishes a cell's output on an XPUB socket whose high-water mark
is 1000 messages: a burst of output that the interpreter has not read yet
past that is dropped, silently, output and idle status alike. This script
starts the same ipykernel with no high-water mark on the kernel's sockets,
so a burst waits in the kernel until the interpreter's reader, which drains
it at once (:mod:`.kernels`), takes it.

Run by path (``python kernel_launcher.py -f <connection file>``), not with
``-m``: importing the package would load the whole server into every kernel.
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__: list[str] = []


def _main() -> None:
    # This script's directory is sys.path[0]: its sibling modules (requests.py,
    # outputs.py...) must not shadow the packages the user's code imports.
    if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
        del sys.path[0]

    import zmq
    from ipykernel.kernelapp import IPKernelApp

    class LosslessKernelApp(IPKernelApp):
        def init_iopub(self, context: zmq.Context[zmq.Socket[bytes]]) -> None:
            # Sockets made from now on (IOPub first) queue without limit.
            context.setsockopt(zmq.SNDHWM, 0)
            super().init_iopub(context)  # type: ignore[no-untyped-call]

    LosslessKernelApp.launch_instance()


if __name__ == "__main__":
    _main()
