//! The corruption harness (issue 15): a small seeded mutator over valid files, format-aware
//! layouts (structural boundaries, integer fields, dtype tokens), a counting allocator for
//! peak-memory checks, and a runner that feeds every variant to a loader and records `Ok`,
//! the error's kind, or a panic.
//!
//! Mutations: bit flips, truncation at a structural boundary (or anywhere), inflated integer
//! fields (lengths, shapes, offsets, sizes), dtype swaps, duplicated and deleted segments
//! (duplicated keys / records / chunks), random overwrites. The fast mode (CI) runs
//! [`variants`] = a few hundred per format; `SGM_FUZZ_VARIANTS=100000` is the long mode.

use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// splitmix64: deterministic, seedable, no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// Where a file's structure lies, for structure-aware mutations.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// Offsets where a structural element starts (headers, opcodes, records, chunks).
    pub boundaries: Vec<usize>,
    /// Little-endian integer fields `(offset, width)` (lengths, sizes, offsets, counts).
    pub fields: Vec<(usize, usize)>,
    /// Text fields holding a decimal number (JSON / `.npy` header shapes and offsets).
    pub digits: Vec<(usize, usize)>,
    /// Tokens that name a type: `(offset, original, replacements)`.
    pub tokens: Vec<(usize, Vec<u8>, Vec<Vec<u8>>)>,
}

impl Layout {
    /// Every occurrence of `token` in `bytes`, to be swapped for one of `replacements`.
    pub fn find_tokens(&mut self, bytes: &[u8], token: &[u8], replacements: &[&[u8]]) {
        let reps: Vec<Vec<u8>> = replacements.iter().map(|r| r.to_vec()).collect();
        let mut i = 0;
        while let Some(p) = find(&bytes[i..], token) {
            self.tokens.push((i + p, token.to_vec(), reps.clone()));
            i += p + token.len();
        }
    }
    /// Every run of ASCII digits in `bytes[from..to]`.
    pub fn find_digits(&mut self, bytes: &[u8], from: usize, to: usize) {
        let mut i = from;
        while i < to.min(bytes.len()) {
            if bytes[i].is_ascii_digit() {
                let s = i;
                while i < to && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                self.digits.push((s, i - s));
            } else {
                i += 1;
            }
        }
    }
}

/// First position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Values an inflated integer field is set to.
const INFLATE: [u64; 10] = [
    0,
    1,
    0x7f,
    0xff,
    0x7fff_ffff,
    0xffff_ffff,
    1 << 40,
    0x7fff_ffff_ffff_ffff,
    u64::MAX,
    0x8000_0000,
];

/// One mutation of `src` (its layout `l`): the new bytes and the mutation's kind.
pub fn mutate(src: &[u8], l: &Layout, rng: &mut Rng) -> (Vec<u8>, &'static str) {
    let mut b = src.to_vec();
    let n = b.len().max(1);
    let boundary = |rng: &mut Rng| -> usize {
        if l.boundaries.is_empty() || rng.below(4) == 0 {
            rng.below(n)
        } else {
            let p = *rng.pick(&l.boundaries);
            // at, or a byte either side of, the boundary
            (p + rng.below(3)).saturating_sub(1).min(src.len())
        }
    };
    match rng.below(8) {
        0 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(n);
                if let Some(x) = b.get_mut(i) {
                    *x ^= 1 << rng.below(8);
                }
            }
            (b, "bit flips")
        }
        1 => {
            let at = boundary(rng);
            b.truncate(at);
            (b, "truncation")
        }
        2 | 3 if !l.fields.is_empty() => {
            let (at, w) = *rng.pick(&l.fields);
            let v = match rng.below(3) {
                0 => *rng.pick(&INFLATE),
                1 => rng.next_u64(),
                _ => {
                    // the field's value, scaled up
                    let mut cur = [0u8; 8];
                    let w8 = w.min(8);
                    if let Some(s) = b.get(at..at + w8) {
                        cur[..w8].copy_from_slice(s);
                    }
                    u64::from_le_bytes(cur)
                        .wrapping_mul(1 + rng.below(1 << 16) as u64)
                        .wrapping_add(rng.below(3) as u64)
                }
            };
            for (k, x) in b.iter_mut().skip(at).take(w).enumerate() {
                *x = if k < 8 { (v >> (8 * k)) as u8 } else { 0 };
            }
            (b, "inflated field")
        }
        2 | 3 if !l.digits.is_empty() => {
            let (at, w) = *rng.pick(&l.digits);
            let v = match rng.below(3) {
                0 => rng.pick(&INFLATE).to_string(),
                1 => format!("{}{}", rng.below(10), "9".repeat(rng.below(30))),
                _ => "-1".to_string(),
            };
            drop(b.splice(at..(at + w).min(b.len()), v.into_bytes()));
            (b, "inflated field")
        }
        4 if !l.tokens.is_empty() => {
            let (at, orig, reps) = rng.pick(&l.tokens).clone();
            let rep = rng.pick(&reps).clone();
            drop(b.splice(at..(at + orig.len()).min(b.len()), rep));
            (b, "wrong dtype")
        }
        5 => {
            // duplicate a segment between two boundaries right after itself
            let (mut s, mut e) = (boundary(rng), boundary(rng));
            if s > e {
                std::mem::swap(&mut s, &mut e);
            }
            let e = e.min(s + (1 << 16)).min(b.len());
            let seg = b[s..e].to_vec();
            drop(b.splice(e..e, seg));
            (b, "duplicated segment")
        }
        6 => {
            let (mut s, mut e) = (boundary(rng), boundary(rng));
            if s > e {
                std::mem::swap(&mut s, &mut e);
            }
            b.drain(s.min(b.len())..e.min(b.len()));
            (b, "deleted segment")
        }
        _ => {
            let at = boundary(rng);
            for x in b.iter_mut().skip(at).take(1 + rng.below(16)) {
                *x = rng.next_u64() as u8;
            }
            (b, "random bytes")
        }
    }
}

// ---- layouts of the formats sgm reads ----

/// Layout of a zip archive: local headers, central directory entries, end record, and their
/// size / offset / count fields.
pub fn zip_layout(b: &[u8]) -> Layout {
    let mut l = Layout::default();
    let fields = |sig: &[u8], offs: &[(usize, usize)], l: &mut Layout| {
        let mut i = 0;
        while let Some(p) = find(&b[i..], sig) {
            let at = i + p;
            l.boundaries.push(at);
            for &(o, w) in offs {
                if at + o + w <= b.len() {
                    l.fields.push((at + o, w));
                }
            }
            i = at + 4;
        }
    };
    // local header: compressed / uncompressed size, name / extra length
    fields(b"PK\x03\x04", &[(18, 4), (22, 4), (26, 2), (28, 2)], &mut l);
    // central directory: sizes, name/extra/comment lengths, local header offset
    fields(
        b"PK\x01\x02",
        &[(20, 4), (24, 4), (28, 2), (30, 2), (32, 2), (42, 4)],
        &mut l,
    );
    // end of central directory: counts, size, offset
    fields(
        b"PK\x05\x06",
        &[(8, 2), (10, 2), (12, 4), (16, 4), (20, 2)],
        &mut l,
    );
    fields(b"PK\x06\x06", &[(24, 8), (32, 8), (40, 8), (48, 8)], &mut l);
    l.boundaries.push(b.len());
    l
}

/// Entries of a zip archive, in order.
pub fn zip_entries(b: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(mut z) = zip::ZipArchive::new(std::io::Cursor::new(b)) else {
        return out;
    };
    for i in 0..z.len() {
        let Ok(mut f) = z.by_index(i) else { continue };
        let mut v = Vec::new();
        if f.read_to_end(&mut v).is_ok() {
            out.push((f.name().to_string(), v));
        }
    }
    out
}

/// A stored (uncompressed) zip of `entries`.
pub fn zip_of(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, data) in entries {
        if z.start_file(name.as_str(), opts).is_err() || z.write_all(data).is_err() {
            break;
        }
    }
    z.finish().map(|c| c.into_inner()).unwrap_or_default()
}

/// A valid zip file (torch checkpoint, `.npz`) prepared for mutation: its own layout, its
/// entries and theirs.
#[derive(Debug, Clone)]
pub struct ZipSeed {
    /// The file.
    pub file: Vec<u8>,
    /// Layout of the zip structure.
    pub layout: Layout,
    /// Entries, in order.
    pub entries: Vec<(String, Vec<u8>)>,
    /// Layout of each entry.
    pub layouts: Vec<Layout>,
}

impl ZipSeed {
    /// Prepares `file`; `layout_of(name, bytes)` gives each entry's layout.
    pub fn new(file: Vec<u8>, layout_of: impl Fn(&str, &[u8]) -> Layout) -> ZipSeed {
        let entries = zip_entries(&file);
        ZipSeed {
            layout: zip_layout(&file),
            layouts: entries.iter().map(|(n, b)| layout_of(n, b)).collect(),
            entries,
            file,
        }
    }

    /// A variant: a quarter mutate the zip itself (headers, sizes, offsets); the rest mutate
    /// entry `pick(rng)` and re-pack a valid zip, so the mutation reaches the entry's parser
    /// past the zip's CRCs; one in ten of those also duplicates an entry name.
    pub fn variant(
        &self,
        rng: &mut Rng,
        pick: impl Fn(&mut Rng) -> usize,
    ) -> (Vec<u8>, &'static str) {
        if self.entries.is_empty() || rng.below(4) == 0 {
            return mutate(&self.file, &self.layout, rng);
        }
        let mut entries = self.entries.clone();
        let i = pick(rng).min(entries.len() - 1);
        let (bytes, kind) = mutate(&entries[i].1, &self.layouts[i], rng);
        entries[i].1 = bytes;
        if rng.below(10) == 0 {
            let dup = entries[rng.below(entries.len())].clone();
            entries.push(dup);
            return (zip_of(&entries), "duplicated segment");
        }
        (zip_of(&entries), kind)
    }
}

/// Layout of a pickle program (protocol ≤ 4 opcodes as `torch.save` and Python 2's cPickle write them): opcode
/// starts, their integer / length arguments, and torch storage type names.
pub fn pickle_layout(b: &[u8]) -> Layout {
    let mut l = Layout::default();
    let mut i = 0;
    while i < b.len() {
        l.boundaries.push(i);
        let op = b[i];
        let arg = i + 1;
        let len_at = |w: usize| -> usize {
            let mut v = [0u8; 8];
            if let Some(s) = b.get(arg..arg + w) {
                v[..w].copy_from_slice(s);
            }
            u64::from_le_bytes(v) as usize
        };
        let step = match op {
            0x80 | b'K' | b'q' | b'h' => 1,
            b'M' => 2,
            b'J' | b'r' | b'j' => 4,
            0x95 | b'G' => 8,
            0x8a => 1 + len_at(1),
            b'X' | b'B' | b'T' => 4 + len_at(4),
            0x8c | b'C' | b'U' => 1 + len_at(1),
            0x8d | 0x8e => 8 + len_at(8),
            b'c' => {
                let rest = &b[arg.min(b.len())..];
                let mut nl = 0;
                let mut k = 0;
                for (j, &c) in rest.iter().enumerate() {
                    if c == b'\n' {
                        nl += 1;
                        if nl == 2 {
                            k = j + 1;
                            break;
                        }
                    }
                }
                k
            }
            _ => 0,
        };
        match op {
            b'K' | b'q' | b'h' | 0x8c | b'C' | b'U' | 0x8a => l.fields.push((arg, 1)),
            b'M' => l.fields.push((arg, 2)),
            b'J' | b'r' | b'j' | b'X' | b'B' | b'T' => l.fields.push((arg, 4)),
            0x8d | 0x8e | 0x95 => l.fields.push((arg, 8)),
            _ => {}
        }
        if op == 0x8a {
            // the LONG1 value itself (sizes, strides, offsets of tensors)
            let n = len_at(1);
            if n > 0 && arg + 1 + n <= b.len() {
                l.fields.push((arg + 1, n));
            }
        }
        i = arg + step;
    }
    l.find_tokens(
        b,
        b"FloatStorage",
        &[
            b"HalfStorage",
            b"LongStorage",
            b"DoubleStorage",
            b"ByteStorage",
        ],
    );
    l.find_tokens(
        b,
        b"_rebuild_tensor_v2",
        &[b"_rebuild_parameter", b"_rebuild_qtensor"],
    );
    l
}

/// Layout of a safetensors file: the length prefix, the JSON header's entries, its numbers
/// (shapes, offsets) and dtypes, and the data section.
pub fn safetensors_layout(b: &[u8]) -> Layout {
    let mut l = Layout {
        boundaries: vec![0, 8],
        fields: vec![(0, 8)],
        ..Layout::default()
    };
    let hlen = b.get(..8).map_or(0, |s| {
        u64::from_le_bytes(s.try_into().unwrap_or_default()) as usize
    });
    let end = (8 + hlen).min(b.len());
    let header = &b[8.min(end)..end];
    // entry starts: `"name":{` and ends `},`
    let mut i = 0;
    while let Some(p) = find(&header[i..], b"},") {
        l.boundaries.push(8 + i + p + 2);
        i += p + 2;
    }
    l.find_digits(b, 8, end);
    for (t, reps) in [
        (
            &b"\"F32\""[..],
            &[
                &b"\"F16\""[..],
                b"\"I64\"",
                b"\"BOOL\"",
                b"\"F64\"",
                b"\"U8\"",
            ][..],
        ),
        (b"\"F64\"", &[b"\"F32\"", b"\"I8\"", b"\"F8_E4M3\""]),
        (b"\"U8\"", &[b"\"F32\"", b"\"I64\""]),
    ] {
        l.find_tokens(header, t, reps);
    }
    for t in &mut l.tokens {
        t.0 += 8;
    }
    l.boundaries.push(end);
    // tensor data starts (data_offsets are relative to the data section)
    for &(at, w) in &l.digits.clone() {
        let v = std::str::from_utf8(&b[at..at + w])
            .unwrap_or("")
            .parse::<usize>();
        if let Ok(v) = v
            && end + v <= b.len()
        {
            l.boundaries.push(end + v);
        }
    }
    l.boundaries.push(b.len());
    l
}

/// Layout of a `.npy` array: magic, version, header length, header (shape digits, dtype), data.
pub fn npy_layout(b: &[u8]) -> Layout {
    let mut l = Layout {
        boundaries: vec![0, 6, 8, 10],
        fields: vec![(6, 1), (8, 2)],
        ..Layout::default()
    };
    let hlen = b
        .get(8..10)
        .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]) as usize);
    let end = (10 + hlen).min(b.len());
    l.find_digits(b, 10, end);
    l.find_tokens(
        b,
        b"'<f8'",
        &[b"'<f4'", b"'<i8'", b"'|b1'", b"'>f8'", b"'<f2'"],
    );
    l.find_tokens(b, b"False", &[b"True"]);
    l.boundaries.push(end);
    l.boundaries.push(b.len());
    l
}

/// Layout of a PNG: signature, chunks (length, type, data, CRC) and the IHDR fields
/// (width, height, bit depth, colour type). [`png_fix_crcs`] makes mutated chunks pass
/// their CRC so that mutations reach the decoder.
pub fn png_layout(b: &[u8]) -> Layout {
    let mut l = Layout {
        boundaries: vec![0, 8],
        ..Layout::default()
    };
    let mut i = 8;
    while i + 8 <= b.len() {
        let len = u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as usize;
        l.boundaries.push(i);
        l.boundaries.push(i + 8);
        l.fields.push((i, 4));
        if &b[i + 4..i + 8] == b"IHDR" {
            // width, height (big-endian: inflating the LE bytes still makes huge values)
            l.fields.push((i + 8, 4));
            l.fields.push((i + 12, 4));
            l.fields.push((i + 16, 1));
            l.fields.push((i + 17, 1));
        }
        i += 12 + len;
    }
    l.boundaries.push(b.len());
    l
}

/// Recomputes the CRC of every complete chunk of a (mutated) PNG.
pub fn png_fix_crcs(b: &mut [u8]) {
    let mut i = 8;
    while i + 12 <= b.len() {
        let len = u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as usize;
        let Some(end) = (i + 8).checked_add(len).filter(|e| e + 4 <= b.len()) else {
            break;
        };
        let crc = crc32(&b[i + 4..end]);
        b[end..end + 4].copy_from_slice(&crc.to_be_bytes());
        i = end + 4;
    }
}

/// CRC-32 (IEEE), bitwise.
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &x in data {
        c ^= x as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

// ---- peak memory ----

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// A global allocator that counts live bytes and their peak; install it in a harness test
/// binary with `#[global_allocator] static A: CountingAlloc = CountingAlloc;`.
pub struct CountingAlloc;

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: AllocLayout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: AllocLayout, new: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new) };
        if !p.is_null() {
            if new >= layout.size() {
                let now =
                    CURRENT.fetch_add(new - layout.size(), Ordering::Relaxed) + new - layout.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(layout.size() - new, Ordering::Relaxed);
            }
        }
        p
    }
}

/// Live bytes now; resets the peak to it.
pub fn reset_peak() -> usize {
    let now = CURRENT.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// Highest live bytes since [`reset_peak`] (0 without [`CountingAlloc`]).
pub fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

// ---- the runner ----

/// Variants per format: `SGM_FUZZ_VARIANTS`, else `fast` (the CI subset).
pub fn variants(fast: usize) -> usize {
    std::env::var("SGM_FUZZ_VARIANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(fast)
}

/// The outcome of feeding one format's variants to its loader.
#[derive(Debug, Default)]
pub struct Report {
    /// Format name.
    pub format: String,
    /// Variants tried.
    pub variants: usize,
    /// Variants that loaded.
    pub ok: usize,
    /// Errors by kind.
    pub errors: BTreeMap<String, usize>,
    /// Mutations tried, by kind.
    pub mutations: BTreeMap<&'static str, usize>,
    /// Panics: `variant #i (mutation): message`.
    pub crashes: Vec<String>,
    /// Largest file variant (bytes).
    pub max_file: usize,
    /// Highest memory above the baseline while loading one variant (bytes).
    pub peak_extra: usize,
    /// The variant behind `peak_extra`: `#i (mutation)`.
    pub peak_variant: String,
    /// Longest time one variant took to load.
    pub slowest: Duration,
}

impl Report {
    /// One line of the reliability table (markdown).
    pub fn table_row(&self) -> String {
        let errors: Vec<String> = self
            .errors
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        format!(
            "| {} | {} | {} | {} | {} | {:.1} MiB (largest file {:.1} MiB) | {:.0} ms |",
            self.format,
            self.variants,
            self.ok,
            errors.join("; "),
            self.crashes.len(),
            self.peak_extra as f64 / (1 << 20) as f64,
            self.max_file as f64 / (1 << 20) as f64,
            self.slowest.as_secs_f64() * 1e3,
        )
    }
}

/// Feeds `n` mutated variants of `seeds` (valid files, with whatever `make` precomputed about
/// them) to `load` (given the seed and the variant; returning `Err(kind)` for an error) and records the outcomes. `make`
/// produces a variant from a seed and the rng (e.g. [`mutate`] with the file's layout, or a
/// mutation of an inner zip entry, re-packed). With
/// `SGM_FUZZ_TRACE` set, each variant's number and mutation is printed before it is loaded
/// (to find the one behind an abort); `SGM_FUZZ_DUMP=i` writes variant `i` to the temp
/// directory.
pub fn run<S, M, L>(format: &str, seeds: &[S], n: usize, seed: u64, make: M, load: L) -> Report
where
    M: Fn(&S, &mut Rng) -> (Vec<u8>, &'static str),
    L: Fn(&S, &[u8]) -> Result<(), String>,
{
    let mut r = Report {
        format: format.into(),
        ..Report::default()
    };
    if seeds.is_empty() {
        return r;
    }
    let trace = std::env::var_os("SGM_FUZZ_TRACE").is_some();
    let dump: Option<usize> = std::env::var("SGM_FUZZ_DUMP")
        .ok()
        .and_then(|v| v.parse().ok());
    let mut rng = Rng::new(seed);
    for i in 0..n {
        let src = &seeds[i % seeds.len()];
        let (bytes, kind) = make(src, &mut rng);
        *r.mutations.entry(kind).or_default() += 1;
        if trace {
            eprintln!("{format} #{i}: {kind}, {} bytes", bytes.len());
        }
        if dump == Some(i) {
            let p = std::env::temp_dir().join(format!("sgm-fuzz-variant-{i}.bin"));
            let _ = std::fs::write(&p, &bytes);
            eprintln!("{format} #{i} ({kind}) written to {}", p.display());
        }
        r.max_file = r.max_file.max(bytes.len());
        let base = reset_peak();
        let t = Instant::now();
        let out = catch_unwind(AssertUnwindSafe(|| load(src, &bytes)));
        r.slowest = r.slowest.max(t.elapsed());
        let extra = peak().saturating_sub(base);
        if extra > r.peak_extra {
            r.peak_extra = extra;
            r.peak_variant = format!("#{i} ({kind}, {} bytes)", bytes.len());
        }
        match out {
            Ok(Ok(())) => r.ok += 1,
            Ok(Err(kind)) => *r.errors.entry(kind).or_default() += 1,
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                r.crashes.push(format!("variant #{i} ({kind}): {msg}"));
            }
        }
        r.variants += 1;
    }
    eprintln!("{}", r.table_row());
    let report = std::env::var_os("SGM_FUZZ_REPORT").and_then(|path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()
    });
    if let Some(mut f) = report {
        let _ = writeln!(
            f,
            "{}  <!-- seed {seed}, mutations {:?} -->",
            r.table_row(),
            r.mutations
        );
    }
    r
}

/// An error's kind for the report: its enum variant and [`error_kind`] of its message.
pub fn kind_of<E: std::fmt::Debug + std::fmt::Display>(e: &E, file: &str) -> String {
    let debug = format!("{e:?}");
    let variant = debug.split([' ', '(', '{']).next().unwrap_or("");
    format!("{variant}: {}", error_kind(&e.to_string(), file))
}

/// The first words of an error message, with numbers and paths blanked: an error's kind.
pub fn error_kind(msg: &str, drop_prefix: &str) -> String {
    let m = msg.strip_prefix(drop_prefix).unwrap_or(msg);
    let m = m.trim_start_matches(": ");
    let words: Vec<String> = m
        .split_whitespace()
        .take(5)
        .map(|w| {
            if w.starts_with('`') {
                "`…`".to_string()
            } else if w.chars().any(|c| c.is_ascii_digit()) {
                "#".to_string()
            } else {
                w.trim_end_matches([':', ',']).to_string()
            }
        })
        .collect();
    words.join(" ")
}

/// Asserts a report has no crashes, stayed within `peak_limit` bytes above the baseline,
/// and no variant took longer than `time_limit`.
pub fn assert_clean(r: &Report, peak_limit: usize, time_limit: Duration) {
    assert!(
        r.crashes.is_empty(),
        "{}: {} panics: {:#?}",
        r.format,
        r.crashes.len(),
        &r.crashes[..r.crashes.len().min(10)]
    );
    assert!(
        r.peak_extra <= peak_limit,
        "{}: peak memory {} B above baseline exceeds the bound {} B (variant {})",
        r.format,
        r.peak_extra,
        peak_limit,
        r.peak_variant
    );
    assert!(
        r.slowest <= time_limit,
        "{}: a variant took {:?} (limit {:?})",
        r.format,
        r.slowest,
        time_limit
    );
}
