//! Per-batch partial results of an evaluation, persisted atomically after every batch so an
//! interrupted evaluation continues where it stopped.
//!
//! A partial file is JSON `{"settings": {...}, "batches": [...]}`: the settings that determine
//! the batches' values (checkpoint step, batch size, data size, seeds, solver options, …) and
//! one entry per finished batch. A file made under other settings is never mixed with new
//! batches: it is an error naming the file and the settings that differ.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Result, TrainError};

#[derive(serde::Deserialize)]
struct Partial<T> {
    settings: Value,
    batches: Vec<T>,
}

#[derive(Serialize)]
struct PartialRef<'a, T> {
    settings: &'a Value,
    batches: &'a [T],
}

/// Keys whose values differ between two settings objects (`a` = on disk).
fn differences(a: &Value, b: &Value) -> Vec<String> {
    match (a.as_object(), b.as_object()) {
        (Some(x), Some(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .filter(|k| x.get(*k) != y.get(*k))
                .map(|k| {
                    let show = |v: Option<&Value>| v.map_or("(absent)".into(), |v| v.to_string());
                    format!("{k}: {} on disk, {} now", show(x.get(k)), show(y.get(k)))
                })
                .collect()
        }
        _ => vec!["settings of another form".into()],
    }
}

/// The finished batches in `path` (none when the file does not exist). Errors when the file
/// is unreadable or was made under other `settings`.
pub fn load<T: DeserializeOwned>(path: &Path, settings: &Value) -> Result<Vec<T>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    let p: Partial<T> = serde_json::from_str(&text).map_err(|e| {
        TrainError::io(
            path,
            format!("not a partial evaluation result ({e}); remove it to redo this part"),
        )
    })?;
    if &p.settings != settings {
        return Err(TrainError::io(
            path,
            format!(
                "partial results of other settings ({}); remove it to redo this part with the \
                 new settings, or evaluate with the old ones",
                differences(&p.settings, settings).join("; ")
            ),
        ));
    }
    Ok(p.batches)
}

/// Writes the finished `batches` atomically (a kill leaves the previous file or this one).
pub fn save<T: Serialize>(path: &Path, settings: &Value, batches: &[T]) -> Result<()> {
    let text = serde_json::to_string(&PartialRef { settings, batches })
        .map_err(|e| TrainError::io(path, e))?;
    sgm_fs::write_atomic_bytes(path, text.as_bytes()).map_err(|e| TrainError::io(path, e))
}
