//! `validation/measurements.csv`: the rows, their split, and each row's experiment, read with
//! errors that name the file, line and field.

use gpushare_policies::closed_loop::Mechanism;
use std::path::{Path, PathBuf};

/// Which half of the dataset a row belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Set {
    Calibration,
    Validation,
}

impl Set {
    pub fn name(self) -> &'static str {
        match self {
            Set::Calibration => "calibration",
            Set::Validation => "validation",
        }
    }
}

/// What a calibration row calibrates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fits {
    /// The fitted kernel figures of the row's workload.
    Workload,
    /// The device coefficient `dram_queueing`.
    DramQueueing,
    /// The device coefficient `context_switch_us`.
    ContextSwitch,
    /// Nothing fitted: stated inputs, predicted as a check.
    Inputs,
}

/// What a closed-loop experiment reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measure {
    Qps,
    LatencyMs,
    GpuMs,
    UtilisationPct,
    SmOccupancyPct,
}

/// Which client(s) a measure is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Client(usize),
    /// Throughputs summed, latencies averaged.
    All,
}

/// One client of a closed loop, as written: `[N*]WORKLOAD[@CAP[/QUOTA]]` or `WORKLOAD@SLICE`.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientSpec {
    pub workload: String,
    /// MPS active-thread percentage.
    pub cap_pct: f64,
    pub quota: f64,
    pub slice: Option<String>,
}

/// How gpushare predicts a row.
#[derive(Clone, Debug, PartialEq)]
pub enum Experiment {
    ClosedLoop {
        device: String,
        mechanism: Mechanism,
        clients: Vec<ClientSpec>,
        measure: Measure,
        which: Which,
        scale: f64,
    },
    Scenario {
        file: PathBuf,
        sets: Vec<String>,
        /// A dotted path into `summary.json`.
        measure: String,
        scale: f64,
    },
}

impl Experiment {
    /// The workloads its clients run (closed loops only).
    pub fn workloads(&self) -> Vec<&str> {
        match self {
            Experiment::ClosedLoop { clients, .. } => clients.iter().map(|c| c.workload.as_str()).collect(),
            Experiment::Scenario { .. } => Vec::new(),
        }
    }

    /// Parses the `experiment` column.
    pub fn parse(text: &str) -> Result<Experiment, String> {
        let mut kv: Vec<(&str, &str)> = Vec::new();
        for word in text.split_whitespace() {
            let (k, v) = word
                .split_once('=')
                .ok_or_else(|| format!("`{word}` is not KEY=VALUE"))?;
            kv.push((k, v));
        }
        let get = |k: &str| kv.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
        let need = |k: &str| get(k).ok_or_else(|| format!("missing `{k}=`"));
        let scale = match get("scale") {
            Some(s) => s
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or_else(|| format!("scale={s}: expected a positive number"))?,
            None => 1.0,
        };
        match need("kind")? {
            "closed-loop" => {
                let known = ["kind", "device", "mechanism", "clients", "measure", "client", "scale"];
                if let Some((k, _)) = kv.iter().find(|(k, _)| !known.contains(k)) {
                    return Err(format!("unknown key `{k}`; valid: {}", known.join(", ")));
                }
                let mechanism = match need("mechanism")? {
                    "mps" => Mechanism::Mps,
                    "time-sharing" => Mechanism::TimeSlicing,
                    "mig" => Mechanism::Mig,
                    m => return Err(format!("mechanism={m}: expected mps, time-sharing or mig")),
                };
                let clients = parse_clients(need("clients")?, mechanism)?;
                let measure = match need("measure")? {
                    "qps" => Measure::Qps,
                    "latency_ms" => Measure::LatencyMs,
                    "gpu_ms" => Measure::GpuMs,
                    "utilisation_pct" => Measure::UtilisationPct,
                    "sm_occupancy_pct" => Measure::SmOccupancyPct,
                    m => {
                        return Err(format!(
                            "measure={m}: expected qps, latency_ms, gpu_ms, utilisation_pct or sm_occupancy_pct"
                        ));
                    }
                };
                let which = match get("client") {
                    None => Which::Client(0),
                    Some("all") => Which::All,
                    Some(k) => match k.parse::<usize>() {
                        Ok(i) if i < clients.len() => Which::Client(i),
                        _ => {
                            return Err(format!(
                                "client={k}: expected `all` or a client index below {}",
                                clients.len()
                            ));
                        }
                    },
                };
                Ok(Experiment::ClosedLoop {
                    device: need("device")?.to_string(),
                    mechanism,
                    clients,
                    measure,
                    which,
                    scale,
                })
            }
            "scenario" => {
                let known = ["kind", "file", "set", "measure", "scale"];
                if let Some((k, _)) = kv.iter().find(|(k, _)| !known.contains(k)) {
                    return Err(format!("unknown key `{k}`; valid: {}", known.join(", ")));
                }
                Ok(Experiment::Scenario {
                    file: PathBuf::from(need("file")?),
                    sets: kv
                        .iter()
                        .filter(|(k, _)| *k == "set")
                        .map(|(_, v)| v.to_string())
                        .collect(),
                    measure: need("measure")?.to_string(),
                    scale,
                })
            }
            k => Err(format!("kind={k}: expected closed-loop or scenario")),
        }
    }
}

fn parse_clients(text: &str, mechanism: Mechanism) -> Result<Vec<ClientSpec>, String> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let (count, rest) = match part.split_once('*') {
            Some((n, rest)) => (
                n.parse::<usize>()
                    .ok()
                    .filter(|&n| (1..=48).contains(&n))
                    .ok_or_else(|| format!("`{part}`: the count before `*` must be 1 to 48"))?,
                rest,
            ),
            None => (1, part),
        };
        let (workload, at) = match rest.split_once('@') {
            Some((w, a)) => (w, Some(a)),
            None => (rest, None),
        };
        if workload.is_empty() {
            return Err(format!("`{part}`: no workload name"));
        }
        let mut spec = ClientSpec {
            workload: workload.to_string(),
            cap_pct: 100.0,
            quota: 1.0,
            slice: None,
        };
        match (mechanism, at) {
            (Mechanism::Mig, Some(slice)) => spec.slice = Some(slice.to_string()),
            (Mechanism::Mig, None) => return Err(format!("`{part}`: a MIG client needs `@SLICE`")),
            (Mechanism::Mps, Some(a)) => {
                let (cap, quota) = a.split_once('/').unwrap_or((a, "1"));
                spec.cap_pct = cap
                    .parse::<f64>()
                    .ok()
                    .filter(|c| *c > 0.0 && *c <= 100.0)
                    .ok_or_else(|| format!("`{part}`: the cap must be a percentage in (0, 100]"))?;
                spec.quota = quota
                    .parse::<f64>()
                    .ok()
                    .filter(|q| *q > 0.0 && *q <= 1.0)
                    .ok_or_else(|| format!("`{part}`: the time quota must be in (0, 1]"))?;
            }
            (Mechanism::TimeSlicing, Some(_)) => {
                return Err(format!("`{part}`: time-sharing clients take no `@` share"));
            }
            (_, None) => {}
        }
        out.extend(std::iter::repeat_n(spec, count));
    }
    Ok(out)
}

/// One row.
#[derive(Clone, Debug)]
pub struct Row {
    pub id: String,
    pub set: Set,
    pub fits: Option<Fits>,
    pub source: String,
    pub url: String,
    pub gpu: String,
    pub workload: String,
    pub mechanism: String,
    pub configuration: String,
    pub metric: String,
    pub value: f64,
    pub unit: String,
    pub experiment: Experiment,
    pub note: String,
}

/// A calibration row: the only kind of row fitting code is given
/// ([`Dataset::calibration`]).
#[derive(Clone, Debug)]
pub struct CalibrationRow(Row);

impl CalibrationRow {
    pub fn row(&self) -> &Row {
        &self.0
    }
    /// What it calibrates.
    pub fn fits(&self) -> Fits {
        self.0.fits.expect("calibration rows say what they fit")
    }
}

/// The whole dataset.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub path: PathBuf,
    pub rows: Vec<Row>,
}

const COLUMNS: [&str; 14] = [
    "id",
    "set",
    "fits",
    "source",
    "url",
    "gpu",
    "workload",
    "mechanism",
    "configuration",
    "metric",
    "value",
    "unit",
    "experiment",
    "note",
];

impl Dataset {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Dataset, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Dataset::parse(path, &text)
    }

    /// Parses the text of a dataset (`path` names it in errors).
    pub fn parse(path: &Path, text: &str) -> Result<Dataset, String> {
        let at = |line: u64, field: &str, msg: String| format!("{}:{line}: {field}: {msg}", path.display());
        let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(text.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| at(1, "header", e.to_string()))?
            .iter()
            .map(str::to_string)
            .collect();
        if header != COLUMNS {
            return Err(at(1, "header", format!("expected the columns {}", COLUMNS.join(","))));
        }
        let mut rows: Vec<Row> = Vec::new();
        for rec in reader.records() {
            let rec = rec.map_err(|e| {
                let line = e.position().map_or(0, |p| p.line());
                at(line, "row", e.to_string())
            })?;
            let line = rec.position().map_or(0, |p| p.line());
            let field = |i: usize| rec.get(i).unwrap_or("").trim().to_string();
            let id = field(0);
            if id.is_empty() || rows.iter().any(|r| r.id == id) {
                return Err(at(line, "id", format!("`{id}` is empty or not unique")));
            }
            let set = match field(1).as_str() {
                "calibration" => Set::Calibration,
                "validation" => Set::Validation,
                s => return Err(at(line, "set", format!("`{s}`: expected calibration or validation"))),
            };
            let fits = match (set, field(2).as_str()) {
                (Set::Validation, "") => None,
                (Set::Validation, f) => return Err(at(line, "fits", format!("`{f}`: a validation row fits nothing"))),
                (Set::Calibration, "workload") => Some(Fits::Workload),
                (Set::Calibration, "dram_queueing") => Some(Fits::DramQueueing),
                (Set::Calibration, "context_switch_us") => Some(Fits::ContextSwitch),
                (Set::Calibration, "inputs") => Some(Fits::Inputs),
                (Set::Calibration, f) => {
                    return Err(at(
                        line,
                        "fits",
                        format!("`{f}`: expected workload, dram_queueing, context_switch_us or inputs"),
                    ));
                }
            };
            let value = field(10)
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or_else(|| at(line, "value", format!("`{}`: expected a positive number", field(10))))?;
            let experiment = Experiment::parse(&field(12)).map_err(|e| at(line, "experiment", e))?;
            if matches!(experiment, Experiment::Scenario { .. }) && fits.is_some_and(|f| f != Fits::Inputs) {
                return Err(at(
                    line,
                    "fits",
                    "a scenario experiment fits nothing (its profiles are the catalog's): use `inputs`".into(),
                ));
            }
            if fits == Some(Fits::Workload) {
                let w = experiment.workloads();
                if w.is_empty() || w.iter().any(|x| *x != w[0]) {
                    return Err(at(
                        line,
                        "fits",
                        "a `workload` row must run clients of one workload".into(),
                    ));
                }
            }
            rows.push(Row {
                id,
                set,
                fits,
                source: field(3),
                url: field(4),
                gpu: field(5),
                workload: field(6),
                mechanism: field(7),
                configuration: field(8),
                metric: field(9),
                value,
                unit: field(11),
                experiment,
                note: field(13),
            });
        }
        if rows.is_empty() {
            return Err(at(
                2,
                "row",
                "no rows after the header: nothing to fit or to check".into(),
            ));
        }
        Ok(Dataset {
            path: path.to_owned(),
            rows,
        })
    }

    /// The calibration rows: all that fitting may see.
    pub fn calibration(&self) -> Vec<CalibrationRow> {
        self.rows
            .iter()
            .filter(|r| r.set == Set::Calibration)
            .cloned()
            .map(CalibrationRow)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn experiments_parse_and_bad_ones_say_why() {
        let e = Experiment::parse(
            "kind=closed-loop device=v100-16gb mechanism=mps clients=a@10,2*b@50/0.4 measure=latency_ms client=1",
        )
        .unwrap();
        let Experiment::ClosedLoop { clients, which, .. } = e else {
            panic!()
        };
        assert_eq!(clients.len(), 3);
        assert_eq!((clients[1].cap_pct, clients[1].quota), (50.0, 0.4));
        assert_eq!(which, Which::Client(1));
        let mig =
            Experiment::parse("kind=closed-loop device=a100-80gb mechanism=mig clients=w@1g.10gb measure=qps scale=32")
                .unwrap();
        assert_eq!(mig.workloads(), ["w"]);
        for (bad, says) in [
            (
                "kind=closed-loop device=d mechanism=mig clients=w measure=qps",
                "@SLICE",
            ),
            (
                "kind=closed-loop device=d mechanism=mps clients=w@150 measure=qps",
                "percentage",
            ),
            (
                "kind=closed-loop device=d mechanism=mps clients=w measure=speed",
                "measure=speed",
            ),
            (
                "kind=closed-loop device=d mechanism=mps clients=w measure=qps client=3",
                "client=3",
            ),
            ("kind=other", "kind=other"),
        ] {
            let e = Experiment::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn rows_are_checked_with_their_line() {
        let head = COLUMNS.join(",");
        let ok =
            "a,validation,,s,u,g,w,m,c,metric,1.5,ms,kind=closed-loop device=d mechanism=mps clients=w measure=qps,";
        let d = Dataset::parse(Path::new("m.csv"), &format!("{head}\n{ok}\n")).unwrap();
        assert_eq!(d.rows.len(), 1);
        assert!(d.calibration().is_empty());
        let bad = ok.replace("1.5", "-1");
        let e = Dataset::parse(Path::new("m.csv"), &format!("{head}\n{bad}\n")).unwrap_err();
        assert!(e.starts_with("m.csv:2: value:"), "{e}");
        let bad = ok.replace("validation,", "validation,workload");
        let e = Dataset::parse(Path::new("m.csv"), &format!("{head}\n{bad}\n")).unwrap_err();
        assert!(e.contains("fits"), "{e}");
        // A scenario runs catalog profiles: it can state inputs, not fit a coefficient.
        let scenario =
            "b,calibration,dram_queueing,s,u,g,w,m,c,metric,1.5,ms,kind=scenario file=x.toml measure=throughput_per_s,";
        let e = Dataset::parse(Path::new("m.csv"), &format!("{head}\n{scenario}\n")).unwrap_err();
        assert!(e.starts_with("m.csv:2: fits:"), "{e}");
        let inputs = scenario.replace("dram_queueing", "inputs");
        assert!(Dataset::parse(Path::new("m.csv"), &format!("{head}\n{inputs}\n")).is_ok());
    }
}
