"""Every node the pack ships is served by the host with a tooltip on every input."""
from __future__ import annotations

from harness import PACK_NAME, ComfyClient


def test_host_serves_every_shipped_node(comfy: ComfyClient, shipped_node_ids: set[str]):
    info = comfy.object_info()

    served = {node_id for node_id, node in info.items() if node["python_module"] == f"custom_nodes.{PACK_NAME}"}
    assert served == shipped_node_ids


def test_every_input_has_a_tooltip(comfy: ComfyClient, shipped_node_ids: set[str]):
    info = comfy.object_info()

    missing = [f"{node_id}.{name}" for node_id in sorted(shipped_node_ids)
               for section in ("required", "optional") for name, spec in info[node_id]["input"].get(section, {}).items()
               if len(spec) < 2 or not spec[1].get("tooltip")]
    assert missing == []
