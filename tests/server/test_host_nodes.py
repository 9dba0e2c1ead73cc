"""Every node the pack ships is served by the host with a tooltip on every input."""
from __future__ import annotations

import re

from harness import PACK_NAME, REPO, ComfyClient


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


def test_every_served_node_id_carries_the_pack_prefix_and_the_readme_lists_them(comfy: ComfyClient):
    """Saved workflows refer to node ids forever: each carries the prefix, and the README's id table is complete."""
    info = comfy.object_info()
    served = {node_id: node["display_name"] for node_id, node in info.items()
              if node["python_module"] == f"custom_nodes.{PACK_NAME}"}
    assert served and all(node_id.startswith("SelfCascade") for node_id in served), sorted(served)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    listed = dict(re.findall(r"^\| ([^|`]+?) \| `(SelfCascade\w+)` \|", readme, flags=re.MULTILINE))
    assert {node_id: name for name, node_id in listed.items()} == served
