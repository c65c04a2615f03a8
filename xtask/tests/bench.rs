//! `cargo xtask bench --quick`: every row of every table runs and is printed (no timing checks:
//! speed lives in the benchmark's figures, not in tests).

mod common;

use std::path::Path;

use common::{Tmp, ok, xtask};

#[test]
fn bench_quick_prints_every_row_and_filters() {
    let tmp = Tmp::new("bench");
    let list = xtask(&["bench", "--list"]);
    ok(&list);
    let ids: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert!(ids.len() >= 16, "{ids:?}");

    let json = tmp.0.join("bench.json");
    let weights = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/inception/pt_inception-2015-12-05.pth");
    let mut args = vec![
        "bench".to_string(),
        "--quick".into(),
        "--runs".into(),
        "1".into(),
        "--warmup".into(),
        "0".into(),
        "--json".into(),
        json.display().to_string(),
    ];
    if weights.is_file() {
        args.extend(["--inception".into(), weights.display().to_string()]);
    } else {
        eprintln!(
            "\n*** no Inception weights at {}: that row is skipped ***\n",
            weights.display()
        );
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = xtask(&args);
    ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for id in &ids {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {id} |")))
            .unwrap_or_else(|| panic!("row {id} not printed:\n{stdout}"));
        if id != "inception" || weights.is_file() {
            assert!(!line.contains("skipped"), "{line}");
        }
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let json_ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(json_ids, ids);
    for r in rows.iter().filter(|r| !r["timing"].is_null()) {
        assert!(r["timing"]["median_s"].as_f64().unwrap() > 0.0, "{r}");
    }

    // --filter runs only the matching rows; a filter matching nothing is one clear error.
    let out = xtask(&[
        "bench", "--quick", "--runs", "1", "--warmup", "0", "--filter", "pc_",
    ]);
    ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let printed: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| row"))
        .collect();
    assert_eq!(printed.len(), 2, "{stdout}");
    assert!(printed.iter().all(|l| l.starts_with("| pc_")), "{stdout}");
    let out = xtask(&["bench", "--filter", "nosuchrow"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nosuchrow") && err.contains("ncsnpp32_fwd") && !err.contains("panicked"),
        "{err}"
    );
}
