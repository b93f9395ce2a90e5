//! The table (stdout, Markdown) and the same figures as JSON.

use serde_json::{Value, json};

use crate::scenarios::Sided;
use crate::stats::Measured;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
}

impl From<bool> for Verdict {
    fn from(met: bool) -> Self {
        if met { Self::Met } else { Self::Missed }
    }
}

pub struct Row {
    pub scenario: String,
    pub clients: String,
    pub unit: &'static str,
    pub service: Sided,
    pub raw: Option<Measured>,
    pub target: &'static str,
    pub verdict: Verdict,
    pub note: String,
    /// Every run's figures when the scenario ran more than once (this row is the median run);
    /// empty for a single run.
    pub runs: Vec<RunFigures>,
}

/// The figures of one run that the table shows as median and spread.
#[derive(Clone, Debug)]
pub struct RunFigures {
    pub ratio: Option<f64>,
    pub server_cpu_ms_per_op: f64,
    pub postgres_service_ms_per_op: Option<f64>,
    pub postgres_raw_ms_per_op: Option<f64>,
    pub client_service_ms_per_op: Option<f64>,
    pub client_raw_ms_per_op: Option<f64>,
    pub service_p99_ms: f64,
    pub met: bool,
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => 0.0,
        n if n.is_multiple_of(2) => (sorted[middle - 1] + sorted[middle]) / 2.0,
        _ => sorted[middle],
    }
}

/// `median (min–max)` over the runs, or the one value; `scale` converts ms to the unit shown.
fn spread(values: &[f64], decimals: usize, scale: f64, suffix: &str) -> String {
    if values.is_empty() {
        return "–".into();
    }
    let show = |v: f64| format!("{:.*}", decimals, v * scale);
    if values.len() == 1 {
        return format!("{}{suffix}", show(values[0]));
    }
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!(
        "{}{suffix} ({}–{})",
        show(median(values)),
        show(min),
        show(max)
    )
}

impl Row {
    #[allow(clippy::too_many_arguments)]
    pub fn compare(
        scenario: String,
        clients: String,
        unit: &'static str,
        service: Sided,
        raw: Measured,
        target: &'static str,
        verdict: Verdict,
        note: String,
    ) -> Self {
        Self {
            scenario,
            clients,
            unit,
            service,
            raw: Some(raw),
            target,
            verdict,
            note,
            runs: Vec::new(),
        }
    }

    pub fn single(
        scenario: String,
        clients: String,
        unit: &'static str,
        service: Sided,
        target: &'static str,
        verdict: Verdict,
        note: String,
    ) -> Self {
        Self {
            scenario,
            clients,
            unit,
            service,
            raw: None,
            target,
            verdict,
            note,
            runs: Vec::new(),
        }
    }

    /// One row from several runs of the same scenario: the run with the median ratio (or
    /// throughput) stands for them, and every run's figures are kept for the spread. Errors in
    /// any run fail the row.
    pub fn combine(mut rows: Vec<Row>) -> Option<Row> {
        if rows.len() <= 1 {
            return rows.pop();
        }
        let runs: Vec<RunFigures> = rows.iter().map(Row::figures).collect();
        let errors: u64 = rows.iter().map(Row::errors).sum();
        let met_runs = rows.iter().filter(|row| row.met()).count();
        let total = rows.len();
        let key = |row: &Row| row.ratio().unwrap_or(row.service.measured.throughput);
        rows.sort_by(|a, b| key(a).total_cmp(&key(b)));
        let mut row = rows.swap_remove(total / 2);
        row.service.measured.errors = errors;
        row.note = format!(
            "target met in {met_runs} of {total} runs{}{}",
            if row.note.is_empty() {
                ""
            } else {
                "; median run: "
            },
            row.note
        );
        row.runs = runs;
        Some(row)
    }

    fn figures(&self) -> RunFigures {
        RunFigures {
            ratio: self.ratio(),
            server_cpu_ms_per_op: self.service.cpu_ms_per_op,
            postgres_service_ms_per_op: self.service.measured.postgres_cpu_ms_per_op,
            postgres_raw_ms_per_op: self.raw.as_ref().and_then(|r| r.postgres_cpu_ms_per_op),
            client_service_ms_per_op: self.service.measured.client_cpu_ms_per_op,
            client_raw_ms_per_op: self.raw.as_ref().and_then(|r| r.client_cpu_ms_per_op),
            service_p99_ms: self.service.measured.p99_ms,
            met: self.met(),
        }
    }

    fn all_figures(&self) -> Vec<RunFigures> {
        if self.runs.is_empty() {
            vec![self.figures()]
        } else {
            self.runs.clone()
        }
    }

    fn errors(&self) -> u64 {
        self.service.measured.errors + self.raw.as_ref().map_or(0, |raw| raw.errors)
    }

    /// Errors fail a row whatever its figures.
    pub fn met(&self) -> bool {
        self.verdict == Verdict::Met && self.errors() == 0
    }

    pub fn ratio(&self) -> Option<f64> {
        self.raw
            .as_ref()
            .map(|raw| self.service.measured.throughput / raw.throughput.max(1e-9))
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A Markdown table: pasteable into the README as it is.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str("| scenario | clients | runs | service | raw | ratio | server CPU µs/op | Postgres CPU µs/op (svc / raw) | bench client CPU µs/op (svc / raw) | p50 ms (svc / raw) | p95 ms (svc / raw) | p99 ms (svc / raw) | server peak RSS | errors | target | result |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for row in rows {
        let runs = row.all_figures();
        let collect =
            |f: fn(&RunFigures) -> Option<f64>| -> Vec<f64> { runs.iter().filter_map(f).collect() };
        let ratios = collect(|r| r.ratio);
        let server_cpu = collect(|r| Some(r.server_cpu_ms_per_op).filter(|v| *v > 0.0));
        let pg_service = collect(|r| r.postgres_service_ms_per_op);
        let pg_raw = collect(|r| r.postgres_raw_ms_per_op);
        let sides = |service: &[f64], raw: &[f64]| match (service.is_empty(), raw.is_empty()) {
            (true, true) => "–".to_owned(),
            _ => format!(
                "{} / {}",
                spread(service, 0, 1000.0, ""),
                spread(raw, 0, 1000.0, "")
            ),
        };
        let postgres = sides(&pg_service, &pg_raw);
        let client = sides(
            &collect(|r| r.client_service_ms_per_op),
            &collect(|r| r.client_raw_ms_per_op),
        );
        let s = &row.service.measured;
        let pair = |svc: f64, raw: Option<f64>| match raw {
            Some(raw) => format!("{svc:.1} / {raw:.1}"),
            None => format!("{svc:.1}"),
        };
        let raw = row.raw.as_ref();
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} MiB | {} | {} | {} |\n",
            row.scenario,
            row.clients,
            runs.len(),
            s.throughput,
            row.unit,
            raw.map_or("–".into(), |r| format!(
                "{:.0} {}",
                r.throughput, row.unit
            )),
            if ratios.is_empty() {
                "–".to_owned()
            } else {
                spread(&ratios, 2, 1.0, "×")
            },
            spread(&server_cpu, 0, 1000.0, ""),
            postgres,
            client,
            pair(s.p50_ms, raw.map(|r| r.p50_ms)),
            pair(s.p95_ms, raw.map(|r| r.p95_ms)),
            pair(s.p99_ms, raw.map(|r| r.p99_ms)),
            mib(row.service.peak_kib),
            row.errors(),
            row.target,
            if row.met() { "met" } else { "**missed**" },
        ));
    }
    let notes: Vec<String> = rows
        .iter()
        .filter(|row| !row.note.is_empty() || row.errors() > 0)
        .map(|row| {
            let mut note = format!("- {}: {}", row.scenario, row.note);
            for error in [
                row.service.measured.first_error.as_ref(),
                row.raw.as_ref().and_then(|raw| raw.first_error.as_ref()),
            ]
            .into_iter()
            .flatten()
            {
                note.push_str(&format!(
                    " (first error: {})",
                    &error[..error.len().min(300)]
                ));
            }
            note
        })
        .collect();
    if !notes.is_empty() {
        out.push('\n');
        out.push_str(&notes.join("\n"));
        out.push('\n');
    }
    out
}

fn measured_json(m: &Measured) -> Value {
    json!({
        "ops": m.ops,
        "errors": m.errors,
        "seconds": m.secs,
        "throughput": m.throughput,
        "p50_ms": m.p50_ms,
        "p95_ms": m.p95_ms,
        "p99_ms": m.p99_ms,
        "first_error": m.first_error,
        "postgres_cpu_ms_per_op": m.postgres_cpu_ms_per_op,
        "client_cpu_ms_per_op": m.client_cpu_ms_per_op,
    })
}

pub fn json(rows: &[Row], machine: Value) -> Value {
    json!({
        "machine": machine,
        "scenarios": rows.iter().map(|row| json!({
            "scenario": row.scenario,
            "clients": row.clients,
            "unit": row.unit,
            "service": measured_json(&row.service.measured),
            "server_idle_rss_mib": mib(row.service.idle_kib),
            "server_peak_rss_mib": mib(row.service.peak_kib),
            "server_cpu_ms_per_op": row.service.cpu_ms_per_op,
            "raw": row.raw.as_ref().map(measured_json),
            "ratio": row.ratio(),
            "postgres_cpu_ms_per_op": {
                "service": row.service.measured.postgres_cpu_ms_per_op,
                "raw": row.raw.as_ref().and_then(|raw| raw.postgres_cpu_ms_per_op),
            },
            "medians": medians_json(&row.all_figures()),
            "runs": row.all_figures().iter().map(|run| json!({
                "ratio": run.ratio,
                "server_cpu_ms_per_op": run.server_cpu_ms_per_op,
                "postgres_cpu_ms_per_op_service": run.postgres_service_ms_per_op,
                "postgres_cpu_ms_per_op_raw": run.postgres_raw_ms_per_op,
                "client_cpu_ms_per_op_service": run.client_service_ms_per_op,
                "client_cpu_ms_per_op_raw": run.client_raw_ms_per_op,
                "service_p99_ms": run.service_p99_ms,
                "met": run.met,
            })).collect::<Vec<_>>(),
            "target": row.target,
            "met": row.met(),
            "note": row.note,
        })).collect::<Vec<_>>(),
    })
}

/// The median of each figure over the runs (each on its own, not the median run's).
fn medians_json(runs: &[RunFigures]) -> Value {
    let of = |f: fn(&RunFigures) -> Option<f64>| -> Option<f64> {
        let values: Vec<f64> = runs.iter().filter_map(f).collect();
        (!values.is_empty()).then(|| median(&values))
    };
    json!({
        "ratio": of(|r| r.ratio),
        "server_cpu_ms_per_op": of(|r| Some(r.server_cpu_ms_per_op)),
        "postgres_cpu_ms_per_op_service": of(|r| r.postgres_service_ms_per_op),
        "postgres_cpu_ms_per_op_raw": of(|r| r.postgres_raw_ms_per_op),
        "client_cpu_ms_per_op_service": of(|r| r.client_service_ms_per_op),
        "client_cpu_ms_per_op_raw": of(|r| r.client_raw_ms_per_op),
        "service_p99_ms": of(|r| Some(r.service_p99_ms)),
    })
}
