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
    out.push_str("| scenario | clients | service | raw | ratio | p50 ms (svc / raw) | p95 ms (svc / raw) | p99 ms (svc / raw) | server peak RSS | errors | target | result |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for row in rows {
        let s = &row.service.measured;
        let pair = |svc: f64, raw: Option<f64>| match raw {
            Some(raw) => format!("{svc:.1} / {raw:.1}"),
            None => format!("{svc:.1}"),
        };
        let raw = row.raw.as_ref();
        out.push_str(&format!(
            "| {} | {} | {:.0} {} | {} | {} | {} | {} | {} | {:.0} MiB | {} | {} | {} |\n",
            row.scenario,
            row.clients,
            s.throughput,
            row.unit,
            raw.map_or("–".into(), |r| format!(
                "{:.0} {}",
                r.throughput, row.unit
            )),
            row.ratio().map_or("–".into(), |r| format!("{r:.2}×")),
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
            "target": row.target,
            "met": row.met(),
            "note": row.note,
        })).collect::<Vec<_>>(),
    })
}
