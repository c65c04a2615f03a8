//! Corruption harness of the evaluation loaders (issue 15): mutated variants of valid
//! statistics files (`.npz` of two `.npy`), CIFAR-10 batches, PNG images and sample arrays are
//! each `Ok` or an error — never a panic, abort or hang — and memory stays bounded. CI runs a
//! fast subset; `SGM_FUZZ_VARIANTS=100000 cargo test -p sgm-eval --test corruption --release`
//! is the long mode (see docs/reliability.md).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use sgm_eval::images::{
    CIFAR_RECORD, MAX_IMAGE_ALLOC, decode_image, parse_cifar10_bin, parse_sample_array,
};
use sgm_eval::stats::parse_stats;
use sgm_eval::{Stats, write_stats};
use sgm_testkit::corrupt::{self, CountingAlloc, Layout, Rng, ZipSeed};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// One loader at a time (the allocator's counters are global).
static SERIAL: Mutex<()> = Mutex::new(());

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sgm-eval-corrupt-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A CIFAR-10 batch: the first records of the shared test batch, or synthetic records.
fn cifar_seed() -> Vec<u8> {
    let root = std::env::var_os("SGM_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    match std::fs::read(root.join("cifar10/test_batch.bin")) {
        Ok(b) => b[..64 * CIFAR_RECORD].to_vec(),
        Err(_) => {
            let mut rng = Rng::new(1);
            (0..64 * CIFAR_RECORD)
                .map(|_| rng.next_u64() as u8)
                .collect()
        }
    }
}

fn stats_seed(d: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut u = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let mu: Vec<f64> = (0..d).map(|_| u()).collect();
    let sigma: Vec<f64> = (0..d * d).map(|_| u()).collect();
    let path = scratch("seed").join(format!("s{d}.npz"));
    write_stats(&path, &Stats { mu, sigma }).unwrap();
    std::fs::read(&path).unwrap()
}

#[test]
fn corrupted_stats_files_are_errors_never_crashes() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let seeds: Vec<ZipSeed> = [(8, 1), (64, 2), (128, 3)]
        .into_iter()
        .map(|(d, seed)| ZipSeed::new(stats_seed(d, seed), |_, b| corrupt::npy_layout(b)))
        .collect();
    let largest = seeds.iter().map(|s| s.file.len()).max().unwrap_or(0);
    let r = corrupt::run(
        "stats .npz / .npy",
        &seeds,
        corrupt::variants(600),
        15,
        |s, rng| {
            let n = s.entries.len();
            s.variant(rng, |rng| rng.below(n))
        },
        |_, b| {
            parse_stats(Path::new("v.npz"), b)
                .map(|_| ())
                .map_err(|e| corrupt::kind_of(&e, "v.npz"))
        },
    );
    corrupt::assert_clean(&r, 4 * largest + (4 << 20), Duration::from_secs(10));
    assert!(r.ok > 0 && !r.errors.is_empty(), "{r:?}");
}

#[test]
fn corrupted_cifar_batches_are_errors_never_crashes() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let file = cifar_seed();
    let mut l = Layout {
        boundaries: (0..=file.len()).step_by(CIFAR_RECORD).collect(),
        ..Layout::default()
    };
    l.fields = l.boundaries.iter().map(|&b| (b, 1)).collect(); // label bytes
    let seeds = [(file, l)];
    let r = corrupt::run(
        "CIFAR-10 .bin",
        &seeds,
        corrupt::variants(600),
        15,
        |(f, l), rng| corrupt::mutate(f, l, rng),
        |_, b| {
            let (first, count) = (b.len() % 7, Some(1 + b.len() % 5));
            parse_cifar10_bin(Path::new("v.bin"), b, first, count)
                .and_then(|_| parse_cifar10_bin(Path::new("v.bin"), b, 0, None))
                .map(|_| ())
                .map_err(|e| corrupt::kind_of(&e, "v.bin"))
        },
    );
    corrupt::assert_clean(
        &r,
        4 * seeds[0].0.len() + (1 << 20),
        Duration::from_secs(10),
    );
    assert!(r.ok > 0 && !r.errors.is_empty(), "{r:?}");
}

/// PNGs of a few kinds (RGB, grey, RGBA 16-bit, palette-free), encoded here.
fn png_seeds() -> Vec<Vec<u8>> {
    let mut rng = Rng::new(7);
    let mut out = Vec::new();
    let mut enc = |img: image::DynamicImage| {
        let mut v = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut v), image::ImageFormat::Png)
            .unwrap();
        out.push(v);
    };
    let mut px = |n: usize| -> Vec<u8> { (0..n).map(|_| rng.next_u64() as u8).collect() };
    enc(image::DynamicImage::ImageRgb8(
        image::RgbImage::from_raw(32, 32, px(32 * 32 * 3)).unwrap(),
    ));
    enc(image::DynamicImage::ImageLuma8(
        image::GrayImage::from_raw(48, 16, px(48 * 16)).unwrap(),
    ));
    enc(image::DynamicImage::ImageRgba8(
        image::RgbaImage::from_raw(20, 24, vec![200; 20 * 24 * 4]).unwrap(),
    ));
    let v16: Vec<u16> = px(16 * 16 * 3 * 2)
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    enc(image::DynamicImage::ImageRgb16(
        image::ImageBuffer::from_raw(16, 16, v16).unwrap(),
    ));
    out
}

#[test]
fn corrupted_pngs_are_errors_never_crashes() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let seeds: Vec<(Vec<u8>, Layout)> = png_seeds()
        .into_iter()
        .map(|f| {
            let l = corrupt::png_layout(&f);
            (f, l)
        })
        .collect();
    let r = corrupt::run(
        "PNG",
        &seeds,
        corrupt::variants(600),
        15,
        |(f, l), rng| {
            let (mut b, k) = corrupt::mutate(f, l, rng);
            // most variants get valid chunk CRCs so the mutation reaches the decoder
            if rng.below(4) > 0 {
                corrupt::png_fix_crcs(&mut b);
            }
            (b, k)
        },
        |_, b| {
            decode_image(Path::new("v.png"), b)
                .map(|img| drop(img.to_rgb8()))
                .map_err(|e| corrupt::kind_of(&e, "v.png"))
        },
    );
    // the decoder's own allocation limit, plus the RGB copy and the file
    corrupt::assert_clean(
        &r,
        2 * MAX_IMAGE_ALLOC as usize + (4 << 20),
        Duration::from_secs(20),
    );
    assert!(r.ok > 0 && !r.errors.is_empty(), "{r:?}");
}

#[test]
fn corrupted_sample_arrays_are_errors_never_crashes() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = Rng::new(3);
    let seeds: Vec<(Vec<u8>, Layout)> = [
        (safetensors::Dtype::F32, 4usize),
        (safetensors::Dtype::U8, 1usize),
    ]
    .into_iter()
    .map(|(dt, w)| {
        let shape = vec![4, 3, 8, 8];
        let data: Vec<u8> = (0..4 * 3 * 8 * 8 * w)
            .map(|_| rng.next_u64() as u8 & 0x3f)
            .collect();
        let view = safetensors::tensor::TensorView::new(dt, shape, &data).unwrap();
        let f = safetensors::serialize([("samples", view)], None).unwrap();
        let l = corrupt::safetensors_layout(&f);
        (f, l)
    })
    .collect();
    let r = corrupt::run(
        "safetensors (samples)",
        &seeds,
        corrupt::variants(400),
        15,
        |(f, l), rng| corrupt::mutate(f, l, rng),
        |_, b| {
            parse_sample_array(Path::new("v.safetensors"), b, b.len() % 3, None)
                .map(|_| ())
                .map_err(|e| corrupt::kind_of(&e, "v.safetensors"))
        },
    );
    corrupt::assert_clean(
        &r,
        4 * seeds[0].0.len() + (1 << 20),
        Duration::from_secs(10),
    );
    assert!(r.ok > 0 && !r.errors.is_empty(), "{r:?}");
}

/// A 40-byte PNG declaring 100 000 × 100 000 pixels (30 GB decoded) is an error from the
/// decoder's limits, not an allocation failure; so is a CIFAR range past the end.
#[test]
fn huge_declared_sizes_are_errors() {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let chunk = |png: &mut Vec<u8>, kind: &[u8], data: &[u8]| {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        png.extend_from_slice(kind);
        png.extend_from_slice(data);
        png.extend_from_slice(&[0; 4]); // CRC, fixed below
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(
        &mut png,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut png, b"IEND", &[]);
    corrupt::png_fix_crcs(&mut png);
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let base = corrupt::reset_peak();
    let e = decode_image(Path::new("huge.png"), &png).unwrap_err();
    assert!(
        corrupt::peak() - base < 1 << 20,
        "{} B",
        corrupt::peak() - base
    );
    assert!(e.to_string().contains("huge.png"), "{e}");
    let e = parse_cifar10_bin(Path::new("c.bin"), &cifar_seed(), usize::MAX, Some(2)).unwrap_err();
    assert!(e.to_string().contains("c.bin"), "{e}");
}

/// Inception weights whose zip entry declares 4 GiB in a 200-byte file: an error naming the
/// file and the entry, before burn-store's reader reserves the declared size.
#[test]
fn inception_weights_declaring_huge_entries_are_errors() {
    let entries = vec![("archive/data.pkl".to_string(), b"\x80\x02}q\x00.".to_vec())];
    let mut zip = corrupt::zip_of(&entries);
    for (sig, at) in [(&b"PK\x03\x04"[..], 22), (&b"PK\x01\x02"[..], 24)] {
        let p = corrupt::find(&zip, sig).unwrap() + at;
        zip[p..p + 4].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    }
    let path = scratch("inception").join("weights.pth");
    std::fs::write(&path, &zip).unwrap();
    let e = sgm_eval::InceptionV3::<sgm_testkit::TestBackend>::load(&path, &sgm_testkit::device())
        .err()
        .unwrap();
    let m = e.to_string();
    assert!(m.contains("weights.pth") && m.contains("data.pkl"), "{m}");
}
