"""Learned upsampler adapters (the paper's tuning version): modules, file format, injection, training.

No ComfyUI import at package level, so ``fileformat`` and the official-weights converter run
without a host (``scripts/convert_official_adapter.py``).
"""
