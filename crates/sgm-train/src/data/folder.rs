//! Image folders (PNG / JPEG) for CelebA-HQ / FFHQ / LSUN-style data: every image file under a
//! directory (recursively, sorted by path), center-cropped to a square and resized to
//! `image_size` with an antialiasing bicubic filter (the reference's LSUN / CelebA-HQ path:
//! central crop, then bicubic antialiased resize). Decoding happens per item (on the
//! prefetch thread), so large sets are never held in memory; an unreadable file is an error
//! naming it.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use crate::data::ImageSource;
use crate::error::{Result, TrainError};

/// A folder of RGB images.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    files: Vec<PathBuf>,
    size: usize,
}

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("png" | "jpg" | "jpeg")
    )
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let rd = std::fs::read_dir(dir).map_err(|e| TrainError::Data {
        path: dir.to_path_buf(),
        msg: e.to_string(),
    })?;
    for entry in rd {
        let p = entry
            .map_err(|e| TrainError::Data {
                path: dir.to_path_buf(),
                msg: e.to_string(),
            })?
            .path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if is_image(&p) {
            out.push(p);
        }
    }
    Ok(())
}

impl ImageFolder {
    /// Every `.png` / `.jpg` / `.jpeg` under `dir`, served at `size`×`size`.
    pub fn new(dir: &Path, size: usize) -> Result<Self> {
        let mut files = Vec::new();
        walk(dir, &mut files)?;
        files.sort();
        if files.is_empty() {
            return Err(TrainError::Data {
                path: dir.to_path_buf(),
                msg: "no PNG / JPEG images in this directory".into(),
            });
        }
        Ok(Self { files, size })
    }

    /// The image files, in serving order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

/// Center crop to a square, then antialiased bicubic resize to `size` (planar RGB bytes).
pub fn crop_resize(img: image::DynamicImage, size: usize) -> Vec<u8> {
    let (w, h) = (img.width(), img.height());
    let s = w.min(h);
    let img = img.crop_imm((w - s) / 2, (h - s) / 2, s, s);
    let img = if s as usize == size {
        img
    } else {
        img.resize_exact(size as u32, size as u32, FilterType::CatmullRom)
    };
    let rgb = img.to_rgb8();
    let n = size * size;
    let mut out = vec![0u8; 3 * n];
    for (i, px) in rgb.pixels().enumerate() {
        for c in 0..3 {
            out[c * n + i] = px.0[c];
        }
    }
    out
}

impl ImageSource for ImageFolder {
    fn len(&self) -> usize {
        self.files.len()
    }
    fn shape(&self) -> [usize; 3] {
        [3, self.size, self.size]
    }
    fn get(&self, i: usize) -> Result<Vec<u8>> {
        let p = &self.files[i];
        let img = image::open(p).map_err(|e| TrainError::Data {
            path: p.clone(),
            msg: format!("cannot decode image: {e}"),
        })?;
        Ok(crop_resize(img, self.size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_resizes_and_names_broken_files() {
        let dir = std::env::temp_dir().join(format!("sgm-train-folder-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let img =
            image::RgbImage::from_fn(12, 8, |x, y| image::Rgb([x as u8 * 10, y as u8 * 20, 7]));
        img.save(dir.join("sub/a.png")).unwrap();
        std::fs::write(dir.join("b.jpg"), b"not a jpeg").unwrap();
        let f = ImageFolder::new(&dir, 4).unwrap();
        assert_eq!(f.len(), 2);
        // sorted: b.jpg, sub/a.png
        let px = f.get(1).unwrap();
        assert_eq!(px.len(), 3 * 16);
        assert!(px[32..].iter().all(|&b| b == 7), "blue plane is constant");
        let e = f.get(0).unwrap_err().to_string();
        assert!(e.contains("b.jpg"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
