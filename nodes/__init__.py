"""Node classes: a thin layer over ``sampling/`` and ``adapters/``."""
from .api import ComfyExtension, io
from .adapter_nodes import NODES as ADAPTER_NODES
from .cascade_nodes import NODES as CASCADE_NODES
from .demo_nodes import NODES as DEMO_NODES
from .training_nodes import NODES as TRAINING_NODES
from .upscale_nodes import NODES as UPSCALE_NODES


class SelfCascadeExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [*CASCADE_NODES, *UPSCALE_NODES, *ADAPTER_NODES, *TRAINING_NODES, *DEMO_NODES]


async def comfy_entrypoint() -> SelfCascadeExtension:
    return SelfCascadeExtension()
