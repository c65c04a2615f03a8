//! FID equal to pytorch-fid on real CIFAR-10 images, end to end from the pixels.
//!
//! Reference numbers (from the issue, measured with pytorch-fid on the same files and weights):
//! pool3 of the first test image starts 0.05417759 0.3055041 0.7912982 0.08579461 0.43887106
//! and sums to 791.86584; FID(first 500 of test_batch.bin, first 500 of data_batch_1.bin) is
//! 77.42799. The image ranges are parameters of the library, not constants of the model.

use std::path::PathBuf;

use sgm_eval::{InceptionV3, Stats, extract, frechet_distance, images::read_cifar10_bin};
use sgm_testkit::{TestBackend, device};

fn data_root() -> Option<PathBuf> {
    let root = std::env::var_os("SGM_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    if root.join("inception").is_dir() && root.join("cifar10").is_dir() {
        Some(root)
    } else {
        eprintln!(
            "\n*** SKIPPING FID parity: no data at {} (set SGM_DATA) ***\n",
            root.display()
        );
        None
    }
}

fn net(root: &std::path::Path) -> InceptionV3<TestBackend> {
    InceptionV3::load(
        &root.join("inception/pt_inception-2015-12-05.pth"),
        &device(),
    )
    .unwrap()
}

#[test]
fn pool3_features_of_the_first_test_image_match_pytorch_fid() {
    let Some(root) = data_root() else { return };
    let net = net(&root);
    let imgs = read_cifar10_bin(&root.join("cifar10/test_batch.bin"), 0, Some(1)).unwrap();
    let f = extract(&net, &imgs, 1, &device(), |_| {}).unwrap();
    let expected = [0.05417759, 0.3055041, 0.7912982, 0.08579461, 0.43887106];
    for (i, e) in expected.iter().enumerate() {
        assert!(
            (f.pool3[i] - e).abs() <= 1e-4,
            "pool3[{i}] = {} vs pytorch-fid {e}",
            f.pool3[i]
        );
    }
    let sum: f64 = f.pool3.iter().sum();
    assert!(
        (sum - 791.86584).abs() <= 1e-4 * 791.86584,
        "pool3 sum {sum} vs pytorch-fid 791.86584"
    );
}

#[test]
fn fid_of_500_vs_500_cifar10_images_matches_pytorch_fid() {
    let Some(root) = data_root() else { return };
    let net = net(&root);
    let stats = |file: &str| {
        let imgs = read_cifar10_bin(&root.join("cifar10").join(file), 0, Some(500)).unwrap();
        let f = extract(&net, &imgs, 50, &device(), |_| {}).unwrap();
        Stats::from_features(&f.pool3, f.n, sgm_eval::POOL3_DIM).unwrap()
    };
    let a = stats("test_batch.bin");
    let b = stats("data_batch_1.bin");
    let fid = frechet_distance(&a, &b).unwrap();
    let expected = 77.42799;
    assert!(
        ((fid - expected) / expected).abs() <= 1e-4,
        "FID {fid} vs pytorch-fid {expected}"
    );
}
