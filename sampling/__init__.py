"""The cascade math: stage plans, pivot schedules, pivot upsampling and the stage loop.

No node code lives here; ``nodes/`` is a thin layer over these functions.
"""
