"""Adapter files: round trip, atomic writes, strict official conversion, and clear refusals of bad files."""
from __future__ import annotations

import dataclasses
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
import torch

from hostile_files import lying_pth
from selfcascade.adapters.fileformat import (FORMAT_VERSION, MAX_PTH_BYTES, MAX_PTH_RECORDS, OFFICIAL_SDXL_PARAMETERS,
                                             AdapterError, WriteFailed, check_weights, convert_official_adapter,
                                             from_official_keys, load_adapter, official_spec, replaced_atomically,
                                             save_adapter, spec_to_metadata, to_official_keys)
from selfcascade.adapters.modules import (DIT_LITE, DIT_TIME_DIM, LITE, OFFICIAL_SDXL_POINTS, AdapterSpec, UpsamplerAdapter,
                                          build_module)

REPO = Path(__file__).resolve().parents[2]
TINY_WIDTHS = (32, 64, 128, 128)  # tests/tiny_pack's SDXL: model_channels 32, channel_mult 1, 2, 4
TINY_EMB = 128
LAYERS = ("in_layers.0", "in_layers.2", "emb_layers.1", "out_layers.0", "out_layers.3")


def official_state_dict(widths=TINY_WIDTHS, emb=TINY_EMB, device="cpu", seed=0) -> dict[str, torch.Tensor]:
    """The released upsampler_only.pth layout, written from its description (not from our module)."""
    generator = torch.Generator().manual_seed(seed)
    shapes = {"in_layers.0": lambda c: [(c,), (c,)], "in_layers.2": lambda c: [(c, c, 3, 3), (c,)],
              "emb_layers.1": lambda c: [(c, emb), (c,)], "out_layers.0": lambda c: [(c,), (c,)],
              "out_layers.3": lambda c: [(c, c, 3, 3), (c,)]}
    state = {}
    for n, c in enumerate(widths):
        for block in (0, 1):
            for layer in LAYERS:
                for name, shape in zip(("weight", "bias"), shapes[layer](c)):
                    key = f"unet.feature_upsampler{n}.{block}.{layer}.{name}"
                    state[key] = (torch.empty(shape, device="meta") if device == "meta"
                                  else torch.randn(shape, generator=generator) * 0.02)
    return state


def lite_adapter(seed=0) -> UpsamplerAdapter:
    torch.manual_seed(seed)
    spec = AdapterSpec(LITE, "sdxl", TINY_WIDTHS, TINY_EMB, "skip", OFFICIAL_SDXL_POINTS,
                       provenance={"steps": 4000, "data": "unit test"})
    return UpsamplerAdapter(spec, build_module(spec))


def test_save_then_load_gives_the_same_spec_and_weights(tmp_path):
    adapter = lite_adapter()
    save_adapter(tmp_path / "a.safetensors", adapter)
    loaded = load_adapter(tmp_path / "a.safetensors")
    assert loaded.spec == adapter.spec
    for (key, value), (key2, value2) in zip(adapter.module.state_dict().items(), loaded.module.state_dict().items()):
        assert key == key2 and torch.equal(value, value2)
    assert sorted(os.listdir(tmp_path)) == ["a.safetensors"]  # no temporary left behind


def test_save_refuses_to_overwrite_unless_asked_and_never_half_writes(tmp_path):
    path = tmp_path / "a.safetensors"
    save_adapter(path, lite_adapter(0))
    before = path.read_bytes()
    with pytest.raises(AdapterError, match="exists; choose another name or pass overwrite=True"):
        save_adapter(path, lite_adapter(1))
    broken = lite_adapter(1)
    with torch.no_grad():
        broken.module.time_proj.weight[0, 0] = float("nan")
    with pytest.raises(AdapterError, match="not finite"):
        save_adapter(path, broken, overwrite=True)
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["a.safetensors"]
    save_adapter(path, lite_adapter(1), overwrite=True)
    assert path.read_bytes() != before


def test_files_written_together_are_replaced_together_or_not_at_all(tmp_path):
    first, second = tmp_path / "adapter.safetensors", tmp_path / "adapter.state.safetensors"
    for path in (first, second):
        path.write_bytes(b"old")
    with pytest.raises(WriteFailed, match="adapter.state.safetensors.*No space left.*free disk space"):
        with replaced_atomically(first) as first_file, replaced_atomically(second) as second_file:
            first_file.write_bytes(b"new")
            raise OSError(errno.ENOSPC, "No space left on device")  # while writing the second file
    assert first.read_bytes() == second.read_bytes() == b"old" and len(os.listdir(tmp_path)) == 2
    with replaced_atomically(first) as first_file, replaced_atomically(second) as second_file:
        first_file.write_bytes(b"new")
        second_file.write_bytes(b"new")
    assert first.read_bytes() == second.read_bytes() == b"new" and len(os.listdir(tmp_path)) == 2


def test_truncated_file_is_refused_with_its_name(tmp_path):
    path = tmp_path / "cut.safetensors"
    save_adapter(path, lite_adapter())
    data = path.read_bytes()
    for cut in (4, 100, len(data) - 10):
        path.write_bytes(data[:cut])
        with pytest.raises(AdapterError, match=r"cut\.safetensors.*truncated"):
            load_adapter(path)


def _rewrite_metadata(path: Path, **changes) -> None:
    with safetensors.safe_open(str(path), "pt") as handle:
        metadata = {**handle.metadata(), **changes}
        state = {key: handle.get_tensor(key) for key in handle.keys()}
    safetensors.torch.save_file(state, str(path), metadata=metadata)


@pytest.mark.parametrize("changes, message", [
    ({"format_version": str(FORMAT_VERSION + 1)}, "newer than this node pack reads.*update"),
    ({"format_version": "one"}, "format_version 'one' is not a positive integer"),
    ({"format": "something-else"}, "not a Self-Cascade upsampler adapter"),
    ({"channels": "[32, 64"}, "'channels' is not valid JSON"),
    ({"channels": json.dumps([32, 64, 128])}, "must be lists of equal length"),
    ({"emb_dim": json.dumps("128")}, "'emb_dim' must be an integer"),
    ({"variant": json.dumps("mega")}, "'variant' is 'mega'"),
    ({"k_range": json.dumps([0.7, 0.2])}, "'k_range' must be"),
    ({"provenance": json.dumps({"note": "x" * 5000})}, "'provenance' must be a flat object"),
    ({"provenance": "x" * 20000}, "'provenance' is 20000 characters"),
])
def test_bad_metadata_is_refused_with_a_reason(tmp_path, changes, message):
    path = tmp_path / "a.safetensors"
    save_adapter(path, lite_adapter())
    _rewrite_metadata(path, **changes)
    with pytest.raises(AdapterError, match=message):
        load_adapter(path)


def dit_adapter(seed=0) -> UpsamplerAdapter:
    torch.manual_seed(seed)
    spec = AdapterSpec(DIT_LITE, "flux", (64, 64), DIT_TIME_DIM, "backbone", (("double_block", 0), ("single_block", 1)),
                       provenance={"steps": 10})
    return UpsamplerAdapter(spec, build_module(spec))


def test_dit_adapter_round_trips_with_its_variant_family_and_points(tmp_path):
    adapter = dit_adapter()
    save_adapter(tmp_path / "d.safetensors", adapter)
    loaded = load_adapter(tmp_path / "d.safetensors")
    assert loaded.spec == adapter.spec and loaded.spec.dit
    metadata = spec_to_metadata(adapter.spec)
    assert json.loads(metadata["variant"]) == "dit-lite" and json.loads(metadata["family"]) == "flux"
    assert json.loads(metadata["points"]) == [["double_block", 0], ["single_block", 1]]
    for (key, value), (key2, value2) in zip(adapter.module.state_dict().items(), loaded.module.state_dict().items()):
        assert key == key2 and torch.equal(value, value2)


@pytest.mark.parametrize("make, changes, message", [
    (dit_adapter, {"points": json.dumps([["input", 3], ["middle", 0]])},
     r"'points' entries of a dit-lite adapter must be \[.double_block.\|.single_block., index\]"),
    (lite_adapter, {"points": json.dumps([["double_block", 0]] * 4)},
     r"'points' entries of a lite adapter must be \[.input.\|.middle., index\]"),
    (dit_adapter, {"injection": json.dumps("skip")}, "adds to the image tokens after its blocks"),
    (dit_adapter, {"emb_dim": json.dumps(255)}, "so even; got 255"),
    (dit_adapter, {"points": json.dumps([["double_block", 0], ["single_block", 5000]])}, r"'points' must be an integer"),
])
def test_dit_metadata_is_parsed_as_strictly_as_the_unets(tmp_path, make, changes, message):
    path = tmp_path / "a.safetensors"
    save_adapter(path, make())
    _rewrite_metadata(path, **changes)
    with pytest.raises(AdapterError, match=message):
        load_adapter(path)


def test_weights_that_do_not_match_the_metadata_are_refused(tmp_path):
    path = tmp_path / "a.safetensors"
    save_adapter(path, lite_adapter())
    _rewrite_metadata(path, channels=json.dumps([32, 64, 128, 256]))
    with pytest.raises(AdapterError, match=r"wrong shape: upsamplers\.3\."):
        load_adapter(path)


def test_metadata_is_plain_strings_with_the_documented_fields():
    metadata = spec_to_metadata(lite_adapter().spec)
    assert all(isinstance(v, str) for v in metadata.values())
    assert {"format", "format_version", "variant", "family", "channels", "emb_dim", "injection", "points",
            "k_range", "provenance"} <= set(metadata)
    assert json.loads(metadata["points"])[0] == ["input", 3]


def test_official_pth_converts_strictly_and_matches_its_weights(tmp_path):
    state = official_state_dict()
    torch.save({"state_dict": state}, tmp_path / "upsampler_only.pth")
    adapter = convert_official_adapter(tmp_path / "upsampler_only.pth", tmp_path / "official.safetensors")
    loaded = load_adapter(tmp_path / "official.safetensors")
    assert loaded.spec == adapter.spec
    assert (loaded.spec.variant, loaded.spec.injection, loaded.spec.channels) == ("official-sdxl", "backbone", TINY_WIDTHS)
    ours = loaded.module.state_dict()
    assert len(ours) == len(state) == 4 * 2 * 10
    for key, value in state.items():
        assert torch.equal(ours[key.replace("unet.feature_upsampler", "upsamplers.")], value)


def test_our_keys_back_to_official_keys_give_the_released_layout():
    state = official_state_dict(device="meta")
    ours = from_official_keys(state)
    assert to_official_keys(ours) == state
    assert to_official_keys({"other.key": state["unet.feature_upsampler0.0.in_layers.0.weight"]}).keys() == {"other.key"}


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.pop("unet.feature_upsampler2.1.out_layers.3.bias"), r"missing: upsamplers\.2\.1\.out_layers\.3\.bias"),
    (lambda s: s.update({"unet.feature_upsampler0.1.out_layers.4.weight": torch.zeros(32)}), "unexpected"),
    (lambda s: s.update({"unet.feature_upsampler1.0.in_layers.2.weight": torch.zeros(64, 64, 1, 1)}), "wrong shape"),
    (lambda s: s.pop("unet.feature_upsampler3.0.in_layers.0.weight"), "not the official"),
])
def test_official_pth_with_a_wrong_key_or_shape_fails(tmp_path, edit, message):
    state = official_state_dict()
    edit(state)
    torch.save({"state_dict": state}, tmp_path / "upsampler_only.pth")
    with pytest.raises(AdapterError, match=message):
        convert_official_adapter(tmp_path / "upsampler_only.pth", tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_real_sdxl_widths_check_on_meta_tensors():
    state = official_state_dict((320, 640, 1280, 1280), 1280, device="meta")
    spec = official_spec(state)
    assert (spec.channels, spec.emb_dim) == ((320, 640, 1280, 1280), 1280)
    check_weights(spec, from_official_keys(state), "meta")
    state["unet.feature_upsampler3.1.emb_layers.1.weight"] = torch.empty(1280, 1024, device="meta")
    with pytest.raises(AdapterError, match="wrong shape"):
        check_weights(spec, from_official_keys(state), "meta")


def test_pickle_that_is_not_the_official_layout_is_refused(tmp_path):
    torch.save({"model": {"w": torch.zeros(2)}}, tmp_path / "other.pth")
    with pytest.raises(AdapterError, match="not the official Self-Cascade layout"):
        load_adapter(tmp_path / "other.pth")
    (tmp_path / "renamed.safetensors").write_bytes((tmp_path / "other.pth").read_bytes())
    with pytest.raises(AdapterError, match="pickle.*checkpoint.*convert_official_adapter"):
        load_adapter(tmp_path / "renamed.safetensors")


class _WritesMarker:
    """Unpickling this would call open(marker, 'w'): a stand-in for arbitrary code in a .pth."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_pickle_does_not_execute(tmp_path):
    marker = tmp_path / "executed"
    torch.save({"state_dict": {"x": _WritesMarker(str(marker))}}, tmp_path / "evil.pth")
    assert not marker.exists()
    with pytest.raises(AdapterError, match="weights-only.*never unpickled"):
        load_adapter(tmp_path / "evil.pth")
    assert not marker.exists()


def test_the_pth_size_limit_holds_the_official_layout_in_fp32():
    state = official_state_dict((320, 640, 1280, 1280), 1280, device="meta")
    assert sum(tensor.numel() for tensor in state.values()) == OFFICIAL_SDXL_PARAMETERS
    assert OFFICIAL_SDXL_PARAMETERS * 4 < MAX_PTH_BYTES < OFFICIAL_SDXL_PARAMETERS * 5


def _many_records(path: Path) -> Path:
    torch.save({"state_dict": {f"t{index}": torch.zeros(1) for index in range(MAX_PTH_RECORDS)}}, path)
    return path


def _deflated(path: Path) -> Path:
    torch.save({"state_dict": official_state_dict()}, path)
    import zipfile
    with zipfile.ZipFile(path) as stored:
        records = [(info.filename, stored.read(info)) for info in stored.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as deflated:
        for name, data in records:
            deflated.writestr(name, data)
    return path


def _legacy(path: Path) -> Path:
    torch.save({"state_dict": official_state_dict()}, path, _use_new_zipfile_serialization=False)
    return path


@pytest.mark.parametrize("write, message", [
    (lambda path: lying_pth(path, 1 << 31), "more than the official upsamplers need"),
    (lambda path: lying_pth(path, 1 << 20), "its records are larger than the file"),
    (_many_records, f"in at most {MAX_PTH_RECORDS}); it was not read"),
    (_deflated, "its records are compressed, which torch.save never writes"),
    (_legacy, "not a zip-format torch checkpoint (a legacy or plain pickle"),
])
def test_a_pth_that_could_allocate_more_than_the_official_layout_is_refused_unread(tmp_path, monkeypatch, write,
                                                                                   message):
    path = write(tmp_path / "upsampler_only.pth")

    def never(*args, **kwargs):
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", never)
    with pytest.raises(AdapterError) as refused:
        load_adapter(path)
    assert message in str(refused.value) and "upsampler_only.pth" in str(refused.value)


def test_header_lengths_that_look_like_pickle_opcodes_still_load(tmp_path):
    """A header of 128 + 256 k bytes starts with 0x80, pickle's first opcode: only the content may decide."""
    adapter = lite_adapter()
    path = tmp_path / "a.safetensors"
    for padding in range(300):
        spec = dataclasses.replace(adapter.spec, provenance={"pad": "x" * padding})
        save_adapter(path, UpsamplerAdapter(spec, adapter.module), overwrite=True)
        if path.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("no padding gave a header length with low byte 0x80")
    assert load_adapter(path).spec.provenance["pad"] == "x" * padding


def test_other_files_are_refused_as_not_safetensors(tmp_path):
    (tmp_path / "notes.safetensors").write_text("just some text that is long enough")
    with pytest.raises(AdapterError, match="not a safetensors adapter"):
        load_adapter(tmp_path / "notes.safetensors")
    with pytest.raises(AdapterError, match="folder .* does not exist"):
        save_adapter(tmp_path / "missing" / "a.safetensors", lite_adapter())


def test_missing_file_names_the_folder(tmp_path):
    with pytest.raises(AdapterError, match="no such adapter file.*models/upsampler_adapters"):
        load_adapter(tmp_path / "nope.safetensors")


def test_converter_command_line_runs_without_comfyui(tmp_path):
    torch.save({"state_dict": official_state_dict()}, tmp_path / "upsampler_only.pth")
    script = REPO / "scripts" / "convert_official_adapter.py"
    environment = {**os.environ, "PYTHONPATH": ""}
    check = ("import runpy, sys; main = runpy.run_path(sys.argv[1])['main']; code = main(sys.argv[2:]); "
             "assert 'comfy' not in sys.modules and 'folder_paths' not in sys.modules, 'imported the host'; "
             "sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", check, str(script), str(tmp_path / "upsampler_only.pth"),
                           str(tmp_path / "out.safetensors")], capture_output=True, text=True, env=environment, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "official-sdxl upsampler adapter for sdxl" in done.stdout
    assert load_adapter(tmp_path / "out.safetensors").spec.channels == TINY_WIDTHS
    again = subprocess.run([sys.executable, str(script), str(tmp_path / "upsampler_only.pth"),
                            str(tmp_path / "out.safetensors")], capture_output=True, text=True, env=environment)
    assert again.returncode == 1 and "exists" in again.stderr
