"""A user session with e2b 2.8.x (v1 create and connect routes), run by the 2.8 interpreter.

Reads ``E2B_API_URL``, ``E2B_SANDBOX_URL``, ``E2B_API_KEY`` and ``ADMIN_KEY``
from the environment; prints one ``step ok`` line per step and exits 0, or
raises.
"""

import json
import os
import urllib.request

import e2b
from e2b import Sandbox


def advance(seconds):
    req = urllib.request.Request(
        os.environ["E2B_API_URL"] + "/_kruise/clock/advance",
        data=json.dumps({"seconds": seconds}).encode(),
        headers={"X-API-Key": os.environ["ADMIN_KEY"], "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req) as resp:
        assert resp.status == 200


print("version", e2b.__version__ if hasattr(e2b, "__version__") else "?")

sbx = Sandbox.create(template="base", metadata={"sdk": "2.8"}, envs={"OLD": "yes"})
print("create ok", sbx.sandbox_id)

result = sbx.commands.run("echo $OLD")
assert result.stdout == "yes\n", result
print("commands ok")

sbx.files.write("/home/user/old.txt", "v1 routes")
assert sbx.files.read("/home/user/old.txt") == "v1 routes"
print("files ok")

info = sbx.get_info()
assert info.metadata["sdk"] == "2.8", info
print("get_info ok")

paused = Sandbox.beta_create(template="base", auto_pause=True, timeout=60)
advance(61)
states = {s.sandbox_id: s.state.value for s in Sandbox.list(query=None).next_items()}
assert states.get(paused.sandbox_id) == "paused", states
print("auto_pause ok")

Sandbox.connect(paused.sandbox_id)
# e2b 2.8 builds the connected object without the E2b-Sandbox-Id header, so
# its sandbox traffic cannot be routed on a shared URL: use the created object.
assert paused.is_running()
assert paused.commands.run("echo resumed").stdout == "resumed\n"
print("connect ok")

assert sbx.kill()
assert paused.kill()
print("kill ok")
