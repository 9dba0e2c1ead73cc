"""Files built to attack a loader, for the tests that prove the pack refuses them before harm is done.

``declaring_pth(path, declared_bytes)`` writes what the security probe used: a small torch.save-style
zip archive whose pickle references one float32 storage of ``declared_bytes`` and whose record holds
that many zero bytes, deflated (1 GiB becomes about 1 MB). ``torch.load(weights_only=True)`` of it
executes nothing, but allocates the whole storage. ``lying_pth`` declares the size in the zip
directory only (a stored record of 16 real bytes).
"""
from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from pathlib import Path

import torch

OFFICIAL_KEY = "unet.feature_upsampler0.0.in_layers.0.weight"
_CHUNK = 1 << 20


class _Storage:
    def __init__(self, numel: int):
        self.numel = numel


class _Tensor:
    """Pickles as torch.save pickles a tensor: a rebuild call on a persistent storage reference."""

    def __init__(self, numel: int):
        self.numel = numel

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2,
                (_Storage(self.numel), 0, (self.numel,), (1,), False, collections.OrderedDict()))


class _TorchStylePickler(pickle.Pickler):
    def persistent_id(self, obj):
        return ("storage", torch.FloatStorage, "0", "cpu", obj.numel) if isinstance(obj, _Storage) else None


def _pickle_of(numel: int) -> bytes:
    data = io.BytesIO()
    _TorchStylePickler(data, protocol=2).dump({"state_dict": {OFFICIAL_KEY: _Tensor(numel)}})
    return data.getvalue()


def declaring_pth(path: Path, declared_bytes: int) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", _pickle_of(declared_bytes // 4))
        archive.writestr("archive/byteorder", "little")
        record = zipfile.ZipInfo("archive/data/0")
        record.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(record, "w", force_zip64=True) as handle:
            zeros = bytes(_CHUNK)
            for _ in range(declared_bytes // _CHUNK):
                handle.write(zeros)
        archive.writestr("archive/version", "3\n")
    return path


def lying_pth(path: Path, declared_bytes: int) -> Path:
    """A stored record of 16 bytes whose directory entries claim ``declared_bytes`` (< 4 GiB)."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", _pickle_of(4))
        archive.writestr("archive/data/0", bytes(16))
    raw = bytearray(path.read_bytes())
    name = b"archive/data/0"
    # (signature, offset of the name, offset of compressed then uncompressed size) of the local header
    # and of the central directory entry
    for signature, name_offset, size_offset in ((b"PK\x03\x04", 30, 18), (b"PK\x01\x02", 46, 20)):
        start = raw.find(signature)
        while start != -1:
            if raw[start + name_offset:start + name_offset + len(name)] == name:
                struct.pack_into("<II", raw, start + size_offset, declared_bytes, declared_bytes)
            start = raw.find(signature, start + 4)
    path.write_bytes(bytes(raw))
    return path
