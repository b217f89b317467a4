//! Rows of the validation dataset from a measured co-location matrix: `gpushare colocate`'s
//! `colocation.csv` and `colocation-kernels.csv` of one GPU folder
//! (`reports/validation/<gpu>/`) become rows of `validation/measurements.csv` and workloads of
//! `validation/workloads.toml` (`gpushare colocate --add-to-dataset DIR`).
//!
//! The split is declared here, before any data exists, and `validation/README.md` states it:
//! - **calibration** (`fits = workload`): every kernel alone — under time slicing (alone on the
//!   GPU) and under each MPS cap. They fix each kernel's `solo_ms` and `sm_pct` (how it slows
//!   with fewer SMs), as a profiler run would.
//! - **validation**: every pair, both clients' mean time per request. Nothing is fitted to a
//!   pair: the model predicts how two kernels slow each other from each one alone.
//!
//! A kernel's `dram_pct` is stated from its measurement alone (bytes moved over its time,
//! against the device's datasheet bandwidth); its grid (`blocks`, `threads_per_block`) is what
//! the harness launched. `mixed-full` runs a spin then a stream kernel: it is described as one
//! phase with both demands averaged over its time, a simplification the pairs will show.
//! Emulated files (no GPU) are refused: they are not measurements.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// One kernel of `colocation-kernels.csv`.
#[derive(Clone, Debug, PartialEq)]
struct Kernel {
    device: String,
    blocks: u32,
    threads_per_block: u32,
    dram_pct: f64,
    spin_ms: f64,
    stream_ms: f64,
}

/// One row of `colocation.csv`.
#[derive(Clone, Debug, PartialEq)]
struct Cell {
    pair: bool,
    mechanism: String,
    cap_a: f64,
    cap_b: f64,
    kernel_a: String,
    kernel_b: String,
    mean_a: f64,
    mean_b: f64,
}

/// Dataset rows (CSV lines without a header) and the workloads they run (TOML), for one GPU.
#[derive(Clone, Debug, PartialEq)]
pub struct Converted {
    pub gpu: String,
    pub rows: String,
    pub workloads: String,
    pub calibration_rows: usize,
    pub validation_rows: usize,
}

/// A CSV record by column name, with its line.
type Record = (u64, BTreeMap<String, String>);

/// Reads `path` as CSV records by column name; errors name the file, line and column.
fn records(path: &Path) -> Result<Vec<Record>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut r = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let header: Vec<String> = r
        .headers()
        .map_err(|e| format!("{}:1: header: {e}", path.display()))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut out = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| format!("{}: {e}", path.display()))?;
        let line = rec.position().map_or(0, |p| p.line());
        out.push((
            line,
            header.iter().cloned().zip(rec.iter().map(str::to_string)).collect(),
        ));
    }
    Ok(out)
}

fn get<'a>(path: &Path, line: u64, rec: &'a BTreeMap<String, String>, col: &str) -> Result<&'a str, String> {
    rec.get(col)
        .map(String::as_str)
        .ok_or_else(|| format!("{}:{line}: {col}: missing column", path.display()))
}

fn number(path: &Path, line: u64, rec: &BTreeMap<String, String>, col: &str) -> Result<f64, String> {
    let v = get(path, line, rec, col)?;
    v.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && *x >= 0.0)
        .ok_or_else(|| format!("{}:{line}: {col}: `{v}` is not a non-negative number", path.display()))
}

fn measured(path: &Path, line: u64, rec: &BTreeMap<String, String>) -> Result<(), String> {
    match get(path, line, rec, "backend")? {
        "cuda" => Ok(()),
        b => Err(format!(
            "{}:{line}: backend: `{b}`: only measurements on a GPU (`cuda`) enter the dataset",
            path.display()
        )),
    }
}

fn read_kernels(path: &Path) -> Result<(String, BTreeMap<String, Kernel>), String> {
    let mut gpu = String::new();
    let mut out = BTreeMap::new();
    for (line, rec) in records(path)? {
        measured(path, line, &rec)?;
        gpu = get(path, line, &rec, "gpu")?.to_string();
        let k = Kernel {
            device: get(path, line, &rec, "device")?.to_string(),
            blocks: number(path, line, &rec, "blocks")? as u32,
            threads_per_block: number(path, line, &rec, "threads_per_block")? as u32,
            dram_pct: number(path, line, &rec, "dram_pct")?.min(100.0),
            spin_ms: number(path, line, &rec, "spin_ms")?,
            stream_ms: number(path, line, &rec, "stream_ms")?,
        };
        out.insert(get(path, line, &rec, "kernel")?.to_string(), k);
    }
    if out.is_empty() {
        return Err(format!("{}: no kernels", path.display()));
    }
    Ok((gpu, out))
}

fn read_cells(path: &Path, kernels: &BTreeMap<String, Kernel>) -> Result<Vec<Cell>, String> {
    let mut out = Vec::new();
    for (line, rec) in records(path)? {
        measured(path, line, &rec)?;
        let pair = match get(path, line, &rec, "kind")? {
            "pair" => true,
            "alone" => false,
            k => {
                return Err(format!(
                    "{}:{line}: kind: `{k}`: expected alone or pair",
                    path.display()
                ));
            }
        };
        let kernel = |col: &str| -> Result<String, String> {
            let k = get(path, line, &rec, col)?;
            if kernels.contains_key(k) || (!pair && col == "kernel_b" && k.is_empty()) {
                Ok(k.to_string())
            } else {
                Err(format!(
                    "{}:{line}: {col}: `{k}` is not in colocation-kernels.csv",
                    path.display()
                ))
            }
        };
        let mechanism = get(path, line, &rec, "mechanism")?.to_string();
        if mechanism != "mps" && mechanism != "time-sharing" {
            return Err(format!(
                "{}:{line}: mechanism: `{mechanism}`: expected mps or time-sharing",
                path.display()
            ));
        }
        out.push(Cell {
            pair,
            mechanism,
            cap_a: number(path, line, &rec, "cap_a_pct")?,
            cap_b: if pair {
                number(path, line, &rec, "cap_b_pct")?
            } else {
                0.0
            },
            kernel_a: kernel("kernel_a")?,
            kernel_b: kernel("kernel_b")?,
            mean_a: number(path, line, &rec, "mean_a_ms")?,
            mean_b: if pair {
                number(path, line, &rec, "mean_b_ms")?
            } else {
                0.0
            },
        });
    }
    Ok(out)
}

/// A dataset row: `common` (source, url, gpu), `which` (id, set, fits, workload,
/// configuration), the value in ms and the experiment, in the dataset's column order.
fn row_line(common: &[&str; 3], mechanism: &str, which: [&str; 5], value_ms: f64, experiment: &str) -> String {
    let [id, set, fits, workload, configuration] = which;
    let [source, url, gpu] = *common;
    let value = format!("{value_ms:.4}");
    csv_line(&[
        id,
        set,
        fits,
        source,
        url,
        gpu,
        workload,
        mechanism,
        configuration,
        "latency_ms",
        &value,
        "ms",
        experiment,
        "",
    ])
}

/// One CSV line (quoted where a field needs it).
fn csv_line(fields: &[&str]) -> String {
    let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    let _ = w.write_record(fields);
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// The dataset's name of kernel `k` measured on `gpu`.
pub fn workload_name(gpu: &str, k: &str) -> String {
    format!("colo-{gpu}-{k}")
}

fn workloads_toml(gpu: &str, dir: &Path, kernels: &BTreeMap<String, Kernel>) -> String {
    let mut t = format!(
        "# BEGIN colocation {gpu} (gpushare colocate --add-to-dataset {})\n",
        dir.display()
    );
    for (name, k) in kernels {
        let _ = write!(
            t,
            "\n[{}]\n# {} ms of the spin kernel then {} ms of the stream kernel, {} blocks of {} threads; DRAM share measured alone \
             ({}/colocation-kernels.csv); SM throughput fitted to the kernel alone under MPS caps\n\
             description = \"gpushare colocate's {name} kernel\"\nsource = \"{}/colocation-kernels.csv\"\n\
             reference_gpu = \"{}\"\nweights_mib = 0\nactivation_mib = 1\ndram_pct = {:.1}\nblocks = {}\n\
             threads_per_block = {}\nfit = [\"solo_ms\", \"sm_pct\"]\n",
            workload_name(gpu, name),
            k.spin_ms,
            k.stream_ms,
            k.blocks,
            k.threads_per_block,
            dir.display(),
            dir.display(),
            k.device,
            k.dram_pct,
            k.blocks,
            k.threads_per_block,
        );
    }
    let _ = writeln!(t, "# END colocation {gpu}");
    t
}

/// A client as the experiment column writes it.
fn client(gpu: &str, mechanism: &str, kernel: &str, cap: f64) -> String {
    let w = workload_name(gpu, kernel);
    if mechanism == "mps" { format!("{w}@{cap}") } else { w }
}

/// Converts the GPU folder `dir` (its `colocation.csv` and `colocation-kernels.csv`).
pub fn convert(dir: &Path) -> Result<Converted, String> {
    let (gpu, kernels) = read_kernels(&dir.join("colocation-kernels.csv"))?;
    let cells = read_cells(&dir.join("colocation.csv"), &kernels)?;
    let device = &kernels.values().next().expect("checked non-empty").device;
    let source = format!("gpushare colocate on {gpu} (this repository)");
    let url = format!("{}/colocation.csv", dir.display());
    let common = [source.as_str(), url.as_str(), device.as_str()];
    let mut rows = String::new();
    let (mut cal, mut val) = (0, 0);
    for c in &cells {
        let caps = if c.mechanism == "mps" {
            format!("{}", c.cap_a)
        } else {
            String::new()
        };
        if !c.pair {
            let id = format!("colo-{gpu}-{}{caps}-{}-alone", c.mechanism, c.kernel_a);
            let exp = format!(
                "kind=closed-loop device={device} mechanism={} clients={} measure=latency_ms",
                c.mechanism,
                client(&gpu, &c.mechanism, &c.kernel_a, c.cap_a)
            );
            let conf = if c.mechanism == "mps" {
                format!("alone, active threads {}%", c.cap_a)
            } else {
                "alone".into()
            };
            rows.push_str(&row_line(
                &common,
                &c.mechanism,
                [&id, "calibration", "workload", &c.kernel_a, &conf],
                c.mean_a,
                &exp,
            ));
            cal += 1;
            continue;
        }
        let clients = format!(
            "{},{}",
            client(&gpu, &c.mechanism, &c.kernel_a, c.cap_a),
            client(&gpu, &c.mechanism, &c.kernel_b, c.cap_b)
        );
        let caps = if c.mechanism == "mps" {
            format!("{}-{}", c.cap_a, c.cap_b)
        } else {
            String::new()
        };
        for (side, (kernel, value)) in [(&c.kernel_a, c.mean_a), (&c.kernel_b, c.mean_b)]
            .into_iter()
            .enumerate()
        {
            let id = format!(
                "colo-{gpu}-{}{caps}-{}-{}-{}",
                c.mechanism,
                c.kernel_a,
                c.kernel_b,
                ["a", "b"][side]
            );
            let exp = format!(
                "kind=closed-loop device={device} mechanism={} clients={clients} measure=latency_ms client={side}",
                c.mechanism
            );
            let conf = format!(
                "{} beside {}, caps {}",
                c.kernel_a,
                c.kernel_b,
                if caps.is_empty() { "none" } else { caps.as_str() }
            );
            rows.push_str(&row_line(
                &common,
                &c.mechanism,
                [&id, "validation", "", kernel, &conf],
                value,
                &exp,
            ));
            val += 1;
        }
    }
    Ok(Converted {
        workloads: workloads_toml(&gpu, dir, &kernels),
        gpu,
        rows,
        calibration_rows: cal,
        validation_rows: val,
    })
}

/// `dataset` (measurements.csv's text) and `workloads` (workloads.toml's) with `c`'s rows and
/// workloads in place of any earlier conversion for the same GPU.
pub fn merge(dataset: &str, workloads: &str, c: &Converted) -> (String, String) {
    // Exactly this GPU's rows: `colo-h200-mps…` and `colo-h200-time-sharing…`, not `colo-h200-sxm-…`.
    let ours = |l: &str| {
        ["mps", "time-sharing"]
            .iter()
            .any(|m| l.starts_with(&format!("colo-{}-{m}", c.gpu)))
    };
    let mut rows: String = dataset.lines().filter(|l| !ours(l)).map(|l| format!("{l}\n")).collect();
    rows.push_str(&c.rows);
    let (begin, end) = (
        format!("# BEGIN colocation {} ", c.gpu),
        format!("# END colocation {}", c.gpu),
    );
    let mut kept = String::new();
    let mut inside = false;
    for l in workloads.lines() {
        if l.starts_with(&begin) {
            inside = true;
        } else if inside && l == end {
            inside = false;
        } else if !inside {
            kept.push_str(l);
            kept.push('\n');
        }
    }
    if !kept.ends_with("\n\n") {
        kept.push('\n');
    }
    kept.push_str(&c.workloads);
    (rows, kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fidelity::dataset::{Dataset, Set};

    const KERNELS: &str = "gpu,backend,device,kernel,blocks,threads_per_block,sm_share,spin_ms,stream_ms,moved_mib,alone_ms,alone_gbps,peak_gbps,dram_pct
t,cuda,h100-80gb,compute-full,132,1024,1,5,0,0.0,5.1,0.0,3350,0.0
t,cuda,h100-80gb,memory-full,132,1024,1,0,5,15974.0,5.2,3200.0,3350,95.5
";
    const CELLS: &str = "gpu,backend,kind,mechanism,cap_a_pct,cap_b_pct,kernel_a,kernel_b,alone_a_ms,alone_b_ms,mean_a_ms,mean_b_ms,p50_a_ms,p50_b_ms,slowdown_a,slowdown_b,n_a,n_b,sm_clock_mhz
t,cuda,alone,mps,50,,compute-full,,9.8,,9.8,,9.8,,,,40,,1980
t,cuda,alone,mps,50,,memory-full,,6.1,,6.1,,6.1,,,,40,,1980
t,cuda,pair,mps,50,50,compute-full,memory-full,9.8,6.1,10.4,7.0,10.4,7.0,1.06,1.15,40,40,1980
t,cuda,alone,time-sharing,100,,compute-full,,5.1,,5.1,,5.1,,,,40,,1980
";

    fn fixture(name: &str, kernels: &str, cells: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("gpushare-colo-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("colocation-kernels.csv"), kernels).unwrap();
        std::fs::write(dir.join("colocation.csv"), cells).unwrap();
        dir
    }

    #[test]
    fn kernels_alone_calibrate_and_pairs_validate() {
        let dir = fixture("split", KERNELS, CELLS);
        let c = convert(&dir).unwrap();
        assert_eq!((c.calibration_rows, c.validation_rows), (3, 2));
        let header = "id,set,fits,source,url,gpu,workload,mechanism,configuration,metric,value,unit,experiment,note\n";
        let d = Dataset::parse(Path::new("converted"), &format!("{header}{}", c.rows)).unwrap();
        let pair: Vec<_> = d
            .rows
            .iter()
            .filter(|r| r.id.contains("-a") || r.id.ends_with("-b"))
            .collect();
        assert!(
            d.rows
                .iter()
                .filter(|r| r.set == Set::Validation)
                .all(|r| r.fits.is_none())
        );
        assert!(
            pair.iter()
                .any(|r| r.id == "colo-t-mps50-50-compute-full-memory-full-b" && r.value == 7.0)
        );
        // Every workload a row runs is defined, with the measured DRAM share.
        let defs: BTreeMap<String, crate::fidelity::model::WorkloadDef> = toml::from_str(&c.workloads).unwrap();
        for r in &d.rows {
            for w in r.experiment.workloads() {
                assert!(defs.contains_key(w), "{w}");
            }
        }
        assert_eq!(defs["colo-t-memory-full"].dram_pct, Some(95.5));
        // The model predicts the pair from the kernels alone: each slower beside the other.
        let profile = |solo_ms| gpushare_sim::fitted::FittedProfile {
            solo_ms,
            sm_pct: Some(90.0),
            host_pre_ms: None,
        };
        let model = crate::fidelity::model::Model {
            workloads: defs,
            fitted: gpushare_sim::fitted::Fitted {
                device: crate::fidelity::fit::START,
                sources: BTreeMap::new(),
                profiles: [
                    ("colo-t-compute-full".into(), profile(5.1)),
                    ("colo-t-memory-full".into(), profile(5.2)),
                ]
                .into(),
            },
        };
        for side in ["a", "b"] {
            let row = d
                .rows
                .iter()
                .find(|r| r.id == format!("colo-t-mps50-50-compute-full-memory-full-{side}"))
                .unwrap();
            let out = crate::fidelity::experiment::run(&row.experiment, &model, Path::new(".")).unwrap();
            let paired = crate::fidelity::experiment::read(&row.experiment, &out).unwrap();
            assert!(paired > 5.0, "{side}: {paired}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn merging_twice_replaces_the_earlier_conversion() {
        let dir = fixture("merge", KERNELS, CELLS);
        let c = convert(&dir).unwrap();
        let (d1, w1) = merge("id,set\nfast-01,x\n", "[a]\nfit = []\n", &c);
        let (d2, w2) = merge(&d1, &w1, &c);
        assert_eq!((&d1, &w1), (&d2, &w2));
        assert!(d2.starts_with("id,set\nfast-01,x\n") && w2.starts_with("[a]\nfit = []\n"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn emulated_files_never_enter_the_dataset() {
        let dir = fixture("emulated", &KERNELS.replace(",cuda,", ",emulated,"), CELLS);
        let e = convert(&dir).unwrap_err();
        assert!(e.contains("colocation-kernels.csv:2: backend: `emulated`"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
