//! What the brokers spent during a bench run, read from their `/metrics` before and after it:
//! CPU-seconds (`palisade_process_cpu_seconds`) and peak resident memory since each broker
//! started (`palisade_process_resident_peak_bytes`).
//!
//! Sampling never fails a run: a broker that does not answer is reported without numbers.
use serde::Serialize;

use crate::client::Client;

/// One broker's counters at one moment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub id: u64,
    pub url: String,
    pub cpu_seconds: Option<f64>,
    pub peak_rss_bytes: Option<u64>,
}

/// What one broker used during the run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BrokerUsage {
    pub id: u64,
    /// CPU-seconds (user and system) the broker used between the two samples.
    pub cpu_s: Option<f64>,
    /// The broker's peak resident memory since it started, at the end of the run.
    pub peak_rss_mib: Option<f64>,
}

/// The value of the first sample of `name` (no labels) in Prometheus text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (key, value) = line.split_once(' ')?;
            (key == name).then(|| value.trim().parse().ok())?
        })
}

/// Reads the counters of every broker the cluster view lists (or of `fallback` alone, when the
/// view is not available), through clients made by `connect_to`.
pub(crate) async fn sample<F>(admin: &Client, fallback: &str, connect_to: F) -> Vec<Sample>
where
    F: Fn(&str) -> anyhow::Result<Client>,
{
    let brokers: Vec<(u64, String)> = match admin.cluster().await {
        Ok(view) if !view.brokers.is_empty() => view
            .brokers
            .into_iter()
            .filter(|broker| !broker.http.is_empty())
            .map(|broker| (broker.id, broker.http))
            .collect(),
        _ => vec![(0, fallback.to_string())],
    };
    let mut samples = Vec::with_capacity(brokers.len());
    for (id, url) in brokers {
        let text = match connect_to(&url) {
            Ok(client) => client.metrics_text().await.ok(),
            Err(_) => None,
        };
        let read = |name| text.as_deref().and_then(|text| metric(text, name));
        samples.push(Sample {
            id,
            cpu_seconds: read("palisade_process_cpu_seconds"),
            peak_rss_bytes: read("palisade_process_resident_peak_bytes").map(|bytes| bytes as u64),
            url,
        });
    }
    samples
}

/// Per broker: CPU used between `before` and `after`, and the peak RSS in `after`.
pub(crate) fn usage(before: &[Sample], after: &[Sample]) -> Vec<BrokerUsage> {
    after
        .iter()
        .map(|end| {
            let start = before.iter().find(|sample| sample.id == end.id);
            let cpu_s = match (start.and_then(|s| s.cpu_seconds), end.cpu_seconds) {
                (Some(start), Some(end)) => Some((end - start).max(0.0)),
                _ => None,
            };
            BrokerUsage {
                id: end.id,
                cpu_s,
                peak_rss_mib: end.peak_rss_bytes.map(|bytes| bytes as f64 / 1_048_576.0),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_unlabelled_samples_and_skips_comments_and_prefixes() {
        let text = "# HELP palisade_process_cpu_seconds CPU\n\
                    palisade_process_cpu_seconds_other 9\n\
                    palisade_process_cpu_seconds 12.5\n\
                    palisade_process_resident_peak_bytes 104857600\n";
        assert_eq!(metric(text, "palisade_process_cpu_seconds"), Some(12.5));
        assert_eq!(
            metric(text, "palisade_process_resident_peak_bytes"),
            Some(104_857_600.0)
        );
        assert_eq!(metric(text, "palisade_missing"), None);
    }

    #[test]
    fn usage_is_the_difference_per_broker() {
        let sample = |id, cpu, peak| Sample {
            id,
            url: String::new(),
            cpu_seconds: cpu,
            peak_rss_bytes: peak,
        };
        let before = [sample(1, Some(10.0), Some(1)), sample(2, None, None)];
        let after = [
            sample(1, Some(12.5), Some(2 * 1_048_576)),
            sample(2, Some(3.0), None),
        ];
        let used = usage(&before, &after);
        assert_eq!(used[0].cpu_s, Some(2.5));
        assert_eq!(used[0].peak_rss_mib, Some(2.0));
        assert_eq!(used[1].cpu_s, None, "no first sample: no difference");
    }
}
