//! Untrusted checkpoints (issue 15): declared sizes, strides and offsets are checked against
//! the model and the storages before anything is materialised, so a 1 kB file can no longer
//! make the loader allocate terabytes. The two files of the issue are in `tests/data`
//! (written by `tests/data/make_bad_checkpoints.py`, no torch needed).

mod common;

use std::io::Write;
use std::path::Path;

use sgm_nets::weights::{HostData, ParamEntry, parse_checkpoint};
use sgm_nets::{CheckpointWeights, NetsError, load_checkpoint};
use sgm_testkit::{TestBackend, cases, device};

fn data(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// The issue's files: `module.sigmas` declared `(2**40,)` over one float, with stride 1
/// (larger than its storage) and stride 0 (`torch.zeros(1).expand(2**40)`, a valid torch file).
/// Both aborted with a failed 8 TiB allocation; now both are one error naming file and key.
#[test]
fn issue_15_oversized_and_expanded_views_are_errors() {
    let dev = device();
    let mut n = 0;
    for case in cases("nets") {
        let cfg = common::nets_config(&case.dir);
        for file in ["oversized.pth", "expanded.pth"] {
            let path = data(file);
            for which in [CheckpointWeights::Model, CheckpointWeights::Ema] {
                match load_checkpoint::<TestBackend>(&cfg, &path, which, &dev) {
                    Err(e @ NetsError::ShapeMismatch { .. }) => {
                        let m = e.to_string();
                        assert!(
                            m.contains(file) && m.contains("module.sigmas"),
                            "{}: {m}",
                            case.id()
                        );
                        assert!(m.contains(&format!("{:?}", [1usize << 40])), "{m}");
                    }
                    other => panic!(
                        "{} {file}: expected a shape error, got {other:?}",
                        case.id()
                    ),
                }
            }
        }
        n += 1;
    }
    eprintln!("issue-15 files: {n} nets configs");
}

/// A minimal `torch.save` zip: `{"model": {key: tensor}}` with one float32 storage per tensor.
struct Tensor<'a> {
    key: &'a str,
    offset: u64,
    size: &'a [u64],
    stride: &'a [u64],
    storage: &'a [f32],
}

fn pickle(tensors: &[Tensor]) -> Vec<u8> {
    fn str_op(p: &mut Vec<u8>, s: &str) {
        p.push(b'X');
        p.extend_from_slice(&(s.len() as u32).to_le_bytes());
        p.extend_from_slice(s.as_bytes());
    }
    fn int_op(p: &mut Vec<u8>, v: u64) {
        p.extend_from_slice(&[0x8a, 8]); // LONG1, 8 bytes
        p.extend_from_slice(&v.to_le_bytes());
    }
    fn tuple_op(p: &mut Vec<u8>, v: &[u64]) {
        p.push(b'(');
        for &x in v {
            int_op(p, x);
        }
        p.push(b't');
    }
    let mut p = vec![0x80, 2, b'}', b'('];
    str_op(&mut p, "model");
    p.extend_from_slice(b"}(");
    for (i, t) in tensors.iter().enumerate() {
        str_op(&mut p, t.key);
        p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n((");
        str_op(&mut p, "storage");
        p.extend_from_slice(b"ctorch\nFloatStorage\n");
        str_op(&mut p, &i.to_string());
        str_op(&mut p, "cpu");
        int_op(&mut p, t.storage.len() as u64);
        p.extend_from_slice(b"tQ");
        int_op(&mut p, t.offset);
        tuple_op(&mut p, t.size);
        tuple_op(&mut p, t.stride);
        p.extend_from_slice(b"\x89ccollections\nOrderedDict\n)RtR");
    }
    p.extend_from_slice(b"uu.");
    p
}

fn torch_zip(tensors: &[Tensor]) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    z.start_file("archive/data.pkl", opts).unwrap();
    z.write_all(&pickle(tensors)).unwrap();
    for (i, t) in tensors.iter().enumerate() {
        z.start_file(format!("archive/data/{i}"), opts).unwrap();
        let bytes: Vec<u8> = t.storage.iter().flat_map(|v| v.to_le_bytes()).collect();
        z.write_all(&bytes).unwrap();
    }
    z.finish().unwrap().into_inner()
}

fn entry(key: &str, shape: &[usize]) -> ParamEntry {
    ParamEntry {
        key: key.into(),
        shape: shape.to_vec(),
        trainable: true,
    }
}

fn parse(tensors: &[Tensor], expected: &[ParamEntry]) -> sgm_nets::Result<HostData> {
    let bytes = torch_zip(tensors);
    let sd = parse_checkpoint(
        Path::new("t.pth"),
        &bytes,
        expected,
        1,
        CheckpointWeights::Model,
    )?;
    Ok(sd.tensors[tensors[0].key].data.clone())
}

#[test]
fn strided_and_expanded_views_materialise_in_bounds() {
    // transposed view of a 2×3 storage, with an offset
    let storage = [9.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
    let t = Tensor {
        key: "w",
        offset: 1,
        size: &[3, 2],
        stride: &[1, 3],
        storage: &storage,
    };
    assert_eq!(
        parse(&[t], &[entry("w", &[3, 2])]).unwrap(),
        HostData::F32(vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0])
    );
    // an expanded (stride-0) view of the shape the model expects is valid
    let t = Tensor {
        key: "b",
        offset: 0,
        size: &[2, 3],
        stride: &[0, 1],
        storage: &[1.0, 2.0, 3.0],
    };
    assert_eq!(
        parse(&[t], &[entry("b", &[2, 3])]).unwrap(),
        HostData::F32(vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0])
    );
}

#[test]
fn views_beyond_their_storage_are_errors_naming_the_key() {
    let cases: [(u64, &[u64], &[u64]); 5] = [
        (0, &[1 << 40], &[1]), // larger than the storage (shape the model expects)
        (4, &[1 << 40], &[0]), // expanded, but the offset lies past the end
        (0, &[2, 1 << 40], &[1 << 62, 0]), // index overflows usize
        (0, &[1 << 40], &[1, 1]), // rank of stride ≠ rank of size
        (u64::MAX / 2, &[1 << 40], &[0]), // offset overflows when scaled to bytes
    ];
    for (offset, size, stride) in cases {
        let shape: Vec<usize> = size.iter().map(|&d| d as usize).collect();
        let t = Tensor {
            key: "w",
            offset,
            size,
            stride,
            storage: &[1.0, 2.0],
        };
        match parse(&[t], &[entry("w", &shape)]) {
            Err(e @ NetsError::BadTensor { .. }) => {
                let m = e.to_string();
                assert!(m.contains("t.pth") && m.contains("`w`"), "{m}");
            }
            other => panic!("offset {offset} size {size:?} stride {stride:?}: {other:?}"),
        }
    }
    // unknown keys and duplicates are rejected before their storage is touched
    let t = |key| Tensor {
        key,
        offset: 0,
        size: &[1 << 40],
        stride: &[0],
        storage: &[1.0],
    };
    assert!(matches!(
        parse(&[t("x")], &[entry("w", &[2])]),
        Err(NetsError::UnexpectedKeys { .. })
    ));
    let two = [
        Tensor {
            key: "w",
            offset: 0,
            size: &[1],
            stride: &[1],
            storage: &[1.0],
        },
        Tensor {
            key: "module.w",
            offset: 0,
            size: &[1],
            stride: &[1],
            storage: &[1.0],
        },
    ];
    assert!(matches!(
        parse(&two, &[entry("w", &[1])]),
        Err(NetsError::BadTensor { ref msg, .. }) if msg.contains("twice")
    ));
}
