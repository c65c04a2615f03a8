//! CIFAR-10 batch files for tests, in the two official layouts: the binary records of
//! `cifar-10-batches-bin` and the Python 2 pickles of `cifar-10-batches-py`.

/// A binary batch: records of one label byte + 3072 planar pixel bytes.
pub fn binary_batch(pixels: &[u8], labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(pixels.len() + labels.len());
    for (i, &l) in labels.iter().enumerate() {
        out.push(l);
        out.extend_from_slice(&pixels[i * 3072..(i + 1) * 3072]);
    }
    out
}

/// A python batch exactly as the official `cifar-10-python.tar.gz` stores it: a protocol-2
/// pickle written by Python 2's cPickle of
/// `{'batch_label': str, 'labels': [int], 'data': uint8 ndarray [n, 3072], 'filenames': [str]}`
/// (numpy's `_reconstruct` + `BUILD` with a `BINSTRING` of the raw data, memo puts as cPickle
/// emits them).
pub fn python_batch(pixels: &[u8], labels: &[u8], batch_label: &str) -> Vec<u8> {
    assert_eq!(
        pixels.len(),
        labels.len() * 3072,
        "pixels must be [n, 3072]"
    );
    let mut p = Pickle::default();
    p.op(&[0x80, 2]); // PROTO 2
    p.op(b"}"); // EMPTY_DICT
    p.put();
    p.op(b"("); // MARK
    p.short_str(b"batch_label");
    p.put();
    p.short_str(batch_label.as_bytes());
    p.put();
    p.short_str(b"labels");
    p.put();
    p.op(b"]"); // EMPTY_LIST
    p.put();
    // cPickle batches APPENDS in chunks of 1000
    for chunk in labels.chunks(1000) {
        p.op(b"(");
        for &l in chunk {
            p.op(&[b'K', l]); // BININT1
        }
        p.op(b"e"); // APPENDS
    }
    p.short_str(b"data");
    p.put();
    p.global("numpy.core.multiarray", "_reconstruct");
    p.put();
    p.global("numpy", "ndarray");
    p.put();
    p.op(&[b'K', 0, 0x85]); // (0,)
    p.short_str(b"b");
    p.op(&[0x87, b'R']); // TUPLE3, REDUCE
    p.put();
    // state: (1, (n, 3072), dtype('u1'), False, data)
    p.op(&[b'(', b'K', 1]);
    p.int(labels.len() as i64);
    p.int(3072);
    p.op(&[0x86]); // TUPLE2
    p.global("numpy", "dtype");
    p.put();
    p.short_str(b"u1");
    p.op(&[b'K', 0, b'K', 1, 0x87, b'R']);
    p.put();
    p.op(&[b'(', b'K', 3]);
    p.short_str(b"|");
    p.op(b"NNN");
    p.op(&[
        b'J', 0xff, 0xff, 0xff, 0xff, b'J', 0xff, 0xff, 0xff, 0xff, b'K', 0,
    ]);
    p.op(b"tb"); // TUPLE, BUILD (dtype state)
    p.op(&[0x89]); // NEWFALSE (fortran order)
    p.op(b"T"); // BINSTRING
    p.op(&(pixels.len() as u32).to_le_bytes());
    p.op(pixels);
    p.op(b"tb"); // TUPLE, BUILD (array state)
    p.put();
    p.short_str(b"filenames");
    p.put();
    p.op(b"]");
    p.put();
    p.op(b"(");
    for i in 0..labels.len() {
        p.short_str(format!("image_{i:05}.png").as_bytes());
        p.put();
    }
    p.op(b"e");
    p.op(b"u."); // SETITEMS, STOP
    p.out
}

#[derive(Default)]
struct Pickle {
    out: Vec<u8>,
    memo: u32,
}

impl Pickle {
    fn op(&mut self, b: &[u8]) {
        self.out.extend_from_slice(b);
    }
    fn put(&mut self) {
        self.memo += 1;
        if self.memo < 256 {
            self.out.extend_from_slice(&[b'q', self.memo as u8]);
        } else {
            self.out.push(b'r');
            self.out.extend_from_slice(&self.memo.to_le_bytes());
        }
    }
    fn short_str(&mut self, s: &[u8]) {
        assert!(s.len() < 256);
        self.out.push(b'U');
        self.out.push(s.len() as u8);
        self.out.extend_from_slice(s);
    }
    fn global(&mut self, module: &str, name: &str) {
        self.out.push(b'c');
        self.out
            .extend_from_slice(format!("{module}\n{name}\n").as_bytes());
    }
    fn int(&mut self, v: i64) {
        match v {
            0..=255 => self.op(&[b'K', v as u8]),
            256..=65535 => {
                self.out.push(b'M');
                self.out.extend_from_slice(&(v as u16).to_le_bytes());
            }
            _ => {
                self.out.push(b'J');
                self.out.extend_from_slice(&(v as i32).to_le_bytes());
            }
        }
    }
}
