#!/usr/bin/env python3
"""CIFAR-10 python-batch fixtures without numpy (stdlib `pickle` only).

    cifar_pickle_fixture.py write OUT N PROTOCOL   # a batch of N images, pickled by Python 3
    cifar_pickle_fixture.py read FILE              # load a batch (official or written here) and
                                                   # print n, label sum, pixel sum, first bytes

A stand-in `numpy` module makes `pickle` emit exactly the globals numpy does for a uint8 array
(`numpy.core.multiarray._reconstruct` + `BUILD` state `(1, shape, dtype('u1'), False, data)`),
so the files have the official structure; pixels and labels are a fixed function of the index
(pixel j of image i = (7 i + 3 j) % 256, label i % 10), which the Rust tests recompute.
"""
import pickle
import sys
import types

np = types.ModuleType("numpy")
core = types.ModuleType("numpy.core")
multiarray = types.ModuleType("numpy.core.multiarray")


class dtype:
    def __init__(self, name="u1", align=0, copy=1):
        self.name = name

    def __reduce__(self):
        return (dtype, (self.name, 0, 1), (3, "|", None, None, None, -1, -1, 0))

    def __setstate__(self, state):
        self.state = state


class ndarray:
    def __init__(self, shape=(0,), data=b""):
        self.shape, self.data = shape, data

    def __reduce__(self):
        return (_reconstruct, (ndarray, (0,), b"b"), (1, self.shape, dtype("u1"), False, self.data))

    def __setstate__(self, state):
        _, self.shape, self.dtype, _, self.data = state


def _reconstruct(cls, shape, typecode):
    return cls()


for obj, mod in [(dtype, np), (ndarray, np), (_reconstruct, multiarray)]:
    obj.__module__ = mod.__name__
    setattr(mod, obj.__name__, obj)
np.core, core.multiarray = core, multiarray
sys.modules.update({"numpy": np, "numpy.core": core, "numpy.core.multiarray": multiarray})


def main():
    if sys.argv[1] == "write":
        out, n, proto = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        data = bytes((7 * i + 3 * j) % 256 for i in range(n) for j in range(3072))
        d = {
            b"batch_label": b"fixture batch",
            b"labels": [i % 10 for i in range(n)],
            b"data": ndarray((n, 3072), data),
            b"filenames": [b"img_%d.png" % i for i in range(n)],
        }
        with open(out, "wb") as f:
            pickle.dump(d, f, protocol=proto)
    else:
        with open(sys.argv[2], "rb") as f:
            d = pickle.load(f, encoding="bytes")
        a = d[b"data"]
        print(a.shape[0], sum(d[b"labels"]), sum(a.data), list(a.data[:4]))


if __name__ == "__main__":
    main()
