"""Benchmarks of the cascade against its floor, the core-node graph, direct sampling and a hires fix (issue #7).

Run ``python benchmarks/run.py --help``. Not imported by ComfyUI: the node pack's ``__init__`` never
reaches this folder.
"""
