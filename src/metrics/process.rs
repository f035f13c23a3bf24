//! The standard process metrics (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_open_fds`), read from `/proc/self` at each
//! scrape on Linux; elsewhere none are given (rather than wrong ones).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

/// What a scrape reads of the process: each `None` when it cannot be read.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct ProcessStats {
    /// CPU time, user and system, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident memory, in bytes.
    pub resident_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
}

impl ProcessStats {
    /// Reads them now (Linux: `/proc/self/stat`, `/proc/self/statm`, `/proc/self/fd`).
    ///
    /// ```
    /// let s = peerkeeper::metrics::ProcessStats::read();
    /// if cfg!(target_os = "linux") {
    ///     assert!(s.resident_bytes.unwrap() > 0 && s.open_fds.unwrap() >= 3);
    /// }
    /// ```
    pub fn read() -> ProcessStats {
        read_linux()
    }
}

#[cfg(target_os = "linux")]
fn read_linux() -> ProcessStats {
    // SAFETY: sysconf has no preconditions; a negative answer is an error, checked.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let cpu_seconds = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // The command name (field 2) is in parentheses and may hold spaces: the
            // fields counted from after its closing one. utime and stime are 14 and 15.
            let rest = s.get(s.rfind(')')? + 1..)?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            (ticks > 0).then(|| (utime + stime) as f64 / ticks as f64)
        });
    let resident_bytes = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            let pages: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
            (page > 0).then(|| pages * page as u64)
        });
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64);
    ProcessStats {
        cpu_seconds,
        resident_bytes,
        open_fds,
    }
}

#[cfg(not(target_os = "linux"))]
fn read_linux() -> ProcessStats {
    ProcessStats::default()
}

/// The collector: reads [`ProcessStats`] at each scrape.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = ProcessStats::read();
        if let Some(cpu) = s.cpu_seconds {
            let c = ConstCounter::new(cpu);
            let m = encoder.encode_descriptor(
                "process_cpu",
                "Total user and system CPU time spent, in seconds",
                Some(&Unit::Seconds),
                c.metric_type(),
            )?;
            c.encode(m)?;
        }
        if let Some(rss) = s.resident_bytes {
            let g = ConstGauge::new(rss as i64);
            let m = encoder.encode_descriptor(
                "process_resident_memory",
                "Resident memory size, in bytes",
                Some(&Unit::Bytes),
                g.metric_type(),
            )?;
            g.encode(m)?;
        }
        if let Some(fds) = s.open_fds {
            let g = ConstGauge::new(fds as i64);
            let m = encoder.encode_descriptor(
                "process_open_fds",
                "Open file descriptors",
                None,
                g.metric_type(),
            )?;
            g.encode(m)?;
        }
        Ok(())
    }
}

/// Registers the standard process metrics in `registry`, read at each scrape:
/// `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`
/// (Linux; on other systems none). Register them once per process: an embedding node
/// whose registry has them already (from another library) leaves this out.
///
/// ```
/// let mut registry = prometheus_client::registry::Registry::default();
/// peerkeeper::metrics::register_process_metrics(&mut registry);
/// let mut text = String::new();
/// prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
/// if cfg!(target_os = "linux") {
///     assert!(text.contains("process_cpu_seconds_total "));
///     assert!(text.contains("process_resident_memory_bytes "));
///     assert!(text.contains("process_open_fds "));
/// }
/// ```
pub fn register_process_metrics(registry: &mut Registry) {
    registry.register_collector(Box::new(ProcessCollector));
}
