//! The shared fc-less Inception weights (when present) are recognised by their hash: no
//! download, and the missing classifier is reported.

use std::path::PathBuf;

use sgm_eval::weights::prepare_inception;

#[test]
fn shared_inception_weights_are_recognised_by_their_hash() {
    let root = std::env::var_os("SGM_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let dir = root.join("inception");
    if !dir.join("pt_inception-2015-12-05.pth").is_file() {
        eprintln!(
            "skipping: no shared Inception weights under {}",
            dir.display()
        );
        return;
    }
    let w = prepare_inception(&dir, None).unwrap();
    assert!(!w.downloaded && !w.known.has_fc, "{w:?}");
    let sums = std::fs::read_to_string(root.join("SHA256SUMS")).unwrap();
    assert!(sums.contains(&w.sha256), "{} not in SHA256SUMS", w.sha256);
}
