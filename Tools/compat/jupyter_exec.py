"""Runs code in a Jupyter kernel through Jupyter's own REST and WebSocket API (as JupyterLab
does) at BASE_URL, and prints what the code printed; exits non-zero on any failure.

    jupyter_exec.py BASE_URL CODE

Uses aiohttp, which the official client's virtual environment has. Used by the compatibility
run to prove that `backend.ai app SESSION jupyter` gives a working Jupyter."""
import asyncio
import json
import sys
import uuid

import aiohttp


async def main(base: str, code: str) -> int:
    base = base.rstrip("/")
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/api/kernels", json={"name": "python3"}) as resp:
            if resp.status != 201:
                print(f"creating a kernel answered {resp.status}: {await resp.text()}", file=sys.stderr)
                return 1
            kernel = (await resp.json())["id"]
        ws_url = base.replace("http://", "ws://") + f"/api/kernels/{kernel}/channels"
        output = []
        async with http.ws_connect(ws_url) as ws:
            msg_id = uuid.uuid4().hex
            await ws.send_str(json.dumps({
                "header": {"msg_id": msg_id, "username": "compat", "session": uuid.uuid4().hex,
                           "msg_type": "execute_request", "version": "5.3"},
                "parent_header": {}, "metadata": {}, "channel": "shell",
                "content": {"code": code, "silent": False, "store_history": True,
                            "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
            }))
            while True:
                msg = await asyncio.wait_for(ws.receive(), timeout=60)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    print(f"the kernel channel ended: {msg.type}", file=sys.stderr)
                    return 1
                data = json.loads(msg.data)
                if data.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = data["header"]["msg_type"]
                if kind == "stream":
                    output.append(data["content"]["text"])
                elif kind == "error":
                    print("\n".join(data["content"]["traceback"]), file=sys.stderr)
                    return 1
                elif kind == "status" and data["content"]["execution_state"] == "idle":
                    break
        async with http.delete(f"{base}/api/kernels/{kernel}") as resp:
            if resp.status != 204:
                print(f"deleting the kernel answered {resp.status}", file=sys.stderr)
                return 1
    print("".join(output), end="")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))
