"""Writes the two checkpoints of issue 15 without torch: the zip layout and pickle program
`torch.save` produces for `{"model": {"module.sigmas": t}}`, with a fake `torch` module so
that `pickle` emits the same GLOBALs (`torch._utils._rebuild_tensor_v2`, `torch.FloatStorage`)
and persistent ids (`('storage', FloatStorage, key, 'cpu', numel)`).

* oversized.pth: `t` declares size (2**40,) stride (1,) over a one-element storage.
* expanded.pth:  `torch.zeros(1).expand(2**40)`: size (2**40,) stride (0,), one element,
  a valid file `torch.load` reads.

Run: python3 make_bad_checkpoints.py  (writes both files next to this script)
"""
import collections
import io
import os
import pickle
import sys
import types
import zipfile

torch = types.ModuleType("torch")
utils = types.ModuleType("torch._utils")


class FloatStorage:
    pass


def _rebuild_tensor_v2(*args):
    raise NotImplementedError


FloatStorage.__module__ = "torch"
_rebuild_tensor_v2.__module__ = "torch._utils"
torch.FloatStorage = FloatStorage
torch._utils = utils
utils._rebuild_tensor_v2 = _rebuild_tensor_v2
sys.modules["torch"] = torch
sys.modules["torch._utils"] = utils


class Storage:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return (_rebuild_tensor_v2, self.args)


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", FloatStorage, obj.key, "cpu", obj.numel)
        return None


def write(path, size, stride):
    buf = io.BytesIO()
    t = Tensor(Storage("0", 1), 0, size, stride)
    Pickler(buf, protocol=2).dump({"model": {"module.sigmas": t}})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/data/0", b"\0\0\0\0")
        z.writestr("archive/version", "3\n")


here = os.path.dirname(os.path.abspath(__file__))
write(os.path.join(here, "oversized.pth"), (2**40,), (1,))
write(os.path.join(here, "expanded.pth"), (2**40,), (0,))
